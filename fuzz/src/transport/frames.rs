//! WebSocket frames (RFC 6455 §5.2) as the fuzz peer writes them: any opcode, FIN and RSV1 bits,
//! masked or not, with the payload length in its shortest or a longer form.
//!
//! The fuzzer could find this framing by itself, byte by byte; serializing structured frames lets
//! it spend its time past the framing, on what the frames carry.

use bytes::BufMut;

/// The masking key of every masked frame (any key will do: tungstenite unmasks).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One frame's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The opcode (4 bits): 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong, the
    /// others reserved.
    pub opcode: u8,
    pub fin: bool,
    pub rsv1: bool,
    pub masked: bool,
    /// Writes the length in the 2- or 8-byte form even when it fits in 7 bits.
    pub long_length: bool,
}

/// Appends one frame with `payload` to `out`.
pub fn write_frame(header: Header, payload: &[u8], out: &mut Vec<u8>) {
    out.put_u8(u8::from(header.fin) << 7 | u8::from(header.rsv1) << 6 | (header.opcode & 0x0f));
    let mask_bit = u8::from(header.masked) << 7;
    let len = payload.len();
    match len {
        0..=125 if !header.long_length => out.put_u8(mask_bit | len as u8),
        0..=0xffff => {
            out.put_u8(mask_bit | 126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(mask_bit | 127);
            out.put_u64(len as u64);
        }
    }
    if header.masked {
        out.put_slice(&MASK);
        out.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    } else {
        out.put_slice(payload);
    }
}

/// A well-formed, unfragmented frame: FIN, no RSV bits, minimal length.
pub fn simple(opcode: u8, masked: bool) -> Header {
    Header {
        opcode,
        fin: true,
        rsv1: false,
        masked,
        long_length: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_as_rfc_6455_writes_them() {
        let mut out = Vec::new();
        write_frame(simple(2, false), b"hi", &mut out);
        assert_eq!(out, [0x82, 2, b'h', b'i']);
        out.clear();
        write_frame(simple(9, true), &[0, 0], &mut out);
        assert_eq!(out, [0x89, 0x82, 0x37, 0xfa, 0x21, 0x3d, 0x37, 0xfa]);
        out.clear();
        let long = Header {
            long_length: true,
            fin: false,
            ..simple(1, false)
        };
        write_frame(long, b"x", &mut out);
        assert_eq!(out, [0x01, 126, 0, 1, b'x']);
    }
}
