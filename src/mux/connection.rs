//! [`Connection`]: many byte streams over one WebSocket.

use std::{
    future::{poll_fn, Future},
    net::SocketAddr,
    sync::{Arc, OnceLock},
    task::Poll,
    time::{Duration, Instant},
};

use async_tungstenite::WebSocketStream;
use futures::{AsyncRead, AsyncWrite};
use pharos::{Observable, Observe, ObserveConfig, PharErr};

use super::{
    handle::{Handle, Inner},
    stream::{RecvStream, SendStream, WsStream},
};
use crate::{
    engine::{
        events::EventStream,
        pump::Io,
        shared::Shared,
        transport::{BoxSocket, Transport},
        wakers::Slot,
    },
    error::{Error, Timeout},
    event::WsEvent,
    proto::{
        CloseCode, CloseOutcome, CloseRefused, Config, ConnectionError, DatagramError, Dir,
        ErrorCode, Mux, OpenError, Protocol, Side, Stats, StreamKey,
    },
};

/// A multiplexed connection: many independent streams over one WebSocket.
///
/// A cheap, cloneable handle (`Send + Sync`); all clones and streams share the connection.
///
/// # Driving
///
/// Spawn [`run`](Self::run) on your runtime when the connection carries more than a handful of
/// streams: the driver then reads the socket and wakes exactly the tasks whose streams have news,
/// so an idle stream costs nothing. Without a driver, whatever waits on the connection — a read, a
/// write waiting for credit, [`accept`](Self::accept), [`open`](Self::open),
/// [`close`](Self::close) — drives it, and a socket wake-up wakes every waiting task (correct
/// whatever they do, but the cost of a message grows with the number of waiting tasks). See the
/// crate documentation, "Driving", for the rule.
///
/// # Closing
///
/// [`close`](Self::close) sends a Close frame with your code after the data already written and
/// returns once the peer answered, within [`Config::close_timeout`]. Every stream then fails in
/// band with [`Error::ConnectionClosed`] carrying that code (data that had already arrived stays
/// readable first). If the peer closes, streams see its code; if the connection ends without a
/// Close frame (TCP dropped), they see 1006. [`shutdown`](Self::shutdown) closes gracefully: new
/// streams are refused, open ones finish, then it closes. When every handle — every clone and
/// every stream — is dropped, the connection closes with 1000: a running driver completes the
/// handshake, otherwise the Close frame is sent if the socket takes it and TCP is dropped.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::{AsyncReadExt, AsyncWriteExt};
/// use ws_stream_mux::{CloseCode, Config, Connection};
///
/// let tcp = async_std::net::TcpStream::connect("127.0.0.1:8080").await?;
/// let (ws, _) = async_tungstenite::client_async("ws://127.0.0.1:8080/", tcp).await?;
/// let conn = Connection::client(ws, Config::default())?;
/// async_std::task::spawn(conn.run());
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
    handle: Handle,
}

