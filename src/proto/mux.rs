//! [`Mux`]: the sans-IO state of one multiplexed connection — its lifecycle, its streams and the
//! wire protocol it speaks.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    code::{CloseCode, ErrorCode},
    config::Config,
    error::{ApiError, ConnectionError, ProtoError, StreamError},
    event::{Event, EventQueue, Wake},
    id::{Dir, Initiator, Side, StreamId},
    lifecycle::{
        ping_payload, CloseOutcome, CloseRefused, Lifecycle, LifecycleEvent, LifecycleOutput,
    },
    protocol::{Codec, Protocol},
    qmux::{self, DatagramRefused, Frame, Qmux, QmuxVersion},
    streams::{ReadOutcome, SendState, StreamKey, Streams, StreamsConfig},
    wire::Wire,
};

/// What a pinned payload is charged by default: tungstenite's read buffer size.
const DEFAULT_PIN_UNIT: usize = 128 * 1024;

/// The most pinned payloads of one connection may be charged before further ones are copied.
pub const PIN_BUDGET: usize = 4 << 20;

/// How long our Close frame waits after QMux's APPLICATION_CLOSE for the peer's Close frame
/// (its answer to the APPLICATION_CLOSE): the deployed peers answer at once, or within 100 ms.
const APPLICATION_CLOSE_LINGER: Duration = Duration::from_secs(1);

/// The most events the core keeps between two passes of the IO layer (which takes them all
/// each time); a bound against a bug, never reached in practice: one pass reads at most a
/// batch of messages, each producing at most a few events.
const EVENT_QUEUE: usize = 4096;

/// Something for the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A binary message.
    Binary(Bytes),
    /// A WebSocket Ping.
    Ping(Bytes),
    /// Our WebSocket Close frame.
    Close {
        /// Its code.
        code: CloseCode,
        /// Its reason.
        reason: String,
    },
}

