//! QMux frames and their binary form: RFC 9000 §19 frames, minus what only QUIC's packets need,
//! plus QMux's own (QMUX.md, "Records" and the codepoint table).
//!
//! A WebSocket binary message is one record: one or more whole frames back to back, with no
//! length prefix. Every field is a QUIC varint.
//!
//! ```text
//! STREAM          0x08–0x0f  id, [offset], [length], data      (bits: OFF 0x04, LEN 0x02, FIN 0x01)
//! RESET_STREAM    0x04       id, application code, final size
//! STOP_SENDING    0x05       id, application code
//! MAX_DATA        0x10       maximum (absolute)
//! MAX_STREAM_DATA 0x11       id, maximum (absolute)
//! MAX_STREAMS     0x12/0x13  cumulative count (bidi/uni)
//! *_BLOCKED       0x14–0x17  limit (accepted and ignored)
//! CONNECTION_CLOSE 0x1c      transport code, frame type, reason length, reason
//! APPLICATION_CLOSE 0x1d     application code, reason length, reason
//! DATAGRAM        0x30/0x31  [length], data
//! QX_TRANSPORT_PARAMETERS 0x3f5153300d0a0d0a  length, parameters
//! QX_PING         0x348c67529ef8c7bd / …be     sequence number (request / response)
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::{id::Dir, id::StreamId, varint};

/// Frame type numbers on the wire.
pub(crate) mod kind {
    pub const PADDING: u64 = 0x00;
    pub const RESET_STREAM: u64 = 0x04;
    pub const STOP_SENDING: u64 = 0x05;
    /// STREAM is 0x08–0x0f: this base with the OFF, LEN and FIN bits.
    pub const STREAM: u64 = 0x08;
    pub const STREAM_OFF: u64 = 0x04;
    pub const STREAM_LEN: u64 = 0x02;
    pub const STREAM_FIN: u64 = 0x01;
    pub const MAX_DATA: u64 = 0x10;
    pub const MAX_STREAM_DATA: u64 = 0x11;
    pub const MAX_STREAMS_BIDI: u64 = 0x12;
    pub const MAX_STREAMS_UNI: u64 = 0x13;
    pub const DATA_BLOCKED: u64 = 0x14;
    pub const STREAM_DATA_BLOCKED: u64 = 0x15;
    pub const STREAMS_BLOCKED_BIDI: u64 = 0x16;
    pub const STREAMS_BLOCKED_UNI: u64 = 0x17;
    pub const CONNECTION_CLOSE: u64 = 0x1c;
    pub const APPLICATION_CLOSE: u64 = 0x1d;
    pub const DATAGRAM: u64 = 0x30;
    pub const DATAGRAM_LEN: u64 = 0x31;
    /// "\xffQS0\r\n\r\n" as a varint (draft-ietf-quic-qmux-02 names it "\xffQMX…"; the bytes the
    /// deployed peers send, and we send, are `ff 51 53 30 0d 0a 0d 0a`).
    pub const TRANSPORT_PARAMETERS: u64 = 0x3f51_5330_0d0a_0d0a;
    pub const PING_REQUEST: u64 = 0x348c_6752_9ef8_c7bd;
    pub const PING_RESPONSE: u64 = 0x348c_6752_9ef8_c7be;
}

/// RFC 9000 transport error codes (§20.1) that QMux uses.
pub mod transport_error {
    /// No error (a clean close).
    pub const NO_ERROR: u64 = 0x00;
    /// Something went wrong on our side.
    pub const INTERNAL_ERROR: u64 = 0x01;
    /// Data beyond a stream's or the connection's limit.
    pub const FLOW_CONTROL_ERROR: u64 = 0x03;
    /// A stream beyond the limit we granted.
    pub const STREAM_LIMIT_ERROR: u64 = 0x04;
    /// A frame for a stream in a state that does not allow it.
    pub const STREAM_STATE_ERROR: u64 = 0x05;
    /// Data beyond a stream's final size, or a changed final size.
    pub const FINAL_SIZE_ERROR: u64 = 0x06;
    /// A malformed frame, an unknown frame type, or a record over the size limit.
    pub const FRAME_ENCODING_ERROR: u64 = 0x07;
    /// Malformed or forbidden transport parameters.
    pub const TRANSPORT_PARAMETER_ERROR: u64 = 0x08;
    /// Any other broken rule.
    pub const PROTOCOL_VIOLATION: u64 = 0x0a;
}

