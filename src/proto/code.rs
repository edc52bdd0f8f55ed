//! Close codes for the WebSocket connection and error codes for single streams.

use std::fmt;

use super::{error::ApiError, varint};

/// The longest close reason a Close frame can carry, in UTF-8 bytes (RFC 6455 §5.5: a control frame
/// payload is at most 125 bytes, two of which are the code).
pub const MAX_CLOSE_REASON_LEN: usize = 123;

/// A WebSocket close code (RFC 6455 §7.4), as sent in or read from a Close frame.
///
/// Applications may send only [`NORMAL`](Self::NORMAL), [`GOING_AWAY`](Self::GOING_AWAY) and the
/// private range 4000–4999 ([`is_application_code`](Self::is_application_code)); the others are
/// reserved for the library or can only be *observed* (1005, 1006 are never sent).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (shutdown, idle timeout).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer violated the protocol in a way that cannot be pinned to one stream.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a message of a type we do not accept (a text message on a binary protocol).
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: a Close frame arrived without a code. Observed only, never sent.
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection ended without a Close frame. Observed only, never sent.
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: a text message that is not valid UTF-8.
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a policy was violated (for example the limit on concurrent streams).
    pub const POLICY: Self = Self(1008);
    /// 1009: a message larger than the configured limit.
    pub const TOO_BIG: Self = Self(1009);
    /// 1011: an internal error on the closing side.
    pub const INTERNAL_ERROR: Self = Self(1011);

    /// Whether an application may send this code: 1000, 1001 or 4000–4999.
    pub fn is_application_code(self) -> bool {
        matches!(self.0, 1000 | 1001 | 4000..=4999)
    }

    /// Whether a read that sees a connection closed with this code should see a clean end of
    /// stream rather than an error: 1000, 1001, 1005 (no code given) and 3000–4999.
    pub fn is_clean(self) -> bool {
        matches!(self.0, 1000 | 1001 | 1005 | 3000..=4999)
    }

    /// Checks that an application may close with `code` and `reason`.
    ///
    /// # Errors
    /// [`ApiError::InvalidCloseCode`] for a code outside 1000, 1001, 4000–4999 and
    /// [`ApiError::CloseReasonTooLong`] for a reason over [`MAX_CLOSE_REASON_LEN`] bytes. Nothing
    /// is truncated.
    pub fn check_application(self, reason: &str) -> Result<(), ApiError> {
        if !self.is_application_code() {
            return Err(ApiError::InvalidCloseCode(self));
        }
        check_reason(reason)
    }
}

/// Checks that a close reason fits in a Close frame.
///
/// # Errors
/// [`ApiError::CloseReasonTooLong`] over [`MAX_CLOSE_REASON_LEN`] bytes.
pub fn check_reason(reason: &str) -> Result<(), ApiError> {
    if reason.len() > MAX_CLOSE_REASON_LEN {
        return Err(ApiError::CloseReasonTooLong(reason.len()));
    }
    Ok(())
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An error code carried by a stream's ERROR message (`reset`, `stop`), at most 2^62−1.
///
/// Codes 0, 1 and 2 are reserved: [`UNKNOWN`](Self::UNKNOWN) (also what dropping an unread stream
/// sends), [`PARSE`](Self::PARSE) and [`OVERFLOW`](Self::OVERFLOW) (sent by the library when a peer
/// misbehaves on one stream). Applications choose any other value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ErrorCode(pub u64);

impl ErrorCode {
    /// 0: no particular reason; also sent when a stream is dropped without being read to the end.
    pub const UNKNOWN: Self = Self(0);
    /// 1: the peer sent a malformed message on this stream.
    pub const PARSE: Self = Self(1);
    /// 2: the peer sent more data than the credit it was given.
    pub const OVERFLOW: Self = Self(2);
    /// The largest code the wire (a QUIC varint) can carry: 2^62−1.
    pub const MAX: Self = Self(varint::MAX);

    /// Checks the code fits in a varint.
    ///
    /// # Errors
    /// [`ApiError::InvalidErrorCode`] above 2^62−1.
    pub fn validate(self) -> Result<Self, ApiError> {
        if self.0 > Self::MAX.0 {
            Err(ApiError::InvalidErrorCode(self.0))
        } else {
            Ok(self)
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode({})", self.0)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_codes() {
        for ok in [1000, 1001, 4000, 4999] {
            assert!(CloseCode(ok).check_application("x").is_ok(), "{ok}");
        }
        for bad in [0, 999, 1002, 1005, 1006, 1011, 3000, 3999, 5000, u16::MAX] {
            assert!(
                matches!(
                    CloseCode(bad).check_application(""),
                    Err(ApiError::InvalidCloseCode(CloseCode(c))) if c == bad
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn clean_codes() {
        for clean in [1000, 1001, 1005, 3000, 4000, 4999] {
            assert!(CloseCode(clean).is_clean(), "{clean}");
        }
        for unclean in [1002, 1003, 1006, 1007, 1008, 1009, 1011, 1015, 2999, 5000] {
            assert!(!CloseCode(unclean).is_clean(), "{unclean}");
        }
    }

    #[test]
    fn reason_length_is_checked_in_bytes() {
        let max = "é".repeat(61) + "x"; // 123 bytes
        assert_eq!(max.len(), 123);
        assert!(CloseCode::NORMAL.check_application(&max).is_ok());
        let over = "é".repeat(62); // 124 bytes
        assert!(matches!(
            CloseCode::NORMAL.check_application(&over),
            Err(ApiError::CloseReasonTooLong(124))
        ));
    }

    #[test]
    fn error_code_range() {
        assert!(ErrorCode::MAX.validate().is_ok());
        assert!(matches!(
            ErrorCode(1 << 62).validate(),
            Err(ApiError::InvalidErrorCode(v)) if v == 1 << 62
        ));
    }
}
