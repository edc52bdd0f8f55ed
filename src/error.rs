//! The crate's typed error.
//!
//! Every in-band failure of a read or write is an [`std::io::Error`] whose inner error is an
//! [`Error`]: downcast it to learn the code.
//!
//! ```
//! use std::io;
//! use ws_stream_mux::{Error, ErrorCode};
//!
//! fn peer_reset_code(err: &io::Error) -> Option<ErrorCode> {
//!     match err.get_ref()?.downcast_ref::<Error>()? {
//!         Error::Reset(code) => Some(*code),
//!         _ => None,
//!     }
//! }
//!
//! let err: io::Error = Error::Reset(ErrorCode(4001)).into();
//! assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
//! assert_eq!(peer_reset_code(&err), Some(ErrorCode(4001)));
//! ```

use std::{io, sync::Arc};

use crate::{
    code::{CloseCode, ErrorCode, MAX_CLOSE_REASON_LEN},
    proto::ProtoError,
};

/// What went wrong. Cheap to clone: one connection failure is reported to every stream.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer aborted its writing on this stream (ERROR Read): our read side fails with its code.
    #[error("stream reset by the peer with code {0}")]
    Reset(ErrorCode),

    /// The peer stopped reading this stream (ERROR Write or CLOSE Write): our writes fail with its
    /// code (0 for CLOSE Write).
    #[error("stream stopped by the peer with code {0}")]
    Stopped(ErrorCode),

    /// This side already reset (writing) or stopped (reading) the stream with this code.
    #[error("stream already ended locally with code {0}")]
    LocallyEnded(ErrorCode),

    /// The write side was already finished (`close`d); no more bytes can be written.
    #[error("stream already finished writing")]
    Finished,

    /// The peer sent a malformed message on this stream; the stream ended (code 1 sent to the
    /// peer). The connection carries on.
    #[error("stream {0} failed: the peer sent a malformed message")]
    StreamParse(u64),

    /// The peer sent more data than the credit we granted; the stream ended (code 2 sent to the
    /// peer). The connection carries on.
    #[error("stream {0} failed: the peer overflowed its receive window")]
    StreamOverflow(u64),

    /// The connection is closed. `code` is what the Close frame said (1005 when it had no code),
    /// or 1006 when the connection ended without one.
    #[error("connection closed with code {code}{}", if reason.is_empty() { String::new() } else { format!(": {reason}") })]
    ConnectionClosed {
        /// The close code.
        code: CloseCode,
        /// The close reason (possibly empty).
        reason: String,
    },

    /// The peer broke the protocol in a way that ends the whole connection (we closed it with
    /// 1002, 1003 or 1009).
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtoError),

    /// An I/O or WebSocket error from the transport.
    #[error("transport error: {0}")]
    Transport(Arc<io::Error>),

    /// `close` was called with a code an application may not send (only 1000, 1001, 4000–4999).
    #[error("close code {0} may not be sent by an application (use 1000, 1001 or 4000-4999)")]
    InvalidCloseCode(CloseCode),

    /// `close` was called with a reason longer than a Close frame carries.
    #[error("close reason is {0} bytes; at most {MAX_CLOSE_REASON_LEN} fit in a Close frame")]
    CloseReasonTooLong(usize),

    /// A stream error code above 2^62−1.
    #[error("error code {0} does not fit in a varint (at most 2^62-1)")]
    InvalidErrorCode(u64),

    /// `close` was called on a connection that is already closing or closed.
    #[error("connection is already closed")]
    AlreadyClosed,

    /// A configuration value is out of its range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}

impl Error {
    /// The [`io::ErrorKind`] this error maps to when returned from `poll_read`/`poll_write`.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::Reset(_) | Error::Stopped(_) => io::ErrorKind::ConnectionReset,
            Error::LocallyEnded(_) | Error::Finished | Error::AlreadyClosed => {
                io::ErrorKind::NotConnected
            }
            Error::ConnectionClosed { .. } => io::ErrorKind::NotConnected,
            Error::StreamParse(_) | Error::StreamOverflow(_) | Error::Protocol(_) => {
                io::ErrorKind::InvalidData
            }
            Error::Transport(e) => e.kind(),
            Error::InvalidCloseCode(_)
            | Error::CloseReasonTooLong(_)
            | Error::InvalidErrorCode(_)
            | Error::InvalidConfig(_) => io::ErrorKind::InvalidInput,
        }
    }

    /// The connection-closed error for a connection that ended without a Close frame.
    pub(crate) fn abnormal(reason: impl Into<String>) -> Self {
        Error::ConnectionClosed {
            code: CloseCode::ABNORMAL,
            reason: reason.into(),
        }
    }

    /// Finds our error inside an `io::Error` returned by this crate.
    pub fn from_io(err: &io::Error) -> Option<&Error> {
        err.get_ref()?.downcast_ref::<Error>()
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        io::Error::new(err.io_kind(), err)
    }
}
