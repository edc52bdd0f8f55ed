//! The message-level handle.

use std::{
    future::poll_fn,
    io,
    pin::pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use async_tungstenite::{tungstenite::Message, WebSocketStream};
use futures::{
    future::{select, Either},
    AsyncRead, AsyncWrite,
};
use futures_timer::Delay;

use super::{config::MessageConfig, data::DataMessage, driver::Driver};
use crate::{
    code::CloseCode,
    error::Error,
    waiters::{WaitKey, Waiters},
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
/// write, ping or close. No background task is needed: whichever call is waiting drives the
/// socket. Dropping the last handle drops the connection without a Close frame; call
/// [`close`](Self::close) first for a clean end.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use ws_stream_mux::{CloseCode, DataMessage, MessageConfig, MessageSocket};
///
/// let (ws, _) = ws_stream_mux::connect::connect("ws://127.0.0.1:9001/", async_std::net::TcpStream::connect).await?;
/// let socket = MessageSocket::new(ws, MessageConfig::default());
/// socket.write(DataMessage::text("hello")).await?;
/// let rtt = socket.ping().await?;
/// let reply = socket.read().await?;
/// println!("{reply:?} after a round trip of {rtt:?}");
/// socket.close(CloseCode::NORMAL, "bye").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MessageSocket {
    shared: Arc<Shared>,
}

/// The WebSocket has a single waker per direction, but several tasks share one socket (one
/// reading, one pinging, one writing) and whichever of them polls it may be dropped (a cancelled
/// ping) while the others still wait. So, as for [`Connection`](crate::Connection), the socket is
/// always polled with the connection-wide waker of [`Waiters`], which wakes every waiting call;
/// each re-checks its own condition under the lock.
struct Shared {
    driver: Mutex<Driver>,
    /// The calls waiting on the socket, each under its own [`WaitKey::Connection`] key.
    waiters: Arc<Waiters>,
    /// The waker the socket is polled with: it wakes every call in `waiters`.
    socket_waker: Waker,
    config: MessageConfig,
}

impl MessageSocket {
    /// Wraps an established WebSocket (from [`handshake::accept`](crate::handshake::accept),
    /// [`connect`](crate::connect::Connector::connect) or async-tungstenite directly).
    pub fn new<S>(ws: WebSocketStream<S>, config: MessageConfig) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let waiters = Arc::<Waiters>::default();
        Self {
            shared: Arc::new(Shared {
                driver: Mutex::new(Driver::new(ws, config.max_buffered)),
                socket_waker: Waker::from(waiters.clone()),
                waiters,
                config,
            }),
        }
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
        let call = self.waiting();
        poll_fn(|cx| call.drive(cx, Driver::poll_read)).await
    }

    /// Sends a message and flushes it.
    ///
    /// # Errors
    /// [`Error::AlreadyClosed`] after [`close`](Self::close); the connection's error after the
    /// peer closed it or it failed.
    pub async fn write(&self, message: impl Into<DataMessage>) -> Result<(), Error> {
        let mut message = Some(Message::from(message.into()));
        let call = self.waiting();
        poll_fn(|cx| {
            call.drive(cx, |driver, cx| {
                std::task::ready!(driver.poll_send(cx, &mut message))?;
                driver.poll_flush(cx)
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
    /// [`Error::Transport`] of kind [`io::ErrorKind::TimedOut`] when no Pong came within
    /// [`ping_timeout`](MessageConfig::ping_timeout); the connection's error when it closed first.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let (id, ping) = self.lock_driver().new_ping()?;
        let _forget = ForgetPing { socket: self, id };
        let call = self.waiting();
        let exchange = async move {
            let mut ping = Some(ping);
            let sent = poll_fn(|cx| {
                call.drive(cx, |driver, cx| {
                    std::task::ready!(driver.poll_send(cx, &mut ping))?;
                    std::task::ready!(driver.poll_flush(cx))?;
                    Poll::Ready(Ok::<_, Error>(Instant::now()))
                })
            })
            .await?;
            let arrived =
                poll_fn(|cx| call.drive(cx, |driver, cx| driver.poll_pong(cx, id))).await?;
            Ok(arrived.saturating_duration_since(sent))
        };
        let timeout = self.shared.config.ping_timeout;
        match select(pin!(exchange), Delay::new(timeout)).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(timed_out(format!("no pong within {timeout:?}"))),
        }
    }

    /// Starts the closing handshake: sends a Close frame with `code` and `reason` and returns once
    /// it is sent. Read on to get the peer's reply (reads then end with
    /// [`Error::ConnectionClosed`]), or drop the socket.
    ///
    /// The close takes effect at the first poll, even if the future is then dropped (say by a
    /// timeout): the frame still goes out with the next call that drives the socket, writes fail
    /// and a second `close` returns [`Error::AlreadyClosed`].
    ///
    /// # Errors
    /// - [`Error::InvalidCloseCode`] / [`Error::CloseReasonTooLong`]: only 1000, 1001 and
    ///   4000–4999 with a reason of at most 123 bytes may be sent. Nothing is sent then.
    /// - [`Error::AlreadyClosed`]: a Close frame was already sent or received, or the connection
    ///   is over.
    /// - [`Error::Transport`] of kind [`io::ErrorKind::TimedOut`] when the frame could not be sent
    ///   within [`close_timeout`](MessageConfig::close_timeout) (the peer does not read); the
    ///   connection counts as closed all the same.
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        let frame = code.application_frame(reason)?;
        self.lock_driver().start_close(frame)?;
        let call = self.waiting();
        let sent = poll_fn(|cx| call.drive(cx, Driver::poll_close_sent));
        let timeout = self.shared.config.close_timeout;
        match select(pin!(sent), Delay::new(timeout)).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(timed_out(format!(
                "close frame not sent within {timeout:?}"
            ))),
        }
    }

    fn lock_driver(&self) -> MutexGuard<'_, Driver> {
        self.shared.lock_driver()
    }

    /// A call that is about to wait on the socket.
    fn waiting(&self) -> Waiting<'_> {
        Waiting {
            shared: &self.shared,
            key: WaitKey::Connection(self.shared.waiters.next_key()),
        }
    }
}

