//! The life of one WebSocket connection, whatever it carries: the closing handshake, keep-alive
//! pings, the idle timeout, ping round trips, and the bound on replies a peer leaves unread.
//!
//! All three adapters (`Connection`, `WsIo`, `MessageSocket`) run one of these; it is the one place
//! where the connection's close state lives. It reads no clock and touches no socket: the IO
//! layer feeds it what the socket produced (`handle_*`), sends what it asks for
//! ([`Lifecycle::poll_output`]) and calls [`Lifecycle::handle_timeout`] when
//! [`Lifecycle::poll_timeout`] says so.
//!
//! ```text
//!                  close()                      peer's Close
//!   Open ──────────────────────► Closing ───────────────────────► Done(Closed by us)
//!    │  peer violates protocol      ▲ (frame leaves after the data written before close())
//!    ├─────────────────────────► Failing ──── frame flushed ─────► Done(Violation)
//!    │  peer's Close                                              ▲
//!    └─────────────────────────► PeerClosed ── echo flushed ─────┘ Done(Closed by peer)
//!
//!   In any state: the socket ends (EOF, error) ──► Done(Abnormal, 1006) unless already decided;
//!                 the close deadline passes    ──► Done (the outcome says TimedOut).
//! ```
//!
//! A Close frame is sent once: ours, or tungstenite's echo of the peer's. Our own close waits for
//! the peer's reply; whether it came is the close's [`CloseOutcome`].

use std::{collections::VecDeque, time::Duration, time::Instant};

use bytes::Bytes;

use super::{
    code::CloseCode,
    error::{ConnectionError, ProtoError},
    id::Initiator,
    trace::debug,
};

/// How many pings a peer may send while our pongs cannot leave (the socket does not take them)
/// before we stop reading. tungstenite queues one pong per ping it reads while its writes block.
pub const MAX_OWED_PONGS: usize = 64;

/// How many of our own pings may be awaiting their pong at once; a further ping forgets the oldest.
pub const MAX_PINGS_IN_FLIGHT: usize = 16;

/// The payload of our WebSocket Ping number `number`.
pub fn ping_payload(number: u64) -> Bytes {
    Bytes::copy_from_slice(&number.to_be_bytes())
}

/// Settings of a [`Lifecycle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleConfig {
    /// Send a Ping after this long without hearing from the peer.
    pub keep_alive_interval: Option<Duration>,
    /// Close with 1001 after this long without hearing from the peer.
    pub idle_timeout: Option<Duration>,
    /// How long the closing handshake may take, from the moment it starts (our `close`, the
    /// peer's Close frame, a violation) until the connection is over.
    pub close_timeout: Option<Duration>,
    /// How long the peer may leave our replies unread while it keeps sending, before we close
    /// with 1008.
    pub reply_timeout: Option<Duration>,
    /// Whether text messages are data (the message adapter) rather than a violation (1003).
    pub accept_text: bool,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            keep_alive_interval: None,
            idle_timeout: None,
            close_timeout: Some(Duration::from_secs(10)),
            reply_timeout: Some(Duration::from_secs(30)),
            accept_text: false,
        }
    }
}

/// Something to put on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleOutput {
    /// A ping with this number: a WebSocket Ping whose payload is the number's 8 big-endian
    /// bytes ([`ping_payload`]), or QMux's QX_PING request.
    Ping(u64),
    /// Our Close frame.
    Close {
        /// Its code.
        code: CloseCode,
        /// Its reason (at most 123 bytes).
        reason: String,
    },
}

/// Something worth telling observers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// The peer sent a Close frame (1005 when it had no code).
    CloseFrame {
        /// Its code.
        code: CloseCode,
        /// Its reason.
        reason: String,
    },
    /// The peer sent a Ping (tungstenite answers it).
    Ping(Bytes),
    /// The peer sent a Pong.
    Pong(Bytes),
    /// A text message arrived where only binary ones are accepted.
    TextReceived {
        /// Its length in bytes.
        len: usize,
    },
    /// The peer broke the protocol; we close the connection.
    Violation(ProtoError),
    /// The closing handshake did not finish within the close timeout; the connection was dropped.
    CloseTimedOut,
    /// The connection is over; nothing follows.
    Closed(ConnectionError),
}

/// How our own close ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    /// The peer answered with its Close frame.
    Completed,
    /// The close timeout passed first.
    TimedOut,
    /// The connection ended without the peer's answer (1006).
    Abnormal,
}

