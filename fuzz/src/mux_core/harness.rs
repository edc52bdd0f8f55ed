//! The `mux_core` harness: one `Mux`, the application's calls and a peer, both played from the
//! input, with the clock a fake `Instant` that only the input moves.
//!
//! Like the engine, the harness reads the socket (feeds peer input) only while the core
//! `wants_input()`, takes transmits only as far as the "socket" has room (the `Transmit` op), and
//! uses only the halves the application still holds. After every op it checks:
//!
//! - **the wire**: every transmit is well formed (a binary one decodes with the codec, for a stream
//!   the core opened or the peer mentioned); DATA is never empty, never larger than
//!   `max_data_per_message`, never beyond the credit the peer's ACKs granted, and carries exactly
//!   the bytes written, in order; a stream the core opens starts with its ACK; no ACK of 0 and
//!   none after the core stopped the stream; a FIN only once and only after every byte written;
//!   nothing at all after our Close frame, which carries a code the application, a shutdown, the
//!   idle timeout or the violation reported chose;
//! - **reads**: the bytes a stream reads are a prefix of the DATA the peer sent on it, and the end
//!   of stream comes exactly where the peer's FIN was;
//! - **typed errors are true**: every `StreamError` an operation returns is explained by the model
//!   (a reset code the peer sent, a stop code the application used, a malformed message or DATA
//!   beyond credit on that stream, the connection's closing error);
//! - **events are true**: each event names something the peer did; `Closed` is the last one and
//!   carries the terminal error; the queue never holds more than its bound;
//! - **bounds**: buffered bytes within the credit held, the credit held within the initial windows
//!   plus the receive budget, the pin budget, at most `max_streams` streams each way, at most
//!   `send_buffer` bytes written and not yet sent per stream; `open` waits exactly at the limit;
//! - **the lifecycle**: the closing error, once there, stays; the terminal error never changes;
//!   `stats()` counts what went through; and at the end, a close that started finishes within the
//!   close timeout once time passes.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes, BytesMut};
use ws_stream_mux::proto::{
    mux::PIN_BUDGET,
    varint,
    wire::{Frame, MessageError},
    CloseCode, Config, ConnectionError, Dir, Event, Half, Mux, OpenError, ProtoError, Protocol,
    ReadOutcome, Side, StreamError, StreamId, StreamKey, Transmit,
};

use super::{
    application_close_code, credit, error_code, model::StreamModel, peer_close_code, MuxInput, Op,
};

/// The core's event queue bound (`EVENT_QUEUE` in `proto::mux`, which is private): at most this
/// many events wait, plus one `Dropped` count ahead of them.
const EVENT_QUEUE: usize = 4096;

/// Runs one input.
pub fn run(input: &MuxInput) {
    let config = input.config.config();
    let invalid = config.max_streams == 0
        || config
            .max_message_size
            .is_some_and(|max| max <= ws_stream_mux::proto::wire::MAX_HEADER_LEN);
    assert_eq!(config.validate().is_err(), invalid, "{config:?}");
    if invalid {
        // `Mux::new` takes only valid configurations; the adapters refuse the others.
        return;
    }
    let mut harness = Harness::new(input.side, config);
    for op in &input.ops {
        harness.apply(op);
        harness.after_op();
    }
    harness.finale();
}

/// See the [module docs](self).
struct Harness {
    mux: Mux,
    config: Config,
    side: Side,
    now: Instant,
    streams: BTreeMap<u64, StreamModel>,
    /// Ids the application holds keys for, in the order it got them.
    app: Vec<u64>,
    /// Ids the peer knows: it opened them, mentioned them, or heard the core open them.
    peer: Vec<u64>,
    /// The next id the peer opens (the core's next expected peer id, as far as the peer knows).
    next_peer_id: u64,
    /// The next id the core opens.
    next_core_id: u64,
    /// The last id the application accepted: the accept queue is in opening order.
    last_accepted: Option<u64>,
    /// Where the bytes the harness writes come from (a counter, so misplaced bytes show).
    pattern: u8,
    /// The payload of our latest ping, for the peer's pong.
    last_ping: Option<Bytes>,

