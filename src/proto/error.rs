//! The core's errors, grouped by whose fault they are (as rustls does):
//!
//! - [`ProtoError`]: the peer broke the protocol in a way that ends the whole connection; each has
//!   the close code (and, for QMux, the transport error code) we send for it;
//! - [`StreamError`]: what ends one half of one stream (the peer's reset or stop, our own, the
//!   peer misbehaving on that stream, the connection ending);
//! - [`ConnectionError`]: why the connection ended, what every operation reports from then on;
//! - [`ApiError`]: the caller's mistake; nothing is sent for it.
//!
//! The IO layer turns these into the public `ws_stream_mux::Error` on its side.

use super::{
    code::{CloseCode, ErrorCode},
    id::Initiator,
};

/// A violation that ends the whole connection, with the close code we send for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// A text message arrived; the protocol carries binary messages only (1003).
    #[error("text message received on a binary protocol (close 1003)")]
    TextMessage,
    /// A message whose stream id cannot be parsed (1002).
    #[error("message without a parseable stream id (close 1002)")]
    BadStreamId,
    /// A message for an id of our own parity that we never opened (1002).
    #[error("message for stream {0}, which we never opened (close 1002)")]
    UnopenedStream(u64),
    /// The WebSocket layer reported a protocol violation, such as a bad frame (1002).
    #[error("websocket protocol violation: {0} (close 1002)")]
    WebSocket(String),
    /// A text message that is not UTF-8 (1007).
    #[error("invalid UTF-8 in a text message (close 1007)")]
    InvalidUtf8,
    /// A message or frame larger than the configured limit (1009).
    #[error("message larger than the limit of {max} bytes (close 1009)")]
    MessageTooBig {
        /// The configured limit.
        max: usize,
    },
    /// The peer left our replies (pongs, credit, refusals) unread for longer than the configured
    /// timeout while it kept sending (1008).
    #[error("the peer does not read our replies (close 1008)")]
    RepliesNotRead,
    /// A QMux rule was broken: `code` is the RFC 9000 transport error code we send in
    /// CONNECTION_CLOSE (then close 1002).
    #[error("QMux protocol violation (error 0x{code:x}): {what} (close 1002)")]
    Qmux {
        /// The RFC 9000 transport error code.
        code: u64,
        /// What was wrong.
        what: &'static str,
    },
}

impl ProtoError {
    /// The close code we send for this violation.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtoError::TextMessage => CloseCode::UNSUPPORTED_DATA,
            ProtoError::BadStreamId
            | ProtoError::UnopenedStream(_)
            | ProtoError::WebSocket(_)
            | ProtoError::Qmux { .. } => CloseCode::PROTOCOL_ERROR,
            ProtoError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            ProtoError::MessageTooBig { .. } => CloseCode::TOO_BIG,
            ProtoError::RepliesNotRead => CloseCode::POLICY,
        }
    }

    /// The RFC 9000 transport error code a QMux connection sends for this violation in its
    /// CONNECTION_CLOSE frame.
    pub fn qmux_code(&self) -> u64 {
        use super::qmux::transport_error as code;
        match self {
            ProtoError::Qmux { code, .. } => *code,
            ProtoError::MessageTooBig { .. } => code::FRAME_ENCODING_ERROR,
            ProtoError::RepliesNotRead => code::INTERNAL_ERROR,
            ProtoError::TextMessage
            | ProtoError::BadStreamId
            | ProtoError::UnopenedStream(_)
            | ProtoError::WebSocket(_)
            | ProtoError::InvalidUtf8 => code::PROTOCOL_VIOLATION,
        }
    }

    /// A short reason for the Close frame (well under 123 bytes).
    pub fn close_reason(&self) -> &'static str {
        match self {
            ProtoError::TextMessage => "text messages are not supported",
            ProtoError::BadStreamId => "unparseable stream id",
            ProtoError::UnopenedStream(_) => "message for a stream that was never opened",
            ProtoError::WebSocket(_) => "websocket protocol error",
            ProtoError::InvalidUtf8 => "invalid utf-8",
            ProtoError::MessageTooBig { .. } => "message too big",
            ProtoError::RepliesNotRead => "replies not read",
            ProtoError::Qmux { what, .. } => what,
        }
    }
}

