//! QMux transport parameters (QX_TRANSPORT_PARAMETERS): what each side lets the other do, sent
//! as each side's first frame.
//!
//! The body is RFC 9000 §18's encoding: `id, length, value` triples, every value a varint except
//! the empty `reset_stream_at`. We send the parameters in the order the deployed peers do,
//! shortest varints, zero values left out. We accept any order and ignore unknown ids; a
//! duplicate, a parameter QUIC reserves for its handshake, a value with trailing bytes, a record
//! size below the minimum, a non-empty `reset_stream_at` and `application_protocols` (negotiated
//! by the WebSocket subprotocol instead) are TRANSPORT_PARAMETER_ERRORs (QMUX.md).

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::varint;

/// Parameter ids.
mod id {
    pub const MAX_IDLE_TIMEOUT: u64 = 0x01;
    pub const INITIAL_MAX_DATA: u64 = 0x04;
    pub const INITIAL_MAX_STREAM_DATA_BIDI_LOCAL: u64 = 0x05;
    pub const INITIAL_MAX_STREAM_DATA_BIDI_REMOTE: u64 = 0x06;
    pub const INITIAL_MAX_STREAM_DATA_UNI: u64 = 0x07;
    pub const INITIAL_MAX_STREAMS_BIDI: u64 = 0x08;
    pub const INITIAL_MAX_STREAMS_UNI: u64 = 0x09;
    pub const RESET_STREAM_AT: u64 = 0x1d;
    pub const MAX_DATAGRAM_FRAME_SIZE: u64 = 0x20;
    pub const MAX_RECORD_SIZE: u64 = 0x0571_c594_29cd_0845;
    /// qmux's in-band application protocol list (for TCP; over WebSocket the subprotocol says it).
    pub const APPLICATION_PROTOCOLS: u64 = 0x3d4f_9c2a_8b1e_6075;
    /// QUIC v1 parameters that only its handshake can carry.
    pub const FORBIDDEN: [u64; 10] = [0x00, 0x02, 0x03, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10];
}

/// The smallest (and default) record size: what every QMux endpoint must accept.
pub const MIN_RECORD_SIZE: u64 = 16_382;

/// What one side allows the other. Zero means "none" (no idle timeout, no datagrams).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportParams {
    /// Milliseconds of silence after which the sender closes (0: none).
    pub max_idle_timeout: u64,
    /// Connection-level credit: bytes of stream data in total.
    pub initial_max_data: u64,
    /// Credit on each bidirectional stream the sender of the parameters opens.
    pub initial_max_stream_data_bidi_local: u64,
    /// Credit on each bidirectional stream the receiver of the parameters opens.
    pub initial_max_stream_data_bidi_remote: u64,
    /// Credit on each unidirectional stream the receiver opens.
    pub initial_max_stream_data_uni: u64,
    /// How many bidirectional streams the receiver may open (cumulative, more by MAX_STREAMS).
    pub initial_max_streams_bidi: u64,
    /// How many unidirectional streams the receiver may open.
    pub initial_max_streams_uni: u64,
    /// The largest DATAGRAM frame the sender accepts (0: no datagrams).
    pub max_datagram_frame_size: u64,
    /// The largest record the sender accepts.
    pub max_record_size: u64,
    /// Whether the sender accepts RESET_STREAM_AT (we accept its presence; we never send it).
    pub reset_stream_at: bool,
}

/// Why the peer's parameters were refused (a TRANSPORT_PARAMETER_ERROR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// The body ends inside a parameter.
    #[error("transport parameters truncated")]
    Truncated,
    /// A parameter appears twice.
    #[error("duplicate transport parameter 0x{0:x}")]
    Duplicate(u64),
    /// A parameter that QMux forbids or that is out of range.
    #[error("invalid transport parameter 0x{0:x}")]
    Invalid(u64),
}