/// The largest STREAM payload we put in one frame (QMUX.md: it fits the smallest record size
/// every peer accepts, 16,382 bytes, with the largest header).
pub const MAX_STREAM_PAYLOAD: usize = 16_352;

/// The largest STREAM frame header: type, 8-byte id, 8-byte offset, 2-byte length.
pub const MAX_STREAM_HEADER: usize = 1 + 8 + 8 + 2;

/// One QMux frame. Payloads share the record's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Nothing (0x00); skipped.
    Padding,
    /// The sender aborts its sending half.
    ResetStream {
        /// The stream.
        id: StreamId,
        /// The application's code.
        code: u64,
        /// How many bytes the sender had sent on the stream.
        final_size: u64,
    },
    /// The sender will not read the stream any further.
    StopSending {
        /// The stream.
        id: StreamId,
        /// The application's code.
        code: u64,
    },
    /// Stream data at an offset, possibly the last.
    Stream {
        /// The stream.
        id: StreamId,
        /// Where the payload starts in the stream.
        offset: u64,
        /// The payload (possibly empty).
        data: Bytes,
        /// The stream ends after this payload.
        fin: bool,
    },
    /// The connection-level limit on stream data (absolute).
    MaxData(u64),
    /// A stream's limit (absolute).
    MaxStreamData {
        /// The stream.
        id: StreamId,
        /// The new limit.
        max: u64,
    },
    /// How many streams of `dir` the receiver may open in total (cumulative).
    MaxStreams {
        /// Which streams.
        dir: Dir,
        /// The new total.
        count: u64,
    },
    /// The sender has data but no connection credit (informational).
    DataBlocked(u64),
    /// The sender has data for a stream but no credit on it (informational).
    StreamDataBlocked {
        /// The stream.
        id: StreamId,
        /// The limit it is blocked at.
        limit: u64,
    },
    /// The sender wants to open more streams than allowed (informational).
    StreamsBlocked {
        /// Which streams.
        dir: Dir,
        /// The limit it is blocked at.
        limit: u64,
    },
    /// The sender closes because of a transport error.
    ConnectionClose {
        /// The RFC 9000 error code (peers send other values too).
        code: u64,
        /// The frame type that caused it (0: unknown).
        frame_type: u64,
        /// Why, for people.
        reason: String,
    },
    /// The application closes the connection.
    ApplicationClose {
        /// The application's code.
        code: u64,
        /// Why, for people.
        reason: String,
    },
    /// An unreliable message (RFC 9221).
    Datagram(Bytes),
    /// The sender's transport parameters (the body, decoded by `params`).
    TransportParameters(Bytes),
    /// A QX_PING request with its sequence number.
    PingRequest(u64),
    /// A QX_PING response carrying the largest sequence number answered.
    PingResponse(u64),
}

/// Why a record could not be decoded: always a connection error (FRAME_ENCODING_ERROR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The record ends inside a frame.
    #[error("frame truncated")]
    Truncated,
    /// A frame type we do not know or do not allow.
    #[error("unknown frame type 0x{0:x}")]
    UnknownType(u64),
    /// A value out of its range (a stream count above 2^60, data beyond 2^62).
    #[error("{0}")]
    OutOfRange(&'static str),
}

/// Reads frames from one record, in order.
pub struct Decoder {
    record: Bytes,
    at: usize,
}