    // ----- what the peer sent besides stream messages -----
    peer_closes: Vec<Option<(CloseCode, String)>>,
    peer_pings: Vec<Bytes>,
    peer_pongs: Vec<Bytes>,
    peer_texts: Vec<usize>,

    // ----- the connection, as observed -----
    first_closing_error: Option<ConnectionError>,
    terminal: Option<ConnectionError>,
    /// The Close frames our side may send: the application's closes and shutdowns, the idle
    /// timeout's; a violation reported adds its code.
    allowed_closes: Vec<(CloseCode, String)>,
    violation_code: Option<CloseCode>,
    close_sent: Option<CloseCode>,
    closed_event: bool,
    binaries_out: u64,
    bytes_out: u64,
    messages_in: u64,
    bytes_in: u64,
}

impl Harness {
    fn new(side: Side, config: Config) -> Self {
        let now = Instant::now();
        let mut allowed_closes = Vec::new();
        if config.idle_timeout.is_some() {
            allowed_closes.push((CloseCode::GOING_AWAY, "idle timeout".to_owned()));
        }
        Self {
            mux: Mux::new(side, Protocol::Wire, config.clone(), now),
            side,
            now,
            streams: BTreeMap::new(),
            app: Vec::new(),
            peer: Vec::new(),
            next_peer_id: side.peer().parity(),
            next_core_id: side.parity(),
            last_accepted: None,
            pattern: 0,
            last_ping: None,
            peer_closes: Vec::new(),
            peer_pings: Vec::new(),
            peer_pongs: Vec::new(),
            peer_texts: Vec::new(),
            first_closing_error: None,
            terminal: None,
            allowed_closes,
            violation_code: None,
            close_sent: None,
            closed_event: false,
            binaries_out: 0,
            bytes_out: 0,
            messages_in: 0,
            bytes_in: 0,
            config,
        }
    }

    fn model(&mut self, id: u64) -> &mut StreamModel {
        let drop_code = self.config.drop_code;
        self.streams
            .entry(id)
            .or_insert_with(|| StreamModel::new(drop_code))
    }

