//! Ready connections for tokio (the `tokio` feature): TCP, `TCP_NODELAY`, the compat wrapping,
//! the checked handshake and our socket limits in one call, so that no user writes compat code.
//!
//! A multiplexed [`Connection`] from here comes with its driver ([`Connection::run`]) spawned on
//! the current tokio runtime — the mode recommended for many streams; the task ends with the
//! connection. A [`WsIo`] needs no driver.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ws_stream_mux::Error> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use ws_stream_mux::{handshake::AcceptConfig, CloseCode, Config};
//!
//! // Server: accept TCP, then the checked handshake (400/403/404/426 answers) per connection.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     let (tcp, _) = listener.accept().await?;
//!     let (conn, request) =
//!         ws_stream_mux::tokio::accept(tcp, &AcceptConfig::default(), Config::default()).await?;
//!     println!("{} from {:?}", request.path(), conn.peer_addr());
//!     let mut stream = conn.accept().await?;
//!     let mut buf = Vec::new();
//!     stream.read_to_end(&mut buf).await?;
//!     Ok::<_, ws_stream_mux::Error>(())
//! });
//!
//! // Client.
//! let conn = ws_stream_mux::tokio::connect(&format!("ws://{addr}/"), Config::default()).await?;
//! let mut stream = conn.open().await?;
//! stream.write_all(b"hello").await?;
//! stream.shutdown().await?; // FIN, like `close` in futures-io
//! conn.close(CloseCode::NORMAL, "bye").await?;
//! # Ok(()) }
//! ```
//!
//! Import tokio's `AsyncReadExt`/`AsyncWriteExt` or futures', not both: the streams implement
//! both families, and with both in scope `stream.write_all(..)` is ambiguous.

use ::tokio::net::TcpStream;
use async_tungstenite::WebSocketStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::{
    connect::shared as shared_connector,
    error::Error,
    handshake::{self, AcceptConfig, UpgradeRequest},
    io::{WsIo, WsIoConfig},
    io_websocket_config,
    mux::Connection,
    websocket_config, Config,
};

/// A tokio TCP stream as futures-io, what the WebSockets from here run over.
pub type TokioTcp = Compat<TcpStream>;

/// Connects to `url` over tokio TCP: the connect rules of [`connect::Connector`]
/// (one connection per host being set up at a time, a timeout), `TCP_NODELAY`, the socket built
/// with [`websocket_config`]`(&config)`, and the driver spawned. The peer address is recorded.
///
/// [`connect::Connector`]: crate::connect::Connector
///
/// # Errors
/// [`Error::Handshake`] when TCP or the upgrade failed (with the HTTP status when refused);
/// [`Error::InvalidConfig`] for an invalid `config`.
pub async fn connect(url: &str, config: Config) -> Result<Connection, Error> {
    config.validate()?;
    let ws = dial(url, websocket_config(&config)).await?;
    let peer = ws.get_ref().get_ref().peer_addr().ok();
    let conn = Connection::client(ws, config)?;
    let conn = match peer {
        Some(addr) => conn.with_peer_addr(addr),
        None => conn,
    };
    ::tokio::spawn(conn.run());
    Ok(conn)
}

/// Runs the checked server handshake ([`handshake::accept`]: real HTTP answers, origin and path
/// policies, subprotocols, bounded in size and time) on an accepted tokio TCP stream, and returns
/// the multiplexed connection — its socket built with [`websocket_config`]`(&config)`, its driver
/// spawned, its peer address recorded — with the request. Run it in a task per TCP connection,
/// so that a slow client does not hold up the others.
///
/// # Errors
/// [`Error::Handshake`] when the request was refused (the answer has been sent), too slow, or the
/// socket failed; [`Error::InvalidConfig`] for an invalid `config`.
pub async fn accept(
    tcp: TcpStream,
    accept_config: &AcceptConfig,
    config: Config,
) -> Result<(Connection, UpgradeRequest), Error> {
    config.validate()?;
    let accept_config = accept_config.clone().websocket(websocket_config(&config));
    let (ws, peer, request) = upgrade(tcp, &accept_config).await?;
    let conn = Connection::server(ws, config)?;
    let conn = match peer {
        Some(addr) => conn.with_peer_addr(addr),
        None => conn,
    };
    ::tokio::spawn(conn.run());
    Ok((conn, request))
}

/// Connects a [`WsIo`] to `url` over tokio TCP (see [`connect`]), its socket built with
/// [`io_websocket_config`]`(&config)`.
///
/// # Errors
/// As [`connect`].
pub async fn connect_io(url: &str, config: WsIoConfig) -> Result<WsIo<TokioTcp>, Error> {
    config.validate()?;
    let ws = dial(url, io_websocket_config(&config)).await?;
    WsIo::with_config(ws, config)
}

/// Runs the checked server handshake on an accepted tokio TCP stream (see [`accept`]) and returns
/// a [`WsIo`] with the request and the peer's address.
///
/// # Errors
/// As [`accept`].
pub async fn accept_io(
    tcp: TcpStream,
    accept_config: &AcceptConfig,
    config: WsIoConfig,
) -> Result<(WsIo<TokioTcp>, UpgradeRequest, Option<std::net::SocketAddr>), Error> {
    config.validate()?;
    let accept_config = accept_config
        .clone()
        .websocket(io_websocket_config(&config));
    let (ws, peer, request) = upgrade(tcp, &accept_config).await?;
    Ok((WsIo::with_config(ws, config)?, request, peer))
}

async fn dial(
    url: &str,
    websocket: async_tungstenite::tungstenite::protocol::WebSocketConfig,
) -> Result<WebSocketStream<TokioTcp>, Error> {
    let (ws, _response) = shared_connector()
        .connect_with_websocket(
            url,
            |address| async move {
                let tcp = TcpStream::connect(address).await?;
                tcp.set_nodelay(true)?;
                Ok(tcp.compat())
            },
            websocket,
        )
        .await?;
    Ok(ws)
}

async fn upgrade(
    tcp: TcpStream,
    accept_config: &AcceptConfig,
) -> Result<
    (
        WebSocketStream<TokioTcp>,
        Option<std::net::SocketAddr>,
        UpgradeRequest,
    ),
    Error,
> {
    tcp.set_nodelay(true)?;
    let peer = tcp.peer_addr().ok();
    let (ws, request) = handshake::accept(tcp.compat(), accept_config).await?;
    Ok((ws, peer, request))
}
