//! The message-level handle.

use std::{
    future::poll_fn,
    pin::pin,
    sync::Arc,
    task::Poll,
    time::{Duration, Instant},
};

use async_tungstenite::{tungstenite::Message, WebSocketStream};
use futures::{
    future::{select, Either},
    AsyncRead, AsyncWrite,
};
use futures_timer::Delay;

use super::{config::MessageConfig, data::DataMessage, session::MessageSession};
use crate::{
    engine::{
        events::EventStream,
        pump::Io,
        shared::Shared,
        transport::{BoxSocket, Transport},
        wakers::Slot,
    },
    error::{Error, Timeout},
    proto::{CloseCode, CloseOutcome},
};

/// A WebSocket seen as whole messages: [`read`](Self::read) the next Text or Binary message,
/// [`write`](Self::write) one, [`ping`](Self::ping) to measure the round trip,
/// [`close`](Self::close) with a code and reason.
///
/// Control frames are handled inside: Pings are answered, Pongs complete pings, the closing
/// handshake is completed, and a peer that breaks the protocol gets a Close frame with the code
/// RFC 6455 asks for (1002 for a protocol error, 1007 for invalid UTF-8, 1009 for a message over
/// the WebSocket's `max_message_size`) before the connection ends.
///
/// The handle is cheap to clone and every method takes `&self`, so one task can read while others
/// write, ping or close. No background task is needed: whichever call waits drives the socket
/// (the same engine as [`Connection`](crate::Connection)'s). Messages that arrive while nobody
/// reads are kept for [`read`](Self::read), up to [`MessageConfig::max_buffered`]; then the socket
/// is not read until a `read` takes one. Dropping the last handle drops the connection without a
/// Close frame; call [`close`](Self::close) first for a clean end.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use ws_stream_mux::{CloseCode, DataMessage, MessageConfig, MessageSocket};
///
/// let (ws, _) = ws_stream_mux::connect::connect("ws://127.0.0.1:9001/", async_std::net::TcpStream::connect).await?;
/// let socket = MessageSocket::new(ws, MessageConfig::default())?;
/// socket.write(DataMessage::text("hello")).await?;
/// let rtt = socket.ping().await?;
/// let reply = socket.read().await?;
/// println!("{reply:?} after a round trip of {rtt:?}");
/// socket.close(CloseCode::NORMAL, "bye").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MessageSocket {
    shared: Arc<Shared<MessageSession>>,
    config: Arc<MessageConfig>,
    /// The largest message the socket can take (its `max_write_buffer_size`, less a header).
    max_send: usize,
}