impl Decoder {
    /// Frames of `record` (one WebSocket binary message).
    pub fn new(record: Bytes) -> Self {
        Self { record, at: 0 }
    }

    /// The next frame, `None` at the end of the record.
    pub fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        if self.at >= self.record.len() {
            return None;
        }
        let result = self.decode_one();
        if result.is_err() {
            // Nothing after a broken frame can be trusted.
            self.at = self.record.len();
        }
        Some(result)
    }

    fn varint(&mut self) -> Result<u64, FrameError> {
        let (value, len) =
            varint::decode(&self.record[self.at..]).map_err(|_| FrameError::Truncated)?;
        self.at += len;
        Ok(value)
    }

    fn id(&mut self) -> Result<StreamId, FrameError> {
        self.varint().map(StreamId)
    }

    fn bytes(&mut self, len: u64) -> Result<Bytes, FrameError> {
        let len = usize::try_from(len).map_err(|_| FrameError::Truncated)?;
        let end = self.at.checked_add(len).ok_or(FrameError::Truncated)?;
        if end > self.record.len() {
            return Err(FrameError::Truncated);
        }
        let bytes = self.record.slice(self.at..end);
        self.at = end;
        Ok(bytes)
    }

    fn rest(&mut self) -> Bytes {
        let bytes = self.record.slice(self.at..);
        self.at = self.record.len();
        bytes
    }

    fn reason(&mut self) -> Result<String, FrameError> {
        let len = self.varint()?;
        let bytes = self.bytes(len)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn stream_count(&mut self) -> Result<u64, FrameError> {
        let count = self.varint()?;
        // RFC 9000 §19.11: a count above 2^60 cannot be encoded as stream ids.
        if count > 1 << 60 {
            return Err(FrameError::OutOfRange("stream count above 2^60"));
        }
        Ok(count)
    }

    fn decode_one(&mut self) -> Result<Frame, FrameError> {
        let frame_type = self.varint()?;
        Ok(match frame_type {
            kind::PADDING => Frame::Padding,
            kind::RESET_STREAM => Frame::ResetStream {
                id: self.id()?,
                code: self.varint()?,
                final_size: self.varint()?,
            },
            kind::STOP_SENDING => Frame::StopSending {
                id: self.id()?,
                code: self.varint()?,
            },
            0x08..=0x0f => {
                let id = self.id()?;
                let offset = if frame_type & kind::STREAM_OFF != 0 {
                    self.varint()?
                } else {
                    0
                };
                let data = if frame_type & kind::STREAM_LEN != 0 {
                    let len = self.varint()?;
                    self.bytes(len)?
                } else {
                    self.rest()
                };
                if offset.saturating_add(data.len() as u64) > varint::MAX {
                    return Err(FrameError::OutOfRange("stream data beyond 2^62"));
                }
                Frame::Stream {
                    id,
                    offset,
                    data,
                    fin: frame_type & kind::STREAM_FIN != 0,
                }
            }
            kind::MAX_DATA => Frame::MaxData(self.varint()?),
            kind::MAX_STREAM_DATA => Frame::MaxStreamData {
                id: self.id()?,
                max: self.varint()?,
            },
            kind::MAX_STREAMS_BIDI | kind::MAX_STREAMS_UNI => Frame::MaxStreams {
                dir: dir_of(frame_type, kind::MAX_STREAMS_BIDI),
                count: self.stream_count()?,
            },
            kind::DATA_BLOCKED => Frame::DataBlocked(self.varint()?),
            kind::STREAM_DATA_BLOCKED => Frame::StreamDataBlocked {
                id: self.id()?,
                limit: self.varint()?,
            },
            kind::STREAMS_BLOCKED_BIDI | kind::STREAMS_BLOCKED_UNI => Frame::StreamsBlocked {
                dir: dir_of(frame_type, kind::STREAMS_BLOCKED_BIDI),
                limit: self.stream_count()?,
            },
            kind::CONNECTION_CLOSE => Frame::ConnectionClose {
                code: self.varint()?,
                frame_type: self.varint()?,
                reason: self.reason()?,
            },
            kind::APPLICATION_CLOSE => Frame::ApplicationClose {
                code: self.varint()?,
                reason: self.reason()?,
            },
            kind::DATAGRAM => Frame::Datagram(self.rest()),
            kind::DATAGRAM_LEN => {
                let len = self.varint()?;
                Frame::Datagram(self.bytes(len)?)
            }
            kind::TRANSPORT_PARAMETERS => {
                let len = self.varint()?;
                Frame::TransportParameters(self.bytes(len)?)
            }
            kind::PING_REQUEST => Frame::PingRequest(self.varint()?),
            kind::PING_RESPONSE => Frame::PingResponse(self.varint()?),
            other => return Err(FrameError::UnknownType(other)),
        })
    }
}

