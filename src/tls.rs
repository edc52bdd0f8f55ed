//! WebSockets over TLS (`wss://`) with rustls, for both ends of a connection. Feature `tls`.
//!
//! Peers such as the TypeScript `@matrixai/ws` speak only `wss://`. This module gets you from a
//! TCP stream (any futures-io `AsyncRead + AsyncWrite`, whatever the runtime) to the
//! `WebSocketStream` that [`Connection`](crate::Connection) and friends take:
//!
//! - clients: [`client_config`] trusts the root certificates you give it (your own CA, or a
//!   throw-away self-signed certificate in tests); [`connect`] runs the TLS handshake and the
//!   WebSocket upgrade with async-tungstenite's rustls support.
//! - servers: [`server_config`] holds your certificate chain and key; [`accept`] runs the TLS
//!   handshake, then the same checked WebSocket handshake as
//!   [`handshake::accept`](crate::handshake::accept), within its timeout.
//!
//! The cryptography is rustls with the *ring* provider. No runtime is assumed: the TLS streams
//! are futures-rustls's over any futures-io stream. [`connect`] has no timeout of its own (use
//! [`Connector`](crate::connect::Connector), or your runtime's timeout).
//!
//! ```no_run
//! # async fn demo(cert_der: Vec<u8>, key_der: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! use async_std::net::{TcpListener, TcpStream};
//! use ws_stream_mux::{
//!     tls::{self, rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer}},
//!     Config, Connection,
//! };
//!
//! // Server side.
//! let server_config = tls::server_config(
//!     vec![CertificateDer::from(cert_der.clone())],
//!     PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
//! )?;
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! async_std::task::spawn(async move {
//!     let (tcp, _) = listener.accept().await?;
//!     let (ws, _request) = tls::accept(tcp, server_config, &Default::default()).await?;
//!     let conn = Connection::server(ws, Config::default())?;
//!     // ... conn.accept().await ...
//!     # drop(conn);
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! });
//!
//! // Client side, trusting exactly that certificate.
//! let client_config = tls::client_config([CertificateDer::from(cert_der)])?;
//! let tcp = TcpStream::connect(addr).await?;
//! let (ws, _response) = tls::connect(&format!("wss://localhost:{}/", addr.port()), tcp, client_config).await?;
//! let conn = Connection::client(ws, Config::default())?;
//! # drop(conn);
//! # Ok(()) }
//! ```

use std::{io, pin::pin, sync::Arc};

use async_tungstenite::{
    client_async_with_config,
    tungstenite::{
        client::IntoClientRequest, handshake::client::Response, protocol::WebSocketConfig,
    },
    WebSocketStream,
};
use futures::{
    future::{select, Either},
    AsyncRead, AsyncWrite,
};
use futures_rustls::{
    rustls::{
        self as rustls_crate,
        pki_types::{CertificateDer, PrivateKeyDer, ServerName},
        ClientConfig, RootCertStore, ServerConfig,
    },
    TlsAcceptor, TlsConnector,
};
use futures_timer::Delay;

use crate::{
    error::Error,
    handshake::{AcceptConfig, HandshakeError, UpgradeRequest},
};

/// The rustls version this module is built on, re-exported so that your certificate and config
/// types are the same as ours.
pub use futures_rustls::rustls;

/// What [`connect`] returns the WebSocket over: TLS for a `wss://` URL, the bare stream for
/// `ws://`.
#[derive(Debug)]
pub enum ClientStream<S> {
    /// `ws://`: the stream as it was.
    Plain(S),
    /// `wss://`: TLS over the stream.
    Tls(Box<futures_rustls::client::TlsStream<S>>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClientStream<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => std::pin::Pin::new(stream).poll_read(cx, buf),
            ClientStream::Tls(stream) => std::pin::Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ClientStream<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => std::pin::Pin::new(stream).poll_write(cx, buf),
            ClientStream::Tls(stream) => std::pin::Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => std::pin::Pin::new(stream).poll_flush(cx),
            ClientStream::Tls(stream) => std::pin::Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => std::pin::Pin::new(stream).poll_close(cx),
            ClientStream::Tls(stream) => std::pin::Pin::new(stream).poll_close(cx),
        }
    }
}

/// What [`accept`] returns the WebSocket over.
pub type ServerStream<S> = futures_rustls::server::TlsStream<S>;

fn provider() -> Arc<rustls_crate::crypto::CryptoProvider> {
    Arc::new(rustls_crate::crypto::ring::default_provider())
}

