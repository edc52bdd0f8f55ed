//! [`Connection`]: many byte streams over one WebSocket, driven by whoever waits on it.

use std::{
    future::Future,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use async_tungstenite::{tungstenite::protocol::CloseFrame, WebSocketStream};
use futures::{future::poll_fn, AsyncRead, AsyncWrite, FutureExt};
use pharos::{Observable, Observe, ObserveConfig, PharErr};

use crate::{
    code::CloseCode,
    config::Config,
    conn_lock::{ConnGuard, ConnLock},
    error::Error,
    event::WsEvent,
    proto::{Mux, Side, StreamId, Wake},
    stream::WsStream,
    transport::Transport,
    waiters::{WaitKey, Waiters},
};

/// How many incoming messages one drive handles before yielding, so that one task's poll cannot
/// be held hostage by a peer that sends without pause.
const RECEIVE_BUDGET: usize = 256;

/// How often one poll drives again because the socket woke meanwhile, before yielding.
const MAX_DRIVE_RETRIES: usize = 3;

/// A multiplexed connection: many independent [`WsStream`]s over one WebSocket.
///
/// A cheap, cloneable handle (`Send + Sync`); all clones and streams share the connection.
///
/// # Driving
/// There is no background task. Whatever you wait on — a read, a write blocked on credit,
/// [`accept`](Self::accept), [`open`](Self::open), [`close`](Self::close) — reads the socket,
/// answers pings, grants credit, delivers data to every stream and sends what is queued. If at
/// times nothing waits on the connection but it should still answer the peer (accept streams,
/// answer pings), spawn [`run`](Self::run) on your runtime.
///
/// # Closing
/// [`close`](Self::close) sends a Close frame with your code after the data already written, and
/// returns when the peer answered. Every stream then fails in band with
/// [`Error::ConnectionClosed`] carrying that code (data that had already arrived stays readable
/// first). If the peer closes, streams see its code; if the connection ends without a Close frame
/// (TCP dropped), they see 1006. Dropping every handle without `close` drops the TCP connection.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::{AsyncReadExt, AsyncWriteExt};
/// use pharos::Observable;
/// use ws_stream_mux::{CloseCode, Config, Connection};
///
/// let tcp = async_std::net::TcpStream::connect("127.0.0.1:8080").await?;
/// let (ws, _) = async_tungstenite::client_async("ws://127.0.0.1:8080/", tcp).await?;
/// let mut conn = Connection::client(ws, Config::default());
/// let _events = conn.observe(Default::default()).await?;
///
/// let mut stream = conn.open().await?;
/// stream.write_all(b"hello").await?;
/// stream.close().await?; // FIN: the peer reads to the end
/// let mut reply = Vec::new();
/// stream.read_to_end(&mut reply).await?;
///
/// conn.close(CloseCode::NORMAL, "bye").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

/// What the handles share.
pub(crate) struct Shared {
    inner: ConnLock<Inner>,
    waiters: Arc<Waiters>,
    /// The waker the socket is polled with: it wakes every sleeping handle.
    socket_waker: Waker,
}

/// The state behind the lock: the socket and the protocol core.
pub(crate) struct Inner {
    transport: Transport,
    pub(crate) mux: Mux,
    /// A Close frame to send once the data written before `close` has left.
    close_request: Option<CloseFrame>,
    /// The waiters' epoch when the socket's read side last had nothing (`Pending`). Until a
    /// socket wake-up changes the epoch, polling it again would find nothing either, and such a
    /// poll is not free: tungstenite zeroes its read buffer (128 KiB by default) before the read
    /// that fails with `EWOULDBLOCK`. The waker registered by that `Pending` poll stays armed.
    recv_parked_at: Option<u64>,
}

impl Connection {
    /// A connection on the client side of `ws` (the side that sent the HTTP upgrade; it opens
    /// even stream ids).
    pub fn client<S>(ws: WebSocketStream<S>, config: Config) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::new(ws, Side::Client, config)
    }

    /// A connection on the server side of `ws` (it opens odd stream ids).
    pub fn server<S>(ws: WebSocketStream<S>, config: Config) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::new(ws, Side::Server, config)
    }

    fn new<S>(ws: WebSocketStream<S>, side: Side, config: Config) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut transport = Transport::new(ws, config.max_message_size(), config.event_queue.get());
        transport.set_keep_alive(config.keep_alive_interval, config.idle_timeout);
        transport.set_close_timeout(config.close_timeout);
        let waiters = Arc::new(Waiters::default());
        let shared = Shared {
            inner: ConnLock::new(Inner {
                transport,
                mux: Mux::new(side, config),
                close_request: None,
                recv_parked_at: None,
            }),
            socket_waker: Waker::from(waiters.clone()),
            waiters,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Opens a new stream. Waits while [`Config::max_streams`] of our streams are open.
    ///
    /// The peer learns of the stream from our first message (an ACK with our window); our writes
    /// wait for its ACK before any data leaves.
    ///
    /// # Errors
    /// The connection's terminal error once it is closed.
    pub async fn open(&self) -> Result<WsStream, Error> {
        let key = WaitKey::Open(self.shared.waiters.next_key());
        self.stream_from(key, Mux::open).await
    }

    /// The next stream the peer opened.
    ///
    /// # Errors
    /// The connection's terminal error once it is closed (streams already accepted by the
    /// connection are handed out first).
    pub async fn accept(&self) -> Result<WsStream, Error> {
        let key = WaitKey::Accept(self.shared.waiters.next_key());
        self.stream_from(key, Mux::accept).await
    }

    /// Waits until `take` hands out a stream id (`Ok(None)`: not yet), as `key`.
    async fn stream_from(
        &self,
        key: WaitKey,
        take: fn(&mut Mux) -> Result<Option<StreamId>, Error>,
    ) -> Result<WsStream, Error> {
        let id = poll_fn(|cx| {
            self.shared
                .poll_op(cx, key, |inner| match take(&mut inner.mux) {
                    Ok(Some(id)) => Poll::Ready(Ok(id)),
                    Ok(None) => Poll::Pending,
                    Err(err) => Poll::Ready(Err(err)),
                })
        })
        .await?;
        Ok(WsStream::new(self.shared.clone(), id))
    }

    /// Closes the connection: data already written is sent, then a Close frame with `code` and
    /// `reason`; returns once the peer answered (the closing handshake is complete).
    ///
    /// Streams fail from now on with [`Error::ConnectionClosed`] carrying `code` and `reason`.
    ///
    /// # Errors
    /// - [`Error::InvalidCloseCode`]: only 1000, 1001 and 4000–4999 may be sent by applications.
    /// - [`Error::CloseReasonTooLong`]: the reason is over 123 bytes (it is never truncated).
    /// - [`Error::AlreadyClosed`]: a Close frame was already sent or received.
    /// - the transport error if the connection broke before the handshake completed.
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        let frame = code.application_frame(reason)?;
        {
            let mut inner = self.shared.lock();
            if inner.close_request.is_some()
                || !inner.transport.is_open()
                || inner.mux.closed().is_some()
            {
                return Err(Error::AlreadyClosed);
            }
            inner.mux.close_all(Error::ConnectionClosed {
                code,
                reason: reason.to_owned(),
            });
            inner.close_request = Some(frame);
        }
        let key = WaitKey::Connection(self.shared.waiters.next_key());
        poll_fn(|cx| self.shared.poll_op(cx, key, Inner::poll_ended)).await
    }

    /// Drives the connection until it is over: reads the socket, answers pings, accepts streams
    /// into the [`accept`](Self::accept) queue, sends what streams wrote. Spawn it when nothing
    /// else may be waiting on the connection for a while. Optional: waiting on any handle drives
    /// the connection just as well.
    ///
    /// Resolves to `Ok(())` once the connection closed with a Close frame, or to its error
    /// (1006 when it ended without one).
    pub fn run(&self) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let shared = self.shared.clone();
        let key = WaitKey::Connection(shared.waiters.next_key());
        poll_fn(move |cx| shared.poll_op(cx, key, Inner::poll_ended))
    }

    /// Which side of the WebSocket this is.
    pub fn side(&self) -> Side {
        self.shared.lock().mux.side()
    }

    /// How many streams the connection currently tracks (open, or closing with messages still to
    /// send).
    pub fn stream_count(&self) -> usize {
        self.shared.lock().mux.stream_count()
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.shared.lock();
        f.debug_struct("Connection")
            .field("side", &inner.mux.side())
            .field("streams", &inner.mux.stream_count())
            .field("transport", &inner.transport)
            .finish()
    }
}

