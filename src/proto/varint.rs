//! QUIC variable-length integers (RFC 9000 §16), used for stream ids and error codes.
//!
//! The two top bits of the first byte give the length (1, 2, 4 or 8 bytes); the remaining bits are
//! the value, big-endian. We always send the shortest form and accept any form.

use bytes::BufMut;

/// The largest value a varint carries: 2^62−1.
pub const MAX: u64 = (1 << 62) - 1;

/// Why a varint could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarIntError {
    /// The input ended before the length the first byte announced.
    #[error("truncated varint")]
    Truncated,
}

/// How many bytes the shortest encoding of `value` takes. `value` must be at most [`MAX`].
pub fn encoded_len(value: u64) -> usize {
    debug_assert!(value <= MAX);
    match value {
        0..=0x3f => 1,
        0x40..=0x3fff => 2,
        0x4000..=0x3fff_ffff => 4,
        _ => 8,
    }
}

/// Appends the shortest encoding of `value`. Callers guarantee `value <= MAX` (ids are allocated
/// below it, error codes are validated on entry).
pub fn encode(value: u64, out: &mut impl BufMut) {
    debug_assert!(value <= MAX, "varint out of range: {value}");
    match encoded_len(value) {
        1 => out.put_u8(value as u8),
        2 => out.put_u16(0x4000 | value as u16),
        4 => out.put_u32(0x8000_0000 | value as u32),
        _ => out.put_u64(0xc000_0000_0000_0000 | value),
    }
}

/// Decodes a varint at the start of `input`, returning the value and the bytes it used.
pub fn decode(input: &[u8]) -> Result<(u64, usize), VarIntError> {
    let first = *input.first().ok_or(VarIntError::Truncated)?;
    let len = 1usize << (first >> 6);
    let bytes = input.get(..len).ok_or(VarIntError::Truncated)?;
    let value = bytes[1..]
        .iter()
        .fold(u64::from(first & 0x3f), |acc, &b| (acc << 8) | u64::from(b));
    Ok((value, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The vectors from WIRE.md (RFC 9000 §A.1 and the 1-2 byte boundaries).
    const VECTORS: &[(u64, &[u8])] = &[
        (0, &[0x00]),
        (37, &[0x25]),
        (63, &[0x3f]),
        (64, &[0x40, 0x40]),
        (4001, &[0x4f, 0xa1]),
        (15293, &[0x7b, 0xbd]),
        (16384, &[0x80, 0x00, 0x40, 0x00]),
        (494_878_333, &[0x9d, 0x7f, 0x3e, 0x7d]),
        (
            151_288_809_941_952_652,
            &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
        ),
    ];

    #[test]
    fn test_vectors_encode_shortest() {
        for &(value, bytes) in VECTORS {
            let mut out = Vec::new();
            encode(value, &mut out);
            assert_eq!(out, bytes, "encode {value}");
            assert_eq!(encoded_len(value), bytes.len());
        }
    }

    #[test]
    fn test_vectors_decode() {
        for &(value, bytes) in VECTORS {
            assert_eq!(decode(bytes), Ok((value, bytes.len())), "decode {value}");
        }
    }

    #[test]
    fn non_minimal_forms_are_accepted() {
        assert_eq!(decode(&[0x40, 0x02]), Ok((2, 2)));
        assert_eq!(decode(&[0x80, 0, 0, 0x02]), Ok((2, 4)));
        assert_eq!(decode(&[0xc0, 0, 0, 0, 0, 0, 0, 0x02]), Ok((2, 8)));
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert_eq!(decode(&[]), Err(VarIntError::Truncated));
        assert_eq!(decode(&[0x40]), Err(VarIntError::Truncated));
        assert_eq!(decode(&[0x80, 0, 0]), Err(VarIntError::Truncated));
        assert_eq!(decode(&[0xc0; 7]), Err(VarIntError::Truncated));
    }

    proptest! {
        #[test]
        fn round_trip(value in 0..=MAX) {
            let mut out = Vec::new();
            encode(value, &mut out);
            prop_assert_eq!(decode(&out), Ok((value, out.len())));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            if let Ok((value, used)) = decode(&bytes) {
                prop_assert!(value <= MAX);
                prop_assert!(used <= bytes.len());
            }
        }
    }
}
