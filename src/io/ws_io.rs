//! [`WsIo`]: the whole WebSocket connection as one byte stream.

use std::{
    fmt, io,
    pin::Pin,
    task::{ready, Context, Poll},
};

use async_tungstenite::{tungstenite::protocol::CloseFrame, WebSocketStream};
use bytes::{Buf, Bytes, BytesMut};
use futures::{AsyncBufRead, AsyncRead, AsyncWrite};

use crate::{code::CloseCode, error::Error, event::WsEvent, transport::Transport};

use super::config::WsIoConfig;

/// A whole WebSocket connection as one byte stream: futures-io [`AsyncRead`], [`AsyncWrite`] and
/// [`AsyncBufRead`] (and tokio's `AsyncRead`/`AsyncWrite`/`AsyncBufRead` with the `tokio` feature),
/// for a peer that speaks binary messages — a browser, any WebSocket server or client.
///
/// # Reading
/// The payloads of the peer's binary messages, in order, as one stream of bytes; one read may
/// span several messages, and empty messages are skipped. A read returns `Ok(0)` (end of stream)
/// only after a proper close handshake whose code is not an error (1000, 1001, 1005 or
/// 3000–4999); otherwise it fails with an [`io::Error`] whose inner error is our [`Error`]
/// ([`Error::from_io`]):
/// - the connection ended without a Close frame: [`Error::ConnectionClosed`] with code 1006
///   ([`CloseCode::ABNORMAL`]), never a quiet end of stream;
/// - the peer closed with an error code (1002, 1011, …): [`Error::ConnectionClosed`] with it;
/// - the peer broke the protocol — a text message (we close with 1003), a message over
///   [`WsIoConfig::max_message_size`] (1009), a bad frame (1002): [`Error::Protocol`], whose
///   [`close_code`](crate::ProtoError::close_code) is the code we closed with.
///
/// Reading drives the connection: pings are answered, the close handshake is completed (whoever
/// started it) and the client-side wait for the server to close TCP is bounded by
/// [`WsIoConfig::close_timeout`]. Keep reading until the end of stream — or call
/// [`close`](futures::AsyncWriteExt::close) / [`close_with`](Self::close_with), which drive it
/// too. When a read would wait and written bytes are still buffered, they are sent, so that a
/// request/response exchange cannot deadlock on a forgotten `flush`.
///
/// # Writing
/// Writes are coalesced: bytes collect in a buffer of [`WsIoConfig::write_message_size`] bytes
/// (64 KiB by default) that goes out as one binary message when it is full, on `flush`, on
/// `close`, or when a read waits. A zero-length write sends nothing. Writing after the
/// connection began closing fails with [`io::ErrorKind::NotConnected`] (the inner [`Error`] says
/// why). `close` (`poll_close`) sends a Close frame with 1000 (normal) and waits for the
/// handshake; [`close_with`](Self::close_with) chooses the code and reason. Dropping a `WsIo`
/// without closing it drops the TCP connection: the peer sees 1006.
///
/// # Events
/// [`pharos::Observable<WsEvent>`](pharos::Observable): Close frames received (code and reason),
/// pings, pongs, text messages received, non-fatal errors, and [`WsEvent::Closed`] last. Events
/// never block the data path; they are delivered while the `WsIo` is polled.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
/// use pharos::Observable;
/// use ws_stream_mux::{async_tungstenite, CloseCode, WsEvent, WsIo};
///
/// let tcp = async_std::net::TcpStream::connect("127.0.0.1:8080").await?;
/// let (ws, _) = async_tungstenite::client_async("ws://127.0.0.1:8080/", tcp).await?;
/// let mut io = WsIo::new(ws);
/// let mut events = io.observe(Default::default()).await?;
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
pub struct WsIo {
    transport: Transport,
    /// What is left of the message being read.
    incoming: Bytes,
    /// Written bytes not yet sent; at most `write_message_size`.
    outgoing: BytesMut,
    write_message_size: usize,
    /// Whether our `close`/`close_with` has run its first step (flush, then Close frame).
    close_started: bool,
}

impl WsIo {
    /// Wraps a WebSocket whose handshake is done, with the default [`WsIoConfig`].
    pub fn new<S>(ws: WebSocketStream<S>) -> Self
    where
        S: futures::AsyncRead + futures::AsyncWrite + Send + Unpin + 'static,
    {
        Self::build(ws, &WsIoConfig::default())
    }

    /// Wraps a WebSocket whose handshake is done.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when a value of `config` is out of range
    /// ([`WsIoConfig::validate`]).
    pub fn with_config<S>(ws: WebSocketStream<S>, config: WsIoConfig) -> Result<Self, Error>
    where
        S: futures::AsyncRead + futures::AsyncWrite + Send + Unpin + 'static,
    {
        config.validate()?;
        Ok(Self::build(ws, &config))
    }

