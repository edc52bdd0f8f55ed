//! What can go wrong while a WebSocket connection is being set up.

use std::{fmt, io, sync::Arc};

/// Why the server refused an upgrade request, and so which HTTP answer it sent.
///
/// [`status`](Self::status) gives the status code: 400 for a malformed or incomplete request, 426
/// for a WebSocket version other than 13, 403 for an origin the policy refuses and 404 for a path
/// the server does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The head is not valid HTTP/1.x (httparse's verdict).
    Malformed(String),
    /// The head grew past [`AcceptConfig::max_head_size`](super::AcceptConfig::max_head_size)
    /// bytes or [`AcceptConfig::max_headers`](super::AcceptConfig::max_headers) headers.
    HeadTooLarge,
    /// The connection ended in the middle of the head.
    Incomplete,
    /// Bytes followed the head: a client must wait for the 101 before it sends frames.
    TrailingBytes,
    /// The method is not GET.
    NotGet,
    /// The HTTP version is older than 1.1.
    HttpVersion,
    /// No `Host` header, or more than one.
    Host,
    /// No `Upgrade` header with the token `websocket`.
    NoUpgrade,
    /// No `Connection` header with the token `upgrade`.
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Key` is missing, repeated, or not the base64 encoding of 16 bytes.
    BadKey,
    /// `Sec-WebSocket-Version` is missing or not exactly `13` (answered with 426).
    UnsupportedVersion,
    /// The `Origin` is not allowed by the configured policy (403).
    OriginNotAllowed,
    /// The server does not serve this path (404).
    PathNotFound,
}

impl Rejection {
    /// The HTTP status code the server answered with.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::UnsupportedVersion => 426,
            Rejection::OriginNotAllowed => 403,
            Rejection::PathNotFound => 404,
            _ => 400,
        }
    }

    /// The reason phrase that goes with [`status`](Self::status).
    pub fn reason_phrase(&self) -> &'static str {
        match self.status() {
            426 => "Upgrade Required",
            403 => "Forbidden",
            404 => "Not Found",
            _ => "Bad Request",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Malformed(why) => write!(f, "malformed request head: {why}"),
            Rejection::HeadTooLarge => f.write_str("request head too large"),
            Rejection::Incomplete => f.write_str("connection ended inside the request head"),
            Rejection::TrailingBytes => f.write_str("bytes after the request head"),
            Rejection::NotGet => f.write_str("method must be GET"),
            Rejection::HttpVersion => f.write_str("HTTP/1.1 or newer required"),
            Rejection::Host => f.write_str("exactly one Host header required"),
            Rejection::NoUpgrade => f.write_str("Upgrade: websocket required"),
            Rejection::NoConnectionUpgrade => f.write_str("Connection: upgrade required"),
            Rejection::BadKey => {
                f.write_str("Sec-WebSocket-Key must appear once, as base64 of 16 bytes")
            }
            Rejection::UnsupportedVersion => f.write_str("Sec-WebSocket-Version must be 13"),
            Rejection::OriginNotAllowed => f.write_str("origin not allowed"),
            Rejection::PathNotFound => f.write_str("no WebSocket endpoint at this path"),
        }
    }
}

impl std::error::Error for Rejection {}

/// A WebSocket connection could not be set up, on either side.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Server side: the request was refused and answered with [`Rejection::status`].
    #[error("upgrade request rejected with {status} {phrase}: {0}", status = .0.status(), phrase = .0.reason_phrase())]
    Rejected(Rejection),

    /// The handshake (server: reading the head and answering; client: the TCP connection and the
    /// upgrade) did not finish within the configured time.
    #[error("WebSocket handshake timed out")]
    TimedOut,

    /// Client side: the server answered the upgrade with this HTTP status instead of 101.
    #[error("server refused the upgrade with HTTP status {0}")]
    Refused(u16),

    /// Client side: the URL or request cannot be used for a WebSocket connection.
    #[error("invalid WebSocket request: {0}")]
    InvalidRequest(String),

    /// Client side: the server's answer broke the WebSocket handshake rules (wrong
    /// `Sec-WebSocket-Accept`, missing headers, ...).
    #[error("WebSocket handshake failed: {0}")]
    Protocol(String),

    /// The socket failed (includes the peer closing the connection before the handshake ended).
    #[error("I/O error during the WebSocket handshake: {0}")]
    Io(Arc<io::Error>),
}

impl HandshakeError {
    /// The [`io::ErrorKind`] this error maps to when converted into an [`io::Error`].
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            HandshakeError::Rejected(_) | HandshakeError::Protocol(_) => io::ErrorKind::InvalidData,
            HandshakeError::TimedOut => io::ErrorKind::TimedOut,
            HandshakeError::Refused(_) => io::ErrorKind::ConnectionRefused,
            HandshakeError::InvalidRequest(_) => io::ErrorKind::InvalidInput,
            HandshakeError::Io(err) => err.kind(),
        }
    }
}

impl From<io::Error> for HandshakeError {
    fn from(err: io::Error) -> Self {
        HandshakeError::Io(Arc::new(err))
    }
}

impl From<HandshakeError> for io::Error {
    fn from(err: HandshakeError) -> Self {
        io::Error::new(err.io_kind(), err)
    }
}

/// The client side of a handshake as async-tungstenite reports it, kept typed: an HTTP refusal
/// keeps its status, a bad URL is an invalid request, an I/O failure stays an I/O error.
impl From<async_tungstenite::tungstenite::Error> for HandshakeError {
    fn from(err: async_tungstenite::tungstenite::Error) -> Self {
        use async_tungstenite::tungstenite::Error as E;
        match err {
            E::Io(err) => HandshakeError::Io(Arc::new(err)),
            // tungstenite's word for the end of the stream before the whole response: the peer
            // closed the connection, which `Io` covers ("the peer closing the connection before
            // the handshake ended"), not a broken handshake rule.
            E::Protocol(
                async_tungstenite::tungstenite::error::ProtocolError::HandshakeIncomplete,
            ) => HandshakeError::Io(Arc::new(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection ended before the handshake did",
            ))),
            E::Http(response) => HandshakeError::Refused(response.status().as_u16()),
            E::Url(err) => HandshakeError::InvalidRequest(err.to_string()),
            E::HttpFormat(err) => HandshakeError::InvalidRequest(err.to_string()),
            other => HandshakeError::Protocol(other.to_string()),
        }
    }
}