/// The caller's mistake: an argument out of range or an operation the connection does not offer.
/// Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Applications may send only 1000, 1001 and 4000–4999.
    #[error("close code {0} may not be sent by an application (use 1000, 1001 or 4000-4999)")]
    InvalidCloseCode(CloseCode),
    /// A close reason longer than a Close frame carries.
    #[error("close reason is {0} bytes; at most {max} fit in a Close frame", max = super::code::MAX_CLOSE_REASON_LEN)]
    CloseReasonTooLong(usize),
    /// A stream error code above 2^62−1.
    #[error("error code {0} does not fit in a varint (at most 2^62-1)")]
    InvalidErrorCode(u64),
    /// The negotiated protocol has no such thing (unidirectional streams and datagrams exist only
    /// in QMux).
    #[error("not supported by the negotiated protocol: {0}")]
    Unsupported(&'static str),
    /// A configuration value out of its range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}

/// Why the connection ended. Once it has, every operation fails with this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// A WebSocket Close frame ended it: ours or the peer's, with its code (1005 when the peer's
    /// frame had none) and reason.
    #[error("connection closed by {} with code {code}{}", initiator_name(*.initiator), reason_suffix(.reason))]
    Closed {
        /// The close code.
        code: CloseCode,
        /// The close reason (possibly empty).
        reason: String,
        /// Who sent the Close frame first.
        initiator: Initiator,
    },
    /// A QMux APPLICATION_CLOSE frame ended it, with the application's code and reason.
    #[error("connection closed by {} with application code {code}{}", initiator_name(*.initiator), reason_suffix(.reason))]
    ApplicationClosed {
        /// The application's code.
        code: u64,
        /// The reason (possibly empty).
        reason: String,
        /// Who closed.
        initiator: Initiator,
    },
    /// The peer reported a QMux transport error (CONNECTION_CLOSE) and closed.
    #[error("the peer closed with QMux transport error 0x{code:x}{}", reason_suffix(.reason))]
    PeerError {
        /// The peer's transport error code.
        code: u64,
        /// The peer's reason.
        reason: String,
    },
    /// The peer broke the protocol and we closed the connection.
    #[error("protocol violation: {0}")]
    Violation(#[from] ProtoError),
    /// Nothing was heard from the peer for the idle timeout; we closed with 1001 ("idle
    /// timeout").
    #[error("closed after the idle timeout: nothing heard from the peer (1001)")]
    IdleTimeout,
    /// The connection ended without a closing handshake (TCP ended or failed): 1006.
    #[error("connection ended without a close frame (1006){}", reason_suffix(.detail))]
    Abnormal {
        /// What the transport said, if anything.
        detail: String,
    },
}

impl ConnectionError {
    /// The WebSocket close code that describes this end (1006 for [`ConnectionError::Abnormal`]).
    pub fn close_code(&self) -> CloseCode {
        match self {
            ConnectionError::Closed { code, .. } => *code,
            ConnectionError::ApplicationClosed { .. } => CloseCode::NORMAL,
            ConnectionError::PeerError { .. } => CloseCode::PROTOCOL_ERROR,
            ConnectionError::Violation(violation) => violation.close_code(),
            ConnectionError::IdleTimeout => CloseCode::GOING_AWAY,
            ConnectionError::Abnormal { .. } => CloseCode::ABNORMAL,
        }
    }

    /// The reason that goes with [`close_code`](Self::close_code).
    pub fn close_reason(&self) -> &str {
        match self {
            ConnectionError::Closed { reason, .. }
            | ConnectionError::ApplicationClosed { reason, .. }
            | ConnectionError::PeerError { reason, .. } => reason,
            ConnectionError::Violation(violation) => violation.close_reason(),
            ConnectionError::IdleTimeout => IDLE_REASON,
            ConnectionError::Abnormal { detail } => detail,
        }
    }

    /// Whether a byte stream reading this end should see a clean end of stream (a closing
    /// handshake with a code that is not an error) rather than an error.
    pub fn is_clean(&self) -> bool {
        match self {
            ConnectionError::Closed { code, .. } => code.is_clean(),
            ConnectionError::ApplicationClosed { .. } => true,
            _ => false,
        }
    }
}

/// The reason of the Close frame an idle timeout sends.
pub const IDLE_REASON: &str = "idle timeout";

fn initiator_name(initiator: Initiator) -> &'static str {
    match initiator {
        Initiator::Local => "us",
        Initiator::Peer => "the peer",
    }
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// What ends one half of one stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The peer aborted its writing (reset): our reads fail with its code.
    #[error("stream reset by the peer with code {0}")]
    Reset(ErrorCode),
    /// The peer stopped reading: our writes fail with its code.
    #[error("stream stopped by the peer with code {0}")]
    Stopped(ErrorCode),
    /// This side already reset (writing) or stopped (reading) the half with this code.
    #[error("stream already ended locally with code {0}")]
    LocallyEnded(ErrorCode),
    /// The send half was already finished; nothing more can be written.
    #[error("stream already finished writing")]
    Finished,
    /// The peer sent a malformed message on this stream; it ended with code 1.
    #[error("the peer sent a malformed message on this stream")]
    Parse,
    /// The peer sent more than the credit we granted on this stream; it ended with code 2.
    #[error("the peer overflowed this stream's receive window")]
    Overflow,
    /// The connection ended.
    #[error(transparent)]
    ConnectionLost(#[from] ConnectionError),
}