fn dir_of(frame_type: u64, bidi: u64) -> Dir {
    if frame_type == bidi {
        Dir::Bi
    } else {
        Dir::Uni
    }
}

impl Frame {
    /// Appends the frame to `out` (the shortest varints; STREAM always with OFF and LEN, as the
    /// deployed peers send it; DATAGRAM with its length).
    pub fn encode(&self, out: &mut BytesMut) {
        let v = |value: u64, out: &mut BytesMut| varint::encode(value, out);
        match self {
            Frame::Padding => out.put_u8(0),
            Frame::ResetStream {
                id,
                code,
                final_size,
            } => {
                v(kind::RESET_STREAM, out);
                v(id.0, out);
                v(*code, out);
                v(*final_size, out);
            }
            Frame::StopSending { id, code } => {
                v(kind::STOP_SENDING, out);
                v(id.0, out);
                v(*code, out);
            }
            Frame::Stream {
                id,
                offset,
                data,
                fin,
            } => {
                let fin_bit = if *fin { kind::STREAM_FIN } else { 0 };
                v(
                    kind::STREAM | kind::STREAM_OFF | kind::STREAM_LEN | fin_bit,
                    out,
                );
                v(id.0, out);
                v(*offset, out);
                v(data.len() as u64, out);
                out.put_slice(data);
            }
            Frame::MaxData(max) => {
                v(kind::MAX_DATA, out);
                v(*max, out);
            }
            Frame::MaxStreamData { id, max } => {
                v(kind::MAX_STREAM_DATA, out);
                v(id.0, out);
                v(*max, out);
            }
            Frame::MaxStreams { dir, count } => {
                v(
                    pick(*dir, kind::MAX_STREAMS_BIDI, kind::MAX_STREAMS_UNI),
                    out,
                );
                v(*count, out);
            }
            Frame::DataBlocked(limit) => {
                v(kind::DATA_BLOCKED, out);
                v(*limit, out);
            }
            Frame::StreamDataBlocked { id, limit } => {
                v(kind::STREAM_DATA_BLOCKED, out);
                v(id.0, out);
                v(*limit, out);
            }
            Frame::StreamsBlocked { dir, limit } => {
                v(
                    pick(*dir, kind::STREAMS_BLOCKED_BIDI, kind::STREAMS_BLOCKED_UNI),
                    out,
                );
                v(*limit, out);
            }
            Frame::ConnectionClose {
                code,
                frame_type,
                reason,
            } => {
                v(kind::CONNECTION_CLOSE, out);
                v(*code, out);
                v(*frame_type, out);
                v(reason.len() as u64, out);
                out.put_slice(reason.as_bytes());
            }
            Frame::ApplicationClose { code, reason } => {
                v(kind::APPLICATION_CLOSE, out);
                v(*code, out);
                v(reason.len() as u64, out);
                out.put_slice(reason.as_bytes());
            }
            Frame::Datagram(data) => {
                v(kind::DATAGRAM_LEN, out);
                v(data.len() as u64, out);
                out.put_slice(data);
            }
            Frame::TransportParameters(body) => {
                v(kind::TRANSPORT_PARAMETERS, out);
                v(body.len() as u64, out);
                out.put_slice(body);
            }
            Frame::PingRequest(sequence) => {
                v(kind::PING_REQUEST, out);
                v(*sequence, out);
            }
            Frame::PingResponse(sequence) => {
                v(kind::PING_RESPONSE, out);
                v(*sequence, out);
            }
        }
    }