/// Subscribe to the connection's [`WsEvent`]s. Fails with a pharos "closed" error once the
/// connection is over.
impl Observable<WsEvent> for Connection {
    type Error = PharErr;

    fn observe(&mut self, options: ObserveConfig<WsEvent>) -> Observe<'_, WsEvent, Self::Error> {
        let events = self.shared.lock().transport.events.observe(options);
        async move { events }.boxed()
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> ConnGuard<'_, Inner> {
        self.inner.lock()
    }

    /// Runs `op`; if it must wait, drives the connection and tries again. If it still must wait,
    /// the task sleeps under `key` and is woken by the socket or by the event `op` waits for.
    ///
    /// An `op` that can complete at once (data already buffered, credit and buffer room left)
    /// does not touch the socket's read side: only waiting must drive, and a poll of a socket
    /// that has nothing is not free. What `op` queued (data, a FIN, an ACK) is sent at once.
    ///
    /// `op` must only have effects when it returns `Ready`: it may run several times.
    pub(crate) fn poll_op<T>(
        &self,
        cx: &mut Context<'_>,
        key: WaitKey,
        mut op: impl FnMut(&mut Inner) -> Poll<T>,
    ) -> Poll<T> {
        // A busy lock parks the task, not the executor thread (see `conn_lock`).
        let Some(mut inner) = self.inner.poll_lock(cx) else {
            return Poll::Pending;
        };
        let outcome = op(&mut inner);
        if outcome.is_ready() {
            inner.send_queued(&self.socket_waker, &self.waiters);
            return outcome;
        }
        // A read stops receiving once its stream has data (see `receive_messages`).
        let until = match key {
            WaitKey::Read(id) => Some(id),
            _ => None,
        };
        for _ in 0..MAX_DRIVE_RETRIES {
            let epoch = self.waiters.epoch();
            inner.drive_until(&self.socket_waker, &self.waiters, until);
            let outcome = op(&mut inner);
            if outcome.is_pending() {
                // About to wait: nothing written may sit held back meanwhile.
                inner.mux.uncork_all();
            }
            if inner.mux.has_transmit() {
                // Send what `op` queued now rather than on the next poll.
                inner.send_queued(&self.socket_waker, &self.waiters);
            }
            if outcome.is_ready() {
                return outcome;
            }
            self.waiters.register(key, cx.waker());
            // Sending may have made `op` ready, waking a key we had not registered yet.
            let outcome = op(&mut inner);
            if outcome.is_ready() {
                self.waiters.unregister(key);
                return outcome;
            }
            if self.waiters.epoch() == epoch {
                return Poll::Pending;
            }
            // The socket woke while we were driving: it may have more for us.
        }
        // The socket keeps waking us at once. Under tokio that is its cooperative budget, which
        // only the scheduler renews: yield to it instead of spinning.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Drives without waiting: for drops and one-shot actions (`reset`, `stop`).
    pub(crate) fn drive_now(&self, inner: &mut Inner) {
        inner.drive(&self.socket_waker, &self.waiters);
    }

    pub(crate) fn waiters(&self) -> &Waiters {
        &self.waiters
    }
}

