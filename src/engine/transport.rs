//! The socket, seen by the engine: inputs in ([`Transport::poll_recv`]), messages out
//! ([`Transport::poll_ready`], [`Transport::send`], [`Transport::poll_flush`]), and its release.
//!
//! It decides nothing about the protocol: a Close frame or a violation found by tungstenite
//! becomes an [`Input`] for the core. What it does own is the socket's mechanics:
//!
//! - **Write limits.** A socket built with a bounded `max_write_buffer_size` refuses a message
//!   when its buffer is full (`WriteBufferFull`). The refused message is kept and sent again once a
//!   flush made room — back-pressure, never a lost message or a dead connection.
//! - **Several waiting tasks.** tungstenite keeps one waker for its write side, but a `WsIo` split
//!   in two tasks polls it from both (a reader's poll flushes pongs). Each task that waits for the
//!   write side registers here, and the socket gets a waker that wakes them all.
//! - **Release.** The socket is dropped (TCP closes) as soon as the core says the connection is
//!   over.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
};

use async_tungstenite::{
    tungstenite::{self, Message},
    WebSocketStream,
};
use futures::{AsyncRead, AsyncWrite, Sink, Stream};

use super::Input;
use crate::proto::{CloseCode, ProtoError};

/// A WebSocket as the engine uses it: messages in, messages out.
pub(crate) trait Socket:
    Stream<Item = Result<Message, tungstenite::Error>>
    + Sink<Message, Error = tungstenite::Error>
    + Unpin
{
}

impl<S> Socket for WebSocketStream<S> where S: AsyncRead + AsyncWrite + Unpin {}

/// A socket shared by handles in many tasks (`Connection`, `MessageSocket`).
pub(crate) type BoxSocket = Box<dyn Socket + Send>;

impl Socket for BoxSocket {}

/// How many messages refused for lack of room may wait to be sent again (one output batch).
pub(crate) const MAX_REFUSED: usize = 64;

/// See the [module docs](self).
pub(crate) struct Transport<W> {
    /// `None` once released.
    socket: Option<W>,
    /// Messages the socket refused for lack of room, in order, sent again before anything else.
    refused: VecDeque<Message>,
    /// Something was handed to the socket since the last completed flush.
    unflushed: bool,
    /// The socket's read side failed (a violation): tungstenite's stream is over, but its end
    /// does not mean the peer closed TCP, and the socket may still carry our Close frame.
    read_failed: bool,
    /// The largest binary message accepted; larger ones are a violation (1009).
    max_message_size: usize,
    write_waiters: Arc<WriteWaiters>,
    write_waker: Waker,
}

impl<W: Socket> Transport<W> {
    pub(crate) fn new(socket: W, max_message_size: usize) -> Self {
        let write_waiters = Arc::new(WriteWaiters::default());
        Self {
            socket: Some(socket),
            refused: VecDeque::new(),
            unflushed: false,
            read_failed: false,
            max_message_size,
            write_waker: Waker::from(Arc::clone(&write_waiters)),
            write_waiters,
        }
    }

    /// Whether the socket was released.
    pub(crate) fn is_released(&self) -> bool {
        self.socket.is_none()
    }

    /// Drops the socket: TCP closes.
    pub(crate) fn release(&mut self) {
        self.socket = None;
        self.refused.clear();
        self.unflushed = false;
        // Nothing will be written any more: whoever waited to write learns it now.
        self.write_waker.wake_by_ref();
    }

    /// Whether a flush is owed.
    pub(crate) fn needs_flush(&self) -> bool {
        self.unflushed || !self.refused.is_empty()
    }

