//! The sans-IO core against a simple model: two `Mux`es joined by in-memory queues, driven by
//! random interleavings of open, write, read, finish, reset, stop and message delivery.
//!
//! Whatever the interleaving: every byte a reader gets is a prefix of what the writer wrote;
//! a finished, undisturbed stream delivers exactly what was written and then the end; a reset or
//! a stop arrives with the code it was sent with; nothing panics.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use proptest::prelude::*;

use std::time::Instant;

use super::{
    wire::Frame, Config, Dir, ErrorCode, Mux, Protocol, ReadOutcome, Side, StreamError as Error,
    StreamKey, Transmit,
};

use super::StreamId;

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
    now: Instant,
    mux: [Mux; 2],
    /// Messages in flight from side `i` to the other side.
    wire: [VecDeque<Bytes>; 2],
    /// Streams each side knows (opened or accepted), in order.
    known: [Vec<StreamKey>; 2],
    halves: [HashMap<StreamId, Half>; 2],
    counter: u8,
}

impl World {
    fn new(window: u32) -> Self {
        Self::with_coalescing(window, false)
    }

    fn with_coalescing(window: u32, coalesce_writes: bool) -> Self {
        let config = Config::default()
            .coalesce_writes(coalesce_writes)
            .window(window)
            .max_data_per_message(37)
            .send_buffer(300);
        let now = Instant::now();
        Self {
            now,
            mux: [
                Mux::new(Side::Client, Protocol::Wire, config.clone(), now),
                Mux::new(Side::Server, Protocol::Wire, config, now),
            ],
            wire: Default::default(),
            known: Default::default(),
            halves: Default::default(),
            counter: 0,
        }
    }

    fn key(&self, side: usize, id: StreamId) -> Option<StreamKey> {
        self.known[side].iter().copied().find(|key| key.id() == id)
    }

    fn pick(&self, side: usize, i: usize) -> Option<StreamKey> {
        let known = &self.known[side];
        (!known.is_empty()).then(|| known[i % known.len()])
    }

    fn pump_out(&mut self, side: usize) {
        self.pump_out_with(side, false);
    }

    fn pump_out_with(&mut self, side: usize, flush_partial: bool) {
        while let Some(transmit) = self.mux[side].poll_transmit(self.now, flush_partial) {
            match transmit {
                Transmit::Binary(msg) => self.wire[side].push_back(msg),
                other => panic!("unexpected {other:?}"),
            }
        }
        while self.mux[side].poll_wake().is_some() {}
        while let Some(event) = self.mux[side].poll_event() {
            assert!(
                !matches!(event, super::Event::Violation(_) | super::Event::Closed(_)),
                "a correct peer never ends the connection: {event:?}"
            );
        }
    }

    fn deliver(&mut self, from: usize, n: usize) {
        self.pump_out(from);
        let to = 1 - from;
        for _ in 0..n {
            let Some(msg) = self.wire[from].pop_front() else {
                break;
            };
            self.mux[to].handle_message(self.now, msg);
            assert!(
                self.mux[to].closing_error().is_none(),
                "a correct peer never causes a connection error"
            );
        }
        while let Ok(Some(id)) = self.mux[to].accept(Dir::Bi) {
            self.known[to].push(id);
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Open(s) => {
                if let Ok(Some(id)) = self.mux[s].open(self.now, Dir::Bi) {
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
                if let Ok(accepted) = self.mux[s].write(id, self.now, &data) {
                    let half = self.halves[s].entry(id.id()).or_default();
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
                    self.halves[s].entry(id.id()).or_default().finished = true;
                }
            }
            Op::Reset(s, i, code) => {
                let Some(id) = self.pick(s, i) else { return };
                let fin_already_sent = matches!(self.mux[s].poll_stopped(id), Some(Ok(None)));
                let half = self.halves[s].entry(id.id()).or_default();
                if !fin_already_sent
                    && half.reset.is_none()
                    && self.mux[s].reset(id, ErrorCode(code)).is_ok()
                    && !matches!(self.mux[s].poll_stopped(id), Some(Ok(Some(_))))
                {
                    half.reset = Some(ErrorCode(code));
                }
            }
            Op::Stop(s, i, code) => {
                let Some(id) = self.pick(s, i) else { return };
                let half = self.halves[s].entry(id.id()).or_default();
                if half.read_end.is_none() && self.mux[s].stop(id, ErrorCode(code)).is_ok() {
                    half.stopped = Some(ErrorCode(code));
                    half.read_end = Some(Err(Error::LocallyEnded(ErrorCode(code))));
                }
            }
            Op::Deliver(s, n) => self.deliver(s, n),
        }
    }

    /// Reads up to `n` bytes; returns whether anything happened.
    fn read(&mut self, s: usize, id: StreamKey, n: usize) -> bool {
        let half = self.halves[s].entry(id.id()).or_default();
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
                self.pump_out_with(s, true);
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
                        let key = self.key(writer, id).expect("the writer knows it");
                        let err = self.mux[writer].write(key, self.now, b"x").unwrap_err();
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
                        let key = self.key(writer, id).expect("the writer knows it");
                        let more = self.mux[writer].write(key, self.now, b"z");
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
    let key = world.known[1][0];
    let client_key = world.known[0][0];
    world.mux[1].write(key, world.now, b"kept").unwrap();
    world.mux[1].finish(key).unwrap();
    world.pump_out(1);
    world.wire[1].push_back(Frame::Error(super::Half::Read, ErrorCode(7)).to_bytes(key.id()));
    world.deliver(1, 10);
    let mut buf = [0u8; 8];
    assert!(matches!(
        world.mux[0].read(client_key, &mut buf),
        Ok(ReadOutcome::Data(4))
    ));
    assert_eq!(&buf[..4], b"kept");
    assert!(matches!(
        world.mux[0].read(client_key, &mut buf),
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
        assert_eq!(
            world.mux[0].write(*id, world.now, &[1u8; 111]).unwrap(),
            111
        );
    }
    let mut order = Vec::new();
    while let Some(Transmit::Binary(msg)) = world.mux[0].poll_transmit(world.now, false) {
        let (id, _) = Frame::decode(&msg).unwrap();
        order.push(id.0);
    }
    let expected: Vec<u64> = (0..3)
        .flat_map(|_| ids.iter().map(|id| id.id().0))
        .collect();
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
        assert_eq!(world.mux[0].write(id, world.now, &[5u8; 10]).unwrap(), 10);
    }
    let mut sizes = Vec::new();
    while let Some(Transmit::Binary(msg)) = world.mux[0].poll_transmit(world.now, false) {
        sizes.push(msg.len() - 3);
    }
    assert_eq!(sizes, [37, 37], "only full messages leave while corked");
    let Some(Transmit::Binary(rest)) = world.mux[0].poll_transmit(world.now, true) else {
        panic!("the partial message leaves once uncorked");
    };
    assert_eq!(rest.len() - 3, 26);
    assert!(world.mux[0].poll_transmit(world.now, true).is_none());
}
