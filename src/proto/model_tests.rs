//! The sans-IO core against a simple model: two `Mux`es joined by in-memory queues, driven by
//! random interleavings of open, write, read, finish, reset, stop and message delivery.
//!
//! Whatever the interleaving: every byte a reader gets is a prefix of what the writer wrote;
//! a finished, undisturbed stream delivers exactly what was written and then the end; a reset or
//! a stop arrives with the code it was sent with; nothing panics.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use proptest::prelude::*;

use super::{Mux, ReadOutcome, Side, StreamId};
use crate::{code::ErrorCode, config::Config, error::Error};

#[derive(Debug, Clone)]
enum Op {
    Open(usize),
    Write(usize, usize, usize),
    Read(usize, usize, usize),
    Finish(usize, usize),
    Reset(usize, usize, u64),
    Stop(usize, usize, u64),
    Deliver(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let side = 0..2usize;
    let pick = any::<usize>();
    prop_oneof![
        1 => side.clone().prop_map(Op::Open),
        4 => (side.clone(), pick, 1..200usize).prop_map(|(s, i, n)| Op::Write(s, i, n)),
        4 => (side.clone(), pick, 1..200usize).prop_map(|(s, i, n)| Op::Read(s, i, n)),
        1 => (side.clone(), pick).prop_map(|(s, i)| Op::Finish(s, i)),
        1 => (side.clone(), pick, 3..5000u64).prop_map(|(s, i, c)| Op::Reset(s, i, c)),
        1 => (side.clone(), pick, 3..5000u64).prop_map(|(s, i, c)| Op::Stop(s, i, c)),
        5 => (side, 1..8usize).prop_map(|(s, n)| Op::Deliver(s, n)),
    ]
}

/// What one side did and saw on one stream.
#[derive(Debug, Default)]
struct Half {
    written: Vec<u8>,
    read: Vec<u8>,
    finished: bool,
    reset: Option<ErrorCode>,
    stopped: Option<ErrorCode>,
    /// The final outcome of reading: `Some(Ok(()))` for the end, `Some(Err)` for an error.
    read_end: Option<Result<(), Error>>,
}

struct World {
    mux: [Mux; 2],
    /// Messages in flight from side `i` to the other side.
    wire: [VecDeque<Bytes>; 2],
    /// Streams each side knows (opened or accepted), in order.
    known: [Vec<StreamId>; 2],
    halves: [HashMap<StreamId, Half>; 2],
    counter: u8,
}

impl World {
    fn new(window: u32) -> Self {
        Self::with_coalescing(window, false)
    }

    fn with_coalescing(window: u32, coalesce_writes: bool) -> Self {
        let config = Config {
            coalesce_writes,
            window: std::num::NonZeroU32::new(window).unwrap(),
            max_data_per_message: std::num::NonZeroUsize::new(37).unwrap(),
            send_buffer: std::num::NonZeroUsize::new(300).unwrap(),
            ..Config::default()
        };
        Self {
            mux: [
                Mux::new(Side::Client, config.clone()),
                Mux::new(Side::Server, config),
            ],
            wire: Default::default(),
            known: Default::default(),
            halves: Default::default(),
            counter: 0,
        }
    }

    fn pick(&self, side: usize, i: usize) -> Option<StreamId> {
        let known = &self.known[side];
        (!known.is_empty()).then(|| known[i % known.len()])
    }

    fn pump_out(&mut self, side: usize) {
        while let Some(msg) = self.mux[side].poll_transmit() {
            self.wire[side].push_back(msg);
        }
    }

