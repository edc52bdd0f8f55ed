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
    connect::{request_with_protocols, selected_protocol, shared as shared_connector},
    error::Error,
    handshake::{self, AcceptConfig, UpgradeRequest},
    io::{WsIo, WsIoConfig},
    io_websocket_config,
    mux::Connection,
    websocket_config, Config, Protocol, QmuxProtocols, Side,
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
    connect_offering(url, &[], config).await
}

/// Connects like [`connect`], offering the QMux subprotocols of `protocols`: the connection
/// speaks QMux, in the version and for the application the server selected (see
/// [`Connection::protocol`]).
///
/// # Errors
/// As [`connect`]; [`Error::Handshake`] also when the server selected no QMux subprotocol.
pub async fn connect_qmux(
    url: &str,
    protocols: &QmuxProtocols,
    config: Config,
) -> Result<Connection, Error> {
    connect_offering(url, &protocols.subprotocols(), config).await
}

async fn connect_offering(
    url: &str,
    subprotocols: &[String],
    config: Config,
) -> Result<Connection, Error> {
    config.validate()?;
    let request = request_with_protocols(url, subprotocols)?;
    let (ws, selected) = dial(request, websocket_config(&config)).await?;
    let protocol = Protocol::from_subprotocol(selected.as_deref());
    let peer = ws.get_ref().get_ref().peer_addr().ok();
    let conn = Connection::new(ws, Side::Client, protocol, config)?;
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
/// The connection speaks QMux when the subprotocol selected is a QMux one (list
/// [`QmuxProtocols::subprotocols`] in [`AcceptConfig::protocols`] to accept them), the
/// @matrixai/ws protocol otherwise.
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
    let protocol = Protocol::from_subprotocol(request.protocol.as_deref());
    let conn = Connection::new(ws, Side::Server, protocol, config)?;
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
    let (ws, _) = dial(url, io_websocket_config(&config)).await?;
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

/// Connects over tokio TCP with `TCP_NODELAY`; returns the socket and the subprotocol the server
/// selected.
async fn dial(
    request: impl async_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
    websocket: async_tungstenite::tungstenite::protocol::WebSocketConfig,
) -> Result<(WebSocketStream<TokioTcp>, Option<String>), Error> {
    let (ws, response) = shared_connector()
        .connect_with_websocket(
            request,
            |address| async move {
                let tcp = TcpStream::connect(address).await?;
                tcp.set_nodelay(true)?;
                Ok(tcp.compat())
            },
            websocket,
        )
        .await?;
    Ok((ws, selected_protocol(&response).map(str::to_owned)))
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
