//! The `qmux_core` harness: one QMux `Mux`, the application's calls and a peer, both played from
//! the input, with the clock a fake `Instant` that only the input moves.
//!
//! The peer sends records only while the core `wants_input()`. The model is built from the
//! frames as sent (raw bytes decoded too): each is judged against what the core granted (our
//! parameters, then its MAX_DATA, MAX_STREAM_DATA, MAX_STREAMS; our streams) and, if it may break
//! a rule, marks the peer as misbehaving. After every op it checks:
//!
//! - **the wire**: every record we send decodes with our own decoder and fits the peer's
//!   `max_record_size`; the first is our transport parameters (as the configuration says), sent
//!   once; STREAM frames only after the peer's parameters, on streams we opened (within the
//!   peer's MAX_STREAMS) or bidirectional ones it opened, at most `max_data_per_message` (and
//!   16,352) bytes, in order without gaps or overlaps, exactly the bytes written, within the
//!   peer's stream and connection credit, nothing after FIN or RESET_STREAM, FIN only after
//!   `finish` and every byte; RESET_STREAM at the bytes sent with a code the application or the
//!   peer's stop chose; STOP_SENDING with the application's codes; MAX_DATA, MAX_STREAM_DATA and
//!   MAX_STREAMS strictly increasing and within what the windows and stream limits allow; QX_PING
//!   requests increasing, responses only to the peer's requests; datagrams only once the peer's
//!   parameters allow them, within its size, in the order queued; APPLICATION_CLOSE with the
//!   application's code, CONNECTION_CLOSE with the violation's;
//! - **the end**: once the connection is closing for any reason but our own close, no record but
//!   a CONNECTION_CLOSE for a violation; after a QMux close frame went, no record at all; after
//!   our Close frame nothing;
//! - **violations are earned**: the core reports a QMux violation (with a code QMUX.md lists) only
//!   if the peer sent something that might break a rule;
//! - **reads**: what a stream reads is a prefix of the STREAM data the peer sent, the end comes
//!   exactly at its FIN, errors are the peer's reset codes or the application's stops; datagrams
//!   read are the peer's, in order; typed errors and events are explained by the model;
//! - **bounds**: buffered bytes within the connection window (`receive_budget`), the pin budget,
//!   the stream count within the configured limits both ways, at most `send_buffer` bytes
//!   written and not yet sent per stream; `open` waits exactly when a limit says so;
//! - **the lifecycle**, as in `mux_core`: the closing error stays, the terminal error never
//!   changes, `Closed` is the last event, `stats()` counts the records, and a close that started
//!   finishes within the close timeout once time passes.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use ws_stream_mux::proto::{
    mux::PIN_BUDGET,
    qmux::{Frame, TransportParams, MAX_STREAM_PAYLOAD, MIN_RECORD_SIZE},
    CloseCode, Config, ConnectionError, DatagramError, Dir, ErrorCode, Event, Half, Initiator, Mux,
    OpenError, ProtoError, Protocol, QmuxVersion, ReadOutcome, Side, StreamError, StreamId,
    StreamKey, Transmit,
};

use super::{Op, QmuxInput};
use crate::{
    mux_core::{application_close_code, credit, error_code, peer_close_code},
    qmux_decode::{decode_record, SENT_CODES},
};

/// Runs one input.
pub fn run(input: &QmuxInput) {
    let config = input.config.config();
    assert!(config.validate().is_ok(), "{config:?}");
    let mut harness = Harness::new(input.side, input.version, config);
    for op in &input.ops {
        harness.apply(op);
        harness.after_op();
    }
    harness.finale();
}

fn dir_of(id: u64) -> Dir {
    if id & 2 != 0 {
        Dir::Uni
    } else {
        Dir::Bi
    }
}

fn d(dir: Dir) -> usize {
    usize::from(dir == Dir::Uni)
}

/// One stream, from both ends.
#[derive(Debug, Default)]
struct Stream {
    key: Option<StreamKey>,
    /// The core opened it.
    ours: bool,
    uni: bool,
    /// The peer opened it (a valid frame on it, or on a higher index).
    peer_opened: bool,
    // ----- the application -----
    written: Vec<u8>,
    read: Vec<u8>,
    send_released: bool,
    recv_released: bool,
    finished: bool,
    resets: Vec<ErrorCode>,
    stops: Vec<ErrorCode>,
    drop_code: ErrorCode,
    // ----- the peer's frames -----
    peer_sent: Vec<u8>,
    peer_fin: Option<u64>,
    /// The final size of the peer's first reset (at least what it sent before).
    peer_reset: Option<u64>,
    peer_resets: Vec<ErrorCode>,
    peer_stops: Vec<ErrorCode>,
    /// The largest MAX_STREAM_DATA the peer sent.
    peer_max: u64,
    // ----- the core's frames -----
    core_sent: usize,
    core_fin: bool,
    core_reset: bool,
    /// The largest MAX_STREAM_DATA the core sent.
    core_max: u64,
}

impl Stream {
    fn core_sends(&self) -> bool {
        !self.uni || self.ours
    }

    fn core_receives(&self) -> bool {
        !self.uni || !self.ours
    }

    /// Stream data the peer's connection window counts.
    fn peer_used(&self) -> u64 {
        (self.peer_sent.len() as u64).max(self.peer_reset.unwrap_or(0))
    }
}

/// See the [module docs](self).
struct Harness {
    mux: Mux,
    config: Config,
    side: Side,
    version: QmuxVersion,
    now: Instant,
    streams: BTreeMap<u64, Stream>,
    /// Ids the application holds keys for.
    app: Vec<u64>,
    /// Ids the peer knows: it opened them or heard of them.
    known: Vec<u64>,
    next_local: [u64; 2],
    next_peer: [u64; 2],
    last_accepted: [Option<u64>; 2],
    pattern: u8,