    fn deliver(&mut self, from: usize, n: usize) {
        self.pump_out(from);
        let to = 1 - from;
        for _ in 0..n {
            let Some(msg) = self.wire[from].pop_front() else {
                break;
            };
            self.mux[to]
                .handle_message(&msg)
                .expect("a correct peer never causes a connection error");
        }
        while let Ok(Some(id)) = self.mux[to].accept() {
            self.known[to].push(id);
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Open(s) => {
                if let Ok(Some(id)) = self.mux[s].open() {
                    self.known[s].push(id);
                }
            }
            Op::Write(s, i, n) => {
                let Some(id) = self.pick(s, i) else { return };
                let data: Vec<u8> = (0..n)
                    .map(|_| {
                        self.counter = self.counter.wrapping_add(1);
                        self.counter
                    })
                    .collect();
                if let Ok(accepted) = self.mux[s].write(id, &data) {
                    let half = self.halves[s].entry(id).or_default();
                    half.written.extend_from_slice(&data[..accepted]);
                }
            }
            Op::Read(s, i, n) => {
                let Some(id) = self.pick(s, i) else { return };
                self.read(s, id, n);
            }
            Op::Finish(s, i) => {
                let Some(id) = self.pick(s, i) else { return };
                if self.mux[s].finish(id).is_ok() {
                    self.halves[s].entry(id).or_default().finished = true;
                }
            }
            Op::Reset(s, i, code) => {
                let Some(id) = self.pick(s, i) else { return };
                let fin_already_sent = self.mux[s].is_send_done(id);
                if self.mux[s].reset(id, ErrorCode(code)).is_ok() {
                    let half = self.halves[s].entry(id).or_default();
                    assert!(!fin_already_sent, "reset accepted after the FIN left");
                    half.reset = Some(ErrorCode(code));
                }
            }
            Op::Stop(s, i, code) => {
                let Some(id) = self.pick(s, i) else { return };
                let half = self.halves[s].entry(id).or_default();
                if half.read_end.is_none() && self.mux[s].stop(id, ErrorCode(code)).is_ok() {
                    half.stopped = Some(ErrorCode(code));
                    half.read_end = Some(Err(Error::LocallyEnded(ErrorCode(code))));
                }
            }
            Op::Deliver(s, n) => self.deliver(s, n),
        }
    }

    /// Reads up to `n` bytes; returns whether anything happened.
    fn read(&mut self, s: usize, id: StreamId, n: usize) -> bool {
        let half = self.halves[s].entry(id).or_default();
        if half.read_end.is_some() {
            return false;
        }
        let mut buf = vec![0u8; n];
        match self.mux[s].read(id, &mut buf) {
            Ok(ReadOutcome::Data(k)) => {
                half.read.extend_from_slice(&buf[..k]);
                k > 0
            }
            Ok(ReadOutcome::End) => {
                half.read_end = Some(Ok(()));
                true
            }
            Ok(ReadOutcome::Blocked) => false,
            Err(err) => {
                half.read_end = Some(Err(err));
                true
            }
        }
    }

    /// Delivers everything and reads everything until nothing moves.
    fn quiesce(&mut self) {
        for _ in 0..100_000 {
            let mut progress = false;
            for s in 0..2 {
                // Quiescing stands for tasks waiting on the connection: held-back data goes out.
                self.mux[s].uncork_all();
                self.pump_out(s);
                if !self.wire[s].is_empty() {
                    let n = self.wire[s].len();
                    self.deliver(s, n);
                    progress = true;
                }
                for id in self.known[s].clone() {
                    while self.read(s, id, 4096) {
                        progress = true;
                    }
                }
            }
            if !progress {
                return;
            }
        }
        panic!("no quiescence");
    }