    /// The frame as one record.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

fn pick(dir: Dir, bidi: u64, uni: u64) -> u64 {
    match dir {
        Dir::Bi => bidi,
        Dir::Uni => uni,
    }
}

/// The length of the STREAM header (type 0x0e or 0x0f, id, offset, length) for `len` bytes at
/// `offset`.
pub fn stream_header_len(id: StreamId, offset: u64, len: usize) -> usize {
    1 + varint::encoded_len(id.0) + varint::encoded_len(offset) + varint::encoded_len(len as u64)
}

/// Writes a STREAM header (type 0x0e, or 0x0f with the FIN) at the end of `room`; returns its
/// length.
pub fn write_stream_header(
    id: StreamId,
    offset: u64,
    len: usize,
    fin: bool,
    room: &mut [u8],
) -> usize {
    let header_len = stream_header_len(id, offset, len);
    let start = room.len() - header_len;
    let mut out = &mut room[start..];
    let fin = if fin { kind::STREAM_FIN } else { 0 };
    varint::encode(
        kind::STREAM | kind::STREAM_OFF | kind::STREAM_LEN | fin,
        &mut out,
    );
    varint::encode(id.0, &mut out);
    varint::encode(offset, &mut out);
    varint::encode(len as u64, &mut out);
    header_len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Bytes {
        let digits: String = s.split_whitespace().collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
            .into()
    }

    fn decode_all(record: Bytes) -> Vec<Frame> {
        let mut decoder = Decoder::new(record);
        std::iter::from_fn(|| decoder.next_frame())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// QMUX.md's vectors, observed from a qmux 0.6.6 server.
    #[test]
    fn the_peers_frames_decode() {
        let cases = [
            (
                "0e 00 00 05 68 65 6c 6c 6f",
                Frame::Stream {
                    id: StreamId(0),
                    offset: 0,
                    data: Bytes::from_static(b"hello"),
                    fin: false,
                },
            ),
            (
                "0f 00 05 00",
                Frame::Stream {
                    id: StreamId(0),
                    offset: 5,
                    data: Bytes::new(),
                    fin: true,
                },
            ),
            (
                "04 04 2a 00",
                Frame::ResetStream {
                    id: StreamId(4),
                    code: 42,
                    final_size: 0,
                },
            ),
            (
                "05 08 07",
                Frame::StopSending {
                    id: StreamId(8),
                    code: 7,
                },
            ),
            (
                "11 00 80 05 77 00",
                Frame::MaxStreamData {
                    id: StreamId(0),
                    max: 358_144,
                },
            ),
            ("f4 8c 67 52 9e f8 c7 bd 00", Frame::PingRequest(0)),
            ("f4 8c 67 52 9e f8 c7 be 00", Frame::PingResponse(0)),
            ("31 02 64 67", Frame::Datagram(Bytes::from_static(b"dg"))),
            ("30 64 67", Frame::Datagram(Bytes::from_static(b"dg"))),
            (
                "1d 00 03 62 79 65",
                Frame::ApplicationClose {
                    code: 0,
                    reason: "bye".into(),
                },
            ),
            (
                "1c 43 ea 00 12 70 72 6f 74 6f 63 6f 6c 20 76 69 6f 6c 61 74 69 6f 6e",
                Frame::ConnectionClose {
                    code: 1002,
                    frame_type: 0,
                    reason: "protocol violation".into(),
                },
            ),
        ];
        for (bytes, frame) in cases {
            assert_eq!(decode_all(hex(bytes)), vec![frame], "{bytes}");
        }
    }

    #[test]
    fn a_record_holds_several_frames_and_padding() {
        let frames = decode_all(hex("00 00 0e 0c 00 02 61 62 0f 0c 02 02 63 64"));
        assert_eq!(frames.len(), 4);
        assert_eq!(
            frames[3],
            Frame::Stream {
                id: StreamId(12),
                offset: 2,
                data: Bytes::from_static(b"cd"),
                fin: true
            }
        );
    }

    /// What we send, byte for byte as QMUX.md computed it (a qmux 0.6.6 server accepted these).
    #[test]
    fn our_frames_encode_as_agreed() {
        let cases = [
            (
                Frame::Stream {
                    id: StreamId(1),
                    offset: 70_000,
                    data: Bytes::from_static(b"z"),
                    fin: false,
                },
                "0e 01 80 01 11 70 01 7a",
            ),
            (
                Frame::MaxStreamData {
                    id: StreamId(1),
                    max: 2 << 20,
                },
                "11 01 80 20 00 00",
            ),
            (Frame::MaxData(17_301_504), "10 81 08 00 00"),
            (
                Frame::MaxStreams {
                    dir: Dir::Bi,
                    count: 100,
                },
                "12 40 64",
            ),
            (
                Frame::ResetStream {
                    id: StreamId(1),
                    code: 4001,
                    final_size: 5,
                },
                "04 01 4f a1 05",
            ),
            (
                Frame::StopSending {
                    id: StreamId(5),
                    code: 4002,
                },
                "05 05 4f a2",
            ),
            (
                Frame::ApplicationClose {
                    code: 4000,
                    reason: "bye".into(),
                },
                "1d 4f a0 03 62 79 65",
            ),
            (
                Frame::ConnectionClose {
                    code: transport_error::FLOW_CONTROL_ERROR,
                    frame_type: 0,
                    reason: "flow control".into(),
                },
                "1c 03 00 0c 66 6c 6f 77 20 63 6f 6e 74 72 6f 6c",
            ),
        ];
        for (frame, bytes) in cases {
            assert_eq!(frame.to_bytes(), hex(bytes), "{frame:?}");
            assert_eq!(decode_all(hex(bytes)), vec![frame]);
        }
    }

    #[test]
    fn stream_headers_written_in_place_match_the_encoder() {
        let cases = [(0, 0, 0), (1, 70_000, 1), (1 << 40, 1 << 50, 16_352)];
        for ((id, offset, len), fin) in cases.into_iter().flat_map(|c| [(c, false), (c, true)]) {
            let id = StreamId(id);
            let mut room = [0u8; MAX_STREAM_HEADER];
            let n = write_stream_header(id, offset, len, fin, &mut room);
            let mut expected = BytesMut::new();
            Frame::Stream {
                id,
                offset,
                data: Bytes::from(vec![0; len]),
                fin,
            }
            .encode(&mut expected);
            assert_eq!(&room[MAX_STREAM_HEADER - n..], &expected[..n]);
        }
    }

    #[test]
    fn broken_records_are_errors() {
        for (bytes, err) in [
            ("0e 00 00 05 68", FrameError::Truncated),
            ("04 01", FrameError::Truncated),
            ("01", FrameError::UnknownType(1)),
            ("24 00 07 03 02", FrameError::UnknownType(0x24)),
            ("12 c0 00 00 00 00 00 00 00 ff", FrameError::Truncated),
            (
                "12 d0 00 00 00 00 00 00 01",
                FrameError::OutOfRange("stream count above 2^60"),
            ),
        ] {
            let mut decoder = Decoder::new(hex(bytes));
            let result = std::iter::from_fn(|| decoder.next_frame()).find_map(Result::err);
            assert_eq!(result, Some(err), "{bytes}");
        }
    }
}