impl TransportParams {
    /// Decodes the body of a QX_TRANSPORT_PARAMETERS frame.
    pub fn decode(body: &[u8]) -> Result<Self, ParamsError> {
        let mut params = TransportParams {
            max_record_size: MIN_RECORD_SIZE,
            ..Self::default()
        };
        let mut seen: Vec<u64> = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let (param, n) = varint::decode(rest).map_err(|_| ParamsError::Truncated)?;
            rest = &rest[n..];
            let (len, n) = varint::decode(rest).map_err(|_| ParamsError::Truncated)?;
            rest = &rest[n..];
            let len = usize::try_from(len).map_err(|_| ParamsError::Truncated)?;
            let value = rest.get(..len).ok_or(ParamsError::Truncated)?;
            rest = &rest[len..];
            if id::FORBIDDEN.contains(&param) || param == id::APPLICATION_PROTOCOLS {
                return Err(ParamsError::Invalid(param));
            }
            let Some(slot) = params.slot(param) else {
                if param == id::RESET_STREAM_AT {
                    if seen.contains(&param) {
                        return Err(ParamsError::Duplicate(param));
                    }
                    seen.push(param);
                    if !value.is_empty() {
                        return Err(ParamsError::Invalid(param));
                    }
                    params.reset_stream_at = true;
                }
                // Unknown parameters are ignored (RFC 9000 §7.4.2).
                continue;
            };
            if seen.contains(&param) {
                return Err(ParamsError::Duplicate(param));
            }
            seen.push(param);
            let (number, used) = varint::decode(value).map_err(|_| ParamsError::Invalid(param))?;
            if used != value.len() {
                return Err(ParamsError::Invalid(param));
            }
            *slot = number;
        }
        if params.max_record_size < MIN_RECORD_SIZE {
            return Err(ParamsError::Invalid(id::MAX_RECORD_SIZE));
        }
        for (param, count) in [
            (
                id::INITIAL_MAX_STREAMS_BIDI,
                params.initial_max_streams_bidi,
            ),
            (id::INITIAL_MAX_STREAMS_UNI, params.initial_max_streams_uni),
        ] {
            if count > 1 << 60 {
                return Err(ParamsError::Invalid(param));
            }
        }
        Ok(params)
    }

    fn slot(&mut self, param: u64) -> Option<&mut u64> {
        Some(match param {
            id::MAX_IDLE_TIMEOUT => &mut self.max_idle_timeout,
            id::INITIAL_MAX_DATA => &mut self.initial_max_data,
            id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL => &mut self.initial_max_stream_data_bidi_local,
            id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE => {
                &mut self.initial_max_stream_data_bidi_remote
            }
            id::INITIAL_MAX_STREAM_DATA_UNI => &mut self.initial_max_stream_data_uni,
            id::INITIAL_MAX_STREAMS_BIDI => &mut self.initial_max_streams_bidi,
            id::INITIAL_MAX_STREAMS_UNI => &mut self.initial_max_streams_uni,
            id::MAX_DATAGRAM_FRAME_SIZE => &mut self.max_datagram_frame_size,
            id::MAX_RECORD_SIZE => &mut self.max_record_size,
            _ => return None,
        })
    }

    /// The body of our QX_TRANSPORT_PARAMETERS frame.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        let numbers = [
            (id::MAX_IDLE_TIMEOUT, self.max_idle_timeout),
            (id::INITIAL_MAX_DATA, self.initial_max_data),
            (
                id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL,
                self.initial_max_stream_data_bidi_local,
            ),
            (
                id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE,
                self.initial_max_stream_data_bidi_remote,
            ),
            (
                id::INITIAL_MAX_STREAM_DATA_UNI,
                self.initial_max_stream_data_uni,
            ),
            (id::INITIAL_MAX_STREAMS_BIDI, self.initial_max_streams_bidi),
            (id::INITIAL_MAX_STREAMS_UNI, self.initial_max_streams_uni),
            (id::MAX_DATAGRAM_FRAME_SIZE, self.max_datagram_frame_size),
            // The default needs no saying.
            (
                id::MAX_RECORD_SIZE,
                if self.max_record_size > MIN_RECORD_SIZE {
                    self.max_record_size
                } else {
                    0
                },
            ),
        ];
        for (param, value) in numbers {
            if value == 0 {
                continue;
            }
            varint::encode(param, &mut out);
            varint::encode(varint::encoded_len(value) as u64, &mut out);
            varint::encode(value, &mut out);
        }
        if self.reset_stream_at {
            varint::encode(id::RESET_STREAM_AT, &mut out);
            out.put_u8(0);
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::qmux::frame::{Decoder, Frame};

    fn hex(s: &str) -> Vec<u8> {
        let digits: String = s.split_whitespace().collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    fn body_of(record: &str) -> Bytes {
        match Decoder::new(hex(record).into()).next_frame() {
            Some(Ok(Frame::TransportParameters(body))) => body,
            other => panic!("{other:?}"),
        }
    }

    /// qmux 0.6.6's and @moq/qmux 0.3.3's defaults, byte for byte (QMUX.md).
    #[test]
    fn the_peers_defaults_decode() {
        let body = body_of(
            "ff 51 53 30 0d 0a 0d 0a 37 01 04 80 00 75 30 04 04 80 10 00 00 05 04 80 04 00 00
             06 04 80 04 00 00 07 04 80 04 00 00 08 02 40 64 09 02 40 64 20 02 7f fe
             c5 71 c5 94 29 cd 08 45 02 7f fe 1d 00",
        );
        let params = TransportParams::decode(&body).unwrap();
        assert_eq!(
            params,
            TransportParams {
                max_idle_timeout: 30_000,
                initial_max_data: 1 << 20,
                initial_max_stream_data_bidi_local: 256 << 10,
                initial_max_stream_data_bidi_remote: 256 << 10,
                initial_max_stream_data_uni: 256 << 10,
                initial_max_streams_bidi: 100,
                initial_max_streams_uni: 100,
                max_datagram_frame_size: 16_382,
                max_record_size: 16_382,
                reset_stream_at: true,
            }
        );
    }

    /// Ours, as QMUX.md computed it (16 MiB, three 1 MiB windows, 100 bidi, 0 uni).
    #[test]
    fn ours_encode_as_agreed() {
        let params = TransportParams {
            initial_max_data: 16 << 20,
            initial_max_stream_data_bidi_local: 1 << 20,
            initial_max_stream_data_bidi_remote: 1 << 20,
            initial_max_stream_data_uni: 1 << 20,
            initial_max_streams_bidi: 100,
            max_record_size: MIN_RECORD_SIZE,
            ..TransportParams::default()
        };
        let record = Frame::TransportParameters(params.encode()).to_bytes();
        assert_eq!(
            record.as_ref(),
            hex(
                "ff 51 53 30 0d 0a 0d 0a 1c 04 04 81 00 00 00 05 04 80 10 00 00 06 04 80 10 00 00
                 07 04 80 10 00 00 08 02 40 64"
            )
        );
        assert_eq!(TransportParams::decode(&params.encode()), Ok(params));
    }

    #[test]
    fn bad_parameters_are_refused_and_unknown_ones_ignored() {
        let cases: [(&str, Result<(), ParamsError>); 8] = [
            ("1b 01 00 2a 03 01 02 03", Ok(())),
            ("03 01 00", Err(ParamsError::Invalid(0x03))),
            ("04 01 01 04 01 02", Err(ParamsError::Duplicate(0x04))),
            ("04 02 01 00", Err(ParamsError::Invalid(0x04))),
            (
                "c5 71 c5 94 29 cd 08 45 02 40 10",
                Err(ParamsError::Invalid(id::MAX_RECORD_SIZE)),
            ),
            ("1d 01 00", Err(ParamsError::Invalid(0x1d))),
            (
                "fd 4f 9c 2a 8b 1e 60 75 00",
                Err(ParamsError::Invalid(id::APPLICATION_PROTOCOLS)),
            ),
            ("04 04 80 10", Err(ParamsError::Truncated)),
        ];
        for (body, expected) in cases {
            let result = TransportParams::decode(&hex(body)).map(|_| ());
            assert_eq!(result, expected, "{body}");
        }
    }
}