impl Connection {
    /// A connection on the client side of `ws` (the side that sent the HTTP upgrade), speaking
    /// the @matrixai/ws protocol.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `config` is out of range ([`Config::validate`]).
    pub fn client<S>(ws: WebSocketStream<S>, config: Config) -> Result<Self, Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::new(ws, Side::Client, Protocol::Wire, config)
    }

    /// A connection on the server side of `ws`, speaking the @matrixai/ws protocol.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `config` is out of range ([`Config::validate`]).
    pub fn server<S>(ws: WebSocketStream<S>, config: Config) -> Result<Self, Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::new(ws, Side::Server, Protocol::Wire, config)
    }

    /// A connection on `side` of `ws` speaking `protocol` (the one the WebSocket handshake
    /// negotiated).
    ///
    /// The socket's own limits (async-tungstenite's `WebSocketConfig`) apply before ours: build it
    /// with [`websocket_config`](crate::websocket_config) so that a message over our limit is
    /// refused before it is reassembled.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `config` is out of range ([`Config::validate`]).
    pub fn new<S>(
        ws: WebSocketStream<S>,
        side: Side,
        protocol: Protocol,
        config: Config,
    ) -> Result<Self, Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        config.validate()?;
        let read_buffer = ws.get_config().read_buffer_size;
        let event_queue = config.event_queue;
        let max_message_size = config.max_message_size_for(protocol);
        let mut mux = Mux::new(side, protocol, config, Instant::now());
        mux.set_pin_unit(read_buffer);
        let transport = Transport::new(Box::new(ws) as BoxSocket, max_message_size);
        let span = crate::engine::span::connection(side, protocol);
        let inner = Arc::new(Inner {
            engine: Shared::new(mux, Io::new(transport), event_queue, span),
            peer_addr: OnceLock::new(),
        });
        Ok(Self {
            handle: Handle::new(inner),
        })
    }

    /// Records the peer's address (the helpers that accept and connect do), for
    /// [`peer_addr`](Self::peer_addr).
    pub fn with_peer_addr(self, addr: SocketAddr) -> Self {
        let _ = self.handle.0.peer_addr.set(addr);
        self
    }

    /// The peer's address, when the connection was made by one of this crate's helpers or told
    /// with [`with_peer_addr`](Self::with_peer_addr).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.handle.0.peer_addr.get().copied()
    }

    fn engine(&self) -> &Shared<Mux> {
        self.handle.engine()
    }

    /// Opens a bidirectional stream. Waits while [`Config::max_streams`] of our streams are open.
    ///
    /// The peer learns of the stream from our first message (the @matrixai/ws protocol: an ACK
    /// with our window; our writes wait for its ACK before any data leaves).
    ///
    /// With QMux it also waits, once, for the peer's transport parameters: how many streams it
    /// lets us open. The peer sends them when its connection is first polled — by its driver, or
    /// by any operation of its own, such as a pending `accept` — so a peer that never polls its
    /// connection keeps this waiting (as it would keep any of our writes waiting for credit).
    ///
    /// # Errors
    /// The connection's error once it is closing; [`Error::ShuttingDown`] during a
    /// [`shutdown`](Self::shutdown).
    pub async fn open(&self) -> Result<WsStream, Error> {
        let key = self.open_key(Dir::Bi).await?;
        Ok(WsStream::new(&self.handle, key))
    }

    /// Same as [`open`](Self::open) (quinn's name).
    pub async fn open_bi(&self) -> Result<WsStream, Error> {
        self.open().await
    }

    /// Opens a unidirectional stream (QMux only).
    ///
    /// # Errors
    /// [`Error::Unsupported`] with the @matrixai/ws protocol; otherwise as [`open`](Self::open).
    pub async fn open_uni(&self) -> Result<SendStream, Error> {
        let key = self.open_key(Dir::Uni).await?;
        Ok(SendStream::new(self.handle.clone(), key))
    }

    async fn open_key(&self, dir: Dir) -> Result<StreamKey, Error> {
        poll_fn(|cx| {
            self.engine().poll_op(cx, Slot::Openable(dir), |mux, now| {
                match mux.open(now, dir) {
                    Ok(Some(key)) => Poll::Ready(Ok(key)),
                    Ok(None) => Poll::Pending,
                    Err(OpenError::Closed(err)) => Poll::Ready(Err(err.into())),
                    Err(OpenError::ShuttingDown) => Poll::Ready(Err(Error::ShuttingDown)),
                    Err(OpenError::Unsupported(err)) => Poll::Ready(Err(err.into())),
                }
            })
        })
        .await
    }

    /// The next bidirectional stream the peer opened.
    ///
    /// # Errors
    /// The connection's error once it is closing (streams that arrived before are handed out
    /// first).
    pub async fn accept(&self) -> Result<WsStream, Error> {
        let key = self.accept_key(Dir::Bi).await?;
        Ok(WsStream::new(&self.handle, key))
    }

    /// Same as [`accept`](Self::accept) (quinn's name).
    pub async fn accept_bi(&self) -> Result<WsStream, Error> {
        self.accept().await
    }

    /// The next unidirectional stream the peer opened (QMux only; with the @matrixai/ws protocol
    /// it waits until the connection closes).
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub async fn accept_uni(&self) -> Result<RecvStream, Error> {
        let key = self.accept_key(Dir::Uni).await?;
        Ok(RecvStream::new(self.handle.clone(), key))
    }

    async fn accept_key(&self, dir: Dir) -> Result<StreamKey, Error> {
        poll_fn(|cx| {
            self.engine()
                .poll_op(cx, Slot::Incoming(dir), |mux, _| match mux.accept(dir) {
                    Ok(Some(key)) => Poll::Ready(Ok(key)),
                    Ok(None) => Poll::Pending,
                    Err(err) => Poll::Ready(Err(err.into())),
                })
        })
        .await
    }

    /// Closes the connection: the data already written is sent, then a Close frame with `code`
    /// and `reason`; returns `Ok` once the peer answered with its Close frame.
    ///
    /// Streams fail from now on with [`Error::ConnectionClosed`] carrying `code` and `reason`.
    /// Whatever the peer does, this returns within [`Config::close_timeout`] of the call: data
    /// that could not leave by then is abandoned and the connection dropped.
    ///
    /// # Errors
    /// - [`Error::InvalidCloseCode`]: only 1000, 1001 and 4000–4999 may be sent by applications.
    /// - [`Error::CloseReasonTooLong`]: the reason is over 123 bytes (it is never truncated).
    /// - [`Error::AlreadyClosed`]: a Close frame was already sent or received.
    /// - [`Error::TimedOut`] ([`Timeout::Close`]): the peer did not answer in time.
    /// - [`Error::ConnectionClosed`] with 1006: the connection ended without the peer's answer
    ///   (also when it had already ended so, before the call).
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        code.check_application(reason)?;
        self.start_close(|mux, now| Ok(mux.close(now, code, reason)))
            .await
    }

    /// Closes a QMux connection with an application error code (any value up to 2^62−1, as
    /// quinn's `close` takes): an APPLICATION_CLOSE frame after the data already written, then a
    /// WebSocket Close frame with 1000. Returns like [`close`](Self::close); streams fail with
    /// [`Error::ApplicationClosed`] carrying the code and reason, here and at the peer.
    ///
    /// ([`close`](Self::close) on a QMux connection sends the application code 0 for 1000 and
    /// 1001, and the close code's number otherwise.)
    ///
    /// # Errors
    /// - [`Error::Unsupported`] with the @matrixai/ws protocol, whose close carries a WebSocket
    ///   close code only;
    /// - [`Error::InvalidErrorCode`] above 2^62−1; [`Error::CloseReasonTooLong`] over 123 bytes;
    /// - otherwise as [`close`](Self::close).
    pub async fn close_application(&self, code: ErrorCode, reason: &str) -> Result<(), Error> {
        crate::proto::code::check_reason(reason)?;
        self.start_close(|mux, now| Ok(mux.close_application(now, code, reason)?))
            .await
    }

    /// Starts a close, a QMux application close or a shutdown with `start` (the core refuses a
    /// second one: [`close_refused`] says why), sends it, and waits for its outcome.
    async fn start_close(
        &self,
        start: impl FnOnce(&mut Mux, Instant) -> Result<Result<(), CloseRefused>, Error>,
    ) -> Result<(), Error> {
        self.engine().with_state(|state| {
            let refused = start(&mut state.session, Instant::now())?;
            refused.map_err(|_| close_refused(&state.session))
        })?;
        self.engine().drive(true);
        self.wait_close_outcome().await
    }

    async fn wait_close_outcome(&self) -> Result<(), Error> {
        poll_fn(|cx| {
            self.engine().poll_op(cx, Slot::Connection, |mux, _| {
                let Some(end) = mux.terminal() else {
                    return Poll::Pending;
                };
                Poll::Ready(match mux.close_outcome() {
                    Some(CloseOutcome::Completed) => Ok(()),
                    Some(CloseOutcome::TimedOut) => Err(Error::TimedOut(Timeout::Close)),
                    Some(CloseOutcome::Abnormal) | None => Err(end.clone().into()),
                })
            })
        })
        .await
    }

    /// Shuts down gracefully: new streams from the peer are refused and [`open`](Self::open)
    /// fails with [`Error::ShuttingDown`]; the streams already open carry on until they are over
    /// (both halves ended and their handles dropped), then the connection closes with `code` and
    /// `reason`. After `deadline` it closes anyway (streams still open fail with the close).
    /// Returns like [`close`](Self::close).
    ///
    /// # Errors
    /// As [`close`](Self::close).
    pub async fn shutdown(
        &self,
        code: CloseCode,
        reason: &str,
        deadline: Option<Duration>,
    ) -> Result<(), Error> {
        code.check_application(reason)?;
        self.start_close(|mux, now| Ok(mux.shutdown(now, code, reason, deadline)))
            .await
    }

    /// Waits until the connection is over and returns why: [`Error::ConnectionClosed`] with the
    /// code and reason of the Close frame (ours or the peer's, 1006 without one), or the
    /// violation, timeout or QMux close that ended it.
    pub async fn closed(&self) -> Error {
        poll_fn(|cx| {
            self.engine()
                .poll_op(cx, Slot::Connection, |mux, _| match mux.terminal() {
                    Some(end) => Poll::Ready(Error::from(end.clone())),
                    None => Poll::Pending,
                })
        })
        .await
    }

    /// Whether the connection is closing or closed (a Close frame was sent or received, or it
    /// ended).
    pub fn is_closed(&self) -> bool {
        self.engine()
            .with_state(|state| state.session.closing_error().is_some())
    }

    /// Why the connection is closing or closed, if it is.
    pub fn close_reason(&self) -> Option<Error> {
        self.engine()
            .with_state(|state| state.session.closing_error().map(Error::from))
    }

    /// Sends a ping and returns the round-trip time when its pong comes (a WebSocket Ping with
    /// the @matrixai/ws protocol). Waits as long as the connection lives: put a timeout around it,
    /// or set [`Config::idle_timeout`].
    ///
    /// # Errors
    /// The connection's error when it closes first; [`Error::TimedOut`] ([`Timeout::Ping`]) when
    /// more pings were outstanding than are remembered (16) and this one was forgotten.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let number = self.engine().with_state(|state| {
            state
                .session
                .ping()
                .ok_or_else(|| error_of(state.session.closing_error()))
        })?;
        self.engine().drive(true);
        poll_fn(|cx| {
            self.engine().poll_op(cx, Slot::Connection, |mux, _| {
                if let Some(rtt) = mux.ping_result(number) {
                    return Poll::Ready(Ok(rtt));
                }
                if let Some(err) = mux.closing_error() {
                    return Poll::Ready(Err(err.into()));
                }
                if mux.ping_pending(number) {
                    Poll::Pending
                } else {
                    Poll::Ready(Err(Error::TimedOut(Timeout::Ping)))
                }
            })
        })
        .await
    }

    /// Sends a datagram (QMux): an unreliable message of at most
    /// [`max_datagram_size`](Self::max_datagram_size) bytes, outside any stream. It is queued and
    /// leaves with the connection's next messages; when [`Config::datagram_queue`] datagrams
    /// wait already, the oldest is dropped (counted in [`Stats::datagrams_dropped`]), as quinn
    /// does. Before the peer's parameters arrive it is queued unchecked, and dropped then if the
    /// peer accepts none or none that large.
    ///
    /// # Errors
    /// - [`Error::Unsupported`] with the @matrixai/ws protocol, or when the peer accepts no
    ///   datagrams;
    /// - [`Error::DatagramTooLarge`] above what the peer accepts;
    /// - the connection's error once it is closing.
    pub fn send_datagram(&self, data: bytes::Bytes) -> Result<(), Error> {
        let sent = self
            .engine()
            .with_state(|state| state.session.send_datagram(data));
        match sent {
            Ok(()) => {
                self.engine().drive(true);
                Ok(())
            }
            Err(err) => Err(datagram_error(err)),
        }
    }

    /// The next datagram the peer sent (QMux). Datagrams wait in a queue of
    /// [`Config::datagram_queue`]; when it is full, the oldest is dropped for a new one.
    ///
    /// # Errors
    /// [`Error::Unsupported`] with the @matrixai/ws protocol; the connection's error once it is
    /// closing (datagrams that arrived before are handed out first).
    pub async fn read_datagram(&self) -> Result<bytes::Bytes, Error> {
        poll_fn(|cx| {
            self.engine()
                .poll_op(cx, Slot::Datagram, |mux, _| match mux.read_datagram() {
                    Ok(Some(datagram)) => Poll::Ready(Ok(datagram)),
                    Ok(None) => Poll::Pending,
                    Err(err) => Poll::Ready(Err(datagram_error(err))),
                })
        })
        .await
    }

    /// The largest datagram the peer accepts: `None` with the @matrixai/ws protocol, until the
    /// peer's QMux parameters arrived, or when it accepts none.
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.engine()
            .with_state(|state| state.session.max_datagram_size())
    }

    /// The last measured round-trip time (from [`ping`](Self::ping) or keep-alive pings).
    pub fn rtt(&self) -> Option<Duration> {
        self.engine().with_state(|state| state.session.rtt())
    }

    /// What the connection counted so far.
    pub fn stats(&self) -> Stats {
        self.engine().with_state(|state| state.session.stats())
    }

    /// Drives the connection until it is over: reads the socket, answers pings, accepts streams
    /// into the [`accept`](Self::accept) queue, sends what streams wrote, and wakes exactly the
    /// tasks whose streams have news. Spawn it once on your runtime — on its own task, polled
    /// continuously: while it exists, other handles leave reading the socket to it.
    ///
    /// Dropping it is safe at any time: the handles then drive for themselves again.
    ///
    /// Resolves to `Ok(())` once the connection closed with a Close frame, or to the error that
    /// ended it (1006 when it ended without one).
    pub fn run(&self) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let inner = Arc::clone(&self.handle.0);
        let id = inner.engine.next_driver_id();
        let driver = Driver { inner, id };
        poll_fn(move |cx| {
            driver
                .inner
                .engine
                .poll_driver(cx, id, |mux| mux.terminal().map(run_result))
        })
    }

    /// Subscribes to the connection's events: a stream of [`WsEvent`]s that ends after
    /// [`WsEvent::Closed`], with a bounded queue ([`Config::event_queue`]).
    pub fn events(&self) -> EventStream {
        self.engine().with_state(|state| state.events.subscribe())
    }

    /// Which side of the WebSocket this is.
    pub fn side(&self) -> Side {
        self.engine().with_state(|state| state.session.side())
    }

    /// The protocol the connection speaks.
    pub fn protocol(&self) -> Protocol {
        self.engine().with_state(|state| state.session.protocol())
    }

    /// How many streams the connection currently tracks (open, or closing with messages still to
    /// send).
    pub fn stream_count(&self) -> usize {
        self.engine()
            .with_state(|state| state.session.stream_count())
    }
}