fn config_error(err: rustls_crate::Error) -> Error {
    Error::Io(Arc::new(io::Error::new(io::ErrorKind::InvalidInput, err)))
}

/// A client configuration that trusts exactly `roots` (DER certificates) and presents no client
/// certificate.
///
/// # Errors
/// [`Error::Io`] (kind `InvalidInput`) if a root cannot be parsed or no root is usable.
pub fn client_config<'a>(
    roots: impl IntoIterator<Item = CertificateDer<'a>>,
) -> Result<Arc<ClientConfig>, Error> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root).map_err(config_error)?;
    }
    if store.is_empty() {
        return Err(Error::Io(Arc::new(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no root certificate to trust",
        ))));
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A server configuration presenting `cert_chain` (leaf first) with its private `key`, not asking
/// clients for certificates.
///
/// # Errors
/// [`Error::Io`] (kind `InvalidInput`) if the key does not match or cannot be used.
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, Error> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_no_client_auth()
        .with_single_cert(cert_chain, key)
        .map_err(config_error)?;
    Ok(Arc::new(config))
}

/// Connects a WebSocket to `url` over `stream`: a TLS handshake first for `wss://` (checking the
/// server's certificate against `config` and the URL's host name or IP address), then the HTTP
/// upgrade. The socket gets the crate's default WebSocket limits; see [`connect_with_config`].
///
/// # Errors
/// [`HandshakeError::Io`] if the TLS handshake fails (an untrusted certificate, a name mismatch),
/// [`HandshakeError::InvalidRequest`] for a URL that is not a WebSocket URL,
/// [`HandshakeError::Refused`] with the HTTP status if the upgrade is refused.
pub async fn connect<S>(
    url: &str,
    stream: S,
    config: Arc<ClientConfig>,
) -> Result<(WebSocketStream<ClientStream<S>>, Response), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    connect_with_config(
        url,
        stream,
        config,
        crate::websocket::default_websocket_config(),
    )
    .await
}

/// [`connect`] with the socket's WebSocket configuration: use
/// [`websocket_config`](crate::websocket_config)`(&config)` for a multiplexed connection.
///
/// # Errors
/// As [`connect`].
pub async fn connect_with_config<S>(
    url: &str,
    stream: S,
    config: Arc<ClientConfig>,
    websocket: WebSocketConfig,
) -> Result<(WebSocketStream<ClientStream<S>>, Response), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = url.into_client_request()?;
    let stream = match request.uri().scheme_str() {
        Some("wss") => {
            let host = request
                .uri()
                .host()
                .filter(|host| !host.is_empty())
                .ok_or_else(|| HandshakeError::InvalidRequest("URL without a host".into()))?;
            // An IPv6 literal comes in brackets.
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let name = ServerName::try_from(host)
                .map_err(|err| HandshakeError::InvalidRequest(err.to_string()))?;
            let tls = TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(|err| HandshakeError::Io(Arc::new(err)))?;
            ClientStream::Tls(Box::new(tls))
        }
        Some("ws") => ClientStream::Plain(stream),
        other => {
            return Err(HandshakeError::InvalidRequest(format!(
                "scheme must be ws or wss, not {}",
                other.unwrap_or("none")
            )))
        }
    };
    Ok(client_async_with_config(request, stream, Some(websocket)).await?)
}

/// Accepts a WebSocket over TLS on `stream`: the TLS handshake with `config`, then the same
/// checked WebSocket handshake as [`handshake::accept`](crate::handshake::accept) (real HTTP
/// answers: 400, 403, 404, 426; origin and path policies; subprotocol choice). The whole of it
/// must finish within [`AcceptConfig::timeout`].
///
/// # Errors
/// [`HandshakeError::TimedOut`] when the client was too slow, [`HandshakeError::Io`] if the TLS
/// handshake fails, [`HandshakeError::Rejected`] when the upgrade request was refused (the HTTP
/// answer has been sent).
pub async fn accept<S>(
    stream: S,
    config: Arc<ServerConfig>,
    accept_config: &AcceptConfig,
) -> Result<(WebSocketStream<ServerStream<S>>, UpgradeRequest), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = async {
        let tls = TlsAcceptor::from(config)
            .accept(stream)
            .await
            .map_err(|err| HandshakeError::Io(Arc::new(err)))?;
        crate::handshake::accept(tls, accept_config).await
    };
    match select(pin!(handshake), Delay::new(accept_config.timeout)).await {
        Either::Left((outcome, _)) => outcome,
        Either::Right(((), _)) => Err(HandshakeError::TimedOut),
    }
}