/// Why [`Lifecycle::close`] did not start a close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseRefused {
    /// A Close frame was already sent or received, or the connection is over.
    AlreadyClosed,
}

#[derive(Debug)]
enum State {
    Open,
    /// We close with this code; the frame leaves when the session says its data is out.
    Closing {
        code: CloseCode,
        reason: String,
        /// Whether our Close frame was handed out.
        sent: bool,
    },
    /// We close because the peer broke the protocol; our frame goes out ahead of everything.
    Failing {
        violation: ProtoError,
        sent: bool,
    },
    /// The peer closed first; tungstenite queued the echo, which leaves with the next flush.
    PeerClosed {
        code: CloseCode,
        reason: String,
    },
    Done(ConnectionError),
}

/// See the [module docs](self).
#[derive(Debug)]
pub struct Lifecycle {
    config: LifecycleConfig,
    state: State,
    /// Set by [`Lifecycle::close`]: how our close ended, once it has.
    our_close: Option<Option<CloseOutcome>>,
    /// Whether the session has sent everything it must before our Close frame.
    close_cleared: bool,
    /// Our Close frame waits until then for the peer's (see [`Lifecycle::clear_close_after`]).
    close_hold: Option<Instant>,
    /// Our protocol-level close (QMux's APPLICATION_CLOSE) has been written out.
    inner_close_flushed: bool,
    close_deadline: Option<Instant>,
    last_heard: Instant,
    /// When we last pinged for keep-alive (once per quiet interval).
    last_keep_alive: Option<Instant>,
    /// Our pings awaiting their pong: payload number and when it was handed out.
    pings: VecDeque<(u64, Option<Instant>)>,
    next_ping: u64,
    /// Pings queued for the socket, in order.
    ping_queue: VecDeque<u64>,
    rtt: Option<Duration>,
    /// The round trips of our latest answered pings, by number.
    answered: VecDeque<(u64, Duration)>,
    /// Pings read since the last complete flush: tungstenite owes a pong for each.
    owed_pongs: usize,
    /// Whether the session has replies it cannot send (see [`Lifecycle::set_replies_backlogged`]).
    session_backlogged: bool,
    /// Since when input is refused because replies cannot leave.
    stalled_since: Option<Instant>,
    events: VecDeque<LifecycleEvent>,
    /// Whether the echo of the peer's Close (or our frame) is still to be flushed.
    flush_owed: bool,
    /// Our close is the idle timeout's: everything then ends with `ConnectionError::IdleTimeout`.
    idle: bool,
    /// The end as the protocol inside the WebSocket named it (QMux's close frames): it is what
    /// every operation sees, whatever the WebSocket's closing handshake then does.
    inner_end: Option<ConnectionError>,
}