    // ----- the peer -----
    peer_params: Option<TransportParams>,
    peer_params_sent: bool,
    peer_conn_limit: u64,
    peer_stream_limit: [u64; 2],
    /// A frame that might break a rule was sent (or the model lost track of what arrived).
    misbehaved: bool,
    texts: bool,
    last_ping_request: Option<u64>,
    /// The largest QX_PING request number the peer sent.
    max_ping_request: Option<u64>,
    peer_datagrams: Vec<Bytes>,
    datagrams_read: usize,
    /// The peer's next record, its frames (recorded in the model once it is sent), and whether
    /// it has bytes that do not decode.
    pending: BytesMut,
    pending_frames: Vec<Frame>,
    pending_broken: bool,
    glue: bool,
    peer_ws_closes: Vec<Option<(CloseCode, String)>>,

    // ----- what the core sent -----
    our_params: Option<TransportParams>,
    core_conn_max: u64,
    core_streams_max: [u64; 2],
    core_conn_sent: u64,
    core_pings: Option<u64>,
    /// Datagrams the application queued; `datagrams_matched` of them are accounted for.
    app_datagrams: Vec<Bytes>,
    datagrams_matched: usize,
    app_close_codes: Vec<u64>,
    /// A graceful shutdown started (the core refuses the peer's new streams from then on).
    shutdown: bool,
    quic_close_sent: bool,
    close_sent: bool,
    /// The violation the core reported.
    violation: Option<ProtoError>,

    // ----- the connection, as observed -----
    first_closing_error: Option<ConnectionError>,
    terminal: Option<ConnectionError>,
    closed_event: bool,
    binaries_out: u64,
    bytes_out: u64,
    messages_in: u64,
    bytes_in: u64,
}