impl MessageSocket {
    /// Wraps an established WebSocket (from [`handshake::accept`](crate::handshake::accept),
    /// [`connect`](crate::connect::Connector::connect) or async-tungstenite directly).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `config` is out of range ([`MessageConfig::validate`]).
    pub fn new<S>(ws: WebSocketStream<S>, config: MessageConfig) -> Result<Self, Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        config.validate()?;
        let max_message_size = ws.get_config().max_message_size.unwrap_or(usize::MAX);
        let max_send = ws.get_config().max_write_buffer_size.saturating_sub(14);
        let session = MessageSession::new(config.lifecycle(), config.max_buffered, Instant::now());
        let transport = Transport::new(Box::new(ws) as BoxSocket, max_message_size);
        Ok(Self {
            shared: Arc::new(Shared::new(
                session,
                Io::new(transport),
                config.event_queue,
                crate::engine::span::message_socket(),
            )),
            config: Arc::new(config),
            max_send,
        })
    }

    /// The next Text or Binary message.
    ///
    /// # Errors
    /// Once the connection is over every read returns the same error:
    /// - [`Error::ConnectionClosed`] with the code and reason of the peer's Close frame (1005 if
    ///   it had none), or with 1006 when the connection ended without a Close frame;
    /// - [`Error::Protocol`] when the peer broke the protocol (we sent it a Close frame with
    ///   1002, 1007 or 1009).
    ///
    /// Cancel-safe: a message is never lost when the future is dropped.
    pub async fn read(&self) -> Result<DataMessage, Error> {
        poll_fn(|cx| {
            self.shared.poll_op(cx, Slot::Connection, |session, _| {
                if let Some(message) = session.take_message() {
                    return Poll::Ready(Ok(message));
                }
                match session.lifecycle.terminal() {
                    Some(end) => Poll::Ready(Err(end.clone().into())),
                    None => Poll::Pending,
                }
            })
        })
        .await
    }

    /// Sends a message and waits until it was written out to the socket.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] when the message cannot fit the socket's write buffer
    /// (`max_write_buffer_size`): nothing is sent; [`Error::AlreadyClosed`] after
    /// [`close`](Self::close); the connection's error after the peer closed it or it failed before
    /// the message left.
    pub async fn write(&self, message: impl Into<DataMessage>) -> Result<(), Error> {
        let message = message.into();
        if message.len() > self.max_send {
            return Err(Error::MessageTooLarge {
                size: message.len(),
                max: self.max_send,
            });
        }
        let mut message = Some(Message::from(message));
        let seq = poll_fn(|cx| {
            self.shared.poll_op(cx, Slot::Connection, |session, _| {
                if let Some(err) = send_error(session) {
                    return Poll::Ready(Err(err));
                }
                let Some(queued) = message.take() else {
                    return Poll::Ready(Err(Error::AlreadyClosed));
                };
                match session.queue(queued.clone()) {
                    Some(seq) => Poll::Ready(Ok(seq)),
                    None => {
                        message = Some(queued);
                        Poll::Pending
                    }
                }
            })
        })
        .await?;
        self.shared.drive(true);
        self.written_out(seq).await
    }

    /// Waits until message `seq` was flushed, or the connection ended.
    async fn written_out(&self, seq: u64) -> Result<(), Error> {
        poll_fn(|cx| {
            self.shared.poll_op(cx, Slot::Connection, |session, _| {
                if session.flushed >= seq {
                    return Poll::Ready(Ok(()));
                }
                match session.lifecycle.terminal() {
                    Some(end) => Poll::Ready(Err(end.clone().into())),
                    None => Poll::Pending,
                }
            })
        })
        .await
    }

    /// Sends a Ping and waits for its Pong; returns the round-trip time.
    ///
    /// Works when no other task is reading: the ping then reads itself, keeping the data messages
    /// that arrive meanwhile for [`read`](Self::read) (at most
    /// [`max_buffered`](MessageConfig::max_buffered); beyond that it waits for a `read`).
    /// Several pings may be outstanding at once; each has its own payload. Dropping the future
    /// forgets the ping (a late Pong is ignored).
    ///
    /// # Errors
    /// [`Error::TimedOut`] ([`Timeout::Ping`]) when no Pong came within
    /// [`ping_timeout`](MessageConfig::ping_timeout); [`Error::AlreadyClosed`] after our close;
    /// the connection's error when it closed first.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let number = self.shared.with_state(|state| {
            if let Some(err) = send_error(&state.session) {
                return Err(err);
            }
            state.session.lifecycle.ping().ok_or(Error::AlreadyClosed)
        })?;
        self.shared.drive(true);
        let pong = poll_fn(|cx| {
            self.shared.poll_op(cx, Slot::Connection, |session, _| {
                let lifecycle = &session.lifecycle;
                if let Some(rtt) = lifecycle.ping_result(number) {
                    return Poll::Ready(Ok(rtt));
                }
                if lifecycle.closed_by_us() {
                    // We closed: the peer owes us its Close frame, not Pongs.
                    return Poll::Ready(Err(Error::AlreadyClosed));
                }
                if let Some(end) = lifecycle.closing_error() {
                    return Poll::Ready(Err(end.into()));
                }
                if lifecycle.ping_pending(number) {
                    Poll::Pending
                } else {
                    Poll::Ready(Err(Error::TimedOut(Timeout::Ping)))
                }
            })
        });
        match select(pin!(pong), Delay::new(self.config.ping_timeout)).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(Error::TimedOut(Timeout::Ping)),
        }
    }

    /// Closes the connection: the messages already written go out, then a Close frame with
    /// `code` and `reason`; returns `Ok` once the peer answered with its Close frame. Messages
    /// that arrive before the answer are still read (up to
    /// [`max_buffered`](MessageConfig::max_buffered) of them wait for [`read`](Self::read);
    /// later ones are discarded), and reads then end with the close.
    ///
    /// Whatever the peer does, it returns within [`close_timeout`](MessageConfig::close_timeout):
    /// the connection is then dropped. The close takes effect at the first poll, even if the
    /// future is then dropped.
    ///
    /// # Errors
    /// - [`Error::InvalidCloseCode`] / [`Error::CloseReasonTooLong`]: only 1000, 1001 and
    ///   4000–4999 with a reason of at most 123 bytes may be sent. Nothing is sent then.
    /// - [`Error::AlreadyClosed`]: a Close frame was already sent or received, or the connection
    ///   is over.
    /// - [`Error::TimedOut`] ([`Timeout::Close`]) when the peer did not answer in time; the
    ///   connection's error (1006) when it ended without an answer.
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        code.check_application(reason)?;
        self.shared
            .with_state(|state| state.session.lifecycle.close(Instant::now(), code, reason))
            .map_err(|_| Error::AlreadyClosed)?;
        self.shared.drive(true);
        poll_fn(|cx| {
            self.shared.poll_op(cx, Slot::Connection, |session, _| {
                let lifecycle = &session.lifecycle;
                let Some(end) = lifecycle.terminal() else {
                    return Poll::Pending;
                };
                Poll::Ready(match lifecycle.close_outcome() {
                    Some(CloseOutcome::Completed) => Ok(()),
                    Some(CloseOutcome::TimedOut) => Err(Error::TimedOut(Timeout::Close)),
                    _ => Err(end.clone().into()),
                })
            })
        })
        .await
    }

    /// Subscribes to the connection's events (see [`Connection::events`](crate::Connection::events)).
    pub fn events(&self) -> EventStream {
        self.shared.with_state(|state| state.events.subscribe())
    }
}

/// The error for an attempt to send now, if sending is no longer possible.
fn send_error(session: &MessageSession) -> Option<Error> {
    let lifecycle = &session.lifecycle;
    if lifecycle.closed_by_us() {
        return Some(Error::AlreadyClosed);
    }
    lifecycle.closing_error().map(Error::from)
}

impl std::fmt::Debug for MessageSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (buffered, discarded) = self
            .shared
            .with_state(|state| (state.session.inbox.len(), state.session.discarded));
        f.debug_struct("MessageSocket")
            .field("buffered", &buffered)
            .field("discarded", &discarded)
            .finish_non_exhaustive()
    }
}