impl Lifecycle {
    /// A connection that is open at `now`.
    pub fn new(config: LifecycleConfig, now: Instant) -> Self {
        Self {
            config,
            state: State::Open,
            our_close: None,
            close_cleared: false,
            close_hold: None,
            inner_close_flushed: false,
            close_deadline: None,
            last_heard: now,
            last_keep_alive: None,
            pings: VecDeque::new(),
            next_ping: 0,
            ping_queue: VecDeque::new(),
            rtt: None,
            answered: VecDeque::new(),
            owed_pongs: 0,
            session_backlogged: false,
            stalled_since: None,
            events: VecDeque::new(),
            flush_owed: false,
            idle: false,
            inner_end: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &LifecycleConfig {
        &self.config
    }

    // ----- getters -----

    /// Whether messages may still be sent and received: no Close frame sent or received.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// The error that ends everything, from the moment the close is decided (our `close`, the
    /// peer's Close, a violation) — streams fail with it while the handshake is still going on.
    pub fn closing_error(&self) -> Option<ConnectionError> {
        if let State::Done(err) = &self.state {
            return Some(err.clone());
        }
        if let Some(err) = &self.inner_end {
            return Some(err.clone());
        }
        match &self.state {
            State::Open => None,
            State::Closing { .. } if self.idle => Some(ConnectionError::IdleTimeout),
            State::Closing { code, reason, .. } => Some(ConnectionError::Closed {
                code: *code,
                reason: reason.clone(),
                initiator: Initiator::Local,
            }),
            State::Failing { violation, .. } => Some(ConnectionError::Violation(violation.clone())),
            State::PeerClosed { code, reason } => Some(ConnectionError::Closed {
                code: *code,
                reason: reason.clone(),
                initiator: Initiator::Peer,
            }),
            State::Done(err) => Some(err.clone()),
        }
    }

    /// The error that ended the connection, once it is over: the socket can go.
    pub fn terminal(&self) -> Option<&ConnectionError> {
        match &self.state {
            State::Done(err) => Some(err),
            _ => None,
        }
    }

    /// The violation whose Close frame is about to go (QMux sends its CONNECTION_CLOSE first).
    pub fn pending_violation(&self) -> Option<&ProtoError> {
        match &self.state {
            State::Failing {
                violation,
                sent: false,
            } => Some(violation),
            _ => None,
        }
    }

    /// Whether a Close frame was sent or received: no data message may follow.
    pub fn close_frame_sent(&self) -> bool {
        match self.state {
            State::Open => false,
            State::Closing { sent, .. } | State::Failing { sent, .. } => sent,
            State::PeerClosed { .. } | State::Done(_) => true,
        }
    }

    /// Whether we sent a Close frame of our own (not an echo) and still wait for the answer.
    pub fn is_closing_by_us(&self) -> bool {
        matches!(self.state, State::Closing { .. })
    }

    /// Whether we started a close of our own (whether or not it has ended).
    pub fn closed_by_us(&self) -> bool {
        self.our_close.is_some()
    }

    /// How our own close ended: `None` if we did not close or it has not ended yet.
    pub fn close_outcome(&self) -> Option<&CloseOutcome> {
        self.our_close.as_ref().and_then(Option::as_ref)
    }

    /// The last measured round-trip time (a ping and its pong).
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Whether the IO layer should read the socket: not while the peer leaves our replies unread
    /// (reading more would only queue more of them), and not once the connection is over.
    pub fn wants_input(&self) -> bool {
        !matches!(self.state, State::Done(_)) && self.stalled_since.is_none()
    }

    /// Whether a flush is owed: our Close frame or tungstenite's echo of the peer's must leave.
    pub fn flush_owed(&self) -> bool {
        self.flush_owed
    }

    /// Whether data messages from the peer are still wanted. Once either side has sent a Close
    /// frame nothing more is delivered, except to a message-level user closing first, who reads
    /// until the peer's answer.
    pub fn accepts_data(&self) -> bool {
        match self.state {
            State::Open => true,
            State::Closing { .. } => self.config.accept_text,
            _ => false,
        }
    }

    // ----- input from the socket -----

    /// Anything arrived from the peer (it counts as a sign of life).
    pub fn handle_heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// A Ping arrived (tungstenite queues the pong).
    pub fn handle_ping(&mut self, now: Instant, payload: Bytes) {
        self.handle_heard(now);
        self.owed_pongs += 1;
        self.events.push_back(LifecycleEvent::Ping(payload));
        self.update_stall(now);
    }

    /// A Pong arrived: completes our ping with that payload, if it is one.
    pub fn handle_pong(&mut self, now: Instant, payload: Bytes) {
        self.handle_heard(now);
        if let Ok(number) = <[u8; 8]>::try_from(payload.as_ref()).map(u64::from_be_bytes) {
            self.complete_ping(now, number);
        }
        self.events.push_back(LifecycleEvent::Pong(payload));
    }

    /// Our ping `number` was answered: its round trip is measured.
    fn complete_ping(&mut self, now: Instant, number: u64) {
        if let Some(pos) = self.pings.iter().position(|(n, _)| *n == number) {
            if let Some((_, Some(sent))) = self.pings.remove(pos) {
                let rtt = now.saturating_duration_since(sent);
                self.rtt = Some(rtt);
                if self.answered.len() >= MAX_PINGS_IN_FLIGHT {
                    self.answered.pop_front();
                }
                self.answered.push_back((number, rtt));
            }
        }
    }

    /// A text message of `len` bytes arrived. Returns whether it is data (the message adapter);
    /// otherwise the connection fails with 1003.
    pub fn handle_text(&mut self, now: Instant, len: usize) -> bool {
        self.handle_heard(now);
        if self.config.accept_text {
            return true;
        }
        self.events.push_back(LifecycleEvent::TextReceived { len });
        self.fail(now, ProtoError::TextMessage);
        false
    }

    /// The peer's Close frame arrived (`None`: without a code, read as 1005).
    pub fn handle_close_frame(&mut self, now: Instant, frame: Option<(CloseCode, String)>) {
        self.handle_heard(now);
        let (code, reason) = frame.unwrap_or((CloseCode::NO_STATUS, String::new()));
        debug!(code = code.0, reason = %reason, "close frame received");
        self.events.push_back(LifecycleEvent::CloseFrame {
            code,
            reason: reason.clone(),
        });
        match &self.state {
            State::Open => {
                // tungstenite queued the echo; the connection is over once it is flushed.
                self.state = State::PeerClosed { code, reason };
                self.flush_owed = true;
                self.arm_close_deadline(now);
            }
            State::Closing { .. } => {
                // The answer to our Close: the handshake is complete.
                self.set_close_outcome(CloseOutcome::Completed);
                let err = self.closing_error().expect("closing");
                self.end(err);
            }
            State::Failing { violation, .. } => {
                let err = ConnectionError::Violation(violation.clone());
                self.end(err);
            }
            State::PeerClosed { .. } | State::Done(_) => {}
        }
    }

    /// The WebSocket layer found the peer breaking the protocol (a bad frame, a message too big,
    /// invalid UTF-8), or the session did.
    pub fn handle_violation(&mut self, now: Instant, violation: ProtoError) {
        self.fail(now, violation);
    }

    /// The socket ended: EOF (`detail` empty) or an I/O error. Whatever was not decided by then
    /// ends as 1006.
    pub fn handle_ended(&mut self, detail: String) {
        let err = match &self.state {
            State::Done(_) => return,
            State::Closing { .. } if self.idle => ConnectionError::IdleTimeout,
            State::Open | State::Closing { .. } => ConnectionError::Abnormal {
                detail: if detail.is_empty() {
                    "connection ended without a close frame".to_owned()
                } else {
                    detail
                },
            },
            State::Failing { violation, .. } => ConnectionError::Violation(violation.clone()),
            State::PeerClosed { .. } => self.closing_error().expect("closing"),
        };
        match self.state {
            // With a protocol close frame inside (QMux's APPLICATION_CLOSE), ours being out is
            // the close: the peer may drop the connection without answering our Close frame
            // (qmux does).
            State::Closing { .. } if self.inner_close_flushed => {
                self.set_close_outcome(CloseOutcome::Completed);
            }
            State::Closing { .. } => self.set_close_outcome(CloseOutcome::Abnormal),
            _ => {}
        }
        self.end(err);
    }

    /// Everything handed to the socket has been written out.
    pub fn handle_flushed(&mut self, now: Instant) {
        self.owed_pongs = 0;
        self.update_stall(now);
        if !self.flush_owed {
            return;
        }
        self.flush_owed = false;
        match &self.state {
            // The echo went out: the closing handshake is complete on our side.
            State::PeerClosed { .. } => {
                let err = self.closing_error().expect("closing");
                self.end(err);
            }
            // A failed connection is dropped once our frame is out (RFC 6455 §7.1.7).
            State::Failing {
                violation,
                sent: true,
            } => {
                let err = ConnectionError::Violation(violation.clone());
                self.end(err);
            }
            _ => {}
        }
    }

    /// The session has replies (credit, refusals) it cannot send because the socket does not take
    /// them. With the pongs owed, this decides whether the socket is read.
    pub fn set_replies_backlogged(&mut self, now: Instant, backlogged: bool) {
        self.session_backlogged = backlogged;
        self.update_stall(now);
    }

    fn update_stall(&mut self, now: Instant) {
        let stalled = self.session_backlogged || self.owed_pongs >= MAX_OWED_PONGS;
        match (stalled, self.stalled_since) {
            (true, None) => self.stalled_since = Some(now),
            (false, Some(_)) => self.stalled_since = None,
            _ => {}
        }
    }

    // ----- commands -----

    /// Starts our close with `code` and `reason` (validated by the caller). The frame goes out
    /// once [`Lifecycle::clear_close`] says the data before it is out. The close deadline runs
    /// from now.
    pub fn close(
        &mut self,
        now: Instant,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), CloseRefused> {
        if !self.is_open() {
            return Err(CloseRefused::AlreadyClosed);
        }
        self.state = State::Closing {
            code,
            reason: reason.to_owned(),
            sent: false,
        };
        self.our_close = Some(None);
        self.arm_close_deadline(now);
        Ok(())
    }

    /// Our close carries the protocol's own end (QMux's APPLICATION_CLOSE): every operation sees
    /// `err` rather than the WebSocket Close frame's code.
    pub fn set_inner_end(&mut self, err: ConnectionError) {
        self.inner_end.get_or_insert(err);
    }

    /// The protocol inside the WebSocket ended the connection from the peer's side (QMux's
    /// APPLICATION_CLOSE or CONNECTION_CLOSE): everything fails with `err`, and our Close frame
    /// (1000) goes at once, ending the WebSocket; the peer's answer completes it.
    pub fn handle_inner_close(&mut self, now: Instant, err: ConnectionError) {
        self.set_inner_end(err);
        if self.is_open() {
            self.state = State::Closing {
                code: CloseCode::NORMAL,
                reason: String::new(),
                sent: false,
            };
            self.close_cleared = true;
            self.arm_close_deadline(now);
        }
    }

    /// Sets the idle timeout (QMux's is the smaller of both sides', known once the peer's
    /// parameters arrive).
    pub fn set_idle_timeout(&mut self, idle_timeout: Option<Duration>) {
        self.config.idle_timeout = idle_timeout;
    }

    /// A response to our pings up to `number` (QMux's QX_PING answers the latest of several).
    /// Returns `false` if we never sent a ping with that number.
    pub fn handle_ping_response(&mut self, now: Instant, number: u64) -> bool {
        self.handle_heard(now);
        if number >= self.next_ping {
            return false;
        }
        let answered: Vec<u64> = self
            .pings
            .iter()
            .filter(|(n, sent)| *n <= number && sent.is_some())
            .map(|(n, _)| *n)
            .collect();
        for n in answered {
            self.complete_ping(now, n);
        }
        true
    }

    /// The session has sent everything that must precede our Close frame.
    pub fn clear_close(&mut self) {
        self.close_cleared = true;
    }

    /// The session has sent everything that must precede our Close frame, the last of it a close
    /// of its own that the peer answers with its Close frame (QMux's APPLICATION_CLOSE). Ours
    /// waits for that answer until `until`: a peer that reads our Close frame first might end
    /// without having read the frame before it (qmux's reader races its own socket).
    pub fn clear_close_after(&mut self, until: Instant) {
        self.close_cleared = true;
        self.close_hold = Some(until);
    }

    /// Our protocol-level close (QMux's APPLICATION_CLOSE) has been written out: from now on the
    /// socket ending completes our close rather than making it abnormal.
    pub fn handle_inner_close_flushed(&mut self) {
        self.inner_close_flushed = true;
    }

    /// Whether our Close frame is ready to go (the data before it is out, no hold).
    pub fn close_ready(&self) -> bool {
        matches!(self.state, State::Closing { sent: false, .. })
            && self.close_cleared
            && self.close_hold.is_none()
    }

    /// Sends a Ping and remembers when, to measure the round trip when its pong comes. Returns
    /// the ping's number, or `None` once the connection is closing.
    pub fn ping(&mut self) -> Option<u64> {
        if !self.is_open() {
            return None;
        }
        let number = self.next_ping;
        self.next_ping = self.next_ping.wrapping_add(1);
        if self.pings.len() >= MAX_PINGS_IN_FLIGHT {
            self.pings.pop_front();
        }
        self.pings.push_back((number, None));
        self.ping_queue.push_back(number);
        Some(number)
    }

    /// Whether ping `number` is still waiting for its pong.
    pub fn ping_pending(&self, number: u64) -> bool {
        self.pings.iter().any(|(n, _)| *n == number)
    }

    /// The round trip of ping `number`, once its pong came (the latest 16 are remembered).
    pub fn ping_result(&self, number: u64) -> Option<Duration> {
        self.answered
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, rtt)| *rtt)
    }