    fn build<S>(ws: WebSocketStream<S>, config: &WsIoConfig) -> Self
    where
        S: futures::AsyncRead + futures::AsyncWrite + Send + Unpin + 'static,
    {
        let mut transport =
            Transport::new(ws, config.get_max_message_size(), config.get_event_queue());
        transport.set_close_timeout(config.get_close_timeout());
        Self {
            transport,
            incoming: Bytes::new(),
            outgoing: BytesMut::new(),
            write_message_size: config.get_write_message_size(),
            close_started: false,
        }
    }

    /// Sends the buffered bytes, then a Close frame with `code` and `reason`, and drives the
    /// closing handshake to its end (reading and discarding whatever the peer still sends).
    ///
    /// Returns `Ok` once the connection ended cleanly (see the type's docs on reading).
    ///
    /// # Errors
    /// - [`Error::InvalidCloseCode`] for a code other than 1000, 1001 or 4000–4999 and
    ///   [`Error::CloseReasonTooLong`] for a reason over
    ///   [`MAX_CLOSE_REASON_LEN`](crate::MAX_CLOSE_REASON_LEN) bytes; nothing is sent then.
    /// - [`Error::AlreadyClosed`] when a Close frame was already sent or received before this
    ///   call: the handshake under way is driven to its end, and this code is not sent.
    /// - What ended the connection when it did not end cleanly (for example 1006 when TCP broke).
    pub async fn close_with(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        let frame = code.application_frame(reason)?;
        let already = self.close_started || !self.transport.is_open();
        let mut frame = Some(frame);
        let end = futures::future::poll_fn(|cx| {
            let polled = self.poll_shutdown(cx, || frame.take());
            self.transport.events.poll_deliver(cx);
            polled
        })
        .await;
        match end {
            Ok(()) if already => Err(Error::AlreadyClosed),
            other => other,
        }
    }

    /// Why the connection ended, once it has: [`Error::ConnectionClosed`] with the code and
    /// reason of the close (also after a clean close, when reads return end of stream), or
    /// [`Error::Protocol`] when we closed it because the peer broke the protocol.
    pub fn ended(&self) -> Option<&Error> {
        self.transport.terminal()
    }

    /// How many events were dropped because an observer on a bounded channel did not keep up
    /// (see [`WsIoConfig::event_queue`]).
    pub fn dropped_events(&self) -> u64 {
        self.transport.events.dropped()
    }

    /// Makes `incoming` non-empty; `Ok(false)` at a clean end of stream.
    fn poll_incoming(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        while self.incoming.is_empty() {
            match self.transport.poll_recv(cx) {
                Poll::Ready(Ok(message)) => self.incoming = message,
                Poll::Ready(Err(end)) => return Poll::Ready(read_end(end)),
                Poll::Pending => {
                    self.send_while_reading_waits(cx);
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(true))
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
            match self.transport.poll_recv(cx) {
                Poll::Ready(Ok(message)) => self.incoming = message,
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
        Poll::Ready(Ok(filled))
    }

    /// A read is about to wait: buffered writes go out rather than wait for a `flush` that a
    /// task blocked on this read may never call. Errors stay in the transport's state and show
    /// on the next write.
    fn send_while_reading_waits(&mut self, cx: &mut Context<'_>) {
        if !self.outgoing.is_empty() && !self.close_started && self.transport.is_open() {
            if let Poll::Ready(Ok(())) = self.poll_send_outgoing(cx) {
                let _ = self.transport.poll_flush(cx);
            }
        }
    }

    fn write_from(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if let Some(err) = self.write_closed() {
            return Poll::Ready(Err(err));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.outgoing.len() >= self.write_message_size {
            ready!(self.poll_send_outgoing(cx)).map_err(not_connected)?;
        }
        let n = buf.len().min(self.write_message_size - self.outgoing.len());
        if self.outgoing.is_empty() {
            // One allocation per message: the buffer is frozen and handed over when it is sent.
            self.outgoing.reserve(self.write_message_size);
        }
        self.outgoing.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    /// The error for a write once the connection is closing or closed, or once `close` began.
    fn write_closed(&self) -> Option<io::Error> {
        let err = match self.transport.closing_error() {
            Some(err) => err,
            None if self.close_started => Error::AlreadyClosed,
            None => return None,
        };
        Some(not_connected(err))
    }

    fn flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.outgoing.is_empty() {
            if let Some(err) = self.write_closed() {
                return Poll::Ready(Err(err));
            }
            ready!(self.poll_send_outgoing(cx)).map_err(not_connected)?;
        }
        if self.transport.needs_flush() {
            ready!(self.transport.poll_flush(cx)).map_err(not_connected)?;
        }
        Poll::Ready(Ok(()))
    }

    /// Hands the buffered bytes to the WebSocket as one binary message.
    fn poll_send_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.outgoing.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.transport.poll_ready_send(cx))?;
        Poll::Ready(self.transport.send(self.outgoing.split().freeze()))
    }

    /// Flushes the buffered bytes, sends the Close frame that `frame` gives (once), and drives
    /// the handshake to the end. `Ok` when the connection ended cleanly.
    fn poll_shutdown(
        &mut self,
        cx: &mut Context<'_>,
        frame: impl FnOnce() -> Option<CloseFrame>,
    ) -> Poll<Result<(), Error>> {
        if !self.close_started {
            if self.transport.is_open() {
                // The bytes written before the close leave before the Close frame. If that fails,
                // the connection is over and the handshake below reports how.
                if ready!(self.poll_send_outgoing(cx)).is_ok() {
                    if let Some(frame) = frame() {
                        // Fails only if the handshake began meanwhile, which is then driven below.
                        let _ = self.transport.start_close(frame);
                    }
                }
            }
            self.close_started = true;
            self.outgoing.clear();
        }
        let end = ready!(self.transport.poll_closed(cx));
        Poll::Ready(if is_clean_end(&end) { Ok(()) } else { Err(end) })
    }
}

/// A connection that ended with a completed close handshake and a code that is not an error.
fn is_clean_end(end: &Error) -> bool {
    match end {
        Error::ConnectionClosed { code, .. } => {
            matches!(code.0, 1000 | 1001 | 1005 | 3000..=4999)
        }
        _ => false,
    }
}

/// What a read returns once the connection is over: end of stream if it ended cleanly.
fn read_end(end: Error) -> io::Result<bool> {
    if is_clean_end(&end) {
        Ok(false)
    } else {
        Err(end.into())
    }
}

fn not_connected(err: Error) -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, err)
}