    /// The next input. Once the socket ended or was released: `Ended`.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Input> {
        let Some(socket) = self.socket.as_mut() else {
            return Poll::Ready(Input::Ended(String::new()));
        };
        if self.read_failed {
            // Nothing more will be read; the core ends the connection once our Close frame left.
            return Poll::Pending;
        }
        let next = std::task::ready!(Pin::new(socket).poll_next(cx));
        Poll::Ready(match next {
            Some(Ok(Message::Binary(data))) if data.len() > self.max_message_size => {
                Input::Violation(ProtoError::MessageTooBig {
                    max: self.max_message_size,
                })
            }
            Some(Ok(Message::Binary(data))) => Input::Binary(data),
            Some(Ok(Message::Text(text))) if text.len() > self.max_message_size => {
                Input::Violation(ProtoError::MessageTooBig {
                    max: self.max_message_size,
                })
            }
            Some(Ok(Message::Text(text))) => Input::Text(text),
            Some(Ok(Message::Ping(payload))) => {
                // tungstenite queued the pong; it leaves with the next flush.
                self.unflushed = true;
                Input::Ping(payload)
            }
            Some(Ok(Message::Pong(payload))) => Input::Pong(payload),
            Some(Ok(Message::Close(frame))) => {
                // tungstenite queued the echo.
                self.unflushed = true;
                Input::Close(frame.map(|frame| {
                    (
                        CloseCode(frame.code.into()),
                        frame.reason.as_str().to_owned(),
                    )
                }))
            }
            // Raw frames are never produced while reading.
            Some(Ok(Message::Frame(_))) => return Poll::Pending,
            Some(Err(err)) => {
                let input = self.input_from_error(err);
                self.read_failed = matches!(input, Input::Violation(_));
                input
            }
            None => Input::Ended(String::new()),
        })
    }

    fn input_from_error(&self, err: tungstenite::Error) -> Input {
        use tungstenite::{error::ProtocolError as P, Error as E};
        match err {
            E::Capacity(_) => Input::Violation(ProtoError::MessageTooBig {
                max: self.max_message_size,
            }),
            E::Utf8(_) => Input::Violation(ProtoError::InvalidUtf8),
            E::Protocol(P::ResetWithoutClosingHandshake) => {
                Input::Ended("connection reset without a closing handshake".to_owned())
            }
            E::Protocol(p) => Input::Violation(ProtoError::WebSocket(p.to_string())),
            E::ConnectionClosed | E::AlreadyClosed => Input::Ended(String::new()),
            E::Io(io) => Input::Ended(io.to_string()),
            other => Input::Ended(other.to_string()),
        }
    }

    /// Waits until a message can be handed over: messages refused before go first. `Err` with a
    /// description when the socket failed or is gone.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        loop {
            let socket = self.socket.as_mut().ok_or_else(String::new)?;
            self.write_waiters.register(cx.waker());
            let ready =
                Pin::new(&mut *socket).poll_ready(&mut Context::from_waker(&self.write_waker));
            match ready {
                Poll::Ready(Ok(())) => self.write_waiters.unregister(cx.waker()),
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err.to_string())),
                Poll::Pending => return Poll::Pending,
            }
            let Some(message) = self.refused.pop_front() else {
                return Poll::Ready(Ok(()));
            };
            let flushed = !self.unflushed;
            if let Some(refused) = self.start_send(message)? {
                if flushed {
                    // Refused by an empty buffer: it can never fit.
                    return Poll::Ready(Err(
                        "message larger than the socket's max_write_buffer_size".to_owned(),
                    ));
                }
                // No room yet: flush, then try again.
                self.refused.push_front(refused);
                std::task::ready!(self.poll_flush_socket(cx))?;
            }
        }
    }

    /// Hands a message to the socket (after [`Transport::poll_ready`]). If the socket's write
    /// buffer is full, the message is kept and sent after the next flush.
    pub(crate) fn send(&mut self, message: Message) -> Result<(), String> {
        if !self.refused.is_empty() {
            self.refused.push_back(message);
            return Ok(());
        }
        if let Some(refused) = self.start_send(message)? {
            self.refused.push_back(refused);
        }
        Ok(())
    }

    /// `Ok(Some(message))` when the socket refused it for lack of room.
    fn start_send(&mut self, message: Message) -> Result<Option<Message>, String> {
        let socket = self.socket.as_mut().ok_or_else(String::new)?;
        self.unflushed = true;
        match Pin::new(socket).start_send(message) {
            Ok(()) => Ok(None),
            Err(tungstenite::Error::WriteBufferFull(message)) => Ok(Some(*message)),
            Err(err) => Err(err.to_string()),
        }
    }

    /// Whether more messages than one output batch wait for room (then stop taking more).
    pub(crate) fn is_backed_up(&self) -> bool {
        self.refused.len() >= MAX_REFUSED
    }

    /// Writes out everything handed over, refused messages included.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        std::task::ready!(self.poll_ready(cx))?;
        self.poll_flush_socket(cx)
    }

    fn poll_flush_socket(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        let socket = self.socket.as_mut().ok_or_else(String::new)?;
        self.write_waiters.register(cx.waker());
        let flushed = Pin::new(socket).poll_flush(&mut Context::from_waker(&self.write_waker));
        if flushed.is_ready() {
            self.write_waiters.unregister(cx.waker());
        }
        match flushed {
            Poll::Ready(Ok(())) => {
                self.unflushed = false;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err.to_string())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The tasks waiting for the socket's write side; see the module docs.
#[derive(Default)]
struct WriteWaiters(Mutex<Vec<Waker>>);

impl WriteWaiters {
    fn register(&self, waker: &Waker) {
        let mut waiters = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    fn unregister(&self, waker: &Waker) {
        let mut waiters = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !waiters.is_empty() {
            waiters.retain(|w| !w.will_wake(waker));
        }
    }
}

impl std::task::Wake for WriteWaiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waiters = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for waker in waiters {
            waker.wake();
        }
    }
}
