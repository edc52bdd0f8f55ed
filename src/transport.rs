//! One WebSocket, driven by whoever polls it: the part of the IO layer that `WsIo` and the
//! multiplexed [`Connection`](crate::Connection) share.
//!
//! It turns the WebSocket into "binary messages in, binary messages out" and handles everything
//! else itself: pings are answered (by tungstenite) and published, text messages and protocol
//! violations close the connection with the right code, the close handshake is completed, and a
//! connection that ends without a Close frame becomes an error carrying 1006 rather than a quiet
//! end of stream. Once the connection is over, every call returns the same terminal [`Error`].

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use async_tungstenite::{
    tungstenite::{self, protocol::CloseFrame, Message},
    WebSocketStream,
};
use bytes::Bytes;
use futures::{AsyncRead, AsyncWrite, Sink, Stream};

use crate::{
    code::CloseCode,
    error::Error,
    event::{EventSink, WsEvent},
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

/// The shared WebSocket driver. See the module docs.
pub(crate) struct Transport {
    ws: Box<dyn Socket>,
    state: State,
    /// Largest binary message accepted; larger ones close the connection with 1009.
    max_message_size: usize,
    /// Something was handed to the sink since the last flush.
    unflushed: bool,
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
        Self {
            ws: Box::new(ws),
            state: State::Open,
            max_message_size,
            unflushed: false,
            events: EventSink::new(event_limit),
        }
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
    /// messages arriving after either side started closing are discarded. The loop is iterative, so
    /// a flood of pings costs time, not stack.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes, Error>> {
        loop {
            if let State::Done(err) = &self.state {
                return Poll::Ready(Err(err.clone()));
            }
            let next = match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Pending => {
                    // Replies to pings and closes are queued inside tungstenite; make sure they
                    // leave before we sleep.
                    self.flush_quietly(cx);
                    return Poll::Pending;
                }
                Poll::Ready(next) => next,
            };
            match next {
                Some(Ok(Message::Binary(data))) => {
                    if !self.is_open() {
                        continue;
                    }
                    if data.len() > self.max_message_size {
                        self.fail(ProtoError::MessageTooBig {
                            max: self.max_message_size,
                        });
                        continue;
                    }
                    return Poll::Ready(Ok(data));
                }
                Some(Ok(Message::Text(text))) => {
                    self.events.emit(WsEvent::TextReceived { len: text.len() });
                    self.fail(ProtoError::TextMessage);
                }
                Some(Ok(Message::Ping(data))) => self.events.emit(WsEvent::Ping(data)),
                Some(Ok(Message::Pong(data))) => self.events.emit(WsEvent::Pong(data)),
                Some(Ok(Message::Close(frame))) => self.on_close_frame(frame),
                Some(Ok(Message::Frame(_))) => {}
                Some(Err(err)) => self.on_ws_error(err),
                None => self.finish(None),
            }
        }
    }

    /// Waits until a message can be queued.
    pub(crate) fn poll_ready_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(err) = self.closing_error() {
            return Poll::Ready(Err(err));
        }
        match Pin::new(&mut self.ws).poll_ready(cx) {
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
        if let Some(err) = self.closing_error() {
            return Err(err);
        }
        self.unflushed = true;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(data))
            .map_err(|err| {
                self.on_ws_error(err);
                self.closing_error().unwrap_or_else(|| Error::abnormal(""))
            })
    }

    /// Flushes what was queued. Errors end the connection and are returned.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let State::Done(err) = &self.state {
            return Poll::Ready(Err(err.clone()));
        }
        match Pin::new(&mut self.ws).poll_flush(cx) {
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

    /// Starts the closing handshake with an application's code and reason (already validated).
    /// Returns `Err(AlreadyClosed)` if a Close frame was already sent or received.
    pub(crate) fn start_close(&mut self, frame: CloseFrame) -> Result<(), Error> {
        if !self.is_open() {
            return Err(Error::AlreadyClosed);
        }
        let code = CloseCode::from(frame.code);
        let reason = frame.reason.as_str().to_owned();
        self.state = State::Closing { code, reason };
        self.queue_close(frame);
        Ok(())
    }

    /// Closes the connection because the peer broke the protocol.
    pub(crate) fn fail(&mut self, err: ProtoError) {
        if !self.is_open() {
            return;
        }
        let frame = err
            .close_code()
            .frame(err.close_reason())
            .expect("library close reasons are short");
        self.events
            .emit(WsEvent::Error(Error::Protocol(err.clone())));
        self.state = State::Failing(err);
        self.queue_close(frame);
    }

    fn queue_close(&mut self, frame: CloseFrame) {
        self.unflushed = true;
        if let Err(err) = Pin::new(&mut self.ws).start_send(Message::Close(Some(frame))) {
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
            E::Protocol(p) if self.is_open() => self.fail(ProtoError::WebSocket(p.to_string())),
            E::ConnectionClosed | E::AlreadyClosed => self.finish(None),
            E::Io(io) => self.finish(Some(io.to_string())),
            other => self.finish(Some(other.to_string())),
        }
    }

    /// The connection is over. `detail` describes a transport failure, if that is what ended it.
    fn finish(&mut self, detail: Option<String>) {
        let err = match std::mem::replace(&mut self.state, State::Open) {
            State::Done(err) => {
                self.state = State::Done(err);
                return;
            }
            State::Closing { code, reason } | State::PeerClosed { code, reason } => {
                Error::ConnectionClosed { code, reason }
            }
            State::Failing(err) => Error::Protocol(err),
            State::Open => Error::abnormal(
                detail.unwrap_or_else(|| "connection ended without a close frame".to_owned()),
            ),
        };
        let (code, reason) = match &err {
            Error::ConnectionClosed { code, reason } => (*code, reason.clone()),
            Error::Protocol(p) => (p.close_code(), p.close_reason().to_owned()),
            _ => (CloseCode::ABNORMAL, String::new()),
        };
        self.events.emit(WsEvent::Closed { code, reason });
        self.state = State::Done(err);
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
