//! yamux 0.14 over ws_stream_tungstenite 0.15, the way users combine them today: a driver task owns
//! the `yamux::Connection` (it must be polled continuously), and handles ask it for streams.

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use futures::{
    channel::{mpsc, oneshot},
    future::poll_fn,
    AsyncRead, AsyncWrite, StreamExt,
};

/// A handle on a yamux connection whose driver runs as a spawned task.
pub struct YamuxHandle {
    opens: mpsc::UnboundedSender<oneshot::Sender<yamux::Stream>>,
    inbound: mpsc::UnboundedReceiver<yamux::Stream>,
}

/// yamux's defaults, except the stream limit when raised for the 10,000-stream tests (yamux then
/// wants a connection window of at least 256 KiB per stream).
pub fn config(max_streams: usize) -> yamux::Config {
    let mut config = yamux::Config::default();
    if max_streams > 512 {
        config.set_max_connection_receive_window(Some(max_streams * 256 * 1024));
        config.set_max_num_streams(max_streams);
    }
    config
}

impl YamuxHandle {
    /// Starts the connection on `socket`; its driver is handed to `spawn`. Dropping the handle
    /// closes the connection.
    pub fn start<S>(
        socket: S,
        mode: yamux::Mode,
        config: yamux::Config,
        spawn: impl FnOnce(futures::future::BoxFuture<'static, ()>),
    ) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut conn = yamux::Connection::new(socket, config, mode);
        let (open_tx, mut open_rx) = mpsc::unbounded::<oneshot::Sender<yamux::Stream>>();
        let (in_tx, in_rx) = mpsc::unbounded();
        let mut waiting: VecDeque<oneshot::Sender<yamux::Stream>> = VecDeque::new();
        let mut closing = false;
        let driver = poll_fn(move |cx| loop {
            if closing {
                return conn.poll_close(cx).map(|_| ());
            }
            loop {
                match open_rx.poll_next_unpin(cx) {
                    Poll::Ready(Some(request)) => waiting.push_back(request),
                    Poll::Ready(None) => {
                        closing = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            if closing {
                continue;
            }
            while !waiting.is_empty() {
                match conn.poll_new_outbound(cx) {
                    Poll::Ready(Ok(stream)) => {
                        if let Some(request) = waiting.pop_front() {
                            let _ = request.send(stream);
                        }
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => break,
                }
            }
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(stream))) => {
                    let _ = in_tx.unbounded_send(stream);
                }
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        });
        spawn(Box::pin(driver));
        Self {
            opens: open_tx,
            inbound: in_rx,
        }
    }

    pub async fn open(&self) -> yamux::Stream {
        let (tx, rx) = oneshot::channel();
        self.opens.unbounded_send(tx).expect("yamux driver gone");
        rx.await.expect("yamux driver gone")
    }

    pub async fn accept(&mut self) -> yamux::Stream {
        self.inbound.next().await.expect("yamux connection ended")
    }
}

/// A connected yamux (client, server) pair over ws_stream_tungstenite on loopback TCP, drivers
/// spawned on async-std.
pub async fn pair(max_streams: usize) -> (YamuxHandle, YamuxHandle) {
    let (c, s) = super::net::ws029_pair().await;
    let spawn = |f| {
        async_std::task::spawn(f);
    };
    let client = YamuxHandle::start(
        ws_stream_tungstenite::WsStream::new(c),
        yamux::Mode::Client,
        config(max_streams),
        spawn,
    );
    let server = YamuxHandle::start(
        ws_stream_tungstenite::WsStream::new(s),
        yamux::Mode::Server,
        config(max_streams),
        spawn,
    );
    (client, server)
}

/// A yamux stream that keeps its connection handle (and so the connection) alive.
pub struct KeepAlive {
    stream: yamux::Stream,
    _handle: YamuxHandle,
}

impl KeepAlive {
    pub fn new(stream: yamux::Stream, handle: YamuxHandle) -> Self {
        Self {
            stream,
            _handle: handle,
        }
    }
}

impl AsyncRead for KeepAlive {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for KeepAlive {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}