fn datagram_error(err: DatagramError) -> Error {
    match err {
        DatagramError::Closed(err) => err.into(),
        DatagramError::Unsupported(_) => {
            Error::Unsupported("datagrams (QMux, with a peer that accepts them)")
        }
        DatagramError::TooLarge { size, max } => Error::DatagramTooLarge { size, max },
    }
}

/// Why a close or shutdown was refused: [`Error::AlreadyClosed`] once a Close frame was sent or
/// received (or a shutdown is under way); the connection's own error (1006) if it ended without
/// one — what every other operation reports then.
fn close_refused(mux: &Mux) -> Error {
    match mux.closing_error() {
        Some(end @ ConnectionError::Abnormal { .. }) => end.into(),
        _ => Error::AlreadyClosed,
    }
}

fn error_of(err: Option<ConnectionError>) -> Error {
    err.map_or(Error::AlreadyClosed, Error::from)
}

/// What `run` resolves to: `Ok` after a closing handshake.
fn run_result(end: &ConnectionError) -> Result<(), Error> {
    match end {
        ConnectionError::Closed { .. } | ConnectionError::ApplicationClosed { .. } => Ok(()),
        other => Err(other.clone().into()),
    }
}

/// The driver future's registration: dropping it hands driving back to the handles.
struct Driver {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.inner.engine.resign(self.id);
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (side, streams) = self
            .engine()
            .with_state(|state| (state.session.side(), state.session.stream_count()));
        f.debug_struct("Connection")
            .field("side", &side)
            .field("streams", &streams)
            .field("peer_addr", &self.peer_addr())
            .finish_non_exhaustive()
    }
}

/// Subscribe to the connection's [`WsEvent`]s through pharos. The channel is always bounded (to
/// [`Config::event_queue`] events, whatever channel is asked for; filters are kept). Fails with a
/// pharos "closed" error once the connection is over. [`Connection::events`] guarantees the final
/// [`WsEvent::Closed`] even to an observer that fell behind; a pharos channel that is full when
/// the connection ends misses it.
impl Observable<WsEvent> for Connection {
    type Error = PharErr;

    fn observe(&mut self, options: ObserveConfig<WsEvent>) -> Observe<'_, WsEvent, Self::Error> {
        let events = self
            .engine()
            .with_state(|state| state.events.observe(options));
        Box::pin(async move { events })
    }
}