impl Harness {
    fn new(side: Side, version: QmuxVersion, config: Config) -> Self {
        let now = Instant::now();
        Self {
            mux: Mux::new(side, Protocol::Qmux(version), config.clone(), now),
            side,
            version,
            now,
            streams: BTreeMap::new(),
            app: Vec::new(),
            known: Vec::new(),
            next_local: [0; 2],
            next_peer: [0; 2],
            last_accepted: [None; 2],
            pattern: 0,
            peer_params: None,
            peer_params_sent: false,
            peer_conn_limit: 0,
            peer_stream_limit: [0; 2],
            misbehaved: false,
            texts: false,
            last_ping_request: None,
            max_ping_request: None,
            peer_datagrams: Vec::new(),
            datagrams_read: 0,
            pending: BytesMut::new(),
            pending_frames: Vec::new(),
            pending_broken: false,
            glue: false,
            peer_ws_closes: Vec::new(),
            our_params: None,
            // What our parameters grant (`check_our_params`), in force from the start: a peer
            // may send within them before it has read them.
            core_conn_max: config.receive_budget,
            core_streams_max: [config.max_streams as u64, config.max_uni_streams as u64],
            core_conn_sent: 0,
            core_pings: None,
            app_datagrams: Vec::new(),
            datagrams_matched: 0,
            app_close_codes: Vec::new(),
            shutdown: false,
            quic_close_sent: false,
            close_sent: false,
            violation: None,
            first_closing_error: None,
            terminal: None,
            closed_event: false,
            binaries_out: 0,
            bytes_out: 0,
            messages_in: 0,
            bytes_in: 0,
            config,
        }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.pattern = self.pattern.wrapping_add(1);
                self.pattern
            })
            .collect()
    }

    fn is_ours(&self, id: u64) -> bool {
        id & 1 == self.side.parity()
    }

    fn id(&self, ours: bool, dir: Dir, index: u64) -> u64 {
        let side = if ours { self.side } else { self.side.peer() };
        index << 2 | (d(dir) as u64) << 1 | side.parity()
    }

    fn stream(&mut self, id: u64) -> &mut Stream {
        let (ours, drop_code) = (self.is_ours(id), self.config.drop_code);
        self.streams.entry(id).or_insert_with(|| Stream {
            ours,
            uni: dir_of(id) == Dir::Uni,
            drop_code,
            ..Stream::default()
        })
    }

    /// The application's stream `pick` chooses, if the core has that half and the application
    /// still holds it.
    fn app_stream(&self, pick: u8, send: bool) -> Option<(u64, StreamKey)> {
        let id = *self.app.get(usize::from(pick) % self.app.len().max(1))?;
        let s = &self.streams[&id];
        let usable = if send {
            s.core_sends() && !s.send_released
        } else {
            s.core_receives() && !s.recv_released
        };
        Some((id, s.key?)).filter(|_| usable)
    }

    /// The id a peer frame goes to: a known stream, a new one of the peer's (possibly skipping
    /// some), one of ours never opened, or a small id.
    fn target(&self, pick: u8) -> u64 {
        match pick {
            0..=191 if !self.known.is_empty() => self.known[usize::from(pick) % self.known.len()],
            0..=191 => self.id(false, Dir::Bi, self.next_peer[0]),
            192..=223 => self.id(false, Dir::Bi, self.next_peer[0] + u64::from(pick % 4)),
            224..=239 => self.id(false, Dir::Uni, self.next_peer[1] + u64::from(pick % 4)),
            240..=247 => {
                let dir = if pick & 1 == 0 { Dir::Bi } else { Dir::Uni };
                self.id(
                    true,
                    dir,
                    self.next_local[d(dir)] + u64::from((pick >> 1) % 4),
                )
            }
            _ => u64::from(pick - 248),
        }
    }

    /// Whether a frame on `id` about our receiving half (`recv`) or sending half may be sent; a
    /// new stream of the peer's within our limit is opened (with every lower one).
    fn peer_may_use(&mut self, id: u64, recv: bool) -> bool {
        let (dir, index) = (dir_of(id), id >> 2);
        if self.is_ours(id) {
            return index < self.next_local[d(dir)] && !(dir == Dir::Uni && recv);
        }
        if (dir == Dir::Uni && !recv) || index >= self.core_streams_max[d(dir)] {
            return false;
        }
        while self.next_peer[d(dir)] <= index {
            let id = self.id(false, dir, self.next_peer[d(dir)]);
            self.next_peer[d(dir)] += 1;
            self.stream(id).peer_opened = true;
            self.known.push(id);
        }
        true
    }

    /// The peer's stream credit on `id` as the core granted it.
    fn core_granted(&self, id: u64) -> u64 {
        // Every initial_max_stream_data_* we send is the window (`check_our_params`).
        u64::from(self.config.window).max(self.streams[&id].core_max)
    }

    /// The core's stream credit on `id` as the peer granted it.
    fn peer_granted(&self, id: u64) -> u64 {
        let s = &self.streams[&id];
        let initial = self
            .peer_params
            .as_ref()
            .map_or(0, |p| match (s.uni, s.ours) {
                (true, _) => p.initial_max_stream_data_uni,
                (false, true) => p.initial_max_stream_data_bidi_remote,
                (false, false) => p.initial_max_stream_data_bidi_local,
            });
        initial.max(s.peer_max)
    }

    fn peer_conn_used(&self) -> u64 {
        self.streams.values().map(Stream::peer_used).sum()
    }

    // ----- ops -----

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Open { uni } => self.open(if uni { Dir::Uni } else { Dir::Bi }),
            Op::Accept { uni } => self.accept(if uni { Dir::Uni } else { Dir::Bi }),
            Op::Write { stream, len } => self.write(stream, len),
            Op::Read { stream, len } => self.read(stream, usize::from(len), false),
            Op::ReadChunk { stream, max } => self.read(stream, usize::from(max), true),
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
                        Ok(_) => self.stream(id).finished = true,
                        Err(err) => self.explain_send_error(id, &err),
                    }
                }
            }
            Op::Reset { stream, code } => {
                if let Some((id, key)) = self.app_stream(stream, true) {
                    let code = error_code(code);
                    match self.mux.reset(key, code) {
                        Ok(()) => self.stream(id).resets.push(code),
                        Err(err) => self.explain_send_error(id, &err),
                    }
                }
            }
            Op::Stop { stream, code } => {
                if let Some((id, key)) = self.app_stream(stream, false) {
                    let code = error_code(code);
                    match self.mux.stop(key, code) {
                        Ok(()) => self.stream(id).stops.push(code),
                        Err(err) => self.explain_recv_error(id, &err),
                    }
                }
            }
            Op::Release { stream, how } => self.release(stream, how),
            Op::Close { code, application } => self.close(code, application),
            Op::Shutdown { code, timeout } => {
                let code = application_close_code(code);
                let timeout = (timeout > 0).then(|| Duration::from_millis(u64::from(timeout) * 20));
                match self.mux.shutdown(self.now, code, "drain", timeout) {
                    Ok(()) => {
                        self.shutdown = true;
                        self.app_close_codes.push(application_code(code));
                    }
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
            Op::SendDatagram { len } => self.send_datagram(usize::from(len)),
            Op::ReadDatagram => match self.mux.read_datagram() {
                Ok(Some(datagram)) => {
                    let at = self.peer_datagrams[self.datagrams_read..]
                        .iter()
                        .position(|sent| *sent == datagram)
                        .expect("read a datagram the peer did not send, or out of order");
                    self.datagrams_read += at + 1;
                }
                Ok(None) => {}
                Err(DatagramError::Closed(err)) => self.explain_lost(&err),
                Err(other) => panic!("read_datagram: {other:?}"),
            },
            Op::PeerParams(choice) => {
                self.peer_frame(Frame::TransportParameters(choice.params().encode()));
            }
            Op::PeerStream { target, len, how } => self.peer_stream(target, len, how),
            Op::PeerReset { target, code, size } => self.peer_reset(target, code, size),
            Op::PeerStop { target, code } => {
                let id = StreamId(self.target(target));
                let code = error_code(code).0;
                self.peer_frame(Frame::StopSending { id, code });
            }
            Op::PeerMaxData { amount } => {
                self.peer_frame(Frame::MaxData(u64::from(credit(amount))));
            }
            Op::PeerMaxStreamData { target, amount } => {
                let id = StreamId(self.target(target));
                let max = u64::from(credit(amount));
                self.peer_frame(Frame::MaxStreamData { id, max });
            }
            Op::PeerMaxStreams { uni, amount } => {
                let dir = if uni { Dir::Uni } else { Dir::Bi };
                let count = [0, 1, 2, 3, 5, 100, 1 << 60, (1 << 60) + 1][usize::from(amount % 8)];
                self.peer_frame(Frame::MaxStreams { dir, count });
            }
            Op::PeerBlocked { kind, target } => {
                let limit = u64::from(target);
                let frame = match kind % 4 {
                    0 => Frame::DataBlocked(limit),
                    1 => Frame::StreamDataBlocked {
                        id: StreamId(self.target(target)),
                        limit,
                    },
                    2 => Frame::StreamsBlocked {
                        dir: if kind & 4 == 0 { Dir::Bi } else { Dir::Uni },
                        limit,
                    },
                    _ => Frame::Padding,
                };
                self.peer_frame(frame);
            }
            Op::PeerPing {
                response,
                echo,
                number,
            } => {
                let number = match (echo, self.core_pings) {
                    (true, Some(latest)) => latest,
                    _ => u64::from(number),
                };
                self.peer_frame(match response {
                    true => Frame::PingResponse(number),
                    false => Frame::PingRequest(number),
                });
            }
            Op::PeerDatagram { len } => {
                let data = Bytes::from(self.bytes(usize::from(len)));
                self.peer_frame(Frame::Datagram(data));
            }
            Op::PeerClose { connection, code } => {
                let code = u64::from(code);
                let frame = match connection {
                    true => Frame::ConnectionClose {
                        code,
                        frame_type: 0,
                        reason: "peer error".to_owned(),
                    },
                    false => Frame::ApplicationClose {
                        code,
                        reason: "bye".to_owned(),
                    },
                };
                self.peer_frame(frame);
            }
            Op::Glue => self.glue = true,
            Op::PeerRaw { ref bytes } => self.peer_raw(bytes),
            Op::PeerText { len } => {
                if self.mux.wants_input() {
                    self.texts = true;
                    self.mux.handle_text(self.now, usize::from(len));
                }
            }
            Op::PeerWsClose { code } => {
                if self.mux.wants_input() {
                    let frame = peer_close_code(code).map(|code| (code, "ws".to_owned()));
                    self.peer_ws_closes.push(frame.clone());
                    self.mux.handle_close_frame(self.now, frame);
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

    fn open(&mut self, dir: Dir) {
        let ours_live = |h: &Self| {
            h.streams
                .values()
                .filter(|s| s.ours && s.uni == (dir == Dir::Uni))
                .filter_map(|s| s.key)
                .filter(|key| h.mux.stream_id(*key).is_some())
                .count()
        };
        let live = ours_live(self);
        let cap = match dir {
            Dir::Bi => self.config.max_streams,
            Dir::Uni => self.config.max_uni_streams,
        };
        let index = self.next_local[d(dir)];
        let allowed = self.peer_params.is_some() && index < self.peer_stream_limit[d(dir)];
        match self.mux.open(self.now, dir) {
            Ok(Some(key)) => {
                assert!(allowed, "opened {dir:?} {index} beyond the peer's limit");
                assert!(live < cap, "opened beyond our own limit");
                let id = key.id().0;
                assert_eq!(id, self.id(true, dir, index), "ids are allocated in order");
                self.next_local[d(dir)] += 1;
                self.stream(id).key = Some(key);
                self.app.push(id);
            }
            Ok(None) => assert!(
                !allowed || live >= cap || self.misbehaved,
                "open waits with {live} of {cap} {dir:?} streams, index {index} within the limit"
            ),
            Err(OpenError::Closed(err)) => assert_eq!(Some(err), self.mux.closing_error()),
            Err(OpenError::ShuttingDown) => assert!(self.mux.is_draining()),
            Err(other) => panic!("open failed: {other:?}"),
        }
    }

    fn accept(&mut self, dir: Dir) {
        match self.mux.accept(dir) {
            Ok(Some(key)) => {
                let id = key.id().0;
                assert!(!self.is_ours(id) && dir_of(id) == dir, "accepted {id}");
                let last = &mut self.last_accepted[d(dir)];
                assert!(
                    last.is_none_or(|last| last < id),
                    "accepted {id} out of order"
                );
                *last = Some(id);
                let s = self.stream(id);
                assert!(s.peer_opened, "accepted {id}, which the peer never opened");
                assert!(s.key.is_none(), "accepted {id} twice");
                s.key = Some(key);
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
                self.stream(id).written.extend_from_slice(&data[..n]);
            }
            Err(err) => self.explain_send_error(id, &err),
        }
    }

    fn read(&mut self, stream: u8, len: usize, chunk: bool) {
        let Some((id, key)) = self.app_stream(stream, false) else {
            return;
        };
        let outcome = if chunk {
            match self.mux.read_chunk(key, len) {
                Ok(Ok(bytes)) => {
                    assert!(!bytes.is_empty() && bytes.len() <= len.max(1));
                    self.stream(id).read.extend_from_slice(&bytes);
                    return;
                }
                Ok(Err(outcome)) => Ok(outcome),
                Err(err) => Err(err),
            }
        } else {
            let mut buf = vec![0; len];
            self.mux.read(key, &mut buf).inspect(|outcome| {
                if let ReadOutcome::Data(n) = outcome {
                    self.stream(id).read.extend_from_slice(&buf[..*n]);
                }
            })
        };
        match outcome {
            Ok(ReadOutcome::End) => {
                let s = &self.streams[&id];
                assert_eq!(
                    Some(s.read.len() as u64),
                    s.peer_fin,
                    "stream {id}: the end is not where the peer's FIN was"
                );
            }
            Ok(ReadOutcome::Data(n)) => assert!(!chunk && n <= len),
            Ok(ReadOutcome::Blocked) => {}
            Err(err) => self.explain_recv_error(id, &err),
        }
    }

    fn release(&mut self, stream: u8, how: u8) {
        let Some(&id) = self.app.get(usize::from(stream) % self.app.len().max(1)) else {
            return;
        };
        let panicking = how & 4 != 0;
        let s = self.stream(id);
        let send = how & 1 != 0 && !s.send_released;
        let recv = how & 2 != 0 && !s.recv_released;
        if !send && !recv {
            return;
        }
        let code = s.drop_code;
        if send {
            s.send_released = true;
            match panicking {
                true => s.resets.push(code),
                false => s.finished = true,
            }
        }
        if recv {
            s.recv_released = true;
            s.stops.push(code);
        }
        let key = s.key.expect("the application's streams have keys");
        self.mux.release(key, self.now, send, recv, panicking);
    }

    fn close(&mut self, code: u8, application: bool) {
        let result = if application {
            let code = error_code(code);
            let result = self
                .mux
                .close_application(self.now, code, "app")
                .expect("a valid code");
            result.map(|()| code.0)
        } else {
            let code = application_close_code(code);
            let result = self.mux.close(self.now, code, "x");
            result.map(|()| application_code(code))
        };
        match result {
            Ok(code) => self.app_close_codes.push(code),
            Err(_) => assert!(self.mux.closing_error().is_some(), "close refused"),
        }
    }

    fn send_datagram(&mut self, len: usize) {
        let data = Bytes::from(self.bytes(len));
        let max = match &self.peer_params {
            None => Some(MIN_RECORD_SIZE as usize - 3),
            Some(params) => max_datagram(params).map(|max| max as usize),
        };
        match self.mux.send_datagram(data.clone()) {
            Ok(()) => {
                assert!(max.is_some_and(|max| len <= max), "a datagram over {max:?}");
                self.app_datagrams.push(data);
            }
            Err(DatagramError::Closed(err)) => self.explain_lost(&err),
            Err(DatagramError::Unsupported(_)) => assert_eq!(max, None),
            Err(DatagramError::TooLarge { size, max: said }) => {
                assert_eq!((size, Some(said)), (len, max));
                assert!(len > said);
            }
            Err(other) => panic!("send_datagram: {other:?}"),
        }
    }

    // ----- the peer -----

    /// A STREAM frame on `target`: at the offset `how` chooses, within the credit the core
    /// granted unless `how` says otherwise.
    fn peer_stream(&mut self, target: u8, len: u8, how: u8) {
        let id = self.target(target);
        self.stream(id);
        let granted = self.core_granted(id);
        let conn_room = self.core_conn_max.saturating_sub(self.peer_conn_used());
        let sent = self.streams[&id].peer_sent.len() as u64;
        let offset = match (how >> 1) & 3 {
            2 => sent + 1,
            3 => sent.saturating_sub(1),
            _ => sent,
        };
        let mut len = u64::from(len);
        if how & 8 == 0 {
            len = len
                .min(granted.saturating_sub(offset))
                .min(conn_room.saturating_sub(offset.saturating_sub(sent)));
        }
        let data = Bytes::from(self.bytes(len as usize));
        self.peer_frame(Frame::Stream {
            id: StreamId(id),
            offset,
            data,
            fin: how & 1 != 0,
        });
    }

    /// A RESET_STREAM on `target` with a final size `size` chooses.
    fn peer_reset(&mut self, target: u8, code: u8, size: u8) {
        let id = self.target(target);
        let sent = self.stream(id).peer_sent.len() as u64;
        let extra = u64::from(size / 4);
        let final_size = match size & 3 {
            2 => sent.saturating_sub(1 + extra),
            3 => sent + 1 + extra,
            _ => sent,
        };
        self.peer_frame(Frame::ResetStream {
            id: StreamId(id),
            code: error_code(code).0,
            final_size,
        });
    }

    /// Adds a frame to the peer's next record, and sends it unless glued to the next one.
    fn peer_frame(&mut self, frame: Frame) {
        frame.encode(&mut self.pending);
        self.pending_frames.push(frame);
        if !std::mem::take(&mut self.glue) {
            self.send_pending();
        }
    }

    /// Arbitrary bytes as a record (with any glued frames before them): what decodes of them
    /// goes into the model like any frame.
    fn peer_raw(&mut self, bytes: &[u8]) {
        let (frames, error) = decode_record(&Bytes::copy_from_slice(bytes));
        self.pending_frames.extend(frames);
        self.pending_broken |= error.is_some();
        self.pending.extend_from_slice(bytes);
        self.send_pending();
    }

    /// What the peer says with `frame`, into the model; a frame that might break a rule, given
    /// what the core granted, marks the peer as misbehaving.
    fn record_peer_frame(&mut self, frame: &Frame) {
        // Nothing but padding may come before the parameters.
        let mut valid = self.peer_params_sent
            || matches!(frame, Frame::Padding | Frame::TransportParameters(_));
        let v01 = self.version == QmuxVersion::V01;
        match frame {
            Frame::TransportParameters(body) => {
                let params = TransportParams::decode(body);
                valid &= !self.peer_params_sent && params.is_ok();
                if let (false, Ok(params)) = (self.peer_params_sent, params) {
                    self.peer_conn_limit = params.initial_max_data;
                    self.peer_stream_limit = [
                        params.initial_max_streams_bidi,
                        params.initial_max_streams_uni,
                    ];
                    self.peer_params = Some(params);
                }
                self.peer_params_sent = true;
            }
            Frame::Stream {
                id,
                offset,
                data,
                fin,
            } => {
                let (id, offset) = (id.0, *offset);
                valid &= self.peer_may_use(id, true);
                self.stream(id);
                let granted = self.core_granted(id);
                let conn_room = self.core_conn_max.saturating_sub(self.peer_conn_used());
                let s = self.stream(id);
                let sent = s.peer_sent.len() as u64;
                let end = offset + data.len() as u64;
                valid &= offset == sent
                    && end <= granted
                    && end - sent <= conn_room
                    && s.peer_fin.is_none()
                    && s.peer_reset.is_none();
                if offset <= sent && end > sent {
                    // What the stream would deliver: the bytes past what it had.
                    s.peer_sent
                        .extend_from_slice(&data[(sent - offset) as usize..]);
                }
                if *fin && s.peer_fin.is_none() {
                    s.peer_fin = Some(end);
                }
            }
            Frame::ResetStream {
                id,
                code,
                final_size,
            } => {
                let id = id.0;
                valid &= self.peer_may_use(id, true);
                self.stream(id);
                let granted = self.core_granted(id);
                let conn_room = self.core_conn_max.saturating_sub(self.peer_conn_used());
                let s = self.stream(id);
                let counted = (*final_size).max(s.peer_sent.len() as u64);
                let known_end = s.peer_reset.or(s.peer_fin);
                valid &= known_end.is_none_or(|end| end == counted)
                    && counted <= granted
                    && counted.saturating_sub(s.peer_used()) <= conn_room;
                s.peer_resets.push(ErrorCode(*code));
                s.peer_reset.get_or_insert(counted);
            }
            Frame::StopSending { id, code } => {
                valid &= self.peer_may_use(id.0, false);
                self.stream(id.0).peer_stops.push(ErrorCode(*code));
            }
            Frame::MaxData(max) => self.peer_conn_limit = self.peer_conn_limit.max(*max),
            Frame::MaxStreamData { id, max } => {
                valid &= self.peer_may_use(id.0, false);
                let s = self.stream(id.0);
                s.peer_max = s.peer_max.max(*max);
            }
            Frame::MaxStreams { dir, count } => {
                // The decoder refuses a count above 2^60.
                valid &= *count <= 1 << 60;
                let limit = &mut self.peer_stream_limit[d(*dir)];
                *limit = (*limit).max(*count);
            }
            Frame::PingRequest(number) => {
                valid &= v01 || self.last_ping_request.is_none_or(|last| *number > last);
                self.last_ping_request = Some(*number);
                self.max_ping_request = self.max_ping_request.max(Some(*number));
            }
            Frame::PingResponse(number) => {
                valid &= v01 || self.core_pings.is_some_and(|latest| *number <= latest);
            }
            Frame::Datagram(data) => {
                valid &= data.len() as u64 + 3 <= MIN_RECORD_SIZE;
                self.peer_datagrams.push(data.clone());
            }
            Frame::Padding
            | Frame::DataBlocked(_)
            | Frame::StreamDataBlocked { .. }
            | Frame::StreamsBlocked { .. }
            | Frame::ConnectionClose { .. }
            | Frame::ApplicationClose { .. } => {}
        }
        if !valid {
            self.misbehaved = true;
        }
    }

    /// Sends the record built so far, and records what it says in the model, if the core reads
    /// input now (as the engine reads the socket only then).
    fn send_pending(&mut self) {
        let record = std::mem::take(&mut self.pending).freeze();
        let frames = std::mem::take(&mut self.pending_frames);
        let broken = std::mem::take(&mut self.pending_broken);
        if !self.mux.wants_input() {
            return;
        }
        for frame in &frames {
            self.record_peer_frame(frame);
        }
        if broken || record.len() > MIN_RECORD_SIZE as usize {
            self.misbehaved = true;
        }
        self.messages_in += 1;
        self.bytes_in += record.len() as u64;
        self.mux.handle_message(self.now, record);
    }

    // ----- what the core sends -----

    fn take_transmits(&mut self, max: usize, flush_partial: bool) {
        // As the engine does: events first.
        self.take_events();
        for _ in 0..max {
            let Some(transmit) = self.mux.poll_transmit(self.now, flush_partial) else {
                return;
            };
            assert!(!self.close_sent, "{transmit:?} after our Close frame");
            match transmit {
                Transmit::Binary(record) => self.check_record(record),
                Transmit::Ping(_) => panic!("a WebSocket Ping: QMux pings are QX_PING records"),
                Transmit::Close { reason, .. } => {
                    assert!(reason.len() <= ws_stream_mux::proto::MAX_CLOSE_REASON_LEN);
                    self.close_sent = true;
                }
            }
        }
    }

    fn check_record(&mut self, record: Bytes) {
        self.binaries_out += 1;
        self.bytes_out += record.len() as u64;
        assert!(!self.quic_close_sent, "a record after our QMux close frame");
        let limit = self
            .peer_params
            .as_ref()
            .map_or(MIN_RECORD_SIZE, |p| p.max_record_size);
        assert!(record.len() as u64 <= limit, "a record over {limit} bytes");
        let (frames, error) = decode_record(&record);
        assert_eq!(error, None, "we sent a broken record: {record:?}");
        assert!(!frames.is_empty(), "an empty record");
        if self.our_params.is_none() {
            let [Frame::TransportParameters(body)] = &frames[..] else {
                panic!("the first record is {frames:?}, not our parameters");
            };
            let params = TransportParams::decode(body).expect("our parameters decode");
            self.check_our_params(&params);
            self.our_params = Some(params);
            return;
        }
        let closing = self.mux.closing_error();
        let violation = self.violation.is_some();
        let our_close = matches!(
            closing,
            None | Some(ConnectionError::ApplicationClosed {
                initiator: Initiator::Local,
                ..
            })
        );
        if !our_close {
            assert!(
                violation && matches!(frames[..], [Frame::ConnectionClose { .. }]),
                "{frames:?} sent while closing with {closing:?}"
            );
        }
        for frame in frames {
            self.check_frame(frame);
        }
    }

    fn check_our_params(&self, params: &TransportParams) {
        let c = &self.config;
        let window = u64::from(c.window);
        let expected = TransportParams {
            max_idle_timeout: c.idle_timeout.map_or(0, |t| t.as_millis() as u64),
            initial_max_data: c.receive_budget,
            initial_max_stream_data_bidi_local: window,
            initial_max_stream_data_bidi_remote: window,
            initial_max_stream_data_uni: window,
            initial_max_streams_bidi: c.max_streams as u64,
            initial_max_streams_uni: c.max_uni_streams as u64,
            max_datagram_frame_size: MIN_RECORD_SIZE,
            max_record_size: MIN_RECORD_SIZE,
            reset_stream_at: false,
        };
        assert_eq!(
            *params, expected,
            "our parameters are not the configuration's"
        );
    }

    fn check_frame(&mut self, frame: Frame) {
        match frame {
            Frame::Stream {
                id,
                offset,
                data,
                fin,
            } => self.check_stream(id.0, offset, &data, fin),
            Frame::ResetStream {
                id,
                code,
                final_size,
            } => {
                let id = id.0;
                let shutdown = self.shutdown;
                let s = self.core_stream(id, true);
                assert!(
                    !s.core_fin && !s.core_reset,
                    "RESET_STREAM on {id} after its end"
                );
                assert_eq!(
                    final_size, s.core_sent as u64,
                    "RESET_STREAM on {id}: final size"
                );
                let code = ErrorCode(code);
                let refused = !s.ours && code == ErrorCode::UNKNOWN && shutdown;
                assert!(
                    s.resets.contains(&code) || s.peer_stops.contains(&code) || refused,
                    "RESET_STREAM on {id} with {code:?}: {s:?}"
                );
                self.stream(id).core_reset = true;
            }
            Frame::StopSending { id, code } => {
                let id = id.0;
                let shutdown = self.shutdown;
                let s = self.core_stream(id, false);
                let code = ErrorCode(code);
                let refused = !s.ours && code == ErrorCode::UNKNOWN && shutdown;
                assert!(
                    s.stops.contains(&code) || refused,
                    "STOP_SENDING on {id} with {code:?}: {s:?}"
                );
            }
            Frame::MaxData(max) => {
                assert!(max > self.core_conn_max, "MAX_DATA {max} does not increase");
                let bound = self.peer_conn_used() + self.config.receive_budget;
                assert!(
                    max <= bound,
                    "MAX_DATA {max} beyond what was read plus the window"
                );
                self.core_conn_max = max;
            }
            Frame::MaxStreamData { id, max } => {
                let id = id.0;
                self.core_stream(id, false);
                let granted = self.core_granted(id);
                let s = &self.streams[&id];
                assert!(
                    max > granted,
                    "MAX_STREAM_DATA on {id}: {max} after {granted}"
                );
                let bound = s.peer_used() + u64::from(self.config.window);
                assert!(
                    max <= bound,
                    "MAX_STREAM_DATA on {id}: {max} beyond {bound}"
                );
                self.stream(id).core_max = max;
            }
            Frame::MaxStreams { dir, count } => {
                let before = self.core_streams_max[d(dir)];
                assert!(count > before, "MAX_STREAMS {dir:?} {count} after {before}");
                let cap = match dir {
                    Dir::Bi => self.config.max_streams,
                    Dir::Uni => self.config.max_uni_streams,
                } as u64;
                let bound = self.next_peer[d(dir)] + cap;
                assert!(count <= bound, "MAX_STREAMS {dir:?} {count} beyond {bound}");
                self.core_streams_max[d(dir)] = count;
            }
            Frame::PingRequest(number) => {
                assert!(
                    self.core_pings.is_none_or(|last| number > last),
                    "QX_PING {number}"
                );
                self.core_pings = Some(number);
            }
            Frame::PingResponse(number) => assert!(
                self.max_ping_request.is_some_and(|max| number <= max),
                "a QX_PING response {number} to no request"
            ),
            Frame::Datagram(data) => {
                let max = self.peer_params.as_ref().and_then(max_datagram);
                assert!(
                    max.is_some_and(|max| data.len() as u64 <= max),
                    "a datagram of {} bytes sent with the peer's parameters {:?}",
                    data.len(),
                    self.peer_params
                );
                let at = self.app_datagrams[self.datagrams_matched..]
                    .iter()
                    .position(|queued| *queued == data)
                    .expect("a datagram not queued, or out of order");
                self.datagrams_matched += at + 1;
            }
            Frame::ApplicationClose { code, .. } => {
                assert!(
                    self.app_close_codes.contains(&code),
                    "APPLICATION_CLOSE {code}"
                );
                self.quic_close_sent = true;
            }
            Frame::ConnectionClose { code, .. } => {
                // Also during our own close, whose error stays the connection's.
                let Some(violation) = &self.violation else {
                    panic!("CONNECTION_CLOSE without a violation");
                };
                assert_eq!(code, violation.qmux_code());
                self.quic_close_sent = true;
            }
            other => panic!("we sent {other:?}"),
        }
    }

    /// The stream of a frame we sent about our sending half (`send`) or receiving half.
    fn core_stream(&mut self, id: u64, send: bool) -> &Stream {
        let (ours, dir) = (self.is_ours(id), dir_of(id));
        if ours {
            assert!(
                id >> 2 < self.next_local[d(dir)],
                "a frame on {id}, never opened"
            );
        } else {
            let opened = self.streams.get(&id).is_some_and(|s| s.peer_opened);
            assert!(opened, "a frame on {id}, which the peer never opened");
        }
        let s = self.stream(id);
        let has = if send {
            s.core_sends()
        } else {
            s.core_receives()
        };
        assert!(has, "a frame on {id} about a half we do not have");
        if ours && !self.known.contains(&id) {
            self.known.push(id);
        }
        &self.streams[&id]
    }

    fn check_stream(&mut self, id: u64, offset: u64, data: &[u8], fin: bool) {
        assert!(
            self.peer_params.is_some(),
            "STREAM before the peer's parameters"
        );
        let (ours, dir) = (self.is_ours(id), dir_of(id));
        if ours {
            let limit = self.peer_stream_limit[d(dir)];
            assert!(
                id >> 2 < limit,
                "stream {id} beyond the peer's MAX_STREAMS {limit}"
            );
        }
        let max_payload = self.config.max_data_per_message.min(MAX_STREAM_PAYLOAD);
        let peer_limit = self.peer_granted(id);
        let conn_limit = self.peer_conn_limit;
        let s = self.core_stream(id, true);
        let start = s.core_sent;
        assert!(!s.core_fin && !s.core_reset, "STREAM on {id} after its end");
        assert_eq!(
            offset, start as u64,
            "stream {id}: data at {offset}, sent {start}"
        );
        assert!(data.len() <= max_payload, "STREAM of {} bytes", data.len());
        let end = start + data.len();
        assert!(
            s.written.get(start..end) == Some(data),
            "stream {id}: STREAM is not what was written at {start}"
        );
        assert!(
            end as u64 <= peer_limit,
            "stream {id}: {end} bytes sent with {peer_limit} credit"
        );
        if data.is_empty() && !fin {
            assert!(ours && offset == 0, "an empty STREAM on {id} at {offset}");
        }
        if fin {
            assert!(
                s.finished && end == s.written.len(),
                "stream {id}: FIN at {end} of {} written (finished: {})",
                s.written.len(),
                s.finished
            );
        }
        let s = self.stream(id);
        s.core_sent = end;
        s.core_fin = fin;
        self.core_conn_sent += data.len() as u64;
        assert!(
            self.core_conn_sent <= conn_limit,
            "{} bytes sent on all streams with {conn_limit} connection credit",
            self.core_conn_sent
        );
    }

    fn take_events(&mut self) {
        while let Some(event) = self.mux.poll_event() {
            assert!(!self.closed_event, "{event:?} after Closed");
            self.check_event(event);
        }
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
                self.peer_ws_closes.contains(&Some((*code, reason.clone())))
                    || (none && self.peer_ws_closes.contains(&None))
            }
            Event::TextReceived { .. } => self.texts,
            Event::StreamShutdown { id, half, code } => {
                let s = stream(*id);
                match (half, code) {
                    (Half::Read, Some(code)) => s.peer_resets.contains(code),
                    (Half::Read, None) => s.peer_fin.is_some(),
                    (Half::Write, Some(code)) => s.peer_stops.contains(code),
                    (Half::Write, None) => false,
                }
            }
            Event::StreamRefused { id } => stream(*id).peer_opened && self.shutdown,
            Event::Violation(violation) => match self.violation.insert(violation.clone()) {
                ProtoError::Qmux { code, .. } => SENT_CODES.contains(code) && self.misbehaved,
                ProtoError::TextMessage => self.texts,
                ProtoError::MessageTooBig { .. } => self.misbehaved,
                ProtoError::RepliesNotRead => self.config.reply_timeout.is_some(),
                _ => false,
            },
            Event::CloseTimedOut => self.config.close_timeout.is_some(),
            Event::StreamParseError { .. } | Event::StreamOverflow { .. } | Event::Ping(_) => false,
            _ => true,
        };
        assert!(true_, "an event nothing explains: {event:?}");
    }

    // ----- explanations -----

    fn explain_recv_error(&self, id: u64, err: &StreamError) {
        let s = &self.streams[&id];
        let explained = match err {
            StreamError::Reset(code) => s.peer_resets.contains(code),
            StreamError::LocallyEnded(code) => s.stops.contains(code),
            StreamError::ConnectionLost(lost) => self.is_closing_error(lost),
            _ => false,
        };
        assert!(explained, "stream {id}: reading failed with {err:?}: {s:?}");
    }

    fn explain_send_error(&self, id: u64, err: &StreamError) {
        let s = &self.streams[&id];
        let explained = match err {
            StreamError::Stopped(code) => s.peer_stops.contains(code),
            StreamError::LocallyEnded(code) => s.resets.contains(code),
            StreamError::Finished => s.finished,
            StreamError::ConnectionLost(lost) => self.is_closing_error(lost),
            _ => false,
        };
        assert!(explained, "stream {id}: writing failed with {err:?}: {s:?}");
    }

    fn explain_lost(&self, err: &ConnectionError) {
        assert!(self.is_closing_error(err), "failed with {err:?}");
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
        let stats = self.mux.stats();
        assert_eq!(
            (stats.messages_sent, stats.bytes_sent),
            (self.binaries_out, self.bytes_out)
        );
        assert_eq!(
            (stats.messages_received, stats.bytes_received),
            (self.messages_in, self.bytes_in)
        );
        let budget = self.config.receive_budget;
        assert!(
            stats.buffered <= budget,
            "{} buffered, window {budget}",
            stats.buffered
        );
        assert!(self.mux.pinned() <= PIN_BUDGET);
        let streams = self.mux.stream_count();
        let bound = 2 * (self.config.max_streams + self.config.max_uni_streams);
        assert!(streams <= bound, "{streams} streams, bound {bound}");
        for (id, s) in &self.streams {
            assert!(
                s.peer_sent.starts_with(&s.read),
                "stream {id}: read bytes the peer did not send"
            );
            let unsent = s.written.len() - s.core_sent;
            assert!(
                unsent <= self.config.send_buffer,
                "stream {id}: {unsent} bytes waiting"
            );
            if let Some(key) = s.key {
                let _ = (self.mux.readable(key), self.mux.writable(key));
                let _ = (self.mux.poll_stopped(key), self.mux.priority(key));
            }
        }
    }

    /// The socket takes everything, and time runs out: a close that started must end.
    fn finale(&mut self) {
        self.take_transmits(usize::MAX, true);
        // Keep-alive deadlines come every second; a close may start late (the idle timeout),
        // and then has 16 deadlines to end.
        let mut closing_steps = 0;
        for _ in 0..256 {
            if self.mux.terminal().is_some() || closing_steps == 16 {
                break;
            }
            if self.mux.closing_error().is_some() {
                closing_steps += 1;
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

/// The QMux application code `Mux::close` sends for a close code.
fn application_code(code: CloseCode) -> u64 {
    match code {
        CloseCode::NORMAL | CloseCode::GOING_AWAY => 0,
        other => u64::from(other.0),
    }
}

/// The largest datagram `params` accept (the frame has a 3-byte header), if any.
fn max_datagram(params: &TransportParams) -> Option<u64> {
    let frame = params.max_datagram_frame_size.min(params.max_record_size);
    (frame > 3).then(|| frame - 3)
}
