//! [`WsIo`]: the whole WebSocket connection as one byte stream.

use std::{
    fmt, io,
    pin::Pin,
    task::{ready, Context, Poll},
    time::{Duration, Instant},
};

use async_tungstenite::WebSocketStream;
use bytes::{Buf, Bytes, BytesMut};
use futures::{AsyncBufRead, AsyncRead, AsyncWrite};

use super::{
    config::WsIoConfig,
    session::{ByteSession, MAX_OUTBOX},
};
use crate::{
    engine::{
        events::{EventHub, EventStream},
        pump::{pump, Access, Io},
        transport::Transport,
        Session,
    },
    error::{Error, Timeout},
    event::WsEvent,
    proto::{CloseCode, CloseOutcome, CloseRefused, ConnectionError},
};

/// How many messages a [`WsIo::ping`] keeps for reads while it waits for its pong.
const PING_INBOX: usize = 64;

/// A whole WebSocket connection as one byte stream: futures-io [`AsyncRead`], [`AsyncWrite`] and
/// [`AsyncBufRead`] (and tokio's with the `tokio` feature), for a peer that speaks binary
/// messages — a browser, any WebSocket server or client.
///
/// # Reading
/// The payloads of the peer's binary messages, in order, as one stream of bytes; one read may
/// span several messages, and empty messages are skipped. A read returns `Ok(0)` (end of stream)
/// only after a closing handshake whose code is not an error (1000, 1001, 1005 or 3000–4999);
/// otherwise it fails with an [`io::Error`] whose inner error is our [`Error`]
/// ([`Error::from_io`]):
/// - the connection ended without a Close frame: [`Error::ConnectionClosed`] with code 1006
///   ([`CloseCode::ABNORMAL`]), never a quiet end of stream;
/// - the peer closed with an error code (1002, 1011, …): [`Error::ConnectionClosed`] with it;
/// - the peer broke the protocol — a text message (we close with 1003, unless
///   [`WsIoConfig::text_as_bytes`]), a message over [`WsIoConfig::max_message_size`] (1009), a bad
///   frame (1002): [`Error::Protocol`], whose [`close_code`](crate::ProtoError::close_code) is the
///   code we closed with.
///
/// Reading drives the connection: pings are answered, keep-alive pings sent, the closing
/// handshake completed. A reader that stops reading holds at most one message: the socket is not
/// read meanwhile. When a read would wait and written bytes are still buffered, they are sent, so
/// request/response code never deadlocks on a forgotten `flush`.
///
/// # Writing
/// Writes are coalesced: bytes collect in a buffer of [`WsIoConfig::write_message_size`] bytes
/// that goes out as one binary message when it is full, on `flush`, on `close`, or when a read
/// waits. When the socket does not take more (its write buffer is full), writes wait. `flush`
/// returns `Ok` only once the bytes were written out to the socket. A zero-length write sends
/// nothing. Writing after the connection began closing fails with
/// [`io::ErrorKind::NotConnected`].
///
/// # Closing
/// `close` (`poll_close`; tokio's `shutdown`) sends what is buffered, then a Close frame with 1000,
/// and waits for the peer's Close frame; [`close_with`](Self::close_with) chooses the code and
/// reason. Both return `Ok` only when the peer's Close frame arrived, within
/// [`WsIoConfig::close_timeout`] of the call: a typed error otherwise ([`Error::TimedOut`], or
/// 1006 when TCP ended without an answer). Dropping a `WsIo` without closing it drops the TCP
/// connection: the peer sees 1006.
///
/// # Events
/// [`events`](Self::events) (and [`pharos::Observable<WsEvent>`](pharos::Observable)): Close
/// frames received, pings, pongs, text messages refused, errors, and [`WsEvent::Closed`] last.
/// Events never block the data path.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
/// use ws_stream_mux::{async_tungstenite, CloseCode, WsEvent, WsIo};
///
/// let tcp = async_std::net::TcpStream::connect("127.0.0.1:8080").await?;
/// let (ws, _) = async_tungstenite::client_async("ws://127.0.0.1:8080/", tcp).await?;
/// let mut io = WsIo::new(ws);
/// let mut events = io.events();
///
/// io.write_all(b"hello").await?;
/// io.flush().await?; // one binary message of 5 bytes
/// let mut reply = [0; 5];
/// io.read_exact(&mut reply).await?;
/// io.close_with(CloseCode(4000), "done").await?;
///
/// while let Some(event) = events.next().await {
///     if let WsEvent::Closed { code, .. } = event {
///         assert_eq!(code, CloseCode(4000));
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct WsIo<S> {
    io: Io<WebSocketStream<S>>,
    session: ByteSession,
    events: EventHub,
    /// What is left of the message being read.
    incoming: Bytes,
    /// Written bytes not yet handed to the session; at most `write_message_size`.
    outgoing: BytesMut,
    write_message_size: usize,
    /// Whether our close has started (the buffered bytes, then the Close frame, are queued).
    close_started: bool,
    /// Whether a Close frame had been sent or received before our close started.
    closed_before: bool,
}

