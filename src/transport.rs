//! One WebSocket, driven by whoever polls it: the part of the IO layer that `WsIo` and the
//! multiplexed [`Connection`](crate::Connection) share.
//!
//! It turns the WebSocket into "binary messages in, binary messages out" and handles everything
//! else itself: pings are answered (by tungstenite) and published, text messages and protocol
//! violations close the connection with the right code, the close handshake is completed, and a
//! connection that ends without a Close frame becomes an error carrying 1006 rather than a quiet
//! end of stream. Once the connection is over, every call returns the same terminal [`Error`].
//!
//! The message adapter ([`MessageSocket`](crate::MessageSocket)) drives the same code in *message
//! mode* ([`Transport::set_message_mode`]): text messages and Pongs are handed out as well, and the
//! connection is over as soon as the closing handshake is rather than when TCP ends.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::Duration,
};

use async_tungstenite::{
    tungstenite::{self, protocol::CloseFrame, Message, Utf8Bytes},
    WebSocketStream,
};
use bytes::Bytes;
use futures::{AsyncRead, AsyncWrite, Future, Sink, Stream};
use futures_timer::Delay;

use crate::{
    code::CloseCode,
    error::Error,
    event::{EventSink, WsEvent},
    keepalive::{KeepAlive, KeepAliveAction},
    proto::ProtoError,
};

/// The WebSocket, type-erased so that handles need no type parameter for the socket.
trait Socket:
    Stream<Item = Result<Message, tungstenite::Error>>
    + Sink<Message, Error = tungstenite::Error>
    + Send
    + Unpin
{
}

impl<S> Socket for WebSocketStream<S> where S: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

/// Where the closing handshake stands.
#[derive(Debug)]
enum State {
    /// Messages flow both ways.
    Open,
    /// We queued a Close frame (with this code and reason) and wait for the peer's.
    Closing { code: CloseCode, reason: String },
    /// The peer's Close frame arrived first; tungstenite queued the reply, which must be flushed.
    PeerClosed { code: CloseCode, reason: String },
    /// We closed because the peer broke the protocol; waiting for its Close reply.
    Failing(ProtoError),
    /// Over. Every operation returns this error.
    Done(Error),
}

/// What [`Transport::poll_recv_message`] hands out.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A binary message.
    Binary(Bytes),
    /// A text message (its UTF-8 checked by tungstenite). Message mode only.
    Text(Utf8Bytes),
    /// A Pong, for matching ping round trips. Message mode only.
    Pong(Bytes),
}

/// How many control frames (pings, pongs, ignored frames) `poll_recv` handles before it lets other
/// tasks run. A burst of pings is answered in slices, not in one long poll.
const CONTROL_FRAME_BUDGET: usize = 1024;

/// The shared WebSocket driver. See the module docs.
pub(crate) struct Transport {
    /// The socket; released (dropped, so that TCP closes) as soon as the connection is over.
    ws: Option<Box<dyn Socket>>,
    state: State,
    /// How long the closing handshake may take, from the first Close frame sent or received until
    /// the connection is over (on a client, that includes waiting for the server to close TCP).
    /// `None` waits for ever.
    close_timeout: Option<Duration>,
    /// Armed when the closing handshake starts, if there is a `close_timeout`.
    close_timer: Option<Delay>,
    /// Pings after a quiet interval and closes with 1001 after an idle timeout; off by default.
    keep_alive: Option<KeepAlive>,
    /// Every task waiting for the socket to take more bytes; see [`WriteWaiters`].
    write_waiters: Arc<WriteWaiters>,
    /// The waker handed to the socket for its write side: wakes all of `write_waiters`.
    write_waker: Waker,
    /// Largest binary message accepted; larger ones close the connection with 1009.
    max_message_size: usize,
    /// Something was handed to the sink since the last flush.
    unflushed: bool,
    /// Once over: whether nothing was left unflushed then; see [`Transport::flushed_before_end`].
    flushed_at_end: bool,
    /// See [`Transport::set_message_mode`].
    message_mode: bool,
    /// Out-of-band events for observers.
    pub(crate) events: EventSink,
}

