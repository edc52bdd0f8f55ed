//! The server handshake's settings.

use std::time::Duration;

use async_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::policy::{OriginPolicy, PathPolicy};

/// Settings for [`accept`](super::accept): limits, policies and the WebSocket configuration of the
/// accepted connection.
///
/// ```
/// use std::time::Duration;
/// use ws_stream_mux::handshake::{AcceptConfig, OriginPolicy, PathPolicy};
///
/// let config = AcceptConfig::default()
///     .paths(PathPolicy::only(["/ws"]))
///     .origins(OriginPolicy::allow_list(["https://example.com"]))
///     .protocols(["chat.v2", "chat.v1"])
///     .timeout(Duration::from_secs(5));
/// assert_eq!(config.max_head_size, 8192);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AcceptConfig {
    /// The longest request head accepted, in bytes; a longer one is answered with 400. Default
    /// 8192.
    pub max_head_size: usize,
    /// The most header lines accepted; more are answered with 400. Default 64.
    pub max_headers: usize,
    /// How long the whole handshake (reading the head and writing the answer) may take. A client
    /// that is slower gets no answer: [`HandshakeError::TimedOut`](super::HandshakeError::TimedOut).
    /// Default 10 s.
    pub timeout: Duration,
    /// After an error answer, how long to wait for the client to close while discarding what it
    /// still sends, so that the answer is not lost to a TCP reset. Default 1 s.
    pub linger: Duration,
    /// Which `Origin` headers are accepted (403 otherwise). Default: any.
    pub origin: OriginPolicy,
    /// Which paths are served (404 otherwise). Default: any.
    pub path: PathPolicy,
    /// The subprotocols this server speaks, most preferred first. The first of these that the
    /// client offers in `Sec-WebSocket-Protocol` is selected; when none matches (or the client
    /// offers none) the answer names no subprotocol. Default: none.
    pub protocols: Vec<String>,
    /// Configuration of the accepted WebSocket (message and frame size limits, buffers). Default:
    /// messages up to 16 MiB, refused while still arriving (tungstenite's own default is 64 MiB).
    /// For a multiplexed [`Connection`](crate::Connection) use
    /// [`websocket_config`](crate::websocket_config)`(&config)`, which bounds them by the
    /// connection's window.
    pub websocket: WebSocketConfig,
}

impl Default for AcceptConfig {
    fn default() -> Self {
        Self {
            max_head_size: 8192,
            max_headers: 64,
            timeout: Duration::from_secs(10),
            linger: Duration::from_secs(1),
            origin: OriginPolicy::Any,
            path: PathPolicy::Any,
            protocols: Vec::new(),
            websocket: crate::websocket::default_websocket_config(),
        }
    }
}

impl AcceptConfig {
    /// Sets [`origin`](Self::origin).
    pub fn origins(mut self, policy: OriginPolicy) -> Self {
        self.origin = policy;
        self
    }

    /// Sets [`path`](Self::path).
    pub fn paths(mut self, policy: PathPolicy) -> Self {
        self.path = policy;
        self
    }

    /// Sets [`protocols`](Self::protocols).
    pub fn protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`timeout`](Self::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`linger`](Self::linger).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets [`max_head_size`](Self::max_head_size).
    pub fn max_head_size(mut self, bytes: usize) -> Self {
        self.max_head_size = bytes;
        self
    }

    /// Sets [`websocket`](Self::websocket).
    pub fn websocket(mut self, config: WebSocketConfig) -> Self {
        self.websocket = config;
        self
    }
}
