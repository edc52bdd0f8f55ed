//! The world the model tests run in: two `Mux`es, a client and a server, joined by in-memory
//! queues, with a record of what each application did and of what each side received.
//!
//! The record of what arrived is kept from the messages themselves, decoded as they are handed to
//! the receiving core (and only when it still takes data): the checks compare what the
//! applications see — bytes, ends, errors, events — with what the wire really carried, so they
//! never depend on how the sender's core decided what to send. Close frames travel too: a core's
//! Close frame reaches the other side, which echoes it as tungstenite does, and every pump ends
//! with the socket flushed.

use std::{
    collections::{HashMap, VecDeque},
    time::Instant,
};

use bytes::Bytes;
use proptest::prelude::*;

use super::super::{
    wire::Frame, CloseCode, Config, ConnectionError, Dir, ErrorCode, Event, Half, Mux, Protocol,
    ReadOutcome, Side, StreamError, StreamId, StreamKey, Transmit, Wake,
};

/// One step of the applications or the network.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Open(usize),
    Accept(usize),
    Write(usize, usize, usize),
    Read(usize, usize, usize),
    Finish(usize, usize),
    Reset(usize, usize, u64),
    Stop(usize, usize, u64),
    /// Drops handles: bit 0 the send half, bit 1 the receive half, bit 2 while panicking.
    Release(usize, usize, u8),
    /// Delivers up to this many messages from a side to the other.
    Deliver(usize, usize),
}

/// The operations of streams, for both sides. `accept` adds explicit accepts (otherwise every
/// stream is accepted as soon as it arrives).
pub(super) fn op(accept: bool) -> impl Strategy<Value = Op> {
    let side = 0..2usize;
    let pick = any::<usize>();
    prop_oneof![
        1 => side.clone().prop_map(Op::Open),
        u32::from(accept) => side.clone().prop_map(Op::Accept),
        4 => (side.clone(), pick, 1..200usize).prop_map(|(s, i, n)| Op::Write(s, i, n)),
        4 => (side.clone(), pick, 1..200usize).prop_map(|(s, i, n)| Op::Read(s, i, n)),
        1 => (side.clone(), pick).prop_map(|(s, i)| Op::Finish(s, i)),
        1 => (side.clone(), pick, 3..5000u64).prop_map(|(s, i, c)| Op::Reset(s, i, c)),
        1 => (side.clone(), pick, 3..5000u64).prop_map(|(s, i, c)| Op::Stop(s, i, c)),
        1 => (side.clone(), pick, 1..8u8).prop_map(|(s, i, how)| Op::Release(s, i, how)),
        5 => (side, 1..8usize).prop_map(|(s, n)| Op::Deliver(s, n)),
    ]
}

/// What one application did and saw on one stream.
#[derive(Debug, Default)]
pub(super) struct App {
    pub written: Vec<u8>,
    pub read: Vec<u8>,
    /// `finish` succeeded, or the send half was released (which finishes it).
    pub finished: bool,
    /// The application's reset, and its stop (a released receive half stops with the drop code).
    pub reset: Option<ErrorCode>,
    pub stopped: Option<ErrorCode>,
    pub send_released: bool,
    pub recv_released: bool,
    /// How reading ended: `Ok(())` for the end of stream.
    pub read_end: Option<Result<(), StreamError>>,
    /// The error a write returned, once one did.
    pub write_error: Option<StreamError>,
}

/// What one side received on one stream, in the order its core handled it.
#[derive(Debug, Default)]
pub(super) struct Arrived {
    pub data: Vec<u8>,
    /// How many bytes had arrived when the FIN (CLOSE Read) did.
    pub fin_at: Option<usize>,
    /// Codes of ERROR Read (resets) and ERROR Write (stops).
    pub resets: Vec<ErrorCode>,
    pub stops: Vec<ErrorCode>,
    /// An ACK arrived: the sender's opening was answered, and its data and FIN may follow.
    pub acked: bool,
    /// A malformed message, or DATA beyond credit, was injected towards this side.
    pub malformed: bool,
    pub overflowed: bool,
}

/// Something in flight from one side to the other.
#[derive(Debug, Clone)]
pub(super) enum Message {
    Binary(Bytes),
    Close(CloseCode, String),
}