    fn is_peer_id(&self, id: u64) -> bool {
        id % 2 == self.side.peer().parity()
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.pattern = self.pattern.wrapping_add(1);
                self.pattern
            })
            .collect()
    }

    /// The application's stream `pick` chooses, if it still holds the half `send` (or receive).
    fn app_stream(&self, pick: u8, send: bool) -> Option<(u64, StreamKey)> {
        let id = *self.app.get(usize::from(pick) % self.app.len().max(1))?;
        let model = &self.streams[&id];
        let released = if send {
            model.send_released
        } else {
            model.recv_released
        };
        Some((id, model.key?)).filter(|_| !released)
    }

    /// The stream `pick` chooses among those the peer knows.
    fn peer_stream(&self, pick: u8) -> Option<u64> {
        self.peer
            .get(usize::from(pick) % self.peer.len().max(1))
            .copied()
    }

    fn live_local_streams(&self) -> usize {
        self.streams
            .iter()
            .filter(|(id, _)| !self.is_peer_id(**id))
            .filter_map(|(_, model)| model.key)
            .filter(|key| self.mux.stream_id(*key).is_some())
            .count()
    }

    // ----- ops -----

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Open => self.open(),
            Op::Accept => self.accept(),
            Op::Write { stream, len } => self.write(stream, len),
            Op::Read { stream, len } => self.read(stream, len),
            Op::ReadChunk { stream, max } => self.read_chunk(stream, max),
            Op::Flush { stream } => {
                if let Some((id, key)) = self.app_stream(stream, true) {
                    if let Err(err) = self.mux.flush(key) {
                        self.explain_send_error(id, &err);
                    }
                }
            }
            Op::Finish { stream } => {
                if let Some((id, key)) = self.app_stream(stream, true) {
                    match self.mux.finish(key) {
                        Ok(_) => self.model(id).finished = true,
                        Err(err) => self.explain_send_error(id, &err),
                    }
                }
            }
            Op::Reset { stream, code } => {
                if let Some((id, key)) = self.app_stream(stream, true) {
                    let code = error_code(code);
                    match self.mux.reset(key, code) {
                        Ok(()) => self.model(id).resets.push(code),
                        Err(err) => self.explain_send_error(id, &err),
                    }
                }
            }
            Op::Stop { stream, code } => {
                if let Some((id, key)) = self.app_stream(stream, false) {
                    let code = error_code(code);
                    match self.mux.stop(key, code) {
                        Ok(()) => self.model(id).stops.push(code),
                        Err(err) => self.explain_connection_lost(&err),
                    }
                }
            }
            Op::SetPriority { stream, priority } => {
                if let Some((_, key)) = self.app_stream(stream, true) {
                    self.mux.set_priority(key, i32::from(priority as i8));
                }
            }
            Op::SetDropCode { stream, code } => {
                if let Some(&id) = self.app.get(usize::from(stream) % self.app.len().max(1)) {
                    let code = error_code(code);
                    let key = self.streams[&id]
                        .key
                        .expect("the application's streams have keys");
                    self.mux.set_drop_code(key, code);
                    self.model(id).drop_code = code;
                }
            }
            Op::Release { stream, how } => self.release(stream, how),
            Op::Close { code, reason } => {
                let code = application_close_code(code);
                let reason = "x".repeat(usize::from(reason) % 130);
                // The adapters refuse what an application may not send before the core sees it.
                if code.check_application(&reason).is_ok() {
                    match self.mux.close(self.now, code, &reason) {
                        Ok(()) => self.allowed_closes.push((code, reason)),
                        Err(_) => assert!(self.mux.closing_error().is_some(), "close refused"),
                    }
                }
            }
            Op::Shutdown { code, timeout } => {
                let code = application_close_code(code);
                let timeout = (timeout > 0).then(|| Duration::from_millis(u64::from(timeout) * 20));
                match self.mux.shutdown(self.now, code, "drain", timeout) {
                    Ok(()) => self.allowed_closes.push((code, "drain".to_owned())),
                    Err(_) => assert!(
                        self.mux.closing_error().is_some() || self.mux.is_draining(),
                        "shutdown refused"
                    ),
                }
            }
            Op::Ping => {
                let number = self.mux.ping();
                assert_eq!(number.is_none(), self.mux.closing_error().is_some());
            }
            Op::PeerOpen { credit: c } => {
                let id = self.next_peer_id;
                if id <= varint::MAX {
                    self.feed(Frame::Ack(credit(c)).to_bytes(StreamId(id)));
                }
            }
            Op::PeerAck { stream, credit: c } => {
                self.peer_frame(stream, |_, _| Frame::Ack(credit(c)));
            }
            Op::PeerData { stream, len, fit } => {
                let Some(id) = self.peer_stream(stream) else {
                    return;
                };
                let model = &self.streams[&id];
                let room = model
                    .credit_from_core
                    .saturating_sub(model.sent.len() as u64);
                let len = match fit {
                    true => u64::from(len).min(room) as usize,
                    false => usize::from(len),
                };
                let payload = self.bytes(len);
                self.feed(Frame::Data(payload.into()).to_bytes(StreamId(id)));
            }
            Op::PeerFin { stream } => self.peer_frame(stream, |_, _| Frame::Close(Half::Read)),
            Op::PeerReset { stream, code } => {
                self.peer_frame(stream, |_, _| Frame::Error(Half::Read, error_code(code)));
            }
            Op::PeerStop { stream, code } => {
                self.peer_frame(stream, |_, _| Frame::Error(Half::Write, error_code(code)));
            }
            Op::PeerCloseWrite { stream } => {
                self.peer_frame(stream, |_, _| Frame::Close(Half::Write));
            }
            Op::PeerMessage { id, kind, arg } => {
                let message = self.peer_message(id, kind, arg);
                self.feed(message);
            }
            Op::PeerRaw { ref bytes } => self.feed(Bytes::copy_from_slice(bytes)),
            Op::PeerText { len } => {
                if self.mux.wants_input() {
                    self.peer_texts.push(usize::from(len));
                    self.mux.handle_text(self.now, usize::from(len));
                }
            }
            Op::PeerPing { ref payload } => {
                if self.mux.wants_input() {
                    let payload = Bytes::copy_from_slice(payload);
                    self.peer_pings.push(payload.clone());
                    self.mux.handle_ping(self.now, payload);
                }
            }
            Op::PeerPong { echo } => {
                if self.mux.wants_input() {
                    let payload = match (echo, &self.last_ping) {
                        (true, Some(ping)) => ping.clone(),
                        _ => Bytes::from_static(b"unsolicited"),
                    };
                    self.peer_pongs.push(payload.clone());
                    self.mux.handle_pong(self.now, payload);
                }
            }
            Op::PeerClose { code, reason } => {
                if self.mux.wants_input() {
                    let frame = peer_close_code(code)
                        .map(|code| (code, "r".repeat(usize::from(reason) % 124)));
                    self.peer_closes.push(frame.clone());
                    self.mux.handle_close_frame(self.now, frame);
                }
            }
            Op::PeerViolation => {
                if self.mux.wants_input() {
                    let violation = ProtoError::WebSocket("a bad frame".to_owned());
                    self.mux.handle_violation(self.now, violation);
                }
            }
            Op::Ended => self.mux.handle_ended(self.now, String::new()),
            Op::Flushed => self.mux.handle_flushed(self.now),
            Op::Transmit { max, flush_partial } => {
                let max = if max == 0 {
                    usize::MAX
                } else {
                    usize::from(max)
                };
                self.take_transmits(max, flush_partial);
            }
            Op::Advance { millis } => {
                self.now += Duration::from_millis(u64::from(millis));
                self.mux.handle_timeout(self.now);
            }
            Op::ToDeadline => {
                if let Some(deadline) = self.mux.poll_timeout() {
                    self.now = self.now.max(deadline);
                    self.mux.handle_timeout(self.now);
                }
            }
            Op::TakeEvents => self.take_events(),
        }
    }

    fn open(&mut self) {
        let live = self.live_local_streams();
        match self.mux.open(self.now, Dir::Bi) {
            Ok(Some(key)) => {
                assert!(live < self.config.max_streams, "opened beyond the limit");
                let id = key.id().0;
                assert_eq!(id, self.next_core_id, "ids are allocated in order");
                self.next_core_id += 2;
                self.model(id).key = Some(key);
                self.app.push(id);
            }
            Ok(None) => assert!(
                live >= self.config.max_streams,
                "open waits with {live} of {} streams open",
                self.config.max_streams
            ),
            Err(OpenError::Closed(err)) => assert_eq!(Some(err), self.mux.closing_error()),
            Err(OpenError::ShuttingDown) => assert!(self.mux.is_draining()),
            Err(other) => panic!("open failed: {other:?}"),
        }
    }

    fn accept(&mut self) {
        match self.mux.accept(Dir::Bi) {
            Ok(Some(key)) => {
                let id = key.id().0;
                assert!(self.is_peer_id(id), "accepted our own stream {id}");
                assert!(
                    self.last_accepted.is_none_or(|last| last < id),
                    "accepted {id} out of order"
                );
                self.last_accepted = Some(id);
                let model = self.model(id);
                assert!(
                    model.peer_opened,
                    "accepted {id}, which the peer never opened"
                );
                assert!(model.key.is_none(), "accepted {id} twice");
                model.key = Some(key);
                self.app.push(id);
            }
            Ok(None) => {}
            Err(err) => assert_eq!(Some(err), self.mux.closing_error()),
        }
    }

    fn write(&mut self, stream: u8, len: u8) {
        let Some((id, key)) = self.app_stream(stream, true) else {
            return;
        };
        let data = self.bytes(usize::from(len));
        match self.mux.write(key, self.now, &data) {
            Ok(n) => {
                assert!(n <= data.len());
                self.model(id).written.extend_from_slice(&data[..n]);
            }
            Err(err) => self.explain_send_error(id, &err),
        }
    }

    fn read(&mut self, stream: u8, len: u8) {
        let Some((id, key)) = self.app_stream(stream, false) else {
            return;
        };
        let mut buf = vec![0; usize::from(len)];
        match self.mux.read(key, &mut buf) {
            Ok(ReadOutcome::Data(n)) => self.model(id).read.extend_from_slice(&buf[..n]),
            Ok(ReadOutcome::End) => self.check_end(id),
            Ok(ReadOutcome::Blocked) => {}
            Err(err) => self.explain_recv_error(id, &err),
        }
    }

    fn read_chunk(&mut self, stream: u8, max: u8) {
        let Some((id, key)) = self.app_stream(stream, false) else {
            return;
        };
        match self.mux.read_chunk(key, usize::from(max)) {
            Ok(Ok(chunk)) => {
                assert!(!chunk.is_empty() && chunk.len() <= usize::from(max.max(1)));
                self.model(id).read.extend_from_slice(&chunk);
            }
            Ok(Err(ReadOutcome::End)) => self.check_end(id),
            Ok(Err(ReadOutcome::Blocked)) => {}
            Ok(Err(other)) => panic!("read_chunk without a chunk: {other:?}"),
            Err(err) => self.explain_recv_error(id, &err),
        }
    }

    fn release(&mut self, stream: u8, how: u8) {
        let Some(&id) = self.app.get(usize::from(stream) % self.app.len().max(1)) else {
            return;
        };
        let (panicking, model) = (how & 4 != 0, self.model(id));
        let send = how & 1 != 0 && !model.send_released;
        let recv = how & 2 != 0 && !model.recv_released;
        if !send && !recv {
            return;
        }
        let code = model.drop_code;
        if send {
            model.send_released = true;
            match panicking {
                true => model.resets.push(code),
                false => model.finished = true,
            }
        }
        if recv {
            model.recv_released = true;
            model.stops.push(code);
        }
        let key = model.key.expect("the application's streams have keys");
        self.mux.release(key, self.now, send, recv, panicking);
    }

    /// A well-formed message on a stream the peer knows.
    fn peer_frame(&mut self, pick: u8, frame: impl FnOnce(&mut Self, u64) -> Frame) {
        if let Some(id) = self.peer_stream(pick) {
            let frame = frame(self, id);
            self.feed(frame.to_bytes(StreamId(id)));
        }
    }

    /// A message on an id chosen by `id` — a known stream, a new peer id (possibly skipping
    /// some), one of ours never opened, a small or a huge one — of a kind chosen by `kind`, well
    /// formed or malformed.
    fn peer_message(&mut self, id: u8, kind: u8, arg: u8) -> Bytes {
        let skip = |b: u8| 2 * u64::from(b % 4);
        let id = match id {
            0..=127 => self.peer_stream(id).unwrap_or(self.next_peer_id),
            128..=159 => self.next_peer_id.saturating_add(skip(id)),
            160..=191 => self.next_core_id + skip(id),
            192..=223 => u64::from(id - 192),
            _ => varint::MAX - u64::from(255 - id),
        }
        .min(varint::MAX);
        let mut out = BytesMut::new();
        varint::encode(id, &mut out);
        let frame = match kind % 10 {
            0 => Frame::Data(self.bytes(usize::from(arg)).into()),
            1 => Frame::Ack(credit(arg)),
            2 => Frame::Error(Half::Read, error_code(arg)),
            3 => Frame::Error(Half::Write, error_code(arg)),
            4 => Frame::Close(Half::Read),
            5 => Frame::Close(Half::Write),
            // Malformed: an unknown type; a short ACK body; a bad shutdown byte; no type at all.
            6 => {
                out.put_u16(4 + u16::from(arg));
                return out.freeze();
            }
            7 => {
                out.put_u16(1);
                out.put_slice(&[0xee; 3][..usize::from(arg % 4)]);
                return out.freeze();
            }
            8 => {
                out.put_u16(2 + u16::from(arg & 1));
                out.put_u8(2 + arg / 2);
                return out.freeze();
            }
            _ => {
                out.put_slice(&[0][..usize::from(arg & 1)]);
                return out.freeze();
            }
        };
        frame.to_bytes(StreamId(id))
    }

    /// Hands a binary message from the peer to the core, as the engine does: only while the core
    /// wants input. The model records what the peer said first.
    fn feed(&mut self, message: Bytes) {
        if !self.mux.wants_input() {
            return;
        }
        self.record_peer_message(&message);
        self.messages_in += 1;
        self.bytes_in += message.len() as u64;
        self.mux.handle_message(self.now, message);
    }

    fn record_peer_message(&mut self, message: &Bytes) {
        let (id, frame) = match Frame::decode(message) {
            Ok((id, frame)) => (id.0, Some(frame)),
            Err(MessageError::Malformed { id, .. }) => (id.0, None),
            Err(MessageError::BadStreamId) => return,
        };
        let new_peer_stream = self.is_peer_id(id) && id >= self.next_peer_id;
        if new_peer_stream {
            self.next_peer_id = id.saturating_add(2);
        }
        if !self.streams.contains_key(&id) && self.is_peer_id(id) {
            self.peer.push(id);
        }
        let model = self.model(id);
        match frame {
            None => model.peer_malformed = true,
            Some(Frame::Ack(credit)) if new_peer_stream => {
                model.peer_opened = true;
                model.credit_to_core += u64::from(credit);
            }
            Some(_) if new_peer_stream => model.peer_bad_opening = true,
            Some(Frame::Data(payload)) => {
                model.sent.extend_from_slice(&payload);
                if model.sent.len() as u64 > model.credit_from_core {
                    model.peer_over_credit = true;
                }
            }
            Some(Frame::Ack(credit)) => model.credit_to_core += u64::from(credit),
            Some(Frame::Error(Half::Read, code)) => model.peer_resets.push(code),
            Some(Frame::Error(Half::Write, code)) => model.peer_stops.push(code),
            Some(Frame::Close(Half::Read)) => {
                let at = model.sent.len();
                model.peer_fin_at.get_or_insert(at);
            }
            Some(Frame::Close(Half::Write)) => model.peer_close_write = true,
        }
    }

    // ----- what the core sends -----

    fn take_transmits(&mut self, max: usize, flush_partial: bool) {
        // As the engine does: events first, so that the violation a Close frame reports is known.
        self.take_events();
        for _ in 0..max {
            let Some(transmit) = self.mux.poll_transmit(self.now, flush_partial) else {
                return;
            };
            assert!(
                self.close_sent.is_none(),
                "{transmit:?} after our Close frame"
            );
            match transmit {
                Transmit::Binary(message) => self.check_core_message(message),
                Transmit::Ping(payload) => {
                    assert_eq!(payload.len(), 8, "our pings carry their number");
                    self.last_ping = Some(payload);
                }
                Transmit::Close { code, reason } => {
                    assert!(
                        self.violation_code
                            .is_none_or(|violation| violation == code),
                        "closed with {code} after reporting a violation with {:?}",
                        self.violation_code
                    );
                    let allowed = self.violation_code == Some(code)
                        || self.allowed_closes.contains(&(code, reason.clone()));
                    assert!(allowed, "a Close frame nobody asked for: {code} {reason:?}");
                    assert!(reason.len() <= ws_stream_mux::proto::MAX_CLOSE_REASON_LEN);
                    self.close_sent = Some(code);
                }
            }
        }
    }

    fn check_core_message(&mut self, message: Bytes) {
        self.binaries_out += 1;
        self.bytes_out += message.len() as u64;
        let (id, frame) = Frame::decode(&message)
            .unwrap_or_else(|err| panic!("the core sent {message:?}, which is {err}"));
        let id = id.0;
        if self.is_peer_id(id) {
            assert!(
                self.streams.contains_key(&id),
                "a message for {id}, which the peer never mentioned"
            );
        } else {
            assert!(id < self.next_core_id, "a message for {id}, never opened");
            if !self.peer.contains(&id) {
                self.peer.push(id);
            }
        }
        let max_payload = self.config.max_data_per_message;
        let ours = !self.is_peer_id(id);
        let model = self.model(id);
        if ours && !model.core_spoke {
            assert!(
                matches!(frame, Frame::Ack(_)),
                "stream {id}: the core's first message is {frame:?}, not the opening ACK"
            );
        }
        model.core_spoke = true;
        match frame {
            Frame::Data(payload) => {
                assert!(!payload.is_empty(), "empty DATA on {id}");
                assert!(payload.len() <= max_payload, "DATA over the message size");
                assert!(
                    !model.core_fin && !model.core_reset,
                    "DATA on {id} after its end"
                );
                let start = model.data_from_core;
                let end = start + payload.len();
                assert!(
                    model.written.get(start..end) == Some(&payload[..]),
                    "stream {id}: DATA is not what was written at {start}"
                );
                model.data_from_core = end;
                assert!(
                    end as u64 <= model.credit_to_core,
                    "stream {id}: {end} bytes sent with {} credit",
                    model.credit_to_core
                );
            }
            Frame::Ack(credit) => {
                assert!(credit > 0, "ACK of 0 on {id}");
                assert!(!model.core_stopped, "ACK on {id} after stopping it");
                model.credit_from_core += u64::from(credit);
            }
            Frame::Error(Half::Read, _) => model.core_reset = true,
            Frame::Error(Half::Write, _) => model.core_stopped = true,
            Frame::Close(Half::Read) => {
                assert!(!model.core_fin && !model.core_reset, "a second end on {id}");
                assert_eq!(
                    model.data_from_core,
                    model.written.len(),
                    "stream {id}: FIN before every byte written"
                );
                model.core_fin = true;
            }
            Frame::Close(Half::Write) => panic!("the core sent CLOSE Write on {id}"),
        }
    }

    fn take_events(&mut self) {
        let mut count = 0;
        while let Some(event) = self.mux.poll_event() {
            count += 1;
            assert!(!self.closed_event, "{event:?} after Closed");
            self.check_event(event);
        }
        assert!(count <= EVENT_QUEUE + 1, "{count} events waited");
    }

    fn check_event(&mut self, event: Event) {
        let stream = |id: StreamId| {
            self.streams
                .get(&id.0)
                .unwrap_or_else(|| panic!("{event:?} on a stream the peer never mentioned"))
        };
        let true_ = match &event {
            Event::Closed(err) => {
                self.closed_event = true;
                Some(err) == self.mux.terminal()
            }
            Event::CloseFrame { code, reason } => {
                let none = *code == CloseCode::NO_STATUS && reason.is_empty();
                self.peer_closes.contains(&Some((*code, reason.clone())))
                    || (none && self.peer_closes.contains(&None))
            }
            Event::Ping(payload) => self.peer_pings.contains(payload),
            Event::Pong(payload) => self.peer_pongs.contains(payload),
            Event::TextReceived { len } => self.peer_texts.contains(len),
            Event::StreamShutdown { id, half, code } => {
                let model = stream(*id);
                match (half, code) {
                    (Half::Read, Some(code)) => model.peer_resets.contains(code),
                    (Half::Read, None) => model.peer_fin_at.is_some(),
                    (Half::Write, Some(code)) => model.peer_stops.contains(code),
                    (Half::Write, None) => model.peer_close_write,
                }
            }
            Event::StreamParseError { id } => {
                let model = stream(*id);
                model.peer_malformed || model.peer_bad_opening
            }
            Event::StreamOverflow { id } => stream(*id).peer_over_credit,
            Event::StreamRefused { id } => stream(*id).peer_opened,
            Event::Violation(violation) => {
                let code = violation.close_code();
                self.violation_code = Some(code);
                // Before any Close frame of ours, the violation's goes next. After our own close
                // was sent, a violation still ends the connection (its answer can no longer be
                // read), with no further Close frame: the check on transmits holds that.
                self.close_sent.is_none_or(|sent| {
                    sent == code || self.allowed_closes.iter().any(|(ours, _)| *ours == sent)
                })
            }
            Event::CloseTimedOut => self.config.close_timeout.is_some(),
            Event::Dropped(n) => *n > 0,
            _ => true,
        };
        assert!(true_, "an event nothing explains: {event:?}");
    }

    // ----- explanations -----

    fn check_end(&mut self, id: u64) {
        let model = &self.streams[&id];
        assert_eq!(
            Some(model.read.len()),
            model.peer_fin_at,
            "stream {id}: the end of stream is not where the peer's FIN was"
        );
    }

    fn explain_recv_error(&self, id: u64, err: &StreamError) {
        let model = &self.streams[&id];
        let explained = match err {
            StreamError::Reset(code) => model.peer_resets.contains(code),
            StreamError::LocallyEnded(code) => model.stops.contains(code),
            StreamError::Parse => model.peer_malformed,
            StreamError::Overflow => model.peer_over_credit,
            StreamError::ConnectionLost(lost) => self.is_closing_error(lost),
            _ => false,
        };
        assert!(
            explained,
            "stream {id}: a read failed with {err:?}: {model:?}"
        );
    }

    fn explain_send_error(&self, id: u64, err: &StreamError) {
        let model = &self.streams[&id];
        let explained = match err {
            StreamError::Stopped(code) => {
                model.peer_stops.contains(code) || (code.0 == 0 && model.peer_close_write)
            }
            StreamError::LocallyEnded(code) => model.resets.contains(code),
            StreamError::Finished => model.finished,
            StreamError::Parse => model.peer_malformed,
            StreamError::Overflow => model.peer_over_credit,
            StreamError::ConnectionLost(lost) => self.is_closing_error(lost),
            _ => false,
        };
        assert!(
            explained,
            "stream {id}: writing failed with {err:?}: {model:?}"
        );
    }

    fn explain_connection_lost(&self, err: &StreamError) {
        match err {
            StreamError::ConnectionLost(lost) if self.is_closing_error(lost) => {}
            other => panic!("stop failed with {other:?}"),
        }
    }

    fn is_closing_error(&self, err: &ConnectionError) -> bool {
        self.first_closing_error.as_ref() == Some(err)
            || self.mux.closing_error().as_ref() == Some(err)
    }

    // ----- after every op -----

    fn after_op(&mut self) {
        while self.mux.poll_wake().is_some() {}
        match (&self.first_closing_error, self.mux.closing_error()) {
            (None, now) => self.first_closing_error = now,
            (Some(_), None) => panic!("the connection reopened"),
            (Some(_), Some(_)) => {}
        }
        match (&self.terminal, self.mux.terminal()) {
            (None, now) => self.terminal = now.cloned(),
            (Some(before), now) => assert_eq!(Some(before), now, "the end changed"),
        }
        if self.terminal.is_some() {
            assert!(
                self.mux.poll_timeout().is_none(),
                "a deadline after the end"
            );
            assert!(!self.mux.wants_input(), "input wanted after the end");
        }
        self.check_bounds();
        for (id, model) in &self.streams {
            if let Some(key) = model.key {
                // The getters answer for every stream, whatever its state.
                let _ = (self.mux.readable(key), self.mux.writable(key));
                let _ = (self.mux.poll_stopped(key), self.mux.priority(key));
                assert!(
                    model.sent.starts_with(&model.read),
                    "stream {id}: read bytes the peer did not send"
                );
            }
        }
    }

    fn check_bounds(&self) {
        let stats = self.mux.stats();
        assert_eq!(
            (stats.messages_sent, stats.bytes_sent),
            (self.binaries_out, self.bytes_out)
        );
        assert_eq!(
            (stats.messages_received, stats.bytes_received),
            (self.messages_in, self.bytes_in)
        );
        let held = self.mux.held_credit();
        assert!(
            stats.buffered <= held,
            "{} buffered, {held} held",
            stats.buffered
        );
        let streams = self.mux.stream_count();
        assert!(streams <= 2 * self.config.max_streams, "{streams} streams");
        let bound =
            streams as u64 * u64::from(self.config.initial_window) + self.config.receive_budget;
        assert!(held <= bound, "{held} credit held, bound {bound}");
        assert!(self.mux.pinned() <= PIN_BUDGET);
        for (id, model) in &self.streams {
            let unsent = model.written.len() - model.data_from_core;
            assert!(
                unsent <= self.config.send_buffer,
                "stream {id}: {unsent} bytes waiting"
            );
        }
    }

    /// The socket takes everything, and time runs out: a close that started must end.
    fn finale(&mut self) {
        self.take_transmits(usize::MAX, true);
        for _ in 0..16 {
            if self.mux.terminal().is_some() {
                break;
            }
            let Some(deadline) = self.mux.poll_timeout() else {
                break;
            };
            self.now = self.now.max(deadline);
            self.mux.handle_timeout(self.now);
            self.after_op();
            self.take_transmits(usize::MAX, true);
        }
        if self.mux.closing_error().is_some() && self.config.close_timeout.is_some() {
            assert!(
                self.mux.terminal().is_some(),
                "the close did not end within the close timeout"
            );
        }
        self.after_op();
        self.take_events();
        if self.mux.terminal().is_some() {
            assert!(self.closed_event, "over without a Closed event");
        }
    }
}