    // ----- output -----

    /// The next thing to put on the socket: a violation's Close frame first, then pings, then our
    /// own Close frame once the data before it is out.
    pub fn poll_output(&mut self, now: Instant) -> Option<LifecycleOutput> {
        match &mut self.state {
            State::Failing { violation, sent } if !*sent => {
                debug!(code = violation.close_code().0, %violation, "close frame sent");
                *sent = true;
                self.flush_owed = true;
                return Some(LifecycleOutput::Close {
                    code: violation.close_code(),
                    reason: violation.close_reason().to_owned(),
                });
            }
            _ => {}
        }
        if self.is_open() {
            if let Some(number) = self.ping_queue.pop_front() {
                if let Some(entry) = self.pings.iter_mut().find(|(n, _)| *n == number) {
                    entry.1 = Some(now);
                }
                return Some(LifecycleOutput::Ping(number));
            }
        }
        match &mut self.state {
            State::Closing { code, reason, sent }
                if !*sent && self.close_cleared && self.close_hold.is_none_or(|t| now >= t) =>
            {
                debug!(code = code.0, reason = %reason, "close frame sent");
                *sent = true;
                self.flush_owed = true;
                Some(LifecycleOutput::Close {
                    code: *code,
                    reason: reason.clone(),
                })
            }
            _ => None,
        }
    }

