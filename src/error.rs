//! The crate's typed error.
//!
//! Every in-band failure of a read or write is an [`std::io::Error`] whose inner error is an
//! [`Error`]: downcast it ([`Error::from_io`]) to learn the code. Every variant can be matched:
//! a timeout is [`Error::TimedOut`], a refused handshake [`Error::Handshake`], an I/O failure
//! [`Error::Io`] keeping its kind — no meaning lives only in a string.
//!
//! ```
//! use std::io;
//! use ws_stream_mux::{Error, ErrorCode};
//!
//! fn peer_reset_code(err: &io::Error) -> Option<ErrorCode> {
//!     match Error::from_io(err)? {
//!         Error::Reset(code) => Some(*code),
//!         _ => None,
//!     }
//! }
//!
//! let err: io::Error = Error::Reset(ErrorCode(4001)).into();
//! assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
//! assert_eq!(peer_reset_code(&err), Some(ErrorCode(4001)));
//! ```

use std::{fmt, io, sync::Arc};

use crate::{
    handshake::HandshakeError,
    proto::{
        ApiError, CloseCode, ConnectionError, ErrorCode, ProtoError, StreamError, StreamId,
        MAX_CLOSE_REASON_LEN,
    },
};

/// What timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timeout {
    /// The closing handshake: the peer did not answer our Close frame within the close timeout
    /// (the connection was dropped).
    Close,
    /// A ping's pong did not come within the ping timeout.
    Ping,
    /// A graceful shutdown's streams did not finish before its deadline.
    Shutdown,
    /// Nothing was heard from the peer for the idle timeout (the connection was closed with
    /// 1001).
    Idle,
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timeout::Close => "the closing handshake timed out",
            Timeout::Ping => "no pong within the ping timeout",
            Timeout::Shutdown => "streams did not finish before the shutdown deadline",
            Timeout::Idle => "nothing heard from the peer for the idle timeout",
        })
    }
}

