//! Client connections under RFC 6455 §4.1's rule: at most one connection per host and port is
//! being set up (in the CONNECTING state) at a time.
//!
//! A [`Connector`] makes concurrent connects to the same `host:port` wait their turn, while
//! connects to different ones go ahead in parallel, and bounds each attempt (TCP connection and
//! upgrade) with a timeout. It opens no sockets itself: you pass a `dial` function that connects
//! to an address (`"host:port"`, what every runtime's `TcpStream::connect` takes) and wraps TLS for
//! `wss://`, so it works under any runtime.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ws_stream_mux::connect::Connector;
//!
//! let connector = Connector::default();
//! let (ws, _response) = connector
//!     .connect("ws://127.0.0.1:9001/chat", async_std::net::TcpStream::connect)
//!     .await?;
//! # drop(ws); Ok(()) }
//! ```

use std::{
    collections::HashMap,
    future::Future,
    io,
    pin::pin,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use async_tungstenite::{
    client_async_with_config,
    tungstenite::{
        self, client::IntoClientRequest, handshake::client::Response, protocol::WebSocketConfig,
    },
    WebSocketStream,
};
use futures::{
    future::{select, Either},
    AsyncRead, AsyncWrite,
};
use futures_timer::Delay;

use crate::handshake::HandshakeError;

/// Settings for a [`Connector`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectConfig {
    /// How long one attempt (`dial` and the upgrade) may take once its turn has come. Waiting for
    /// the turn is not counted: it is bounded by the attempts before it. Default 30 s.
    pub timeout: Duration,
    /// Configuration of the WebSocket (message and frame size limits, buffers). Default: messages
    /// up to 16 MiB. For a multiplexed [`Connection`](crate::Connection) use
    /// [`websocket_config`](crate::websocket_config)`(&config)`.
    pub websocket: WebSocketConfig,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            websocket: crate::websocket::default_websocket_config(),
        }
    }
}

impl ConnectConfig {
    /// Sets [`timeout`](Self::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`websocket`](Self::websocket).
    pub fn websocket(mut self, config: WebSocketConfig) -> Self {
        self.websocket = config;
        self
    }
}

/// Opens client WebSocket connections, one at a time per `host:port`. See the
/// [module docs](self).
///
/// Clones share the same bookkeeping. The rule holds among connects made through one connector
/// (and its clones); [`connect`] uses one shared by the whole process.
#[derive(Debug, Clone, Default)]
pub struct Connector {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    config: ConnectConfig,
    /// One turn per `host:port` with a connect under way or waiting. The entry is removed when
    /// the last of them ends, so the map holds only hosts being connected to.
    turns: Mutex<HashMap<String, Arc<futures::lock::Mutex<()>>>>,
}

impl Connector {
    /// A connector with these settings.
    pub fn new(config: ConnectConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                turns: Mutex::default(),
            }),
        }
    }

    /// Connects to the WebSocket at `request` (a `ws://` or `wss://` URL, or a full
    /// `http::Request` for custom headers), once no other connect of this connector to the same
    /// host and port is under way.
    ///
    /// `dial(address)` opens the byte stream to `"host:port"` (an IPv6 host in brackets, as in the
    /// URL; the port is 80 or 443 when the URL has none). The returned
    /// WebSocket goes into [`WsIo::new`](crate::WsIo::new),
    /// [`Connection::client`](crate::Connection::client) or [`MessageSocket::new`](crate::MessageSocket::new).
    ///
    /// # Errors
    /// - [`HandshakeError::InvalidRequest`] for a URL without a host, or not `ws`/`wss`;
    /// - [`HandshakeError::TimedOut`] when `dial` and the upgrade took longer than
    ///   [`timeout`](ConnectConfig::timeout);
    /// - [`HandshakeError::Refused`] with the status when the server answered other than 101;
    /// - [`HandshakeError::Protocol`] for an answer that breaks the handshake rules;
    /// - [`HandshakeError::Io`] when `dial` or the socket failed.
    pub async fn connect<R, D, F, S>(
        &self,
        request: R,
        dial: D,
    ) -> Result<(WebSocketStream<S>, Response), HandshakeError>
    where
        R: IntoClientRequest + Unpin,
        D: FnOnce(String) -> F,
        F: Future<Output = io::Result<S>>,
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let websocket = self.shared.config.websocket;
        self.connect_with_websocket(request, dial, websocket).await
    }

    /// [`connect`](Self::connect), building the socket with `websocket` rather than the
    /// connector's [`ConnectConfig::websocket`] (for example
    /// [`websocket_config`](crate::websocket_config)`(&config)` for a multiplexed connection).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with_websocket<R, D, F, S>(
        &self,
        request: R,
        dial: D,
        websocket: WebSocketConfig,
    ) -> Result<(WebSocketStream<S>, Response), HandshakeError>
    where
        R: IntoClientRequest + Unpin,
        D: FnOnce(String) -> F,
        F: Future<Output = io::Result<S>>,
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let request = request.into_client_request()?;
        let address = address(request.uri())?;
        let turn = self.turn(address.to_ascii_lowercase());
        let _connecting = turn.slot.lock().await;

        let config = &self.shared.config;
        let attempt = async move {
            let stream = dial(address).await?;
            client_async_with_config(request, stream, Some(websocket))
                .await
                .map_err(HandshakeError::from)
        };
        match select(pin!(attempt), Delay::new(config.timeout)).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(HandshakeError::TimedOut),
        }
    }

    /// The turn for `key`, created if no connect to it is under way.
    fn turn(&self, key: String) -> Turn {
        let mut turns = self.turns();
        let slot = turns.entry(key.clone()).or_default().clone();
        Turn {
            slot,
            key,
            shared: self.shared.clone(),
        }
    }

    fn turns(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<futures::lock::Mutex<()>>>> {
        self.shared.turns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connect's claim on its host's turn; removes the host's entry when the last claim ends.
struct Turn {
    slot: Arc<futures::lock::Mutex<()>>,
    key: String,
    shared: Arc<Shared>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut turns = self.shared.turns.lock().unwrap_or_else(|e| e.into_inner());
        // Claims are cloned from the map under this lock, so the count is exact: the map's
        // reference and ours mean nobody else is waiting.
        if Arc::strong_count(&self.slot) == 2 {
            turns.remove(&self.key);
        }
    }
}

/// The connector shared by the whole process (default settings).
pub(crate) fn shared() -> &'static Connector {
    static SHARED: OnceLock<Connector> = OnceLock::new();
    SHARED.get_or_init(Connector::default)
}

