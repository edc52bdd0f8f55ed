//! The four mux messages and their binary form (WIRE.md, "Framing").
//!
//! ```text
//! | stream id: varint | type: u16 BE | body |
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::{
    code::ErrorCode,
    id::{Half, StreamId},
    varint,
};

/// Message type numbers on the wire.
mod kind {
    pub const DATA: u16 = 0;
    pub const ACK: u16 = 1;
    pub const ERROR: u16 = 2;
    pub const CLOSE: u16 = 3;
}

/// The largest header of any message: an 8-byte id and the 2-byte type.
pub const MAX_HEADER_LEN: usize = 8 + 2;

/// One mux message, without its stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Stream bytes; uses `len` bytes of the sender's credit. Never empty when we send it.
    Data(Bytes),
    /// Grants the receiver's writer this many more bytes of credit.
    Ack(u32),
    /// Abrupt end of the receiver's `half` with a code.
    Error(Half, ErrorCode),
    /// Graceful end of the receiver's `half`.
    Close(Half),
}

/// Why a message could not be decoded. [`MessageError::BadStreamId`] cannot be pinned to a stream
/// (a connection error); the others name the stream they were for (a stream error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The message is too short to hold a stream id.
    #[error("message too short for a stream id")]
    BadStreamId,
    /// The type field is missing or unknown, or the body is shorter than the type needs, or a
    /// shutdown byte is neither 0 nor 1.
    #[error("malformed message for stream {id}: {what}")]
    Malformed {
        /// The stream the message was for.
        id: StreamId,
        /// What was wrong.
        what: &'static str,
    },
}

impl Frame {
    /// Appends this message for stream `id` to `out`.
    pub fn encode(&self, id: StreamId, out: &mut BytesMut) {
        out.reserve(MAX_HEADER_LEN + self.body_len());
        encode_header(id, self.kind(), out);
        match self {
            Frame::Data(payload) => out.put_slice(payload),
            Frame::Ack(credit) => out.put_u32(*credit),
            Frame::Error(half, code) => {
                out.put_u8(half.wire());
                varint::encode(code.0, out);
            }
            Frame::Close(half) => out.put_u8(half.wire()),
        }
    }

    /// This message for stream `id` as one buffer, ready to be a WebSocket message.
    pub fn to_bytes(&self, id: StreamId) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(id, &mut out);
        out.freeze()
    }

    fn kind(&self) -> u16 {
        match self {
            Frame::Data(_) => kind::DATA,
            Frame::Ack(_) => kind::ACK,
            Frame::Error(..) => kind::ERROR,
            Frame::Close(_) => kind::CLOSE,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Frame::Data(payload) => payload.len(),
            Frame::Ack(_) => 4,
            Frame::Error(_, code) => 1 + varint::encoded_len(code.0),
            Frame::Close(_) => 1,
        }
    }

    /// Decodes one WebSocket binary message. DATA payloads share `msg`'s memory (no copy).
    /// Trailing bytes after an ACK, ERROR or CLOSE body are ignored, as the peer library does.
    pub fn decode(msg: &Bytes) -> Result<(StreamId, Frame), MessageError> {
        let (id, id_len) = varint::decode(msg).map_err(|_| MessageError::BadStreamId)?;
        let id = StreamId(id);
        let malformed = |what| MessageError::Malformed { id, what };
        let rest = &msg[id_len..];
        let kind_bytes: [u8; 2] = rest
            .get(..2)
            .and_then(|b| b.try_into().ok())
            .ok_or(malformed("no message type"))?;
        let body = &rest[2..];
        let frame = match u16::from_be_bytes(kind_bytes) {
            kind::DATA => Frame::Data(msg.slice(id_len + 2..)),
            kind::ACK => {
                let credit: [u8; 4] = body
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(malformed("ACK body shorter than 4 bytes"))?;
                Frame::Ack(u32::from_be_bytes(credit))
            }
            kind::ERROR => {
                let half = decode_half(body).ok_or(malformed("bad ERROR shutdown byte"))?;
                let (code, _) =
                    varint::decode(&body[1..]).map_err(|_| malformed("ERROR code truncated"))?;
                Frame::Error(half, ErrorCode(code))
            }
            kind::CLOSE => {
                Frame::Close(decode_half(body).ok_or(malformed("bad CLOSE shutdown byte"))?)
            }
            _ => return Err(malformed("unknown message type")),
        };
        Ok((id, frame))
    }
}