/// What went wrong. Cheap to clone: one connection failure is reported to every stream.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer aborted its writing on this stream (a reset): our reads fail with its code.
    #[error("stream reset by the peer with code {0}")]
    Reset(ErrorCode),

    /// The peer stopped reading this stream: our writes fail with its code (0 for the
    /// @matrixai/ws protocol's CLOSE Write).
    #[error("stream stopped by the peer with code {0}")]
    Stopped(ErrorCode),

    /// This side already reset (writing) or stopped (reading) the stream with this code.
    #[error("stream already ended locally with code {0}")]
    LocallyEnded(ErrorCode),

    /// The write side was already finished; no more bytes can be written.
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
    /// or 1006 when the connection ended without one (then `reason` says what the transport said).
    #[error("connection closed with code {code}{}", reason_suffix(.reason))]
    ConnectionClosed {
        /// The close code.
        code: CloseCode,
        /// The close reason (possibly empty).
        reason: String,
    },

    /// A QMux connection was closed by an application with this code (APPLICATION_CLOSE).
    #[error("connection closed with application code {code}{}", reason_suffix(.reason))]
    ApplicationClosed {
        /// The application's code.
        code: u64,
        /// The reason (possibly empty).
        reason: String,
    },

    /// A QMux peer closed the connection reporting a transport error (CONNECTION_CLOSE).
    #[error("the peer closed the connection with QMux error 0x{code:x}{}", reason_suffix(.reason))]
    PeerError {
        /// The peer's transport error code.
        code: u64,
        /// The peer's reason.
        reason: String,
    },

    /// The peer broke the protocol in a way that ends the whole connection; we closed it with
    /// [`ProtoError::close_code`].
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtoError),

    /// An I/O error, with its kind.
    #[error("I/O error: {0}")]
    Io(Arc<io::Error>),

    /// Something did not happen in time.
    #[error("timed out: {0}")]
    TimedOut(Timeout),

    /// The WebSocket handshake failed or was refused.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),

    /// An application may only close with 1000, 1001 or 4000–4999.
    #[error("close code {0} may not be sent by an application (use 1000, 1001 or 4000-4999)")]
    InvalidCloseCode(CloseCode),

    /// A close reason longer than a Close frame carries.
    #[error("close reason is {0} bytes; at most {MAX_CLOSE_REASON_LEN} fit in a Close frame")]
    CloseReasonTooLong(usize),

    /// A message larger than the socket can ever send (its `max_write_buffer_size`); nothing was
    /// sent.
    #[error("message of {size} bytes is larger than the socket's write buffer ({max} bytes)")]
    MessageTooLarge {
        /// The message's size.
        size: usize,
        /// The largest the socket takes.
        max: usize,
    },

    /// A datagram larger than the peer accepts (QMux's `max_datagram_frame_size`).
    #[error("datagram of {size} bytes is larger than the peer accepts ({max} bytes)")]
    DatagramTooLarge {
        /// The datagram's size.
        size: usize,
        /// The largest the peer accepts.
        max: usize,
    },

    /// A stream error code above 2^62−1.
    #[error("error code {0} does not fit in a varint (at most 2^62-1)")]
    InvalidErrorCode(u64),

    /// `close` was called on a connection that is already closing or closed.
    #[error("connection is already closed")]
    AlreadyClosed,

    /// A graceful shutdown is under way: no new streams.
    #[error("the connection is shutting down")]
    ShuttingDown,

    /// A configuration value is out of its range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),

    /// The negotiated protocol has no such operation (unidirectional streams and datagrams are
    /// QMux's).
    #[error("not supported by the negotiated protocol: {0}")]
    Unsupported(&'static str),
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

impl Error {
    /// The [`io::ErrorKind`] this error maps to when returned from `poll_read`/`poll_write`.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::Reset(_) | Error::Stopped(_) => io::ErrorKind::ConnectionReset,
            Error::LocallyEnded(_)
            | Error::Finished
            | Error::AlreadyClosed
            | Error::ShuttingDown
            | Error::ConnectionClosed { .. }
            | Error::ApplicationClosed { .. }
            | Error::PeerError { .. } => io::ErrorKind::NotConnected,
            Error::StreamParse(_) | Error::StreamOverflow(_) | Error::Protocol(_) => {
                io::ErrorKind::InvalidData
            }
            Error::Io(e) => e.kind(),
            Error::TimedOut(_) => io::ErrorKind::TimedOut,
            Error::Handshake(e) => e.io_kind(),
            Error::InvalidCloseCode(_)
            | Error::CloseReasonTooLong(_)
            | Error::InvalidErrorCode(_)
            | Error::MessageTooLarge { .. }
            | Error::DatagramTooLarge { .. }
            | Error::InvalidConfig(_) => io::ErrorKind::InvalidInput,
            Error::Unsupported(_) => io::ErrorKind::Unsupported,
        }
    }

    /// Whether this is the end of a connection that was closed on purpose, by either side: a
    /// Close frame with a code that is not an error (1000, 1001, 1005, 3000–4999) or a QMux
    /// application close. What a server loop that runs `accept()` until the connection ends
    /// treats as a normal exit.
    ///
    /// ```
    /// use ws_stream_mux::{CloseCode, Error};
    ///
    /// let normal = Error::ConnectionClosed { code: CloseCode::NORMAL, reason: String::new() };
    /// assert!(normal.is_clean_close());
    /// assert!(!Error::ConnectionClosed { code: CloseCode::ABNORMAL, reason: String::new() }
    ///     .is_clean_close());
    /// ```
    pub fn is_clean_close(&self) -> bool {
        match self {
            Error::ConnectionClosed { code, .. } => code.is_clean(),
            Error::ApplicationClosed { .. } => true,
            _ => false,
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

    /// A stream's error, naming the stream where the error is about it.
    pub(crate) fn from_stream(err: StreamError, id: StreamId) -> Self {
        match err {
            StreamError::Reset(code) => Error::Reset(code),
            StreamError::Stopped(code) => Error::Stopped(code),
            StreamError::LocallyEnded(code) => Error::LocallyEnded(code),
            StreamError::Finished => Error::Finished,
            StreamError::Parse => Error::StreamParse(id.0),
            StreamError::Overflow => Error::StreamOverflow(id.0),
            StreamError::ConnectionLost(err) => err.into(),
        }
    }
}

impl From<ConnectionError> for Error {
    fn from(err: ConnectionError) -> Self {
        match err {
            ConnectionError::Closed { code, reason, .. } => {
                Error::ConnectionClosed { code, reason }
            }
            ConnectionError::ApplicationClosed { code, reason, .. } => {
                Error::ApplicationClosed { code, reason }
            }
            ConnectionError::PeerError { code, reason } => Error::PeerError { code, reason },
            ConnectionError::Violation(violation) => Error::Protocol(violation),
            ConnectionError::IdleTimeout => Error::TimedOut(Timeout::Idle),
            ConnectionError::Abnormal { detail } => Error::abnormal(detail),
        }
    }
}

impl From<ApiError> for Error {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::InvalidCloseCode(code) => Error::InvalidCloseCode(code),
            ApiError::CloseReasonTooLong(len) => Error::CloseReasonTooLong(len),
            ApiError::InvalidErrorCode(code) => Error::InvalidErrorCode(code),
            ApiError::Unsupported(what) => Error::Unsupported(what),
            ApiError::InvalidConfig(what) => Error::InvalidConfig(what),
        }
    }
}

impl From<io::Error> for Error {
    /// An I/O error, unless it carries one of ours (then that one).
    fn from(err: io::Error) -> Self {
        match Error::from_io(&err) {
            Some(ours) => ours.clone(),
            None => Error::Io(Arc::new(err)),
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        io::Error::new(err.io_kind(), err)
    }
}