/// The pump's access to a `WsIo`'s core: direct, then its events go to its observers.
struct Direct<'a> {
    session: &'a mut ByteSession,
    events: &'a mut EventHub,
}

impl Access for Direct<'_> {
    type Session = ByteSession;

    fn with<R>(&mut self, f: impl FnOnce(&mut ByteSession) -> R) -> R {
        let result = f(self.session);
        while let Some(event) = self.session.poll_event() {
            self.events.publish(event);
        }
        result
    }
}

impl<S> WsIo<S>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    /// Wraps a WebSocket whose handshake is done, with the default [`WsIoConfig`].
    pub fn new(ws: WebSocketStream<S>) -> Self {
        Self::build(ws, &WsIoConfig::default())
    }

    /// Wraps a WebSocket whose handshake is done.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when a value of `config` is out of range
    /// ([`WsIoConfig::validate`]).
    pub fn with_config(ws: WebSocketStream<S>, config: WsIoConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self::build(ws, &config))
    }

    fn build(ws: WebSocketStream<S>, config: &WsIoConfig) -> Self {
        // A message must fit the socket's write buffer, or it could never be sent (a frame adds at
        // most 14 bytes of header).
        let socket_limit = ws.get_config().max_write_buffer_size.saturating_sub(14);
        let write_message_size = config.write_message_size.min(socket_limit).max(1);
        let session = ByteSession::new(config.lifecycle(), config.text_as_bytes, Instant::now());
        Self {
            io: Io::new(Transport::new(ws, config.max_message_size)),
            session,
            events: EventHub::new(config.event_queue),
            incoming: Bytes::new(),
            outgoing: BytesMut::new(),
            write_message_size,
            close_started: false,
            closed_before: false,
        }
    }

    /// Drives the connection as far as it goes without waiting: sends, and reads too unless
    /// `read` is false (writes leave reading to readers, whose task the socket must wake).
    fn drive(&mut self, cx: &mut Context<'_>, read: bool) {
        let mut access = Direct {
            session: &mut self.session,
            events: &mut self.events,
        };
        pump(&mut self.io, &mut access, cx, None, true, read);
    }

    /// Drives the connection, reading included.
    fn pump(&mut self, cx: &mut Context<'_>) {
        self.drive(cx, true);
    }

    /// Sends the buffered bytes, then a Close frame with `code` and `reason`, and waits for the
    /// peer's Close frame (reading and discarding whatever the peer still sends).
    ///
    /// # Errors
    /// - [`Error::InvalidCloseCode`] for a code other than 1000, 1001 or 4000–4999 and
    ///   [`Error::CloseReasonTooLong`] for a reason over
    ///   [`MAX_CLOSE_REASON_LEN`](crate::MAX_CLOSE_REASON_LEN) bytes; nothing is sent then.
    /// - [`Error::AlreadyClosed`] when a Close frame was already sent or received before this
    ///   call: the handshake under way is driven to its end, and this code is not sent.
    /// - [`Error::TimedOut`] when the peer did not answer within the close timeout, the connection's
    ///   error (1006) when it ended without an answer.
    pub async fn close_with(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        code.check_application(reason)?;
        let already = self.close_started || !self.session.lifecycle.is_open();
        let outcome = futures::future::poll_fn(|cx| self.poll_shutdown(cx, code, reason)).await;
        match outcome {
            Ok(()) if already => Err(Error::AlreadyClosed),
            other => other,
        }
    }

    /// Sends a Ping and returns the round-trip time when its pong comes. While it waits, it reads:
    /// data messages are kept for later reads (up to 64 of them; beyond that it stops reading until
    /// they are read). Put a timeout around it, or set [`WsIoConfig::idle_timeout`].
    ///
    /// # Errors
    /// The connection's error when it closes first.
    pub async fn ping(&mut self) -> Result<Duration, Error> {
        let number = self
            .session
            .lifecycle
            .ping()
            .ok_or_else(|| self.closing_error())?;
        self.session.inbox_limit = PING_INBOX;
        let outcome = futures::future::poll_fn(|cx| {
            self.pump(cx);
            let lifecycle = &self.session.lifecycle;
            if let Some(rtt) = lifecycle.ping_result(number) {
                return Poll::Ready(Ok(rtt));
            }
            if let Some(err) = lifecycle.closing_error() {
                return Poll::Ready(Err(Error::from(err)));
            }
            if !lifecycle.ping_pending(number) {
                return Poll::Ready(Err(Error::TimedOut(Timeout::Ping)));
            }
            Poll::Pending
        })
        .await;
        self.session.inbox_limit = 1;
        outcome
    }

    /// The last measured round-trip time (from [`ping`](Self::ping) or keep-alive pings).
    pub fn rtt(&self) -> Option<Duration> {
        self.session.lifecycle.rtt()
    }

    /// Why the connection ended, once it has: [`Error::ConnectionClosed`] with the code and
    /// reason of the close (also after a clean close, when reads return end of stream), or
    /// [`Error::Protocol`] when we closed it because the peer broke the protocol.
    pub fn ended(&self) -> Option<Error> {
        self.session.terminal().cloned().map(Error::from)
    }

    /// Subscribes to the connection's events: a stream of [`WsEvent`]s that ends after
    /// [`WsEvent::Closed`], with a bounded queue ([`WsIoConfig::event_queue`]). Events are
    /// produced while the `WsIo` is read or written.
    pub fn events(&mut self) -> EventStream {
        self.events.subscribe()
    }

    fn closing_error(&self) -> Error {
        self.session
            .lifecycle
            .closing_error()
            .map_or(Error::AlreadyClosed, Error::from)
    }

    /// Moves the written bytes into a message for the socket.
    fn seal_outgoing(&mut self) {
        if !self.outgoing.is_empty() {
            self.session
                .outbox
                .push_back(self.outgoing.split().freeze());
        }
    }

    /// Makes `incoming` non-empty; `Ok(false)` at a clean end of stream.
    fn poll_incoming(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        loop {
            if !self.incoming.is_empty() {
                return Poll::Ready(Ok(true));
            }
            if let Some(message) = self.session.inbox.pop_front() {
                self.incoming = message;
                continue;
            }
            // A read is about to wait: buffered writes go out rather than wait for a `flush` that
            // a task blocked on this read may never call.
            if !self.close_started && self.session.outbox.len() < MAX_OUTBOX {
                self.seal_outgoing();
            }
            self.pump(cx);
            if let Some(message) = self.session.inbox.pop_front() {
                self.incoming = message;
                continue;
            }
            if let Some(end) = self.session.terminal() {
                return Poll::Ready(read_end(end));
            }
            return Poll::Pending;
        }
    }

    /// Copies as much as is available without waiting, across messages.
    fn read_into(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if !ready!(self.poll_incoming(cx))? {
            return Poll::Ready(Ok(0));
        }
        let mut filled = 0;
        loop {
            let n = self.incoming.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&self.incoming[..n]);
            self.incoming.advance(n);
            filled += n;
            if filled == buf.len() {
                break;
            }
            // More only if it is already here; an error or the end shows on the next read.
            match self.session.inbox.pop_front() {
                Some(message) => self.incoming = message,
                None => break,
            }
        }
        Poll::Ready(Ok(filled))
    }

    /// The error for a write once the connection is closing or closed, or once `close` began.
    fn write_closed(&self) -> Option<io::Error> {
        let err = match self.session.lifecycle.closing_error() {
            Some(err) => Error::from(err),
            None if self.close_started => Error::AlreadyClosed,
            None => return None,
        };
        Some(not_connected(err))
    }

    fn write_from(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if let Some(err) = self.write_closed() {
            return Poll::Ready(Err(err));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.outgoing.len() >= self.write_message_size {
            // The message is full: it goes, once the socket has room for it.
            if self.session.outbox.len() >= MAX_OUTBOX {
                self.drive(cx, false);
                if let Some(err) = self.write_closed() {
                    return Poll::Ready(Err(err));
                }
                if self.session.outbox.len() >= MAX_OUTBOX {
                    return Poll::Pending;
                }
            }
            self.seal_outgoing();
            self.drive(cx, false);
        }
        let n = buf.len().min(self.write_message_size - self.outgoing.len());
        if self.outgoing.is_empty() {
            // One allocation per message: the buffer is frozen and handed over when it is sent.
            self.outgoing.reserve(self.write_message_size);
        }
        self.outgoing.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.outgoing.is_empty() {
                if let Some(err) = self.write_closed() {
                    return Poll::Ready(Err(err));
                }
                if self.session.outbox.len() < MAX_OUTBOX {
                    self.seal_outgoing();
                }
            }
            self.drive(cx, false);
            let sent = self.outgoing.is_empty() && self.session.outbox.is_empty();
            if sent && !self.session.unflushed && !self.io.transport.needs_flush() {
                return Poll::Ready(Ok(()));
            }
            if self.session.terminal().is_some() {
                // The bytes never left.
                return Poll::Ready(Err(self.write_closed().unwrap_or_else(|| {
                    not_connected(Error::abnormal("connection ended before the flush"))
                })));
            }
            if !sent && self.session.outbox.len() < MAX_OUTBOX && !self.outgoing.is_empty() {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Sends the buffered bytes and our Close frame (once), then drives the handshake to the
    /// end. `Ok` when the peer's Close frame arrived.
    fn poll_shutdown(
        &mut self,
        cx: &mut Context<'_>,
        code: CloseCode,
        reason: &str,
    ) -> Poll<Result<(), Error>> {
        if !self.close_started {
            self.close_started = true;
            // The bytes written before the close leave before the Close frame.
            self.seal_outgoing();
            match self.session.lifecycle.close(Instant::now(), code, reason) {
                Ok(()) => {}
                Err(CloseRefused::AlreadyClosed) => self.closed_before = true,
            }
        }
        self.pump(cx);
        let Some(end) = self.session.terminal() else {
            return Poll::Pending;
        };
        if self.closed_before {
            // The peer closed first (or we had): a clean end is what the caller wanted.
            return Poll::Ready(if end.is_clean() {
                Ok(())
            } else {
                Err(end.clone().into())
            });
        }
        Poll::Ready(match self.session.lifecycle.close_outcome() {
            Some(CloseOutcome::Completed) => Ok(()),
            Some(CloseOutcome::TimedOut) => Err(Error::TimedOut(Timeout::Close)),
            _ => Err(end.clone().into()),
        })
    }
}

/// What a read returns once the connection is over: end of stream if it ended cleanly.
fn read_end(end: &ConnectionError) -> io::Result<bool> {
    if end.is_clean() {
        Ok(false)
    } else {
        Err(Error::from(end.clone()).into())
    }
}

fn not_connected(err: Error) -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, err)
}

