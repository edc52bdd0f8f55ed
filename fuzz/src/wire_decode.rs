//! `wire_decode`: the @matrixai/ws message codec (`proto::wire::Frame`) on arbitrary bytes.
//!
//! What the codec promises (WIRE.md, "Framing" and "Varint"): it accepts any varint form and
//! ignores trailing bytes after an ACK, ERROR or CLOSE body; it encodes the shortest forms; any
//! other type or shutdown value, or a body shorter than its type needs, is a parse error that
//! names the stream — unless not even the stream id can be read. So for every input:
//!
//! - it decodes exactly when [`canonical`], an independent reading of WIRE.md, says it is well
//!   formed, and a refusal names the stream id the input starts with;
//! - what decodes re-encodes to its canonical form (varints shortest, trailing bytes dropped), no
//!   longer than the input, and the canonical form decodes to the same message;
//! - a DATA payload is the tail of the input itself, not a copy.

use bytes::{BufMut, Bytes, BytesMut};
use ws_stream_mux::proto::{
    varint,
    wire::{Frame, MessageError},
};

/// Runs one input.
pub fn run(data: &[u8]) {
    let message = Bytes::copy_from_slice(data);
    let expected = canonical(data);
    match Frame::decode(&message) {
        Err(MessageError::BadStreamId) => {
            assert!(varint::decode(data).is_err(), "a readable id was refused");
        }
        Err(MessageError::Malformed { id, what }) => {
            assert_eq!(expected, None, "well formed, yet refused: {what}");
            let (first, _) = varint::decode(data).expect("a malformed message has an id");
            assert_eq!(id.0, first, "the refusal names another stream");
        }
        Ok((id, frame)) => {
            let expected = expected.expect("decoded what WIRE.md calls malformed");
            let encoded = frame.to_bytes(id);
            assert_eq!(&encoded[..], &expected[..], "not the canonical form");
            assert!(encoded.len() <= data.len());
            assert_eq!(Frame::decode(&encoded), Ok((id, frame.clone())));
            match &frame {
                Frame::Data(payload) => {
                    let tail = &message[message.len() - payload.len()..];
                    assert_eq!(payload.as_ptr(), tail.as_ptr(), "the payload was copied");
                }
                Frame::Error(_, code) => assert!(code.validate().is_ok()),
                Frame::Ack(_) | Frame::Close(_) => {}
            }
        }
    }
}

/// The canonical encoding of `data` if WIRE.md calls it well formed, read from the bytes
/// directly: the id and any error code re-encoded in their shortest form, the type as it is, and
/// the body its type needs (all of it for DATA, nothing trailing for the others).
pub fn canonical(data: &[u8]) -> Option<Vec<u8>> {
    let (id, id_len) = varint::decode(data).ok()?;
    let kind = data.get(id_len..id_len + 2)?;
    let body = &data[id_len + 2..];
    let mut out = BytesMut::new();
    varint::encode(id, &mut out);
    out.put_slice(kind);
    let shutdown = |byte: &u8| *byte <= 1;
    match u16::from_be_bytes([kind[0], kind[1]]) {
        // DATA: every remaining byte is payload.
        0 => out.put_slice(body),
        // ACK: a u32.
        1 => out.put_slice(body.get(..4)?),
        // ERROR: a shutdown byte, then a varint code.
        2 => {
            let half = body.first().filter(|b| shutdown(b))?;
            let (code, _) = varint::decode(&body[1..]).ok()?;
            out.put_u8(*half);
            varint::encode(code, &mut out);
        }
        // CLOSE: a shutdown byte.
        3 => out.put_u8(*body.first().filter(|b| shutdown(b))?),
        _ => return None,
    }
    Some(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        // A two-byte id 2, CLOSE Read, one trailing byte.
        assert_eq!(canonical(&[0x40, 2, 0, 3, 0, 9]), Some(vec![2, 0, 3, 0]));
        // ERROR Write with a four-byte code 5.
        assert_eq!(
            canonical(&[1, 0, 2, 1, 0x80, 0, 0, 5]),
            Some(vec![1, 0, 2, 1, 5])
        );
        assert_eq!(canonical(&[1, 0, 2, 2, 5]), None, "bad shutdown byte");
        assert_eq!(canonical(&[1, 0, 1, 0, 0]), None, "short ACK");
        assert_eq!(canonical(&[1, 0, 7]), None, "unknown type");
        for data in [
            &[0x40, 2, 0, 3, 0, 9][..],
            &[1, 0, 0, 1, 2, 3],
            &[5, 0, 1, 0],
        ] {
            run(data);
        }
    }
}