/// Why a stream could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The connection is closing or closed.
    #[error(transparent)]
    Closed(#[from] ConnectionError),
    /// A graceful shutdown is under way: no new streams.
    #[error("the connection is shutting down")]
    ShuttingDown,
    /// The protocol has no such streams.
    #[error(transparent)]
    Unsupported(#[from] ApiError),
}

/// Why a datagram was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    /// The connection is closing or closed.
    #[error(transparent)]
    Closed(#[from] ConnectionError),
    /// The protocol, or the peer, has no datagrams.
    #[error("datagrams are not supported by {0}")]
    Unsupported(&'static str),
    /// Larger than the peer accepts.
    #[error("datagram of {size} bytes is larger than the peer accepts ({max} bytes)")]
    TooLarge {
        /// The datagram's size.
        size: usize,
        /// The most the peer accepts.
        max: usize,
    },
}

/// What the connection counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// WebSocket messages we sent (data and control of the stream protocol).
    pub messages_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// WebSocket messages the peer sent us.
    pub messages_received: u64,
    /// Their bytes.
    pub bytes_received: u64,
    /// Streams we opened.
    pub streams_opened: u64,
    /// Streams the peer opened that the application accepted.
    pub streams_accepted: u64,
    /// Streams the peer opened that we refused (over the limit, or shutting down).
    pub streams_refused: u64,
    /// Resets we sent.
    pub resets_sent: u64,
    /// Resets the peer sent.
    pub resets_received: u64,
    /// Bytes buffered for readers now.
    pub buffered: u64,
    /// The most bytes buffered for readers at once.
    pub peak_buffered: u64,
    /// The last ping round-trip time.
    pub rtt: Option<Duration>,
    /// Time writers spent waiting for the peer's credit, summed over streams.
    pub credit_blocked: Duration,
    /// Datagrams sent (QMux).
    pub datagrams_sent: u64,
    /// Datagrams received (QMux).
    pub datagrams_received: u64,
    /// Datagrams dropped because a queue was full (the oldest go first).
    pub datagrams_dropped: u64,
}

/// A graceful shutdown under way.
#[derive(Debug)]
struct Drain {
    code: CloseCode,
    reason: String,
    deadline: Option<Instant>,
}

/// The sans-IO state of one multiplexed connection.
///
/// Four kinds of method, as in quinn-proto:
/// - getters (`&self`);
/// - `handle_*`: what the socket produced ([`handle_message`](Self::handle_message), pings,
///   pongs, Close frames, the socket ending) and the passing of time
///   ([`handle_timeout`](Self::handle_timeout));
/// - commands from the application: [`open`](Self::open), [`accept`](Self::accept),
///   [`read`](Self::read), [`write`](Self::write), [`finish`](Self::finish), [`reset`](Self::reset),
///   [`stop`](Self::stop), [`release`](Self::release), [`close`](Self::close), …;
/// - `poll_*`: what to do next — [`poll_transmit`](Self::poll_transmit) (what to send),
///   [`poll_timeout`](Self::poll_timeout) (when to call `handle_timeout`),
///   [`poll_wake`](Self::poll_wake) (which handle may progress) and
///   [`poll_event`](Self::poll_event) (what to tell observers).
///
/// After any input or command, call the `poll_*` methods until they return `None`: events first
/// (so that an event explaining an end is published before a read can see that end), then
/// wakes, then transmits, then re-arm the timer from `poll_timeout`.
#[derive(Debug)]
pub struct Mux {
    side: Side,
    config: Config,
    lifecycle: Lifecycle,
    streams: Streams,
    protocol: Codec,
    events: EventQueue,
    /// The streams were told the connection is closing.
    streams_failed: bool,
    /// Nothing more can be sent; queued data was dropped.
    abandoned: bool,
    drain: Option<Drain>,
    stats: Stats,
    /// Something was handed out since the last complete flush.
    unflushed: bool,
    /// Streams whose flush, close or `stopped` waits for the socket to be flushed.
    flush_waiters: Vec<StreamKey>,
    /// When we last handed out a message (QMux keeps the peer's idle timer alive from it).
    last_sent: Instant,
}

impl Mux {
    /// A connection on `side` speaking `protocol`, open at `now`. `config` must be valid
    /// ([`Config::validate`]).
    pub fn new(side: Side, protocol: Protocol, config: Config, now: Instant) -> Self {
        let qmux = matches!(protocol, Protocol::Qmux(_));
        let mut streams = Streams::new(StreamsConfig {
            window: u64::from(config.window),
            initial_window: u64::from(config.initial_window),
            // QMux bounds all streams together with its connection window instead.
            budget: (!qmux).then_some(config.receive_budget),
            send_buffer: config.send_buffer,
            max_payload: if qmux {
                config.max_data_per_message.min(qmux::MAX_STREAM_PAYLOAD)
            } else {
                config.max_data_per_message
            },
            coalesce: config.coalesce_writes,
            drop_code: config.drop_code,
            pin_unit: DEFAULT_PIN_UNIT,
            pin_budget: PIN_BUDGET,
            await_final_size: qmux,
        });
        let codec = match protocol {
            Protocol::Wire => Codec::Wire(Wire::new(side, config.max_streams)),
            Protocol::Qmux(version) => {
                // Nothing may be sent on streams until the peer's parameters say how much.
                streams.conn_send_limit = 0;
                Codec::Qmux(Box::new(Qmux::new(side, version, &config)))
            }
        };
        Self {
            side,
            lifecycle: Lifecycle::new(config.lifecycle(), now),
            events: EventQueue::new(EVENT_QUEUE),
            protocol: codec,
            streams,
            config,
            streams_failed: false,
            abandoned: false,
            drain: None,
            stats: Stats::default(),
            unflushed: false,
            flush_waiters: Vec::new(),
            last_sent: now,
        }
    }

    /// Sets what a payload kept as it came (zero-copy) is charged against the pin budget: the size
    /// of the read buffer it may keep alive (tungstenite's `read_buffer_size`).
    pub fn set_pin_unit(&mut self, bytes: usize) {
        self.streams.config.pin_unit = bytes.max(1);
    }

    // ----- getters -----

    /// Which side we are.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The protocol spoken.
    pub fn protocol(&self) -> Protocol {
        self.protocol.protocol()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Streams currently tracked (open, or still owing the wire something).
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// The stream's wire id, if it still exists.
    pub fn stream_id(&self, key: StreamKey) -> Option<StreamId> {
        self.streams.get(key).map(|s| s.id)
    }

    /// The error every operation fails with, from the moment the connection started closing.
    pub fn closing_error(&self) -> Option<ConnectionError> {
        self.lifecycle.closing_error()
    }

    /// The error that ended the connection, once it is over: the socket can be dropped.
    pub fn terminal(&self) -> Option<&ConnectionError> {
        self.lifecycle.terminal()
    }

    /// How our own close ended, once it has.
    pub fn close_outcome(&self) -> Option<&CloseOutcome> {
        self.lifecycle.close_outcome()
    }

    /// Whether the IO layer should read the socket now.
    pub fn wants_input(&self) -> bool {
        self.lifecycle.wants_input()
    }

    /// Whether a flush is owed for the closing handshake.
    pub fn flush_owed(&self) -> bool {
        self.lifecycle.flush_owed()
    }

    /// Whether a read on the stream would not wait.
    pub fn readable(&self, key: StreamKey) -> bool {
        self.streams
            .get(key)
            .and_then(|s| s.recv.as_ref())
            .is_none_or(|recv| recv.readable())
    }

    /// Whether a write on the stream would progress or fail rather than wait.
    pub fn writable(&self, key: StreamKey) -> bool {
        self.streams.writable(key)
    }

    /// Whether anything may be waiting to be sent.
    pub fn has_transmit(&self) -> bool {
        !self.abandoned
            && (self.protocol.has_transmit(&self.streams)
                || self.lifecycle.flush_owed()
                || self.lifecycle.pending_violation().is_some()
                || self.lifecycle.close_ready()
                || self.protocol.qmux_ref().is_some_and(Qmux::has_close))
    }

    /// Whether partial messages are held back (with [`Config::coalesce_writes`]).
    pub fn has_corked(&self) -> bool {
        self.streams.has_corked()
    }

    /// The last ping round-trip time.
    pub fn rtt(&self) -> Option<Duration> {
        self.lifecycle.rtt()
    }

    /// Whether our ping `number` still waits for its pong.
    pub fn ping_pending(&self, number: u64) -> bool {
        self.lifecycle.ping_pending(number)
    }

    /// The round trip of our ping `number`, once its pong came.
    pub fn ping_result(&self, number: u64) -> Option<Duration> {
        self.lifecycle.ping_result(number)
    }

    /// Whether everything handed out for the socket was written out: `Some(Ok(()))` once it
    /// was; `Some(Err(_))` once it never will be — the connection ended before the socket was
    /// flushed, other than by our own completed closing handshake (the peer's answer to our Close
    /// frame shows it read everything sent before it); `None` while it may still be.
    pub fn flush_outcome(&self) -> Option<Result<(), ConnectionError>> {
        if !self.unflushed {
            return Some(Ok(()));
        }
        let end = self.lifecycle.terminal()?;
        Some(match self.lifecycle.close_outcome() {
            Some(CloseOutcome::Completed) => Ok(()),
            _ => Err(end.clone()),
        })
    }

    /// The stream's writer waits until the socket is flushed: it is woken ([`Wake::Write`]) then.
    pub fn await_flush(&mut self, key: StreamKey) {
        if !self.flush_waiters.contains(&key) {
            self.flush_waiters.push(key);
        }
    }

    /// What the connection counted.
    pub fn stats(&self) -> Stats {
        let counted = &self.streams.stats;
        let mut stats = Stats {
            streams_opened: counted.opened,
            streams_accepted: counted.accepted,
            streams_refused: counted.refused,
            resets_sent: counted.resets_sent,
            resets_received: counted.resets_received,
            buffered: self.streams.buffered_total(),
            peak_buffered: self.streams.peak_buffered,
            rtt: self.lifecycle.rtt(),
            credit_blocked: counted.credit_blocked,
            ..self.stats.clone()
        };
        if let Some(qmux) = self.protocol.qmux_ref() {
            stats.datagrams_sent = qmux.datagram_stats.sent;
            stats.datagrams_received = qmux.datagram_stats.received;
            stats.datagrams_dropped = qmux.datagram_stats.dropped;
        }
        stats
    }

    /// Credit all streams hold against the receive budget (for tests of the bounds).
    pub fn held_credit(&self) -> u64 {
        self.streams.held_credit()
    }

    /// Pin budget in use (for tests of the bounds).
    pub fn pinned(&self) -> usize {
        self.streams.pinned()
    }

    // ----- input -----

    /// One binary message from the peer.
    pub fn handle_message(&mut self, now: Instant, message: Bytes) {
        self.stats.messages_received += 1;
        self.stats.bytes_received += message.len() as u64;
        self.lifecycle.handle_heard(now);
        if !self.lifecycle.accepts_data() {
            // Either side started closing: nothing more is delivered.
            return;
        }
        let max = self.config.max_message_size_for(self.protocol());
        if message.len() > max {
            self.lifecycle
                .handle_violation(now, ProtoError::MessageTooBig { max });
        } else {
            self.streams.now = Some(now);
            match self
                .protocol
                .handle_message(&mut self.streams, &mut self.events, message)
            {
                Ok(inbound) => self.handle_inbound(now, inbound),
                Err(violation) => self.lifecycle.handle_violation(now, violation),
            }
        }
        self.settle(now);
    }

    /// What a QMux record said about the connection: its close, a ping's answer, its parameters.
    fn handle_inbound(&mut self, now: Instant, inbound: qmux::Inbound) {
        let Some(qmux) = self.protocol.qmux_ref() else {
            return;
        };
        if inbound.params_arrived {
            self.lifecycle.set_idle_timeout(qmux.idle_timeout());
        }
        if let Some(number) = inbound.pong {
            let known = self.lifecycle.handle_ping_response(now, number);
            // Whoever waits for a ping's round trip looks again.
            self.streams.push_wake(Wake::Connection);
            if !known && qmux.version() == QmuxVersion::V02 {
                self.lifecycle.handle_violation(
                    now,
                    ProtoError::Qmux {
                        code: qmux::transport_error::PROTOCOL_VIOLATION,
                        what: "QX_PING response to no request",
                    },
                );
                return;
            }
        }
        if let Some(err) = inbound.closed {
            self.lifecycle.handle_inner_close(now, err);
        }
    }

    /// A text message of `len` bytes arrived: a violation (1003).
    pub fn handle_text(&mut self, now: Instant, len: usize) {
        self.lifecycle.handle_text(now, len);
        self.settle(now);
    }

    /// A Ping arrived (tungstenite answers it).
    pub fn handle_ping(&mut self, now: Instant, payload: Bytes) {
        self.lifecycle.handle_ping(now, payload);
        self.settle(now);
    }

    /// A Pong arrived.
    pub fn handle_pong(&mut self, now: Instant, payload: Bytes) {
        self.lifecycle.handle_pong(now, payload);
        self.settle(now);
    }

    /// The peer's Close frame arrived.
    pub fn handle_close_frame(&mut self, now: Instant, frame: Option<(CloseCode, String)>) {
        self.lifecycle.handle_close_frame(now, frame);
        self.settle(now);
    }

    /// The WebSocket layer found the peer breaking the protocol.
    pub fn handle_violation(&mut self, now: Instant, violation: ProtoError) {
        self.lifecycle.handle_violation(now, violation);
        self.settle(now);
    }

    /// The socket ended (EOF, or an I/O error described by `detail`).
    pub fn handle_ended(&mut self, now: Instant, detail: String) {
        self.lifecycle.handle_ended(detail);
        self.settle(now);
    }

    /// Everything handed to the socket has been written out.
    pub fn handle_flushed(&mut self, now: Instant) {
        self.unflushed = false;
        if self.protocol.qmux_ref().is_some_and(Qmux::close_sent) {
            self.lifecycle.handle_inner_close_flushed();
        }
        for key in std::mem::take(&mut self.flush_waiters) {
            self.streams.wake_write(key);
        }
        self.lifecycle.handle_flushed(now);
        self.settle(now);
    }

    /// Acts on the deadlines that passed by `now`; calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.lifecycle.handle_timeout(now);
        if self.keep_alive_due().is_some_and(|due| now >= due) {
            // The peer's idle timer counts what it receives: a QX_PING keeps it alive.
            self.lifecycle.ping();
            self.last_sent = now;
        }
        if self
            .drain
            .as_ref()
            .and_then(|drain| drain.deadline)
            .is_some_and(|due| now >= due)
        {
            self.finish_drain(now);
        }
        self.settle(now);
    }

    // ----- commands: the connection -----

    /// Opens a stream. `Ok(None)`: at the stream limit, wait for [`Wake::Openable`].
    pub fn open(&mut self, now: Instant, dir: Dir) -> Result<Option<StreamKey>, OpenError> {
        if let Some(err) = self.lifecycle.closing_error() {
            return Err(OpenError::Closed(err));
        }
        if self.drain.is_some() {
            return Err(OpenError::ShuttingDown);
        }
        self.streams.now = Some(now);
        Ok(self.protocol.open(&mut self.streams, dir)?)
    }

    /// The next stream the peer opened. `Ok(None)`: none yet, wait for [`Wake::Incoming`]. Once
    /// the connection is closing, the streams that arrived before are still handed out, then
    /// the error.
    pub fn accept(&mut self, dir: Dir) -> Result<Option<StreamKey>, ConnectionError> {
        if let Some(key) = self.streams.accept(dir) {
            return Ok(Some(key));
        }
        match self.lifecycle.closing_error() {
            Some(err) => Err(err),
            None => Ok(None),
        }
    }

    /// Starts our close: the data already written is sent, then a Close frame with `code` and
    /// `reason` (checked by the caller). Every stream fails from now on with the close.
    ///
    /// With QMux an APPLICATION_CLOSE goes between the data and the Close frame: its code is 0
    /// for 1000 and 1001, the close code's number otherwise (see
    /// [`close_application`](Self::close_application) for any code).
    pub fn close(
        &mut self,
        now: Instant,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), CloseRefused> {
        let application = match code {
            CloseCode::NORMAL | CloseCode::GOING_AWAY => 0,
            other => u64::from(other.0),
        };
        self.close_with(now, code, application, reason)
    }

    /// Starts our close with a QMux application code (any varint): APPLICATION_CLOSE after the
    /// data written, then a Close frame with 1000. Every stream fails with
    /// [`ConnectionError::ApplicationClosed`].
    ///
    /// # Errors
    /// [`ApiError::Unsupported`] with the @matrixai/ws protocol, whose close carries only a
    /// WebSocket close code; [`ApiError::InvalidErrorCode`] above 2^62−1. `Ok(Err(_))` when the
    /// connection is already closing.
    pub fn close_application(
        &mut self,
        now: Instant,
        code: ErrorCode,
        reason: &str,
    ) -> Result<Result<(), CloseRefused>, ApiError> {
        if self.protocol.qmux_ref().is_none() {
            return Err(ApiError::Unsupported(
                "application close codes (QMux only; use a WebSocket close code)",
            ));
        }
        let code = code.validate()?;
        Ok(self.close_with(now, CloseCode::NORMAL, code.0, reason))
    }

    fn close_with(
        &mut self,
        now: Instant,
        code: CloseCode,
        application: u64,
        reason: &str,
    ) -> Result<(), CloseRefused> {
        self.lifecycle.close(now, code, reason)?;
        if let Some(qmux) = self.protocol.qmux() {
            qmux.close(application, reason);
            self.lifecycle
                .set_inner_end(ConnectionError::ApplicationClosed {
                    code: application,
                    reason: reason.to_owned(),
                    initiator: Initiator::Local,
                });
        }
        self.settle(now);
        Ok(())
    }

    /// Starts a graceful shutdown: new peer streams are refused and `open` fails; once every
    /// stream is over, or after `timeout`, the connection closes with `code` and `reason`.
    pub fn shutdown(
        &mut self,
        now: Instant,
        code: CloseCode,
        reason: &str,
        timeout: Option<Duration>,
    ) -> Result<(), CloseRefused> {
        if !self.lifecycle.is_open() || self.drain.is_some() {
            return Err(CloseRefused::AlreadyClosed);
        }
        self.drain = Some(Drain {
            code,
            reason: reason.to_owned(),
            deadline: timeout.map(|timeout| now + timeout),
        });
        self.streams.refusing = true;
        self.settle(now);
        Ok(())
    }

    /// Whether a graceful shutdown is under way.
    pub fn is_draining(&self) -> bool {
        self.drain.is_some()
    }

    fn finish_drain(&mut self, now: Instant) {
        if let Some(drain) = self.drain.take() {
            let _ = self.close(now, drain.code, &drain.reason);
        }
    }

    /// Sends a ping to measure the round trip (a WebSocket Ping, or QMux's QX_PING). Returns its
    /// number ([`Mux::ping_pending`] tells when its answer came), or `None` once the connection
    /// is closing.
    pub fn ping(&mut self) -> Option<u64> {
        self.lifecycle.ping()
    }

    // ----- commands: datagrams (QMux) -----

    /// Queues a datagram (QMux): unreliable, unordered with respect to streams, at most
    /// [`max_datagram_size`](Self::max_datagram_size) bytes. When [`Config::datagram_queue`]
    /// datagrams wait already, the oldest is dropped (and counted).
    ///
    /// # Errors
    /// [`DatagramError`]: the connection is closing, the protocol or the peer has no datagrams,
    /// or this one is too large.
    pub fn send_datagram(&mut self, data: Bytes) -> Result<(), DatagramError> {
        if let Some(err) = self.lifecycle.closing_error() {
            return Err(DatagramError::Closed(err));
        }
        let Some(qmux) = self.protocol.qmux() else {
            return Err(DatagramError::Unsupported("the @matrixai/ws protocol"));
        };
        let size = data.len();
        qmux.send_datagram(data).map_err(|refused| match refused {
            DatagramRefused::Unsupported => DatagramError::Unsupported("the peer"),
            DatagramRefused::TooLarge(max) => DatagramError::TooLarge { size, max },
        })
    }

    /// The oldest datagram received and not read yet: `Ok(None)` means wait for
    /// [`Wake::Datagram`]. Datagrams that arrived before the connection closed are handed out
    /// first, then the error.
    pub fn read_datagram(&mut self) -> Result<Option<Bytes>, DatagramError> {
        match self.protocol.qmux() {
            Some(qmux) => {
                if let Some(datagram) = qmux.read_datagram() {
                    return Ok(Some(datagram));
                }
            }
            None => return Err(DatagramError::Unsupported("the @matrixai/ws protocol")),
        }
        match self.lifecycle.closing_error() {
            Some(err) => Err(DatagramError::Closed(err)),
            None => Ok(None),
        }
    }

    /// The largest datagram the peer accepts: `None` with the @matrixai/ws protocol, before the
    /// peer's QMux parameters arrived, or when it accepts none.
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.protocol.qmux_ref()?.max_datagram_size()
    }

    // ----- commands: streams -----

    /// Reads from the stream into `out`.
    pub fn read(&mut self, key: StreamKey, out: &mut [u8]) -> Result<ReadOutcome, StreamError> {
        let outcome = self.streams.read(key, out);
        self.after_read();
        outcome
    }

    /// Takes up to `max` buffered bytes of the stream without copying them: `Err(outcome)` when
    /// there are none (the end, or nothing yet).
    pub fn read_chunk(
        &mut self,
        key: StreamKey,
        max: usize,
    ) -> Result<Result<Bytes, ReadOutcome>, StreamError> {
        let outcome = self.streams.read_chunk(key, max);
        self.after_read();
        outcome
    }

    fn after_read(&mut self) {
        // Credit freed by the read goes to streams waiting for budget.
        self.streams.serve_starved();
    }

    /// Writes to the stream; `Ok(0)` means wait for [`Wake::Write`].
    pub fn write(
        &mut self,
        key: StreamKey,
        now: Instant,
        data: &[u8],
    ) -> Result<usize, StreamError> {
        if data.is_empty() {
            return Ok(0);
        }
        self.streams.write(key, now, data, &self.protocol)
    }

    /// Seals the stream's partial message so it leaves. `Ok(true)` once everything written has
    /// been handed out; an error if some of it never will be.
    pub fn flush(&mut self, key: StreamKey) -> Result<bool, StreamError> {
        self.streams.flush(key, &self.protocol);
        match self.streams.get(key).and_then(|s| s.send.as_ref()) {
            Some(send) => send.poll_flushed(),
            None => Ok(true),
        }
    }

    /// Finishes writing (FIN after the data). `Ok(true)` once the FIN left — or the peer stopped
    /// reading after every byte had left, which is a delivery all the same.
    pub fn finish(&mut self, key: StreamKey) -> Result<bool, StreamError> {
        self.streams.finish(key, &self.protocol)?;
        match self.streams.get(key).and_then(|s| s.send.as_ref()) {
            Some(send) => send.poll_finished(),
            None => Ok(true),
        }
    }

    /// Aborts writing with `code` (at most 2^62−1): unsent data is dropped and the peer's reads
    /// fail with the code. After the FIN left, or a second time, it does nothing.
    pub fn reset(&mut self, key: StreamKey, code: ErrorCode) -> Result<(), StreamError> {
        if let Some(err) = self.lifecycle.closing_error() {
            return Err(StreamError::ConnectionLost(err));
        }
        let state = self
            .streams
            .get(key)
            .and_then(|s| s.send.as_ref())
            .map(|send| send.state.clone());
        match state {
            Some(SendState::Stopped(stop)) => return Err(StreamError::Stopped(stop)),
            Some(SendState::Failed(err)) => return Err(err),
            _ => {}
        }
        self.streams.reset(key, code);
        Ok(())
    }

    /// Stops reading with `code`: buffered data is dropped and the peer's writes fail with it.
    pub fn stop(&mut self, key: StreamKey, code: ErrorCode) -> Result<(), StreamError> {
        if let Some(err) = self.lifecycle.closing_error() {
            return Err(StreamError::ConnectionLost(err));
        }
        self.streams.stop(key, code);
        self.streams.serve_starved();
        Ok(())
    }

    /// Whether the peer stopped the stream, or everything written reached the socket:
    /// `Some(Ok(Some(code)))` for a stop, `Some(Ok(None))` once the FIN left, `None` while
    /// neither is known.
    pub fn poll_stopped(&self, key: StreamKey) -> Option<Result<Option<ErrorCode>, StreamError>> {
        let Some(send) = self.streams.get(key).and_then(|s| s.send.as_ref()) else {
            return Some(Ok(None));
        };
        if let Some(code) = send.stop_code {
            return Some(Ok(Some(code)));
        }
        match &send.state {
            SendState::Finished => Some(Ok(None)),
            SendState::Reset(code) => Some(Err(StreamError::LocallyEnded(*code))),
            SendState::Failed(err) => Some(Err(err.clone())),
            _ => None,
        }
    }

    /// Sets the stream's send priority: higher first, equal ones in turn. Default 0.
    pub fn set_priority(&mut self, key: StreamKey, priority: i32) {
        self.streams.set_priority(key, priority);
    }

    /// The stream's send priority.
    pub fn priority(&self, key: StreamKey) -> i32 {
        self.streams
            .get(key)
            .and_then(|s| s.send.as_ref())
            .map_or(0, |send| send.priority)
    }

    /// Sets the code the stream's dropped handles stop or reset with.
    pub fn set_drop_code(&mut self, key: StreamKey, code: ErrorCode) {
        if let Some(stream) = self.streams.get_mut(key) {
            stream.drop_code = code;
        }
    }

    /// The application dropped its handle on the send half, the receive half, or both. This is
    /// what a drop means to the protocol, in one place:
    ///
    /// - the send half is finished (FIN after the data) — or, if `panicking`, reset with the
    ///   stream's drop code, so the peer never reads a panic as a clean end;
    /// - the receive half, if the peer has not finished, is stopped with the drop code, and what
    ///   was buffered is dropped;
    /// - the stream is forgotten once it owes the wire nothing.
    pub fn release(
        &mut self,
        key: StreamKey,
        now: Instant,
        send: bool,
        recv: bool,
        panicking: bool,
    ) {
        let Some(stream) = self.streams.get(key) else {
            return;
        };
        let code = stream.drop_code;
        let connection_open = self.lifecycle.closing_error().is_none();
        let send_open = stream.send.as_ref().is_some_and(|s| !s.is_done());
        let recv_open = stream.recv.as_ref().is_some_and(|r| r.is_open());
        if send && connection_open && send_open {
            if panicking {
                self.streams.reset(key, code);
            } else {
                let _ = self.streams.finish(key, &self.protocol);
            }
        }
        if recv && connection_open && recv_open {
            self.streams.stop(key, code);
        }
        self.streams.release(key, send, recv);
        self.streams.serve_starved();
        self.settle(now);
    }

    // ----- output -----

    /// The next thing to send. `flush_partial` releases partial messages held back by
    /// [`Config::coalesce_writes`]: pass `true` when a task waits on the connection.
    pub fn poll_transmit(&mut self, now: Instant, flush_partial: bool) -> Option<Transmit> {
        let transmit = self.next_transmit(now, flush_partial)?;
        self.unflushed = true;
        self.last_sent = now;
        if let Transmit::Binary(message) = &transmit {
            self.stats.messages_sent += 1;
            self.stats.bytes_sent += message.len() as u64;
        }
        Some(transmit)
    }

    fn next_transmit(&mut self, now: Instant, flush_partial: bool) -> Option<Transmit> {
        if let Some(qmux) = self.protocol.qmux() {
            // QMux's transport parameters are the first record, whatever follows.
            if let Some(params) = qmux.poll_params() {
                return Some(Transmit::Binary(params));
            }
            // A violation: CONNECTION_CLOSE goes just ahead of the Close frame.
            if let Some(violation) = self.lifecycle.pending_violation() {
                if let Some(frame) = qmux.poll_violation_close(violation) {
                    return Some(Transmit::Binary(frame));
                }
            }
        }
        if let Some(output) = self.lifecycle.poll_output(now) {
            return Some(self.lifecycle_transmit(output));
        }
        if self.abandoned || self.lifecycle.close_frame_sent() {
            return None;
        }
        let closing = self.lifecycle.is_closing_by_us();
        if flush_partial || closing {
            self.streams.uncork_all(&self.protocol);
        }
        let hold = self.config.coalesce_writes && !flush_partial && !closing;
        if let Some(message) = self.protocol.poll_message(&mut self.streams, hold) {
            return Some(Transmit::Binary(message));
        }
        if closing && !self.protocol.has_transmit(&self.streams) {
            // Everything written before `close` is out: QMux's APPLICATION_CLOSE, then our
            // Close frame.
            if let Some(frame) = self.protocol.qmux().and_then(Qmux::poll_close) {
                self.lifecycle
                    .clear_close_after(now + APPLICATION_CLOSE_LINGER);
                return Some(Transmit::Binary(frame));
            }
            self.lifecycle.clear_close();
            return self
                .lifecycle
                .poll_output(now)
                .map(|output| self.lifecycle_transmit(output));
        }
        None
    }

    /// What the lifecycle wants sent, in the protocol's terms: a ping is a WebSocket Ping, or a
    /// QX_PING record with QMux (whose peers count only records as signs of life).
    fn lifecycle_transmit(&self, output: LifecycleOutput) -> Transmit {
        match output {
            LifecycleOutput::Ping(number) => match self.protocol.qmux_ref() {
                Some(_) => Transmit::Binary(Frame::PingRequest(number).to_bytes()),
                None => Transmit::Ping(ping_payload(number)),
            },
            LifecycleOutput::Close { code, reason } => Transmit::Close { code, reason },
        }
    }

    /// When QMux's keep-alive ping is due: a third of the idle timeout after we last sent
    /// anything.
    fn keep_alive_due(&self) -> Option<Instant> {
        if !self.lifecycle.is_open() {
            return None;
        }
        let idle = self.protocol.qmux_ref()?.idle_timeout()?;
        Some(self.last_sent + idle / 3)
    }

    /// When to call [`Mux::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let drain = self.drain.as_ref().and_then(|drain| drain.deadline);
        [self.lifecycle.poll_timeout(), drain, self.keep_alive_due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next handle to wake.
    pub fn poll_wake(&mut self) -> Option<Wake> {
        self.streams.poll_wake()
    }

    /// The next event for observers.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    // ----- keeping the parts in step -----

    /// After any input: the lifecycle's news reaches the streams and the observers.
    fn settle(&mut self, now: Instant) {
        let mut news = false;
        while let Some(event) = self.lifecycle.poll_event() {
            news = true;
            self.events.push(event.into());
        }
        if !self.streams_failed {
            if let Some(err) = self.lifecycle.closing_error() {
                self.streams_failed = true;
                self.drain = None;
                self.streams
                    .fail_all(StreamError::ConnectionLost(err), &self.protocol);
                self.streams.push_wake(Wake::Datagram);
            }
        }
        let can_send = self.lifecycle.is_open() || self.lifecycle.is_closing_by_us();
        if !self.abandoned && !can_send {
            self.abandoned = true;
            self.streams.abandon_all();
            self.protocol.abandon();
        }
        if self.lifecycle.terminal().is_some() {
            // No flush will come any more: whoever waits for one learns it (`flush_outcome`).
            for key in std::mem::take(&mut self.flush_waiters) {
                self.streams.wake_write(key);
            }
        }
        self.lifecycle
            .set_replies_backlogged(now, self.protocol.backlogged());
        self.check_drained(now);
        if news {
            self.streams.push_wake(Wake::Connection);
        }
    }

    fn check_drained(&mut self, now: Instant) {
        if self.drain.is_some() && self.streams.len() == 0 {
            self.finish_drain(now);
            self.streams.push_wake(Wake::Connection);
        }
    }
}

impl From<LifecycleEvent> for Event {
    fn from(event: LifecycleEvent) -> Self {
        match event {
            LifecycleEvent::CloseFrame { code, reason } => Event::CloseFrame { code, reason },
            LifecycleEvent::Ping(payload) => Event::Ping(payload),
            LifecycleEvent::Pong(payload) => Event::Pong(payload),
            LifecycleEvent::TextReceived { len } => Event::TextReceived { len },
            LifecycleEvent::Violation(violation) => Event::Violation(violation),
            LifecycleEvent::CloseTimedOut => Event::CloseTimedOut,
            LifecycleEvent::Closed(err) => Event::Closed(err),
        }
    }
}