impl<S> AsyncRead for WsIo<S>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().read_into(cx, buf)
    }
}

impl<S> AsyncBufRead for WsIo<S>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        match ready!(this.poll_incoming(cx)) {
            Ok(true) => Poll::Ready(Ok(&this.incoming[..])),
            Ok(false) => Poll::Ready(Ok(&[])),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        let amt = amt.min(this.incoming.len());
        this.incoming.advance(amt);
    }
}

impl<S> AsyncWrite for WsIo<S>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_from(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().flush(cx)
    }

    /// Sends the buffered bytes and a Close frame with 1000 (normal), then waits for the peer's
    /// Close frame. `Ok` once it came, whoever closed first.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_shutdown(cx, CloseCode::NORMAL, "")
            .map_err(io::Error::from)
    }
}

impl<S> pharos::Observable<WsEvent> for WsIo<S>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    type Error = pharos::PharErr;

    /// Subscribes to the connection's events through pharos (a bounded channel; see
    /// [`WsIo::events`], which also guarantees the final [`WsEvent::Closed`]). Fails once the
    /// connection has closed.
    fn observe(
        &mut self,
        options: pharos::ObserveConfig<WsEvent>,
    ) -> pharos::Observe<'_, WsEvent, Self::Error> {
        let observed = self.events.observe(options);
        Box::pin(async move { observed })
    }
}