/// Writes the id and type; a DATA payload follows directly.
pub fn encode_header(id: StreamId, kind: u16, out: &mut impl BufMut) {
    varint::encode(id.0, out);
    out.put_u16(kind);
}

/// The length of a DATA message's header for stream `id`.
pub fn data_header_len(id: StreamId) -> usize {
    varint::encoded_len(id.0) + 2
}

impl Half {
    fn wire(self) -> u8 {
        match self {
            Half::Read => 0,
            Half::Write => 1,
        }
    }
}

fn decode_half(body: &[u8]) -> Option<Half> {
    match body.first()? {
        0 => Some(Half::Read),
        1 => Some(Half::Write),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(bytes: &[u8]) -> Result<(StreamId, Frame), MessageError> {
        Frame::decode(&Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn known_encodings() {
        assert_eq!(
            &Frame::Ack(1 << 20).to_bytes(StreamId(0))[..],
            &[0, 0, 1, 0, 0x10, 0, 0]
        );
        assert_eq!(
            &Frame::Data(Bytes::from_static(b"hi")).to_bytes(StreamId(3))[..],
            &[3, 0, 0, b'h', b'i']
        );
        assert_eq!(
            &Frame::Error(Half::Write, ErrorCode(4001)).to_bytes(StreamId(64))[..],
            &[0x40, 0x40, 0, 2, 1, 0x4f, 0xa1]
        );
        assert_eq!(
            &Frame::Close(Half::Read).to_bytes(StreamId(2))[..],
            &[2, 0, 3, 0]
        );
    }

    #[test]
    fn non_minimal_id_and_trailing_bytes_are_accepted() {
        assert_eq!(
            decode(&[0x40, 0x02, 0, 3, 0, 0xff]),
            Ok((StreamId(2), Frame::Close(Half::Read)))
        );
        assert_eq!(
            decode(&[1, 0, 1, 0, 0, 0, 9, 7, 7]),
            Ok((StreamId(1), Frame::Ack(9)))
        );
    }

    #[test]
    fn malformed_messages() {
        assert_eq!(decode(&[]), Err(MessageError::BadStreamId));
        assert_eq!(decode(&[0x40]), Err(MessageError::BadStreamId));
        let bad = |b: &[u8]| {
            matches!(
                decode(b),
                Err(MessageError::Malformed {
                    id: StreamId(5),
                    ..
                })
            )
        };
        assert!(bad(&[5]));
        assert!(bad(&[5, 0]));
        assert!(bad(&[5, 0, 4]));
        assert!(bad(&[5, 0, 1, 0, 0, 0]));
        assert!(bad(&[5, 0, 2, 2, 0]));
        assert!(bad(&[5, 0, 2, 0]));
        assert!(bad(&[5, 0, 2, 0, 0x40]));
        assert!(bad(&[5, 0, 3]));
        assert!(bad(&[5, 0, 3, 7]));
    }

    fn any_frame() -> impl Strategy<Value = Frame> {
        let half = prop_oneof![Just(Half::Read), Just(Half::Write)];
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| Frame::Data(v.into())),
            any::<u32>().prop_map(Frame::Ack),
            (half.clone(), 0..=varint::MAX).prop_map(|(h, c)| Frame::Error(h, ErrorCode(c))),
            half.prop_map(Frame::Close),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(id in 0..=varint::MAX, frame in any_frame()) {
            let bytes = frame.to_bytes(StreamId(id));
            prop_assert_eq!(Frame::decode(&bytes), Ok((StreamId(id), frame)));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = decode(&bytes);
        }
    }
}