/// See the [module docs](self).
pub(super) struct World {
    pub now: Instant,
    pub config: Config,
    pub mux: [Mux; 2],
    /// Messages in flight from side `i` to the other side.
    pub wire: [VecDeque<Message>; 2],
    /// Streams each side's application holds (opened or accepted), in order.
    pub known: [Vec<StreamKey>; 2],
    pub apps: [HashMap<StreamId, App>; 2],
    pub arrived: [HashMap<StreamId, Arrived>; 2],
    /// Credit each side granted on each stream, in the ACKs it sent.
    pub granted: [HashMap<StreamId, u64>; 2],
    pub events: [Vec<Event>; 2],
    pub wakes: [Vec<Wake>; 2],
    /// Each side's closing error as first seen: what its streams fail with.
    pub closing: [Option<ConnectionError>; 2],
    /// Whether each side's Close frame was sent.
    pub close_sent: [bool; 2],
    /// Streams are accepted as soon as they arrive.
    pub auto_accept: bool,
    counter: u8,
}

impl World {
    pub fn new(config: Config) -> Self {
        let now = Instant::now();
        Self {
            now,
            mux: [
                Mux::new(Side::Client, Protocol::Wire, config.clone(), now),
                Mux::new(Side::Server, Protocol::Wire, config.clone(), now),
            ],
            config,
            wire: Default::default(),
            known: Default::default(),
            apps: Default::default(),
            arrived: Default::default(),
            granted: Default::default(),
            events: Default::default(),
            wakes: Default::default(),
            closing: Default::default(),
            close_sent: [false; 2],
            auto_accept: true,
            counter: 0,
        }
    }

    /// The configuration of most tests: small windows and messages, so that credit, message
    /// boundaries and the send buffer are all reached.
    pub fn small(window: u32, coalesce_writes: bool) -> Config {
        Config::default()
            .coalesce_writes(coalesce_writes)
            .window(window)
            .max_data_per_message(37)
            .send_buffer(300)
    }

    pub fn key(&self, side: usize, id: StreamId) -> Option<StreamKey> {
        self.known[side].iter().copied().find(|key| key.id() == id)
    }

    pub fn pick(&self, side: usize, i: usize) -> Option<StreamKey> {
        let known = &self.known[side];
        (!known.is_empty()).then(|| known[i % known.len()])
    }