impl<S> Drop for WsIo<S> {
    fn drop(&mut self) {
        // The socket goes with us: observers learn that the connection is over.
        if self.session.terminal().is_none() {
            self.session
                .lifecycle
                .handle_ended("the WsIo was dropped".to_owned());
            while let Some(event) = self.session.lifecycle.poll_event() {
                self.events
                    .publish(WsEvent::from(crate::proto::Event::from(event)));
            }
        }
    }
}

impl<S> fmt::Debug for WsIo<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsIo")
            .field("unread", &self.incoming.len())
            .field("unsent", &self.outgoing.len())
            .field("close_started", &self.close_started)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_can_move_between_threads() {
        fn assert_send<T: Send + Unpin>() {}
        assert_send::<WsIo<async_std::net::TcpStream>>();
    }

    #[test]
    fn read_end_is_eof_or_typed_error() {
        let clean = ConnectionError::Closed {
            code: CloseCode::NORMAL,
            reason: "bye".into(),
            initiator: crate::proto::Initiator::Peer,
        };
        assert!(!read_end(&clean).unwrap());
        let err = read_end(&ConnectionError::Abnormal {
            detail: "gone".into(),
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        assert!(matches!(
            Error::from_io(&err),
            Some(Error::ConnectionClosed {
                code: CloseCode::ABNORMAL,
                ..
            })
        ));
    }
}