/// Connects with a connector shared by the whole process and default settings. See
/// [`Connector::connect`].
pub async fn connect<R, D, F, S>(
    request: R,
    dial: D,
) -> Result<(WebSocketStream<S>, Response), HandshakeError>
where
    R: IntoClientRequest + Unpin,
    D: FnOnce(String) -> F,
    F: Future<Output = io::Result<S>>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    shared().connect(request, dial).await
}

/// A client request for `url` that offers `subprotocols` (most preferred first) in its
/// `Sec-WebSocket-Protocol` header, for [`Connector::connect`]. With QMux, offer
/// [`QmuxProtocols::subprotocols`](crate::QmuxProtocols::subprotocols); then
/// [`selected_protocol`] on the response gives the [`Protocol`](crate::Protocol) to speak. A server
/// that selects none fails the handshake (RFC 6455 §4.1: the client offered some).
///
/// # Errors
/// [`HandshakeError::InvalidRequest`] for a URL that is not a WebSocket URL, or a subprotocol
/// that cannot be a header value.
///
/// ```
/// use ws_stream_mux::{connect::request_with_protocols, QmuxProtocols};
///
/// let offer = QmuxProtocols::default().application("chat").subprotocols();
/// let request = request_with_protocols("ws://127.0.0.1:9001/", &offer)?;
/// assert_eq!(
///     request.headers()["sec-websocket-protocol"],
///     "qmux-02.chat, qmux-01.chat, qmux-02, qmux-01"
/// );
/// # Ok::<_, ws_stream_mux::handshake::HandshakeError>(())
/// ```
pub fn request_with_protocols(
    url: &str,
    subprotocols: &[String],
) -> Result<tungstenite::handshake::client::Request, HandshakeError> {
    let mut request = url.into_client_request()?;
    if !subprotocols.is_empty() {
        let value = subprotocols.join(", ").parse().map_err(|_| {
            HandshakeError::InvalidRequest("a subprotocol is not a valid header value".into())
        })?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", value);
    }
    Ok(request)
}

/// The subprotocol the server selected in its answer, if any.
pub fn selected_protocol(response: &Response) -> Option<&str> {
    response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
}

/// `host:port` of a `ws` or `wss` URL.
fn address(uri: &tungstenite::http::Uri) -> Result<String, HandshakeError> {
    let default_port = match uri.scheme_str() {
        Some("ws") => 80,
        Some("wss") => 443,
        other => {
            return Err(HandshakeError::InvalidRequest(format!(
                "scheme must be ws or wss, not {}",
                other.unwrap_or("none")
            )))
        }
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| HandshakeError::InvalidRequest("URL without a host".into()))?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports() {
        let uri = |s: &str| s.parse::<tungstenite::http::Uri>().unwrap();
        assert_eq!(address(&uri("ws://a.b/x")).unwrap(), "a.b:80");
        assert_eq!(address(&uri("wss://a.b/x")).unwrap(), "a.b:443");
        assert_eq!(address(&uri("ws://[::1]:9/")).unwrap(), "[::1]:9");
        assert!(matches!(
            address(&uri("http://a.b/")),
            Err(HandshakeError::InvalidRequest(_))
        ));
    }
}
