//! The sans-IO protocol core: no sockets, no wakers, no async.
//!
//! [`Mux`] takes decoded WebSocket binary messages and user actions and yields the messages to
//! send, the bytes each stream can read and the [`WsEvent`](crate::WsEvent)s to publish. The IO
//! layer ([`Connection`](crate::Connection)) moves bytes between it and the socket. Unit tests and
//! the fuzz targets drive it directly.

pub mod credit;
pub mod message;
pub mod mux;
pub mod stream;
pub mod varint;

pub use mux::{Mux, Wake};

#[cfg(test)]
mod model_tests;
pub use stream::ReadOutcome;

use std::fmt;

use crate::code::CloseCode;

/// A stream's id: the client opens even ids, the server odd ones; ids are never reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which side of the WebSocket we are: the client sent the HTTP upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Opens even stream ids.
    Client,
    /// Opens odd stream ids.
    Server,
}

impl Side {
    /// The parity (0 even, 1 odd) of the ids this side opens.
    pub fn parity(self) -> u64 {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

/// One direction of a stream, named from the point of view of the side whose half it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Half {
    /// The receiving half.
    Read,
    /// The sending half.
    Write,
}

impl Half {
    pub(crate) fn wire(self) -> u8 {
        match self {
            Half::Read => 0,
            Half::Write => 1,
        }
    }
}

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
}

impl ProtoError {
    /// The close code we send for this violation.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtoError::TextMessage => CloseCode::UNSUPPORTED_DATA,
            ProtoError::BadStreamId | ProtoError::UnopenedStream(_) | ProtoError::WebSocket(_) => {
                CloseCode::PROTOCOL_ERROR
            }
            ProtoError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            ProtoError::MessageTooBig { .. } => CloseCode::TOO_BIG,
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
        }
    }
}