    /// The next event for observers.
    pub fn poll_event(&mut self) -> Option<LifecycleEvent> {
        self.events.pop_front()
    }

    // ----- time -----

    /// The earliest deadline, if any: call [`Lifecycle::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if matches!(self.state, State::Done(_)) {
            return None;
        }
        let mut deadlines = [
            self.close_deadline,
            self.stalled_since
                .and_then(|since| Some(since + self.config.reply_timeout?)),
            self.close_hold,
            None,
            None,
        ];
        if self.is_open() {
            deadlines[3] = self.keep_alive_due();
            deadlines[4] = self.idle_due();
        }
        deadlines.into_iter().flatten().min()
    }

    /// Acts on every deadline that has passed by `now`. Calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::Done(_)) {
            return;
        }
        if self.close_hold.is_some_and(|until| now >= until) {
            // The peer did not answer the close inside: our Close frame goes now.
            self.close_hold = None;
        }
        if self.close_deadline.is_some_and(|due| now >= due) {
            debug!("the closing handshake timed out");
            self.events.push_back(LifecycleEvent::CloseTimedOut);
            if matches!(self.state, State::Closing { .. }) {
                self.set_close_outcome(CloseOutcome::TimedOut);
            }
            let err = self
                .closing_error()
                .expect("a close deadline means closing");
            self.end(err);
            return;
        }
        let stall_due = self
            .stalled_since
            .and_then(|since| Some(since + self.config.reply_timeout?));
        if stall_due.is_some_and(|due| now >= due) {
            self.stalled_since = None;
            self.fail(now, ProtoError::RepliesNotRead);
            return;
        }
        if !self.is_open() {
            return;
        }
        if self.idle_due().is_some_and(|due| now >= due) {
            debug!("idle timeout");
            let _ = self.close(now, CloseCode::GOING_AWAY, super::error::IDLE_REASON);
            self.idle = true;
            self.close_cleared = true;
            return;
        }
        if self.keep_alive_due().is_some_and(|due| now >= due) {
            self.last_keep_alive = Some(now);
            self.ping();
        }
    }

    // ----- internals -----

    fn keep_alive_due(&self) -> Option<Instant> {
        let interval = self.config.keep_alive_interval?;
        // Once per quiet interval: from the last ping if the peer stayed quiet since.
        let since = self
            .last_keep_alive
            .filter(|ping| *ping > self.last_heard)
            .unwrap_or(self.last_heard);
        Some(since + interval)
    }

    fn idle_due(&self) -> Option<Instant> {
        Some(self.last_heard + self.config.idle_timeout?)
    }

    fn arm_close_deadline(&mut self, now: Instant) {
        if self.close_deadline.is_none() {
            self.close_deadline = self.config.close_timeout.map(|timeout| now + timeout);
        }
    }

    fn set_close_outcome(&mut self, outcome: CloseOutcome) {
        if let Some(slot @ None) = &mut self.our_close {
            *slot = Some(outcome);
        }
    }

    fn fail(&mut self, now: Instant, violation: ProtoError) {
        match &self.state {
            State::Open => {
                self.events
                    .push_back(LifecycleEvent::Violation(violation.clone()));
                self.state = State::Failing {
                    violation,
                    sent: false,
                };
                self.arm_close_deadline(now);
            }
            // A Close frame already went out or was received: nothing more may be sent, so a
            // message-level user (who reads on after closing) sees the violation end it here.
            State::Closing { .. } | State::PeerClosed { .. } if self.config.accept_text => {
                self.set_close_outcome(CloseOutcome::Abnormal);
                self.events
                    .push_back(LifecycleEvent::Violation(violation.clone()));
                self.end(ConnectionError::Violation(violation));
            }
            // Our close is under way and the peer broke the protocol: nothing more is read after
            // a violation, so its answer can never arrive and waiting for it would only hold
            // `close()` until the close timeout. The connection fails instead: our Close frame
            // becomes the violation's if it has not left yet, and the connection is dropped once
            // the frame is out (at once if it already is), as RFC 6455 §7.1.7 says.
            &State::Closing { sent, .. } => {
                self.set_close_outcome(CloseOutcome::Abnormal);
                self.events
                    .push_back(LifecycleEvent::Violation(violation.clone()));
                if sent && !self.flush_owed {
                    self.end(ConnectionError::Violation(violation));
                } else {
                    self.state = State::Failing { violation, sent };
                }
            }
            // The peer's Close frame arrived first: its echo ends the connection once flushed.
            State::PeerClosed { .. } | State::Failing { .. } | State::Done(_) => {}
        }
    }

    fn end(&mut self, err: ConnectionError) {
        if matches!(self.state, State::Done(_)) {
            return;
        }
        let err = self.inner_end.clone().unwrap_or(err);
        debug!(%err, "connection over");
        self.events.push_back(LifecycleEvent::Closed(err.clone()));
        self.state = State::Done(err);
        self.close_deadline = None;
        self.stalled_since = None;
        self.ping_queue.clear();
        self.flush_owed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn lifecycle(config: LifecycleConfig) -> (Lifecycle, Instant) {
        let now = Instant::now();
        (Lifecycle::new(config, now), now)
    }

    fn drain(lc: &mut Lifecycle, now: Instant) -> Vec<LifecycleOutput> {
        std::iter::from_fn(|| lc.poll_output(now)).collect()
    }

    #[test]
    fn our_close_waits_for_the_data_then_for_the_answer() {
        let (mut lc, t0) = lifecycle(LifecycleConfig::default());
        lc.close(t0, CloseCode(4000), "bye").unwrap();
        assert!(drain(&mut lc, t0).is_empty(), "data first");
        assert_eq!(
            lc.close(t0, CloseCode::NORMAL, ""),
            Err(CloseRefused::AlreadyClosed)
        );
        lc.clear_close();
        assert_eq!(
            drain(&mut lc, t0),
            vec![LifecycleOutput::Close {
                code: CloseCode(4000),
                reason: "bye".into()
            }]
        );
        assert!(lc.terminal().is_none());
        lc.handle_close_frame(t0, Some((CloseCode(4000), "bye".into())));
        assert_eq!(lc.close_outcome(), Some(&CloseOutcome::Completed));
        assert!(matches!(
            lc.terminal(),
            Some(ConnectionError::Closed {
                code: CloseCode(4000),
                initiator: Initiator::Local,
                ..
            })
        ));
    }

    #[test]
    fn the_close_deadline_counts_from_the_call() {
        let (mut lc, t0) = lifecycle(LifecycleConfig {
            close_timeout: Some(2 * SECOND),
            ..LifecycleConfig::default()
        });
        lc.close(t0, CloseCode::NORMAL, "").unwrap();
        // The frame never left (the data before it is stuck): the deadline still applies.
        assert_eq!(lc.poll_timeout(), Some(t0 + 2 * SECOND));
        lc.handle_timeout(t0 + SECOND);
        assert!(lc.terminal().is_none(), "early calls do nothing");
        lc.handle_timeout(t0 + 2 * SECOND);
        assert_eq!(lc.close_outcome(), Some(&CloseOutcome::TimedOut));
        assert!(lc.terminal().is_some());
    }

    #[test]
    fn tcp_ending_before_the_answer_is_abnormal() {
        let (mut lc, t0) = lifecycle(LifecycleConfig::default());
        lc.close(t0, CloseCode::NORMAL, "").unwrap();
        lc.clear_close();
        drain(&mut lc, t0);
        lc.handle_ended(String::new());
        assert_eq!(lc.close_outcome(), Some(&CloseOutcome::Abnormal));
        assert!(matches!(
            lc.terminal(),
            Some(ConnectionError::Abnormal { .. })
        ));
    }

    #[test]
    fn the_peers_close_ends_once_the_echo_is_flushed() {
        let (mut lc, t0) = lifecycle(LifecycleConfig::default());
        lc.handle_close_frame(t0, None);
        assert!(matches!(
            lc.closing_error(),
            Some(ConnectionError::Closed {
                code: CloseCode::NO_STATUS,
                ..
            })
        ));
        assert!(lc.terminal().is_none());
        assert!(lc.flush_owed());
        lc.handle_flushed(t0);
        assert!(lc.terminal().is_some());
    }

    #[test]
    fn a_violation_closes_ahead_of_everything_and_ends_once_flushed() {
        let (mut lc, t0) = lifecycle(LifecycleConfig::default());
        lc.ping();
        assert!(!lc.handle_text(t0, 3));
        assert_eq!(
            drain(&mut lc, t0),
            vec![LifecycleOutput::Close {
                code: CloseCode::UNSUPPORTED_DATA,
                reason: "text messages are not supported".into()
            }]
        );
        lc.handle_flushed(t0);
        assert!(matches!(
            lc.terminal(),
            Some(ConnectionError::Violation(ProtoError::TextMessage))
        ));
    }

    #[test]
    fn a_violation_during_our_close_fails_it_instead_of_waiting_for_the_answer() {
        // Our Close frame is out and flushed: the violation ends the connection at once.
        let (mut lc, t0) = lifecycle(LifecycleConfig::default());
        lc.close(t0, CloseCode::NORMAL, "").unwrap();
        lc.clear_close();
        drain(&mut lc, t0);
        lc.handle_flushed(t0);
        lc.handle_violation(t0, ProtoError::TextMessage);
        assert_eq!(lc.close_outcome(), Some(&CloseOutcome::Abnormal));
        assert!(matches!(
            lc.terminal(),
            Some(ConnectionError::Violation(ProtoError::TextMessage))
        ));

        // Our Close frame still waits for the data before it: the violation's goes instead, and
        // the connection ends once it is flushed.
        let (mut lc, t0) = lifecycle(LifecycleConfig::default());
        lc.close(t0, CloseCode::NORMAL, "").unwrap();
        lc.handle_violation(t0, ProtoError::TextMessage);
        assert_eq!(
            drain(&mut lc, t0),
            vec![LifecycleOutput::Close {
                code: CloseCode::UNSUPPORTED_DATA,
                reason: "text messages are not supported".into()
            }]
        );
        assert!(lc.terminal().is_none(), "not before the frame is out");
        lc.handle_flushed(t0);
        assert_eq!(lc.close_outcome(), Some(&CloseOutcome::Abnormal));
        assert!(matches!(
            lc.terminal(),
            Some(ConnectionError::Violation(ProtoError::TextMessage))
        ));
    }

    #[test]
    fn keep_alive_pings_once_per_quiet_interval_and_measures_the_round_trip() {
        let (mut lc, t0) = lifecycle(LifecycleConfig {
            keep_alive_interval: Some(10 * SECOND),
            ..LifecycleConfig::default()
        });
        assert_eq!(lc.poll_timeout(), Some(t0 + 10 * SECOND));
        lc.handle_timeout(t0 + 10 * SECOND);
        let sent = t0 + 10 * SECOND;
        let out = drain(&mut lc, sent);
        let [LifecycleOutput::Ping(number)] = out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(
            lc.poll_timeout(),
            Some(t0 + 20 * SECOND),
            "still quiet: another interval"
        );
        lc.handle_pong(sent + SECOND / 2, ping_payload(number));
        assert_eq!(lc.rtt(), Some(SECOND / 2));
    }

    #[test]
    fn idle_timeout_closes_with_1001() {
        let (mut lc, t0) = lifecycle(LifecycleConfig {
            idle_timeout: Some(5 * SECOND),
            ..LifecycleConfig::default()
        });
        lc.handle_heard(t0 + 3 * SECOND);
        lc.handle_timeout(t0 + 5 * SECOND);
        assert!(lc.is_open());
        lc.handle_timeout(t0 + 8 * SECOND);
        assert_eq!(lc.closing_error(), Some(ConnectionError::IdleTimeout));
        assert_eq!(
            drain(&mut lc, t0),
            vec![LifecycleOutput::Close {
                code: CloseCode::GOING_AWAY,
                reason: "idle timeout".into()
            }]
        );
    }

    #[test]
    fn unread_pongs_stop_input_and_end_in_1008() {
        let (mut lc, t0) = lifecycle(LifecycleConfig {
            reply_timeout: Some(5 * SECOND),
            ..LifecycleConfig::default()
        });
        for _ in 0..MAX_OWED_PONGS {
            assert!(lc.wants_input());
            lc.handle_ping(t0, Bytes::new());
        }
        assert!(!lc.wants_input());
        lc.handle_flushed(t0);
        assert!(lc.wants_input(), "a complete flush pays the pongs");
        for _ in 0..MAX_OWED_PONGS {
            lc.handle_ping(t0, Bytes::new());
        }
        lc.handle_timeout(t0 + 5 * SECOND);
        assert!(matches!(
            lc.closing_error(),
            Some(ConnectionError::Violation(ProtoError::RepliesNotRead))
        ));
    }
}