    fn check(&mut self) {
        for writer in 0..2 {
            let reader = 1 - writer;
            let ids: Vec<StreamId> = self.halves[writer].keys().copied().collect();
            for id in ids {
                let w = &self.halves[writer][&id];
                let empty = Half::default();
                let r = self.halves[reader].get(&id).unwrap_or(&empty);
                assert!(
                    w.written.starts_with(&r.read),
                    "stream {id}: read bytes are not a prefix of the written ones"
                );
                if let Some(code) = r.stopped {
                    // The writer learns of the stop unless its own writing had already ended.
                    if !w.finished && w.reset.is_none() {
                        let err = self.mux[writer].write(id, b"x").unwrap_err();
                        assert!(
                            matches!(err, Error::Stopped(c) if c == code),
                            "stream {id}: writer saw {err:?} after stop {code}"
                        );
                    }
                    continue;
                }
                match (w.reset, w.finished) {
                    (Some(code), _) => assert!(
                        matches!(&r.read_end, Some(Err(Error::Reset(c))) if *c == code),
                        "stream {id}: reader saw {:?} after reset {code}",
                        r.read_end
                    ),
                    (None, true) => {
                        assert_eq!(r.read.len(), w.written.len(), "stream {id}: bytes lost");
                        assert!(
                            matches!(r.read_end, Some(Ok(()))),
                            "stream {id}: no end of stream: {:?}",
                            r.read_end
                        );
                    }
                    (None, false) => {
                        assert!(
                            r.read_end.is_none() && r.read.len() == w.written.len(),
                            "stream {id}: open stream ended or lost bytes"
                        );
                        // Liveness: the reader consumed everything, so credit must be back.
                        let more = self.mux[writer].write(id, b"z");
                        assert!(
                            matches!(more, Ok(1)),
                            "stream {id}: writer starved: {more:?}"
                        );
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_deliver_bytes_and_codes(
        window in prop_oneof![Just(1u32), Just(16), Just(100), Just(1 << 20)],
        coalesce in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut world = World::with_coalescing(window, coalesce);
        for op in ops {
            world.apply(op);
        }
        world.quiesce();
        world.check();
    }
}

#[test]
fn late_error_after_fin_keeps_the_data() {
    // The peer library replies to our messages with mirror images; an ERROR Read arriving after
    // its FIN must not discard bytes we have not read yet.
    let mut world = World::new(1 << 20);
    world.apply(Op::Open(0));
    world.deliver(0, 10);
    world.deliver(1, 10);
    let id = world.known[1][0];
    world.mux[1].write(id, b"kept").unwrap();
    world.mux[1].finish(id).unwrap();
    world.pump_out(1);
    world.wire[1]
        .push_back(super::message::Frame::Error(super::Half::Read, ErrorCode(7)).to_bytes(id));
    world.deliver(1, 10);
    let mut buf = [0u8; 8];
    assert!(matches!(
        world.mux[0].read(id, &mut buf),
        Ok(ReadOutcome::Data(4))
    ));
    assert_eq!(&buf[..4], b"kept");
    assert!(matches!(
        world.mux[0].read(id, &mut buf),
        Ok(ReadOutcome::End)
    ));
}

#[test]
fn sends_take_turns_between_streams() {
    let mut world = World::new(1 << 20);
    for _ in 0..3 {
        world.apply(Op::Open(0));
    }
    world.deliver(0, 100);
    world.deliver(1, 100);
    let ids = world.known[0].clone();
    for id in &ids {
        // 3 messages' worth each (max 37 bytes per DATA message in this world).
        assert_eq!(world.mux[0].write(*id, &[1u8; 111]).unwrap(), 111);
    }
    let mut order = Vec::new();
    while let Some(msg) = world.mux[0].poll_transmit() {
        let (id, _) = super::message::Frame::decode(&msg).unwrap();
        order.push(id.0);
    }
    let expected: Vec<u64> = (0..3).flat_map(|_| ids.iter().map(|id| id.0)).collect();
    assert_eq!(order, expected, "round-robin, one message per turn");
}

#[test]
fn coalescing_holds_small_writes_until_full_or_uncorked() {
    let mut world = World::with_coalescing(1 << 20, true);
    world.apply(Op::Open(0));
    world.deliver(0, 10);
    world.deliver(1, 10);
    let id = world.known[0][0];
    // 37-byte DATA messages in this world: 10 writes of 10 bytes fill two and start a third.
    for _ in 0..10 {
        assert_eq!(world.mux[0].write(id, &[5u8; 10]).unwrap(), 10);
    }
    let mut sizes = Vec::new();
    while let Some(msg) = world.mux[0].poll_transmit() {
        sizes.push(msg.len() - 3);
    }
    assert_eq!(sizes, [37, 37], "only full messages leave while corked");
    world.mux[0].uncork_all();
    let rest = world.mux[0]
        .poll_transmit()
        .expect("the partial message leaves once uncorked");
    assert_eq!(rest.len() - 3, 26);
    assert!(world.mux[0].poll_transmit().is_none());
}
