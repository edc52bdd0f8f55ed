//! `qmux_decode`: the QMux codec (`proto::qmux::{Decoder, Frame, TransportParams}`) on arbitrary
//! bytes, and the same bytes as a record through a QMux `Mux`.
//!
//! What the codec promises (QMUX.md, "Records" and "Transport parameters"; `frame.rs` and
//! `params.rs`): any record decodes to whole frames or stops at the first broken one, which is one
//! of the three [`FrameError`]s; parameters decode or are one of the three [`ParamsError`]s,
//! naming a parameter that can be refused. So for every input:
//!
//! - **frames**: decoding never panics; after an error the decoder yields nothing more; an
//!   `UnknownType` is a type QMUX.md does not list, an `OutOfRange` one of the two documented
//!   limits; each frame re-encodes to bytes that decode to exactly that frame and nothing else, and
//!   all of them, concatenated, decode to the same frames; a STREAM, DATAGRAM or parameters body is
//!   a slice of the record itself, not a copy; a STREAM never ends beyond 2^62−1;
//! - **parameters** (the input as a body, and the body of every QX_TRANSPORT_PARAMETERS frame):
//!   what decodes re-encodes to a body that decodes to the same, with `max_record_size` at least
//!   the minimum and stream counts at most 2^60; a refusal names a parameter that can be refused;
//! - **the record in a `Mux`** (after valid parameters): a refusal is a violation whose code is
//!   one QMUX.md lists, with a CONNECTION_CLOSE carrying it; a record whose first frame does not
//!   decode is a FRAME_ENCODING_ERROR.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use ws_stream_mux::proto::{
    qmux::{transport_error as code, Decoder, Frame, FrameError, ParamsError, TransportParams},
    varint, Config, ConnectionError, Event, Mux, ProtoError, Protocol, QmuxVersion, Side, Transmit,
};

/// Frame types QMUX.md lists (STREAM is 0x08–0x0f).
const KNOWN_TYPES: [u64; 19] = [
    0x00,
    0x04,
    0x05,
    0x10,
    0x11,
    0x12,
    0x13,
    0x14,
    0x15,
    0x16,
    0x17,
    0x1c,
    0x1d,
    0x30,
    0x31,
    0x3f51_5330_0d0a_0d0a,
    0x348c_6752_9ef8_c7bd,
    0x348c_6752_9ef8_c7be,
    0x08,
];

/// Parameter ids a decoder may refuse: the ones it reads, `reset_stream_at`, `max_record_size`,
/// QUIC's handshake-only ones and `application_protocols`.
const REFUSABLE_PARAMS: [u64; 21] = [
    0x01,
    0x04,
    0x05,
    0x06,
    0x07,
    0x08,
    0x09,
    0x1d,
    0x20,
    0x0571_c594_29cd_0845,
    0x3d4f_9c2a_8b1e_6075,
    0x00,
    0x02,
    0x03,
    0x0a,
    0x0b,
    0x0c,
    0x0d,
    0x0e,
    0x0f,
    0x10,
];

/// The transport error codes QMUX.md says we send ("Closing").
pub const SENT_CODES: [u64; 7] = [
    code::FLOW_CONTROL_ERROR,
    code::STREAM_LIMIT_ERROR,
    code::STREAM_STATE_ERROR,
    code::FINAL_SIZE_ERROR,
    code::FRAME_ENCODING_ERROR,
    code::TRANSPORT_PARAMETER_ERROR,
    code::PROTOCOL_VIOLATION,
];

/// Runs one input.
pub fn run(data: &[u8]) {
    let record = Bytes::copy_from_slice(data);
    let (frames, error) = decode_record(&record);
    if let Some(err) = &error {
        match err {
            FrameError::Truncated => {}
            FrameError::UnknownType(kind) => {
                let stream = (0x08..=0x0f).contains(kind);
                assert!(
                    !stream && !KNOWN_TYPES.contains(kind),
                    "refused type {kind:x}"
                );
            }
            FrameError::OutOfRange(what) => assert!(
                ["stream count above 2^60", "stream data beyond 2^62"].contains(what),
                "an undocumented refusal: {what}"
            ),
        }
    }
    let mut all = BytesMut::new();
    for frame in &frames {
        check_frame(&record, frame);
        frame.encode(&mut all);
    }
    let (again, none) = decode_record(&all.freeze());
    assert_eq!(none, None, "re-encoded frames do not decode");
    assert_eq!(again, frames, "re-encoded frames decode to others");

    check_params(data);
    let first_error = frames.is_empty().then_some(()).and(error);
    through_mux(record, &frames, first_error);
}

/// Every frame of `record`, and the error that ended it if one did.
pub fn decode_record(record: &Bytes) -> (Vec<Frame>, Option<FrameError>) {
    let mut decoder = Decoder::new(record.clone());
    let mut frames = Vec::new();
    while let Some(next) = decoder.next_frame() {
        match next {
            Ok(frame) => frames.push(frame),
            Err(err) => {
                assert!(decoder.next_frame().is_none(), "a frame after {err}");
                return (frames, Some(err));
            }
        }
    }
    (frames, None)
}