impl Inner {
    /// `Ready` once the connection is over: `Ok` after a closing handshake, the error otherwise
    /// (1006 when it ended without a Close frame).
    fn poll_ended(&mut self) -> Poll<Result<(), Error>> {
        match self.transport.terminal() {
            Some(Error::ConnectionClosed { code, .. }) if *code != CloseCode::ABNORMAL => {
                Poll::Ready(Ok(()))
            }
            Some(err) => Poll::Ready(Err(err.clone())),
            None => Poll::Pending,
        }
    }

    /// Whether bytes handed to the socket still wait for a flush.
    pub(crate) fn transport_needs_flush(&self) -> bool {
        self.transport.needs_flush()
    }

    /// One pass over the socket: receive, send, publish, wake.
    fn drive(&mut self, socket_waker: &Waker, waiters: &Waiters) {
        self.drive_until(socket_waker, waiters, None);
    }

    /// A pass over the socket that stops receiving once stream `until` has something to read.
    fn drive_until(&mut self, socket_waker: &Waker, waiters: &Waiters, until: Option<StreamId>) {
        let mut cx = Context::from_waker(socket_waker);
        self.receive(&mut cx, waiters, until);
        self.send_queued(socket_waker, waiters);
    }

    /// Sends what is queued, publishes events and wakes the handles concerned; does not read the
    /// socket.
    fn send_queued(&mut self, socket_waker: &Waker, waiters: &Waiters) {
        let mut cx = Context::from_waker(socket_waker);
        self.transmit(&mut cx);
        self.transport.events.poll_deliver(&mut cx);
        for wake in self.mux.take_wakes() {
            match wake {
                Wake::Read(id) => waiters.wake(WaitKey::Read(id)),
                Wake::Write(id) => waiters.wake(WaitKey::Write(id)),
                Wake::Accept => waiters.wake_matching(|k| matches!(k, WaitKey::Accept(_))),
                Wake::Open => waiters.wake_matching(|k| matches!(k, WaitKey::Open(_))),
            }
        }
        if self.transport.terminal().is_some() {
            // Close, run and every other waiter must see the end.
            waiters.wake_matching(|_| true);
        }
    }