impl AsyncRead for WsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = this.read_into(cx, buf);
        this.transport.events.poll_deliver(cx);
        polled
    }
}

impl AsyncBufRead for WsIo {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let polled = this.poll_incoming(cx);
        this.transport.events.poll_deliver(cx);
        match ready!(polled) {
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

impl AsyncWrite for WsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = this.write_from(cx, buf);
        this.transport.events.poll_deliver(cx);
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = this.flush(cx);
        this.transport.events.poll_deliver(cx);
        polled
    }

    /// Sends the buffered bytes and a Close frame with 1000 (normal), then drives the close
    /// handshake to its end. `Ok` once the connection ended cleanly, whoever closed first.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = this.poll_shutdown(cx, || CloseCode::NORMAL.application_frame("").ok());
        this.transport.events.poll_deliver(cx);
        polled.map_err(io::Error::from)
    }
}

impl pharos::Observable<WsEvent> for WsIo {
    type Error = pharos::PharErr;

    /// Subscribes to the connection's events. Fails once the connection has closed and its
    /// [`WsEvent::Closed`] was delivered.
    fn observe(
        &mut self,
        options: pharos::ObserveConfig<WsEvent>,
    ) -> pharos::Observe<'_, WsEvent, Self::Error> {
        let observed = self.transport.events.observe(options);
        Box::pin(async move { observed })
    }
}

impl Drop for WsIo {
    fn drop(&mut self) {
        // Hand observers what is still queued (with unbounded channels, everything).
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        self.transport.events.poll_deliver(&mut cx);
    }
}

impl fmt::Debug for WsIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsIo")
            .field("transport", &self.transport)
            .field("unread", &self.incoming.len())
            .field("unsent", &self.outgoing.len())
            .field("close_started", &self.close_started)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_can_move_between_threads() {
        fn assert_send<T: Send + Unpin>() {}
        assert_send::<WsIo>();
    }

    #[test]
    fn clean_ends() {
        let closed = |code| Error::ConnectionClosed {
            code: CloseCode(code),
            reason: String::new(),
        };
        for clean in [1000, 1001, 1005, 3000, 4000, 4999] {
            assert!(is_clean_end(&closed(clean)), "{clean}");
        }
        for unclean in [1002, 1003, 1006, 1007, 1008, 1009, 1011, 1015, 2999, 5000] {
            assert!(!is_clean_end(&closed(unclean)), "{unclean}");
        }
        assert!(!is_clean_end(&Error::Protocol(
            crate::ProtoError::TextMessage
        )));
    }

    #[test]
    fn read_end_is_eof_or_typed_error() {
        assert!(!read_end(Error::ConnectionClosed {
            code: CloseCode::NORMAL,
            reason: "bye".into()
        })
        .unwrap());
        let err = read_end(Error::abnormal("gone")).unwrap_err();
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