fn check_frame(record: &Bytes, frame: &Frame) {
    let alone = frame.to_bytes();
    assert_eq!(
        decode_record(&alone),
        (vec![frame.clone()], None),
        "{frame:?} does not survive its encoding"
    );
    let within = |body: &Bytes| {
        let start = record.as_ptr() as usize;
        let at = body.as_ptr() as usize;
        assert!(
            body.is_empty() || (at >= start && at + body.len() <= start + record.len()),
            "a body was copied out of the record"
        );
    };
    match frame {
        Frame::Stream { offset, data, .. } => {
            within(data);
            assert!(offset + data.len() as u64 <= varint::MAX);
        }
        Frame::Datagram(body) => within(body),
        Frame::TransportParameters(body) => {
            within(body);
            check_params(body);
        }
        Frame::MaxStreams { count, .. } => assert!(*count <= 1 << 60),
        Frame::StreamsBlocked { limit, .. } => assert!(*limit <= 1 << 60),
        _ => {}
    }
}

/// `body` as transport parameters.
pub fn check_params(body: &[u8]) {
    match TransportParams::decode(body) {
        Ok(params) => {
            assert!(params.max_record_size >= ws_stream_mux::proto::qmux::MIN_RECORD_SIZE);
            assert!(params.initial_max_streams_bidi <= 1 << 60);
            assert!(params.initial_max_streams_uni <= 1 << 60);
            let encoded = params.encode();
            assert_eq!(
                TransportParams::decode(&encoded),
                Ok(params),
                "parameters do not survive their encoding"
            );
            assert!(encoded.len() <= body.len(), "encoded longer than sent");
        }
        Err(ParamsError::Truncated) => {}
        Err(ParamsError::Duplicate(id) | ParamsError::Invalid(id)) => {
            assert!(REFUSABLE_PARAMS.contains(&id), "refused parameter {id:x}");
        }
    }
}

/// The record through a server `Mux` that has the client's (default) parameters. `first_error`:
/// the record's first frame does not decode, with this error.
fn through_mux(record: Bytes, frames: &[Frame], first_error: Option<FrameError>) {
    let now = Instant::now();
    let mut mux = Mux::new(
        Side::Server,
        Protocol::Qmux(QmuxVersion::V02),
        Config::default(),
        now,
    );
    let params = TransportParams {
        initial_max_data: 1 << 20,
        initial_max_stream_data_bidi_local: 1 << 16,
        initial_max_stream_data_bidi_remote: 1 << 16,
        initial_max_stream_data_uni: 1 << 16,
        initial_max_streams_bidi: 4,
        initial_max_streams_uni: 4,
        max_datagram_frame_size: 1000,
        max_record_size: ws_stream_mux::proto::qmux::MIN_RECORD_SIZE,
        ..TransportParams::default()
    };
    mux.handle_message(now, Frame::TransportParameters(params.encode()).to_bytes());
    assert!(mux.closing_error().is_none(), "valid parameters refused");
    mux.handle_message(now, record);
    let mut violation = None;
    while let Some(event) = mux.poll_event() {
        if let Event::Violation(err) = event {
            violation = Some(err);
        }
    }
    let mut closes = Vec::new();
    while let Some(transmit) = mux.poll_transmit(now, true) {
        if let Transmit::Binary(record) = transmit {
            let (sent, error) = decode_record(&record);
            assert_eq!(error, None, "we sent a broken record");
            closes.extend(sent.into_iter().filter_map(|frame| match frame {
                Frame::ConnectionClose { code, .. } => Some(code),
                _ => None,
            }));
        }
    }
    match &violation {
        Some(ProtoError::Qmux { code, .. }) => {
            assert!(SENT_CODES.contains(code), "violation code {code:x}");
            // No CONNECTION_CLOSE answers the peer's own close frame (RFC 9000 §10.2.2): a
            // violation found once the record is read (a QX_PING response to no request) may
            // come after one.
            let peer_closed = frames.iter().any(|frame| {
                matches!(
                    frame,
                    Frame::ConnectionClose { .. } | Frame::ApplicationClose { .. }
                )
            });
            assert!(
                closes == [*code] || (closes.is_empty() && peer_closed),
                "CONNECTION_CLOSE {closes:?} for a violation {code:x}"
            );
            assert_eq!(
                mux.closing_error(),
                Some(ConnectionError::Violation(violation.clone().unwrap()))
            );
        }
        Some(other) => panic!("a record was refused as {other:?}"),
        None => assert!(closes.is_empty(), "CONNECTION_CLOSE without a violation"),
    }
    if first_error.is_some() {
        let code = match &violation {
            Some(ProtoError::Qmux { code, .. }) => Some(*code),
            _ => None,
        };
        assert_eq!(code, Some(code::FRAME_ENCODING_ERROR), "{first_error:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_vectors_run_clean() {
        for data in [
            &[0x0e, 0, 0, 5, b'h', b'e', b'l', b'l', b'o'][..],
            &[0x0f, 0, 5, 0],
            &[0x01],
            &[0x12, 0xd0, 0, 0, 0, 0, 0, 0, 1],
            &[0x04, 0x01, 0x01, 0x04, 0x01, 0x02],
            &[],
        ] {
            run(data);
        }
    }
}