/// One call (`read`, `write`, `ping`, `close`) waiting on the socket under its own key; forgotten
/// when the call ends or is dropped.
struct Waiting<'a> {
    shared: &'a Shared,
    key: WaitKey,
}

impl Waiting<'_> {
    /// Registers the calling task and runs `f` on the driver with the context to poll the socket
    /// with: its waker wakes every registered call. Registering *before* polling means a wake-up
    /// cannot fall between "the socket had nothing" and "I registered".
    fn drive<T>(&self, cx: &Context<'_>, f: impl FnOnce(&mut Driver, &mut Context<'_>) -> T) -> T {
        let waiters = &self.shared.waiters;
        waiters.register(self.key, cx.waker());
        let mut socket_cx = Context::from_waker(&self.shared.socket_waker);
        let (result, news) = {
            let mut driver = self.shared.lock_driver();
            let result = f(&mut driver, &mut socket_cx);
            (result, driver.take_news())
        };
        if news {
            waiters.wake_matching(|key| *key != self.key);
        }
        result
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared.waiters.unregister(self.key);
    }
}

/// Removes a ping from the outstanding ones when its future ends or is dropped.
struct ForgetPing<'a> {
    socket: &'a MessageSocket,
    id: u64,
}

impl Drop for ForgetPing<'_> {
    fn drop(&mut self) {
        self.socket.lock_driver().forget_ping(self.id);
    }
}

impl Shared {
    fn lock_driver(&self) -> MutexGuard<'_, Driver> {
        self.driver
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn timed_out(what: String) -> Error {
    Error::Transport(Arc::new(io::Error::new(io::ErrorKind::TimedOut, what)))
}

impl std::fmt::Debug for MessageSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.lock_driver().fmt(f)
    }
}