impl Transport {
    pub(crate) fn new<S>(
        ws: WebSocketStream<S>,
        max_message_size: usize,
        event_limit: usize,
    ) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let write_waiters = Arc::new(WriteWaiters::default());
        Self {
            ws: Some(Box::new(ws)),
            state: State::Open,
            close_timeout: None,
            close_timer: None,
            keep_alive: None,
            write_waiters: Arc::clone(&write_waiters),
            write_waker: futures::task::waker(write_waiters),
            max_message_size,
            unflushed: false,
            flushed_at_end: false,
            message_mode: false,
            events: EventSink::new(event_limit),
        }
    }

    /// Keep-alive: a Ping after `interval` without hearing from the peer, and a close with 1001
    /// ("idle timeout") after `idle_timeout` without hearing from it. Both off when `None`.
    pub(crate) fn set_keep_alive(
        &mut self,
        interval: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) {
        self.keep_alive = KeepAlive::new(interval, idle_timeout);
    }

    /// Sends a Ping or closes for idleness when the keep-alive timer says so. Returns whether it
    /// did anything (then the caller polls again).
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.is_open() {
            return false;
        }
        let Some(action) = self.keep_alive.as_mut().and_then(|ka| ka.poll(cx)) else {
            return false;
        };
        match action {
            KeepAliveAction::Ping => {
                // A failure here ends the connection through `on_ws_error`, seen on the next poll.
                let _ = self.send_message(Message::Ping(Bytes::new()));
                self.flush_quietly(cx);
            }
            KeepAliveAction::IdleTimeout => {
                let frame = CloseCode::GOING_AWAY
                    .frame("idle timeout")
                    .expect("a short reason");
                let _ = self.start_close(frame);
            }
        }
        true
    }

    /// Bounds the closing handshake: once a Close frame was sent or received, the connection is
    /// dropped after `timeout` even if the peer neither answers nor closes TCP. The result is the
    /// same as if the peer had closed TCP at that moment. `None` (the default) waits for ever.
    pub(crate) fn set_close_timeout(&mut self, timeout: Option<Duration>) {
        self.close_timeout = timeout;
    }

    /// Switches to what a message-level user needs instead of a byte stream (off by default):
    ///
    /// - [`Transport::poll_recv_message`] also returns text messages (instead of closing with 1003)
    ///   and Pongs, and keeps returning data after our Close frame, until the peer answers it;
    /// - the connection is over as soon as the closing handshake is, not when TCP ends: once the
    ///   echo of the peer's Close frame, or our Close frame after a protocol violation, is flushed
    ///   (RFC 6455 §7.1.7: a failed connection is dropped at once), or when the peer's reply to
    ///   our Close frame arrives. That reply's code and reason are then the terminal error, and a
    ///   connection that ends before it is 1006, as if we had not closed at all;
    /// - a protocol violation after a Close frame ends the connection with
    ///   [`Error::Protocol`] rather than with the close that was under way.
    pub(crate) fn set_message_mode(&mut self, on: bool) {
        self.message_mode = on;
    }

    /// Whether we sent a Close frame (not in answer to the peer's) and the connection is not over.
    pub(crate) fn is_closing_by_us(&self) -> bool {
        matches!(self.state, State::Closing { .. })
    }

    /// Whether the connection is over and everything queued had been flushed by then: a send
    /// that was queued before the end did reach the socket.
    pub(crate) fn flushed_before_end(&self) -> bool {
        matches!(self.state, State::Done(_)) && self.flushed_at_end
    }

    /// The error that ended the connection, once it is over.
    pub(crate) fn terminal(&self) -> Option<&Error> {
        match &self.state {
            State::Done(err) => Some(err),
            _ => None,
        }
    }

    /// Whether messages may still be sent (no Close frame queued or received).
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// The error a stream sees when the connection closed under it, even while the closing
    /// handshake is still in progress.
    pub(crate) fn closing_error(&self) -> Option<Error> {
        match &self.state {
            State::Open => None,
            State::Closing { code, reason } | State::PeerClosed { code, reason } => {
                Some(Error::ConnectionClosed {
                    code: *code,
                    reason: reason.clone(),
                })
            }
            State::Failing(err) => Some(Error::Protocol(err.clone())),
            State::Done(err) => Some(err.clone()),
        }
    }

    /// The next binary message. `Ready(Err)` once the connection is over (always the same error).
    ///
    /// Text messages, control frames and protocol errors are handled here and never returned;
    /// messages arriving after either side started closing are discarded.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes, Error>> {
        loop {
            match std::task::ready!(self.poll_recv_message(cx)) {
                Ok(Incoming::Binary(data)) => return Poll::Ready(Ok(data)),
                // Only message mode returns these; its user calls `poll_recv_message` itself.
                Ok(Incoming::Text(_) | Incoming::Pong(_)) => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }

    /// The next message: binary only, or in message mode (see [`Transport::set_message_mode`])
    /// text and Pongs too. `Ready(Err)` once the connection is over (always the same error).
    ///
    /// Everything else (pings, close frames, protocol errors) is handled here. The loop is
    /// iterative, so a flood of pings costs time, not stack.
    pub(crate) fn poll_recv_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Incoming, Error>> {
        let mut budget = CONTROL_FRAME_BUDGET;
        loop {
            if let State::Done(err) = &self.state {
                return Poll::Ready(Err(err.clone()));
            }
            if self.message_mode
                && matches!(self.state, State::PeerClosed { .. } | State::Failing(_))
            {
                // Nothing more will be read: the connection is over once our last frame is out.
                // A failed flush ends it too, with the same error.
                let _ = std::task::ready!(self.poll_flush(cx));
                self.finish(None);
                continue;
            }
            if budget == 0 {
                self.flush_quietly(cx);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            budget -= 1;
            let Some(ws) = self.ws.as_mut() else {
                self.finish(None);
                continue;
            };
            let next = match Pin::new(ws).poll_next(cx) {
                Poll::Pending => {
                    // Replies to pings and closes are queued inside tungstenite; make sure they
                    // leave before we sleep.
                    self.flush_quietly(cx);
                    if self.poll_close_timer(cx).is_ready() || self.poll_keep_alive(cx) {
                        continue;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(next) => next,
            };
            if let (Some(Ok(_)), Some(keep_alive)) = (&next, self.keep_alive.as_mut()) {
                keep_alive.heard();
            }
            match next {
                Some(Ok(Message::Binary(data))) => {
                    if let Some(data) = self.accept_data(data.len(), Incoming::Binary(data)) {
                        return Poll::Ready(Ok(data));
                    }
                }
                Some(Ok(Message::Text(text))) if self.message_mode => {
                    if let Some(text) = self.accept_data(text.len(), Incoming::Text(text)) {
                        return Poll::Ready(Ok(text));
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    self.events.emit(WsEvent::TextReceived { len: text.len() });
                    self.fail(ProtoError::TextMessage);
                }
                Some(Ok(Message::Ping(data))) => self.events.emit(WsEvent::Ping(data)),
                Some(Ok(Message::Pong(data))) => {
                    self.events.emit(WsEvent::Pong(data.clone()));
                    if self.message_mode {
                        return Poll::Ready(Ok(Incoming::Pong(data)));
                    }
                }
                Some(Ok(Message::Close(frame))) => self.on_close_frame(frame),
                Some(Ok(Message::Frame(_))) => {}
                Some(Err(err)) => self.on_ws_error(err),
                None => self.finish(None),
            }
        }
    }

    /// A data message of `len` bytes arrived: `Some` to return it, `None` when it is discarded
    /// (closing has started) or too big (the connection then fails with 1009).
    fn accept_data(&mut self, len: usize, message: Incoming) -> Option<Incoming> {
        let wanted = self.is_open() || (self.message_mode && self.is_closing_by_us());
        if !wanted {
            return None;
        }
        if len > self.max_message_size {
            self.fail(ProtoError::MessageTooBig {
                max: self.max_message_size,
            });
            return None;
        }
        Some(message)
    }

    /// Waits until a message can be queued.
    pub(crate) fn poll_ready_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(err) = self.closing_error() {
            return Poll::Ready(Err(err));
        }
        let Some(ws) = self.ws.as_mut() else {
            return Poll::Ready(Err(Error::abnormal("")));
        };
        self.write_waiters.register(cx.waker());
        let ready = Pin::new(ws).poll_ready(&mut Context::from_waker(&self.write_waker));
        if ready.is_ready() {
            self.write_waiters.unregister(cx.waker());
        }
        match ready {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => {
                self.on_ws_error(err);
                Poll::Ready(Err(self
                    .closing_error()
                    .unwrap_or_else(|| Error::abnormal(""))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Queues one binary message. Call after [`Transport::poll_ready_send`] returned `Ready(Ok)`.
    pub(crate) fn send(&mut self, data: Bytes) -> Result<(), Error> {
        self.send_message(Message::Binary(data))
    }

    /// Queues any message (text and pings are for message mode). Call after
    /// [`Transport::poll_ready_send`] returned `Ready(Ok)`.
    pub(crate) fn send_message(&mut self, message: Message) -> Result<(), Error> {
        if let Some(err) = self.closing_error() {
            return Err(err);
        }
        let Some(ws) = self.ws.as_mut() else {
            return Err(Error::abnormal(""));
        };
        self.unflushed = true;
        Pin::new(ws).start_send(message).map_err(|err| {
            self.on_ws_error(err);
            self.closing_error().unwrap_or_else(|| Error::abnormal(""))
        })
    }

    /// Flushes what was queued. Errors end the connection and are returned.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let State::Done(err) = &self.state {
            return Poll::Ready(Err(err.clone()));
        }
        let Some(ws) = self.ws.as_mut() else {
            return Poll::Ready(Err(Error::abnormal("")));
        };
        self.write_waiters.register(cx.waker());
        let flushed = Pin::new(ws).poll_flush(&mut Context::from_waker(&self.write_waker));
        if flushed.is_ready() {
            self.write_waiters.unregister(cx.waker());
        }
        match flushed {
            Poll::Ready(Ok(())) => {
                self.unflushed = false;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => {
                self.on_ws_error(err);
                Poll::Ready(Err(self
                    .closing_error()
                    .unwrap_or_else(|| Error::abnormal(""))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Whether a flush is owed.
    pub(crate) fn needs_flush(&self) -> bool {
        self.unflushed
    }

    /// Flush as a side effect of driving: errors are recorded in the state, not returned.
    fn flush_quietly(&mut self, cx: &mut Context<'_>) {
        if !matches!(self.state, State::Done(_)) {
            let _ = self.poll_flush(cx);
        }
    }

    /// Polls the closing-handshake timer; when it fires, the connection is over.
    fn poll_close_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(timer) = self.close_timer.as_mut() else {
            return Poll::Pending;
        };
        if Pin::new(timer).poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.close_timer = None;
        // Not fatal in itself (the outcome is that of the peer closing TCP now), but worth a log.
        self.events.emit(WsEvent::Error(Error::Transport(Arc::new(
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "closing handshake timed out: connection dropped",
            ),
        ))));
        self.finish(None);
        Poll::Ready(())
    }

    fn arm_close_timer(&mut self) {
        if self.close_timer.is_none() {
            self.close_timer = self.close_timeout.map(Delay::new);
        }
    }

    /// Starts the closing handshake with an application's code and reason (already validated).
    /// Returns `Err(AlreadyClosed)` if a Close frame was already sent or received.
    pub(crate) fn start_close(&mut self, frame: CloseFrame) -> Result<(), Error> {
        if !self.is_open() {
            return Err(Error::AlreadyClosed);
        }
        let code = CloseCode::from(frame.code);
        let reason = frame.reason.as_str().to_owned();
        self.state = State::Closing { code, reason };
        self.arm_close_timer();
        self.queue_close(frame);
        Ok(())
    }

    /// Closes the connection because the peer broke the protocol.
    pub(crate) fn fail(&mut self, err: ProtoError) {
        if !self.is_open() {
            if self.message_mode
                && matches!(self.state, State::Closing { .. } | State::PeerClosed { .. })
            {
                // A Close frame already went out: nothing more may be sent, so it ends here.
                self.end(Error::Protocol(err));
            }
            return;
        }
        let frame = err
            .close_code()
            .frame(err.close_reason())
            .expect("library close reasons are short");
        self.events
            .emit(WsEvent::Error(Error::Protocol(err.clone())));
        self.state = State::Failing(err);
        self.arm_close_timer();
        self.queue_close(frame);
    }

    fn queue_close(&mut self, frame: CloseFrame) {
        let Some(ws) = self.ws.as_mut() else { return };
        self.unflushed = true;
        if let Err(err) = Pin::new(ws).start_send(Message::Close(Some(frame))) {
            self.on_ws_error(err);
        }
    }

    /// Drives the closing handshake to its end: flushes our Close frame and reads (discarding
    /// data) until the peer's Close frame and the end of the connection.
    pub(crate) fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<Error> {
        loop {
            if let State::Done(err) = &self.state {
                return Poll::Ready(err.clone());
            }
            self.flush_quietly(cx);
            match self.poll_recv(cx) {
                Poll::Ready(Ok(_discarded)) => continue,
                Poll::Ready(Err(err)) => return Poll::Ready(err),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn on_close_frame(&mut self, frame: Option<CloseFrame>) {
        let (code, reason) = match frame {
            Some(frame) => (
                CloseCode::from(frame.code),
                frame.reason.as_str().to_owned(),
            ),
            None => (CloseCode::NO_STATUS, String::new()),
        };
        self.events.emit(WsEvent::CloseFrame {
            code,
            reason: reason.clone(),
        });
        if self.is_open() {
            // tungstenite queued the echo of this frame; it leaves with the next flush.
            self.unflushed = true;
            self.state = State::PeerClosed { code, reason };
            self.arm_close_timer();
        } else if self.message_mode && self.is_closing_by_us() {
            // The reply to our Close frame: the closing handshake is complete. Whatever we queued
            // reached the peer (nothing can be queued after our Close frame, which it answers).
            self.unflushed = false;
            self.end(Error::ConnectionClosed { code, reason });
        }
    }

    fn on_ws_error(&mut self, err: tungstenite::Error) {
        use tungstenite::{error::ProtocolError as P, Error as E};
        match err {
            E::Capacity(_) => self.fail(ProtoError::MessageTooBig {
                max: self.max_message_size,
            }),
            E::Utf8(_) => self.fail(ProtoError::InvalidUtf8),
            E::Protocol(P::ResetWithoutClosingHandshake) => self.finish(None),
            E::Protocol(p) if self.is_open() || self.message_mode => {
                self.fail(ProtoError::WebSocket(p.to_string()))
            }
            E::ConnectionClosed | E::AlreadyClosed => self.finish(None),
            E::Io(io) => self.finish(Some(io.to_string())),
            other => self.finish(Some(other.to_string())),
        }
    }

    /// The connection is over. `detail` describes a transport failure, if that is what ended it.
    fn finish(&mut self, detail: Option<String>) {
        let abnormal = || {
            Error::abnormal(
                detail.unwrap_or_else(|| "connection ended without a close frame".to_owned()),
            )
        };
        let err = match &self.state {
            State::Done(_) => return,
            // In message mode only the peer's reply completes our close (see `on_close_frame`).
            State::Closing { .. } if self.message_mode => abnormal(),
            State::Closing { code, reason } | State::PeerClosed { code, reason } => {
                Error::ConnectionClosed {
                    code: *code,
                    reason: reason.clone(),
                }
            }
            State::Failing(err) => Error::Protocol(err.clone()),
            State::Open => abnormal(),
        };
        self.end(err);
    }

    /// The connection is over, with `err` as the terminal error for every call from now on.
    fn end(&mut self, err: Error) {
        if let State::Done(_) = self.state {
            return;
        }
        let (code, reason) = match &err {
            Error::ConnectionClosed { code, reason } => (*code, reason.clone()),
            Error::Protocol(p) => (p.close_code(), p.close_reason().to_owned()),
            _ => (CloseCode::ABNORMAL, String::new()),
        };
        self.events.emit(WsEvent::Closed { code, reason });
        self.state = State::Done(err);
        // Dropping the socket closes TCP: a server closes first after the handshake (RFC 6455
        // §7.1.1), and nobody keeps a dead connection open by holding on to a handle.
        self.ws = None;
        self.flushed_at_end = !self.unflushed;
        self.unflushed = false;
        self.close_timer = None;
        // Nothing will be written any more: whoever waited to write learns it now.
        self.write_waker.wake_by_ref();
    }
}

/// The tasks waiting for the socket's write side. The socket keeps a single waker for it, but
/// several tasks can wait on it at once — a reader whose poll flushes pongs and close replies, the
/// writer of a split `WsIo`, the streams of a multiplexed connection — and each must be woken, or
/// one of them may wait for ever. So each registers here, and the socket gets a waker that wakes
/// them all.
#[derive(Default)]
struct WriteWaiters(Mutex<Vec<Waker>>);

impl WriteWaiters {
    fn register(&self, waker: &Waker) {
        let mut waiters = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    /// Forgets a task whose poll did not have to wait after all.
    fn unregister(&self, waker: &Waker) {
        let mut waiters = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        waiters.retain(|w| !w.will_wake(waker));
    }
}

impl futures::task::ArcWake for WriteWaiters {
    fn wake_by_ref(this: &Arc<Self>) {
        let waiters = std::mem::take(&mut *this.0.lock().unwrap_or_else(|p| p.into_inner()));
        for waker in waiters {
            waker.wake();
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