    pub fn app(&mut self, side: usize, key: StreamKey) -> &mut App {
        self.apps[side].entry(key.id()).or_default()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.counter = self.counter.wrapping_add(1);
                self.counter
            })
            .collect()
    }

    // ----- the network -----

    /// Everything the side's core has to say goes on the wire; its socket flushes.
    pub fn pump_out(&mut self, side: usize) {
        self.pump_out_with(side, false);
    }

    pub fn pump_out_with(&mut self, side: usize, flush_partial: bool) {
        self.observe(side);
        while let Some(transmit) = self.mux[side].poll_transmit(self.now, flush_partial) {
            assert!(!self.close_sent[side], "{transmit:?} after our Close frame");
            match transmit {
                Transmit::Binary(message) => {
                    if let Ok((id, Frame::Ack(credit))) = Frame::decode(&message) {
                        *self.granted[side].entry(id).or_default() += u64::from(credit);
                    }
                    self.wire[side].push_back(Message::Binary(message));
                }
                Transmit::Close { code, reason } => {
                    self.close_sent[side] = true;
                    self.wire[side].push_back(Message::Close(code, reason));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        self.mux[side].handle_flushed(self.now);
        self.observe(side);
    }

    /// Takes the side's events and wakes, and its closing error the first time there is one.
    pub fn observe(&mut self, side: usize) {
        while let Some(event) = self.mux[side].poll_event() {
            self.events[side].push(event);
        }
        while let Some(wake) = self.mux[side].poll_wake() {
            self.wakes[side].push(wake);
        }
        if self.closing[side].is_none() {
            self.closing[side] = self.mux[side].closing_error();
        }
    }

    /// Delivers up to `n` messages from side `from` to the other.
    pub fn deliver(&mut self, from: usize, n: usize) {
        self.pump_out(from);
        let to = 1 - from;
        for _ in 0..n {
            let Some(message) = self.wire[from].pop_front() else {
                break;
            };
            self.receive(to, message);
        }
        if self.auto_accept {
            self.accept(to);
        }
    }

    /// Hands one message to side `to`, recording what it carried if the core still takes data.
    pub fn receive(&mut self, to: usize, message: Message) {
        if self.mux[to].terminal().is_some() {
            // The connection is over: the engine released the socket, nothing more is read.
            return;
        }
        match message {
            Message::Binary(bytes) => {
                if self.mux[to].closing_error().is_none() {
                    self.record(to, &bytes);
                }
                self.mux[to].handle_message(self.now, bytes);
            }
            Message::Close(code, reason) => {
                // tungstenite answers a Close frame with the same one, unless it sent its own.
                let echo = !self.close_sent[to];
                self.mux[to].handle_close_frame(self.now, Some((code, reason.clone())));
                if echo {
                    self.close_sent[to] = true;
                    self.wire[to].push_back(Message::Close(code, reason));
                    self.mux[to].handle_flushed(self.now);
                }
            }
        }
        self.observe(to);
    }

    fn record(&mut self, to: usize, bytes: &Bytes) {
        let Ok((id, frame)) = Frame::decode(bytes) else {
            return;
        };
        let arrived = self.arrived[to].entry(id).or_default();
        match frame {
            Frame::Data(payload) => arrived.data.extend_from_slice(&payload),
            Frame::Close(Half::Read) => {
                let at = arrived.data.len();
                arrived.fin_at.get_or_insert(at);
            }
            Frame::Error(Half::Read, code) => arrived.resets.push(code),
            Frame::Error(Half::Write, code) => arrived.stops.push(code),
            Frame::Close(Half::Write) => arrived.stops.push(ErrorCode::UNKNOWN),
            Frame::Ack(_) => arrived.acked = true,
        }
    }

    pub fn accept(&mut self, side: usize) {
        while let Ok(Some(key)) = self.mux[side].accept(Dir::Bi) {
            self.known[side].push(key);
        }
    }

    // ----- the applications -----

    pub fn apply(&mut self, op: Op) {
        match op {
            Op::Open(s) => {
                if let Ok(Some(key)) = self.mux[s].open(self.now, Dir::Bi) {
                    self.known[s].push(key);
                }
            }
            Op::Accept(s) => self.accept(s),
            Op::Write(s, i, n) => {
                let Some(key) = self.pick(s, i) else { return };
                self.write(s, key, n);
            }
            Op::Read(s, i, n) => {
                let Some(key) = self.pick(s, i) else { return };
                self.read(s, key, n);
            }
            Op::Finish(s, i) => {
                let Some(key) = self.pick(s, i) else { return };
                if !self.app(s, key).send_released && self.mux[s].finish(key).is_ok() {
                    self.app(s, key).finished = true;
                }
            }
            Op::Reset(s, i, code) => {
                let Some(key) = self.pick(s, i) else { return };
                // A reset after the FIN left does nothing: the stream was delivered.
                let fin_left = matches!(self.mux[s].poll_stopped(key), Some(Ok(None)));
                let app = self.app(s, key);
                if fin_left || app.send_released || app.reset.is_some() {
                    return;
                }
                let stopped = matches!(self.mux[s].poll_stopped(key), Some(Ok(Some(_))));
                if self.mux[s].reset(key, ErrorCode(code)).is_ok() && !stopped {
                    self.app(s, key).reset = Some(ErrorCode(code));
                }
            }
            Op::Stop(s, i, code) => {
                let Some(key) = self.pick(s, i) else { return };
                let app = self.app(s, key);
                if app.read_end.is_none()
                    && !app.recv_released
                    && self.mux[s].stop(key, ErrorCode(code)).is_ok()
                {
                    let app = self.app(s, key);
                    app.stopped = Some(ErrorCode(code));
                    app.read_end = Some(Err(StreamError::LocallyEnded(ErrorCode(code))));
                }
            }
            Op::Release(s, i, how) => {
                let Some(key) = self.pick(s, i) else { return };
                self.release(s, key, how);
            }
            Op::Deliver(s, n) => self.deliver(s, n),
        }
    }

    pub fn write(&mut self, side: usize, key: StreamKey, n: usize) {
        if self.app(side, key).send_released {
            return;
        }
        let data = self.bytes(n);
        match self.mux[side].write(key, self.now, &data) {
            Ok(accepted) => self
                .app(side, key)
                .written
                .extend_from_slice(&data[..accepted]),
            Err(err) => self.app(side, key).write_error = Some(err),
        }
    }

    /// What dropping handles means, in the model: the send half finishes (or, while panicking,
    /// resets with the drop code); the receive half stops with the drop code unless reading had
    /// ended.
    pub fn release(&mut self, side: usize, key: StreamKey, how: u8) {
        let drop_code = self.config.drop_code;
        let fin_left = matches!(self.mux[side].poll_stopped(key), Some(Ok(None)));
        let stopped = matches!(self.mux[side].poll_stopped(key), Some(Ok(Some(_))));
        let open = self.mux[side].closing_error().is_none();
        let app = self.app(side, key);
        let send = how & 1 != 0 && !app.send_released;
        let recv = how & 2 != 0 && !app.recv_released;
        let panicking = how & 4 != 0;
        if send {
            app.send_released = true;
            match panicking {
                // The core resets whatever has not left yet, a pending FIN included.
                true if open && !fin_left && !stopped && app.reset.is_none() => {
                    app.reset = Some(drop_code)
                }
                true => {}
                false => app.finished = true,
            }
        }
        if recv {
            app.recv_released = true;
            if app.read_end.is_none() && open {
                app.stopped = Some(drop_code);
                app.read_end = Some(Err(StreamError::LocallyEnded(drop_code)));
            }
        }
        if send || recv {
            self.mux[side].release(key, self.now, send, recv, panicking);
        }
    }

    /// Reads up to `n` bytes; returns whether anything happened.
    pub fn read(&mut self, side: usize, key: StreamKey, n: usize) -> bool {
        let app = self.app(side, key);
        if app.read_end.is_some() || app.recv_released {
            return false;
        }
        let mut buf = vec![0u8; n];
        let outcome = self.mux[side].read(key, &mut buf);
        let app = self.app(side, key);
        match outcome {
            Ok(ReadOutcome::Data(k)) => {
                app.read.extend_from_slice(&buf[..k]);
                k > 0
            }
            Ok(ReadOutcome::End) => {
                app.read_end = Some(Ok(()));
                true
            }
            Ok(ReadOutcome::Blocked) => false,
            Err(err) => {
                app.read_end = Some(Err(err));
                true
            }
        }
    }

    /// Delivers everything and reads everything until nothing moves.
    pub fn quiesce(&mut self) {
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
                for key in self.known[s].clone() {
                    while self.read(s, key, 4096) {
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

    // ----- checks that hold in every world -----

    /// What each application saw is what the wire carried: bytes read are a prefix of the DATA
    /// that arrived, the end of stream is where the FIN was, and every error has its cause.
    pub fn check_truthful(&self) {
        for side in 0..2 {
            for (id, app) in &self.apps[side] {
                let empty = Arrived::default();
                let arrived = self.arrived[side].get(id).unwrap_or(&empty);
                assert!(
                    arrived.data.starts_with(&app.read),
                    "side {side}, stream {id}: read bytes that did not arrive"
                );
                match &app.read_end {
                    Some(Ok(())) => assert_eq!(
                        arrived.fin_at,
                        Some(app.read.len()),
                        "side {side}, stream {id}: the end is not where the FIN was"
                    ),
                    Some(Err(err)) => self.check_cause(side, *id, app, arrived, err),
                    None => {}
                }
                if let Some(err) = &app.write_error {
                    self.check_cause(side, *id, app, arrived, err);
                }
            }
            for event in &self.events[side] {
                let arrived = |id: &StreamId| self.arrived[side].get(id);
                let explained = match event {
                    Event::StreamShutdown { id, half, code } => {
                        arrived(id).is_some_and(|a| match (half, code) {
                            (Half::Read, Some(code)) => a.resets.contains(code),
                            (Half::Read, None) => a.fin_at.is_some(),
                            (Half::Write, Some(code)) => a.stops.contains(code),
                            (Half::Write, None) => a.stops.contains(&ErrorCode::UNKNOWN),
                        })
                    }
                    Event::StreamParseError { id } => arrived(id).is_some_and(|a| a.malformed),
                    Event::StreamOverflow { id } => arrived(id).is_some_and(|a| a.overflowed),
                    _ => true,
                };
                assert!(explained, "side {side}: {event:?} explained by nothing");
            }
        }
    }

    fn check_cause(
        &self,
        side: usize,
        id: StreamId,
        app: &App,
        arrived: &Arrived,
        err: &StreamError,
    ) {
        let explained = match err {
            StreamError::Reset(code) => arrived.resets.contains(code),
            StreamError::Stopped(code) => arrived.stops.contains(code),
            StreamError::LocallyEnded(code) => {
                app.stopped == Some(*code) || app.reset == Some(*code)
            }
            StreamError::Finished => app.finished,
            StreamError::Parse => arrived.malformed,
            StreamError::Overflow => arrived.overflowed,
            StreamError::ConnectionLost(lost) => self.closing[side].as_ref() == Some(lost),
        };
        assert!(
            explained,
            "side {side}, stream {id}: {err:?} explained by nothing"
        );
    }

    /// The checks of an undisturbed connection: what was finished arrives whole and ends; what
    /// was reset or stopped ends with the code; an open stream keeps its credit flowing.
    pub fn check_delivery(&mut self) {
        for writer in 0..2 {
            let reader = 1 - writer;
            let ids: Vec<StreamId> = self.apps[writer].keys().copied().collect();
            for id in ids {
                let w = &self.apps[writer][&id];
                let empty = App::default();
                let r = self.apps[reader].get(&id).unwrap_or(&empty);
                assert!(
                    w.written.starts_with(&r.read),
                    "stream {id}: read bytes are not a prefix of the written ones"
                );
                if let Some(code) = r.stopped {
                    // The writer learns of the stop unless its own writing had already ended.
                    if !w.finished && w.reset.is_none() && !w.send_released {
                        let key = self.key(writer, id).expect("the writer knows it");
                        let err = self.mux[writer].write(key, self.now, b"x").unwrap_err();
                        assert!(
                            matches!(err, StreamError::Stopped(c) if c == code),
                            "stream {id}: writer saw {err:?} after stop {code}"
                        );
                        self.apps[writer].get_mut(&id).expect("listed").write_error = Some(err);
                    }
                    continue;
                }
                if r.recv_released {
                    continue;
                }
                match (w.reset, w.finished) {
                    (Some(code), _) => assert!(
                        matches!(&r.read_end, Some(Err(StreamError::Reset(c))) if *c == code),
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

    /// Every end an application saw was published first: a FIN, a reset or a stop from the peer
    /// as `StreamShutdown`, a stream ended for the peer's misbehaviour as its own event.
    pub fn check_end_events(&self) {
        for side in 0..2 {
            for (id, app) in &self.apps[side] {
                let id = *id;
                let expected = match (&app.read_end, &app.write_error) {
                    (Some(Ok(())), _) => Some(Event::StreamShutdown {
                        id,
                        half: Half::Read,
                        code: None,
                    }),
                    (Some(Err(StreamError::Reset(code))), _) => Some(Event::StreamShutdown {
                        id,
                        half: Half::Read,
                        code: Some(*code),
                    }),
                    (Some(Err(StreamError::Parse)), _) => Some(Event::StreamParseError { id }),
                    (Some(Err(StreamError::Overflow)), _) => Some(Event::StreamOverflow { id }),
                    (_, Some(StreamError::Stopped(code))) => Some(Event::StreamShutdown {
                        id,
                        half: Half::Write,
                        code: Some(*code),
                    }),
                    _ => None,
                };
                if let Some(event) = expected {
                    assert!(
                        self.events[side].contains(&event),
                        "side {side}: {event:?} missing; it saw {:?}",
                        self.events[side]
                    );
                }
            }
        }
    }

    /// No side saw the connection end.
    pub fn check_still_open(&self) {
        for side in 0..2 {
            for event in &self.events[side] {
                assert!(
                    !matches!(event, Event::Violation(_) | Event::Closed(_)),
                    "a correct peer never ends the connection: {event:?}"
                );
            }
            assert!(self.closing[side].is_none(), "side {side} is closing");
        }
    }
}