    fn receive(&mut self, cx: &mut Context<'_>, waiters: &Waiters, until: Option<StreamId>) {
        let parked = self
            .recv_parked_at
            .is_some_and(|epoch| epoch == waiters.epoch());
        if !parked {
            self.recv_parked_at = None;
            self.receive_messages(cx, waiters, until);
        }
        self.settle_close();
    }

    fn receive_messages(
        &mut self,
        cx: &mut Context<'_>,
        waiters: &Waiters,
        until: Option<StreamId>,
    ) {
        let mut budget = RECEIVE_BUDGET;
        loop {
            if budget == 0 {
                // More may be waiting; let other tasks run, then continue.
                cx.waker().wake_by_ref();
                return;
            }
            // Read before the poll: a wake-up during it must make the next drive poll again.
            let epoch = waiters.epoch();
            match self.transport.poll_recv(cx) {
                Poll::Ready(Ok(msg)) => {
                    budget -= 1;
                    if let Err(violation) = self.mux.handle_message(&msg) {
                        self.transport.fail(violation);
                    }
                    // A DATA payload is a slice of tungstenite's read buffer: ours goes now.
                    drop(msg);
                    self.forward_events();
                    if until.is_some_and(|id| self.mux.readable(id)) {
                        // The reader that drives has data: stop rather than pull all the socket
                        // holds. Payloads waiting in streams pin tungstenite's read buffer, which
                        // then allocates a fresh one for every read (page faults, a memset of
                        // fresh pages, the partial frame copied over): a third of a bulk
                        // reader's time. What is left is not signalled by the socket again, so
                        // the tasks asleep on it are woken to drive on.
                        if waiters.has_sleepers() {
                            cx.waker().wake_by_ref();
                        }
                        return;
                    }
                }
                Poll::Pending => {
                    self.recv_parked_at = Some(epoch);
                    return;
                }
                Poll::Ready(Err(_)) => return,
            }
        }
    }

    fn transmit(&mut self, cx: &mut Context<'_>) {
        while self.mux.has_transmit() && self.transport.is_open() {
            match self.transport.poll_ready_send(cx) {
                Poll::Ready(Ok(())) => {
                    let Some(msg) = self.mux.poll_transmit() else {
                        break;
                    };
                    if self.transport.send(msg).is_err() {
                        break;
                    }
                }
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
        if !self.mux.has_transmit() && self.transport.is_open() {
            if let Some(frame) = self.close_request.take() {
                let _ = self.transport.start_close(frame);
            }
        }
        if self.transport.needs_flush() {
            let _ = self.transport.poll_flush(cx);
        }
        if !self.transport.is_open() {
            // Closing: keep the handshake going. Nothing queued can leave any more.
            let _ = self.transport.poll_closed(cx);
            self.mux.discard_transmit();
        }
        self.settle_close();
    }

    /// Once the connection is closing or over, every stream fails with its error.
    fn settle_close(&mut self) {
        if let Some(err) = self.transport.closing_error() {
            self.mux.close_all(err);
            if self.transport.terminal().is_some() {
                self.mux.discard_transmit();
            }
        }
        self.forward_events();
    }

    fn forward_events(&mut self) {
        for event in self.mux.take_events() {
            self.transport.events.emit(event);
        }
    }
}
