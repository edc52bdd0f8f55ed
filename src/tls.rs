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
//!   handshake, then the WebSocket handshake.
//!
//! The cryptography is rustls with the *ring* provider. Neither handshake has a timeout of its
//! own: a peer that stalls halfway keeps the future pending, so wrap it in your runtime's timeout.
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
//!     let ws = tls::accept(tcp, server_config).await?;
//!     let conn = Connection::server(ws, Config::default());
//!     // ... conn.accept().await ...
//!     # drop(conn);
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! });
//!
//! // Client side, trusting exactly that certificate.
//! let client_config = tls::client_config([CertificateDer::from(cert_der)])?;
//! let tcp = TcpStream::connect(addr).await?;
//! let (ws, _response) = tls::connect(&format!("wss://localhost:{}/", addr.port()), tcp, client_config).await?;
//! let conn = Connection::client(ws, Config::default());
//! # drop(conn);
//! # Ok(()) }
//! ```

use std::{io, sync::Arc};

use async_tungstenite::{tungstenite::handshake::client::Response, WebSocketStream};
use futures::{AsyncRead, AsyncWrite};
use futures_rustls::{
    rustls::{
        self as rustls_crate,
        pki_types::{CertificateDer, PrivateKeyDer},
        ClientConfig, RootCertStore, ServerConfig,
    },
    TlsAcceptor, TlsConnector,
};

use crate::{error::Error, handshake::HandshakeError};

/// The rustls version this module is built on, re-exported so that your certificate and config
/// types are the same as ours.
pub use futures_rustls::rustls;

/// What [`connect`] returns the WebSocket over: TLS for a `wss://` URL, the bare stream for
/// `ws://`.
pub type ClientStream<S> =
    async_tungstenite::stream::Stream<S, futures_rustls::client::TlsStream<S>>;

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
/// upgrade.
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
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let connector = TlsConnector::from(config);
    Ok(
        async_tungstenite::smol::client_async_tls_with_connector(url, stream, Some(connector))
            .await?,
    )
}

/// Accepts a WebSocket over TLS on `stream`: the TLS handshake with `config`, then the HTTP
/// upgrade.
///
/// # Errors
/// [`HandshakeError::Io`] if the TLS handshake fails, or the upgrade's error (see
/// [`HandshakeError`]).
pub async fn accept<S>(
    stream: S,
    config: Arc<ServerConfig>,
) -> Result<WebSocketStream<ServerStream<S>>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let tls = TlsAcceptor::from(config)
        .accept(stream)
        .await
        .map_err(|err| HandshakeError::Io(Arc::new(err)))?;
    Ok(async_tungstenite::accept_async(tls).await?)
}
