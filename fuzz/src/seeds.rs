//! The seed corpora: a few dozen small inputs per target that reach deep at once — real protocol
//! messages, a client's upgrade request, op sequences that open, exchange, misbehave and close,
//! frame sequences for each adapter — so that fuzzing starts from the protocol, not from zero.
//!
//! `corpus/TARGET/NAME` holds exactly what [`all`] generates. The test `seed_corpus_is_up_to_date`
//! checks it; `WRITE_SEEDS=1 cargo test` (in `fuzz/`) writes it. Inputs a fuzzing run found to
//! crash are kept beside the seeds under names starting with `crash-`, which the test leaves alone
//! (and runs like the others).

use ws_stream_mux::proto::{wire::Frame, ErrorCode, Half, Side, StreamId};

use crate::{
    input::Encode,
    mux_core::{ConfigChoice, MuxInput, Op},
    qmux_core::{self, ParamsChoice, QmuxInput},
    transport::{
        socket::{ReadStep, WriteStep},
        Adapter, Flags, Payload, Peer, TransportInput, WsFrame,
    },
};

/// One seed: the target, a file name, the bytes.
pub struct Seed {
    pub target: &'static str,
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

/// The targets with a seed corpus.
pub const TARGETS: [&str; 6] = [
    "request_head",
    "wire_decode",
    "mux_core",
    "transport",
    "qmux_decode",
    "qmux_core",
];

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |target, name, bytes| {
        seeds.push(Seed {
            target,
            name,
            bytes,
        })
    };
    for (name, bytes) in request_heads() {
        add("request_head", name, bytes);
    }
    for (name, bytes) in wire_messages() {
        add("wire_decode", name, bytes);
    }
    for (name, input) in mux_inputs() {
        add("mux_core", name, input.to_input());
    }
    for (name, input) in transport_inputs() {
        add("transport", name, input.to_input());
    }
    for (name, bytes) in qmux_records() {
        add("qmux_decode", name, bytes);
    }
    for (name, input) in qmux_inputs() {
        add("qmux_core", name, input.to_input());
    }
    seeds
}

// ----- request_head: a choice byte (the configuration), then the head -----

fn request_heads() -> Vec<(&'static str, Vec<u8>)> {
    let head = |choice: u8, text: &str| [&[choice][..], text.as_bytes()].concat();
    let upgrade = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    vec![
        ("upgrade", head(0, &format!("{upgrade}\r\n"))),
        (
            "upgrade_with_policies",
            head(
                1,
                &format!("{upgrade}Origin: http://a\r\nSec-WebSocket-Protocol: p, q\r\n\r\n"),
            ),
        ),
        ("partial", head(0, "GET /ws HTTP/1.1\r\nHost: a\r\n")),
        (
            "old_version",
            head(0, &upgrade.replace("Version: 13", "Version: 8")),
        ),
        (
            "not_get",
            head(2, &format!("{}\r\n", upgrade.replace("GET", "POST"))),
        ),
    ]
}

// ----- wire_decode: one mux message each -----

fn wire_messages() -> Vec<(&'static str, Vec<u8>)> {
    let message = |id: u64, frame: Frame| frame.to_bytes(StreamId(id)).to_vec();
    vec![
        ("ack_open", message(0, Frame::Ack(1 << 20))),
        ("data", message(3, Frame::Data(b"hello".to_vec().into()))),
        ("data_empty", message(5, Frame::Data(Vec::new().into()))),
        (
            "error_write",
            message(64, Frame::Error(Half::Write, ErrorCode(4001))),
        ),
        (
            "error_read_largest",
            message(
                151_288_809_941_952_652,
                Frame::Error(Half::Read, ErrorCode::MAX),
            ),
        ),
        ("close_read", message(2, Frame::Close(Half::Read))),
        ("close_write", message(16_384, Frame::Close(Half::Write))),
        ("non_minimal_id_trailing", vec![0x40, 2, 0, 3, 0, 0xff]),
        ("ack_trailing", vec![1, 0, 1, 0, 0, 0, 9, 7, 7]),
        ("error_non_minimal_code", vec![1, 0, 2, 1, 0x80, 0, 0, 5]),
        ("unknown_type", vec![5, 0, 4]),
        ("short_ack", vec![5, 0, 1, 0, 0, 0]),
        ("bad_shutdown", vec![5, 0, 2, 2, 0]),
        ("no_type", vec![0x80, 0, 0, 9]),
        ("truncated_id", vec![0xc0, 0, 0]),
    ]
}

// ----- mux_core: op sequences -----

/// A configuration with small windows and messages (see `ConfigChoice::config`): window 1000,
/// initial window 100, budget 65,536, 37-byte DATA, a 300-byte send buffer, 2 streams each way.
fn small_config(flags: u8) -> ConfigChoice {
    ConfigChoice {
        window: 3,
        initial_window: 2,
        receive_budget: 3,
        max_data_per_message: 2,
        send_buffer: 2,
        flags,
        max_streams: 1,
        drop_code: 9,
    }
}

fn mux_inputs() -> Vec<(&'static str, MuxInput)> {
    use Op::*;
    let all = Transmit {
        max: 0,
        flush_partial: false,
    };
    let input = |side, flags, ops: Vec<Op>| MuxInput {
        side,
        config: small_config(flags),
        ops,
    };
    vec![
        (
            // Open, exchange both ways, finish both ways, close with the handshake.
            "client_round_trip",
            input(
                Side::Client,
                0,
                vec![
                    Open,
                    all.clone(),
                    PeerAck {
                        stream: 0,
                        credit: 3,
                    },
                    Write { stream: 0, len: 80 },
                    all.clone(),
                    PeerData {
                        stream: 0,
                        len: 60,
                        fit: true,
                    },
                    Read {
                        stream: 0,
                        len: 100,
                    },
                    Finish { stream: 0 },
                    all.clone(),
                    PeerFin { stream: 0 },
                    Read {
                        stream: 0,
                        len: 100,
                    },
                    Close { code: 0, reason: 3 },
                    all.clone(),
                    PeerClose { code: 1, reason: 3 },
                    TakeEvents,
                ],
            ),
        ),
        (
            // The peer opens three streams against a limit of two: the third is refused.
            "server_accepts_to_the_limit",
            input(
                Side::Server,
                0,
                vec![
                    PeerOpen { credit: 4 },
                    PeerOpen { credit: 4 },
                    PeerOpen { credit: 4 },
                    all.clone(),
                    Accept,
                    Accept,
                    Accept,
                    PeerData {
                        stream: 0,
                        len: 90,
                        fit: true,
                    },
                    Read { stream: 0, len: 50 },
                    ReadChunk { stream: 0, max: 60 },
                    Write {
                        stream: 1,
                        len: 200,
                    },
                    all.clone(),
                    Release { stream: 0, how: 3 },
                    all.clone(),
                    TakeEvents,
                    Open,
                    Open,
                    Open,
                    all.clone(),
                ],
            ),
        ),
        (
            // A malformed message and DATA beyond credit end one stream each; a message for a
            // stream of ours never opened ends the connection (1002).
            "bad_input",
            input(
                Side::Client,
                0,
                vec![
                    Open,
                    Open,
                    all.clone(),
                    PeerAck {
                        stream: 0,
                        credit: 3,
                    },
                    PeerAck {
                        stream: 1,
                        credit: 3,
                    },
                    PeerMessage {
                        id: 0,
                        kind: 6,
                        arg: 0,
                    },
                    PeerData {
                        stream: 1,
                        len: 200,
                        fit: false,
                    },
                    all.clone(),
                    TakeEvents,
                    Write { stream: 0, len: 5 },
                    Read { stream: 1, len: 5 },
                    PeerMessage {
                        id: 160,
                        kind: 1,
                        arg: 1,
                    },
                    all.clone(),
                    Flushed,
                    TakeEvents,
                ],
            ),
        ),
        (
            // A text message (1003), and before it a message over the 40-byte limit (1009).
            "text_and_too_big",
            input(
                Side::Server,
                0b1010_0000,
                vec![
                    PeerOpen { credit: 3 },
                    PeerRaw { bytes: vec![1; 60] },
                    PeerText { len: 4 },
                    all.clone(),
                    Flushed,
                    TakeEvents,
                ],
            ),
        ),
        (
            // Keep-alive pings, the pong, then silence: the idle timeout closes (1001), and the
            // close times out.
            "keep_alive_and_idle",
            input(
                Side::Client,
                0b110,
                vec![
                    Advance { millis: 1000 },
                    all.clone(),
                    PeerPong { echo: true },
                    Advance { millis: 6000 },
                    all.clone(),
                    ToDeadline,
                    TakeEvents,
                ],
            ),
        ),
        (
            // A graceful shutdown refuses new streams and closes once the open ones are over.
            "shutdown_drain",
            input(
                Side::Server,
                0,
                vec![
                    PeerOpen { credit: 4 },
                    Accept,
                    Shutdown {
                        code: 1,
                        timeout: 50,
                    },
                    PeerOpen { credit: 4 },
                    Open,
                    all.clone(),
                    PeerFin { stream: 0 },
                    Release { stream: 0, how: 3 },
                    all.clone(),
                    PeerClose { code: 2, reason: 0 },
                    ToDeadline,
                    TakeEvents,
                ],
            ),
        ),
        (
            // The peer pings, pongs unasked, closes first; our echo is flushed.
            "peer_closes",
            input(
                Side::Client,
                0,
                vec![
                    Open,
                    Ping,
                    all.clone(),
                    PeerPing {
                        payload: b"hi".to_vec(),
                    },
                    PeerPong { echo: false },
                    PeerClose { code: 3, reason: 5 },
                    Write { stream: 0, len: 5 },
                    Flushed,
                    TakeEvents,
                ],
            ),
        ),
        (
            // Streams dropped, one while panicking, then the whole connection: it closes with
            // 1000 and the socket ends.
            "drops",
            input(
                Side::Client,
                0,
                vec![
                    Open,
                    Open,
                    all.clone(),
                    PeerAck {
                        stream: 0,
                        credit: 3,
                    },
                    Write { stream: 0, len: 20 },
                    Release { stream: 0, how: 7 },
                    Release { stream: 1, how: 3 },
                    Close { code: 0, reason: 0 },
                    all.clone(),
                    Ended,
                    TakeEvents,
                ],
            ),
        ),
        (
            // Peer resets, stops and CLOSE Write; our reset and stop.
            "resets_and_stops",
            input(
                Side::Server,
                0,
                vec![
                    PeerOpen { credit: 5 },
                    PeerOpen { credit: 5 },
                    Accept,
                    Accept,
                    all.clone(),
                    Write {
                        stream: 0,
                        len: 100,
                    },
                    PeerReset { stream: 0, code: 7 },
                    PeerStop {
                        stream: 1,
                        code: 201,
                    },
                    PeerCloseWrite { stream: 0 },
                    Reset { stream: 1, code: 4 },
                    Stop { stream: 0, code: 5 },
                    all.clone(),
                    Read { stream: 0, len: 9 },
                    Write { stream: 1, len: 9 },
                    TakeEvents,
                ],
            ),
        ),
        (
            // Coalesced writes leave when full or flushed; priorities order the streams.
            "coalesce_and_priority",
            input(
                Side::Client,
                1,
                vec![
                    Open,
                    Open,
                    all.clone(),
                    PeerAck {
                        stream: 0,
                        credit: 4,
                    },
                    PeerAck {
                        stream: 1,
                        credit: 4,
                    },
                    SetPriority {
                        stream: 1,
                        priority: 5,
                    },
                    Write { stream: 0, len: 10 },
                    Write { stream: 1, len: 50 },
                    Transmit {
                        max: 0,
                        flush_partial: false,
                    },
                    Flush { stream: 0 },
                    Transmit {
                        max: 1,
                        flush_partial: true,
                    },
                    all.clone(),
                ],
            ),
        ),
        (
            // Raw messages: a non-minimal id, trailing bytes, an unknown id, garbage.
            "raw_messages",
            input(
                Side::Server,
                0,
                vec![
                    PeerRaw {
                        bytes: vec![0x40, 1, 0, 1, 0, 0, 1, 0, 0xff],
                    },
                    PeerRaw {
                        bytes: vec![3, 0, 0, b'x'],
                    },
                    PeerRaw { bytes: vec![0xc0] },
                    PeerMessage {
                        id: 230,
                        kind: 1,
                        arg: 2,
                    },
                    Accept,
                    all.clone(),
                    TakeEvents,
                ],
            ),
        ),
    ]
}

// ----- transport: frame sequences per adapter -----

fn frame(opcode: u8, payload: Payload) -> WsFrame {
    WsFrame {
        head: 0x10 | opcode,
        payload,
    }
}

fn mux(id: u8, kind: u8, arg: u8) -> WsFrame {
    frame(2, Payload::Mux { id, kind, arg })
}

fn close(code: u16) -> WsFrame {
    frame(
        8,
        Payload::Close {
            code,
            reason_len: 3,
        },
    )
}

fn bytes(opcode: u8, bytes: &[u8]) -> WsFrame {
    frame(opcode, Payload::Bytes(bytes.to_vec()))
}

fn transport_inputs() -> Vec<(&'static str, TransportInput)> {
    let input = |adapter, flags, frames| TransportInput {
        adapter,
        flags: Flags(flags),
        close_round: 4,
        reads: Vec::new(),
        writes: Vec::new(),
        peer: Peer::Frames(frames),
    };
    // A client opening stream 0 and a server opening 1: ACK (credit 16 << 8), DATA, FIN.
    let client_stream = vec![mux(0, 1, 16), mux(0, 0, 20), mux(0, 4, 0)];
    let server_stream = vec![mux(1, 1, 16), mux(0, 1, 16), mux(1, 0, 20), mux(1, 4, 0)];
    let with = |mut frames: Vec<WsFrame>, more: Vec<WsFrame>| {
        frames.extend(more);
        frames
    };
    let mut raw = input(Adapter::ConnectionServer, Flags::EOF, Vec::new());
    raw.peer = Peer::Raw(
        input(
            Adapter::ConnectionServer,
            Flags::EOF,
            with(client_stream.clone(), vec![close(1000)]),
        )
        .peer_bytes(),
    );
    let mut scripted = input(
        Adapter::ConnectionClient,
        Flags::EOF | Flags::CLOSE,
        with(server_stream.clone(), vec![bytes(9, b"ping"), close(1000)]),
    );
    scripted.reads = vec![
        ReadStep::Chunk(1),
        ReadStep::Pending,
        ReadStep::Chunk(3),
        ReadStep::Chunk(200),
        ReadStep::Error,
    ];
    scripted.writes = vec![WriteStep::Pending, WriteStep::Partial(8), WriteStep::Error];
    let fragmented = vec![
        WsFrame {
            head: 0x02,
            payload: Payload::Bytes(vec![0, 0, 1]),
        },
        bytes(0, &[0, 0, 0x10]),
    ];
    vec![
        (
            "connection_server",
            input(
                Adapter::ConnectionServer,
                Flags::EOF,
                with(client_stream.clone(), vec![bytes(9, b"hi"), close(1000)]),
            ),
        ),
        (
            "connection_client_closes",
            input(
                Adapter::ConnectionClient,
                Flags::EOF | Flags::CLOSE | Flags::PING,
                with(server_stream.clone(), vec![bytes(10, &[0; 8]), close(1000)]),
            ),
        ),
        (
            "connection_driver_silence",
            input(
                Adapter::ConnectionServer,
                Flags::DRIVER | Flags::SMALL | Flags::PING,
                client_stream.clone(),
            ),
        ),
        (
            "connection_fragments_then_text",
            input(
                Adapter::ConnectionServer,
                Flags::EOF,
                with(fragmented.clone(), vec![bytes(1, b"text")]),
            ),
        ),
        (
            "connection_bad_frames",
            input(
                Adapter::ConnectionClient,
                Flags::EOF,
                vec![
                    bytes(3, b"reserved"),
                    WsFrame {
                        head: 0x52,
                        payload: Payload::Bytes(vec![0, 0, 1]),
                    },
                ],
            ),
        ),
        ("connection_raw", raw),
        ("connection_scripted_socket", scripted),
        (
            "wsio_client",
            input(
                Adapter::WsIoClient,
                Flags::EOF,
                with(
                    fragmented.clone(),
                    vec![bytes(2, b"hello"), bytes(9, b""), close(1000)],
                ),
            ),
        ),
        (
            "wsio_server_closes_first",
            input(
                Adapter::WsIoServer,
                Flags::EOF | Flags::CLOSE | Flags::SMALL,
                vec![bytes(2, &[5; 200]), close(4000)],
            ),
        ),
        (
            "messages_server",
            input(
                Adapter::MessagesServer,
                Flags::EOF | Flags::PING,
                vec![
                    bytes(1, b"hi"),
                    bytes(2, &[1, 2]),
                    bytes(10, b"pong"),
                    close(1001),
                ],
            ),
        ),
        (
            "messages_client_limits",
            input(
                Adapter::MessagesClient,
                Flags::EOF | Flags::SMALL | Flags::CLOSE,
                vec![
                    WsFrame {
                        head: 0x92,
                        payload: Payload::Bytes(vec![3; 255]),
                    },
                    bytes(1, &[0xff, 0xfe]),
                    close(1002),
                ],
            ),
        ),
    ]
}

// ----- qmux_decode: records, and parameter bodies -----

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// QMUX.md's test vectors, a few broken records and two parameter bodies.
fn qmux_records() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "params_peers_defaults",
            hex(
                "ff 51 53 30 0d 0a 0d 0a 37 01 04 80 00 75 30 04 04 80 10 00 00 05 04 80 04 00 00
                 06 04 80 04 00 00 07 04 80 04 00 00 08 02 40 64 09 02 40 64 20 02 7f fe
                 c5 71 c5 94 29 cd 08 45 02 7f fe 1d 00",
            ),
        ),
        (
            "params_ours",
            hex(
                "ff 51 53 30 0d 0a 0d 0a 1c 04 04 81 00 00 00 05 04 80 10 00 00 06 04 80 10 00 00
                 07 04 80 10 00 00 08 02 40 64",
            ),
        ),
        (
            "params_body",
            hex("04 04 80 10 00 00 08 02 40 64 1b 01 00 20 02 7f fe 1d 00"),
        ),
        ("params_body_duplicate", hex("04 01 01 04 01 02")),
        ("stream_hello", hex("0e 00 00 05 68 65 6c 6c 6f")),
        ("stream_fin", hex("0f 00 05 00")),
        ("two_streams", hex("0e 0c 00 02 61 62 0f 0c 02 02 63 64")),
        ("stream_to_end", hex("0a 04 05 7a 7a 7a")),
        ("stream_far", hex("0e 01 80 01 11 70 01 7a")),
        ("reset_stream", hex("04 04 2a 00")),
        ("stop_sending", hex("05 08 07")),
        ("max_stream_data", hex("11 00 80 05 77 00")),
        ("max_data_streams", hex("10 81 08 00 00 12 40 64 13 01")),
        ("blocked", hex("14 05 15 00 05 16 01 17 02 00 00")),
        (
            "ping",
            hex("f4 8c 67 52 9e f8 c7 bd 00 f4 8c 67 52 9e f8 c7 be 00"),
        ),
        ("datagrams", hex("31 02 64 67 30 78 79")),
        ("application_close", hex("1d 00 03 62 79 65")),
        (
            "connection_close",
            hex("1c 43 ea 00 12 70 72 6f 74 6f 63 6f 6c 20 76 69 6f 6c 61 74 69 6f 6e"),
        ),
        ("unknown_type", hex("24 00 07 03 02")),
        ("truncated", hex("04 01")),
        ("streams_over_2_60", hex("12 d0 00 00 00 00 00 00 01")),
        (
            "stream_beyond_2_62",
            hex("0e 00 ff ff ff ff ff ff ff ff 01 00"),
        ),
    ]
}

// ----- qmux_core: op sequences -----

/// The peer's parameters: 1 MiB connection credit, 1000 per stream, 2 streams each way,
/// datagrams of 50 bytes, the minimum record size.
const PEER_PARAMS: ParamsChoice = ParamsChoice {
    data: 4,
    stream: 3 + 3 * 5 + 3 * 25,
    streams: 2 | 2 << 2,
    misc: 3,
};

/// Window 1000, budget 65,536, 37-byte STREAM frames, a 300-byte send buffer, 2 bidi and 1 uni
/// streams, a datagram queue of 2.
fn qmux_config(flags: u8) -> qmux_core::ConfigChoice {
    qmux_core::ConfigChoice {
        window: 3,
        receive_budget: 3,
        max_data_per_message: 2,
        send_buffer: 2,
        streams: 1 | 1 << 2 | 1 << 4,
        flags,
        drop_code: 9,
    }
}

fn qmux_inputs() -> Vec<(&'static str, QmuxInput)> {
    use qmux_core::Op::*;
    use ws_stream_mux::proto::QmuxVersion;
    let all = Transmit {
        max: 0,
        flush_partial: false,
    };
    let input = |side, flags, ops: Vec<qmux_core::Op>| QmuxInput {
        side,
        version: QmuxVersion::V02,
        config: qmux_config(flags),
        ops,
    };
    // A new stream of the peer's: bidi (192) or uni (224).
    let (new_bidi, new_uni, first) = (192, 224, 0);
    let plain = 0;
    vec![
        (
            // Parameters both ways, a stream each way with data and FIN, a close.
            "client_round_trip",
            input(
                Side::Client,
                0,
                vec![
                    all.clone(),
                    PeerParams(PEER_PARAMS),
                    Open { uni: false },
                    Write { stream: 0, len: 80 },
                    Finish { stream: 0 },
                    all.clone(),
                    PeerStream {
                        target: first,
                        len: 60,
                        how: 1,
                    },
                    Read {
                        stream: 0,
                        len: 100,
                    },
                    Read {
                        stream: 0,
                        len: 100,
                    },
                    all.clone(),
                    Close {
                        code: 0,
                        application: true,
                    },
                    all.clone(),
                    PeerClose {
                        connection: false,
                        code: 0,
                    },
                    PeerWsClose { code: 1 },
                    all.clone(),
                    TakeEvents,
                ],
            ),
        ),
        (
            // The peer opens bidi and uni streams, sends, resets, stops; we accept, read, answer.
            "server_accepts",
            input(
                Side::Server,
                0,
                vec![
                    PeerParams(PEER_PARAMS),
                    all.clone(),
                    Glue,
                    PeerStream {
                        target: new_bidi,
                        len: 40,
                        how: plain,
                    },
                    PeerStream {
                        target: new_uni,
                        len: 30,
                        how: 1,
                    },
                    Accept { uni: false },
                    Accept { uni: true },
                    ReadChunk { stream: 0, max: 10 },
                    Read {
                        stream: 1,
                        len: 200,
                    },
                    Write { stream: 0, len: 50 },
                    all.clone(),
                    PeerStop {
                        target: first,
                        code: 7,
                    },
                    PeerReset {
                        target: first,
                        code: 8,
                        size: 0,
                    },
                    all.clone(),
                    Read { stream: 0, len: 10 },
                    Write { stream: 0, len: 5 },
                    Release { stream: 0, how: 3 },
                    Release { stream: 1, how: 3 },
                    all.clone(),
                    TakeEvents,
                ],
            ),
        ),
        (
            // Credit: small windows used up, then MAX_DATA and MAX_STREAM_DATA both ways.
            "credit",
            input(
                Side::Client,
                0,
                vec![
                    PeerParams(ParamsChoice {
                        data: 2,
                        stream: 2 + 2 * 5 + 2 * 25,
                        streams: 1 | 1 << 2,
                        misc: 0,
                    }),
                    all.clone(),
                    Open { uni: false },
                    Open { uni: true },
                    Write {
                        stream: 0,
                        len: 200,
                    },
                    Write {
                        stream: 1,
                        len: 200,
                    },
                    all.clone(),
                    PeerMaxStreamData {
                        target: 0,
                        amount: 3,
                    },
                    PeerMaxData { amount: 4 },
                    all.clone(),
                    PeerStream {
                        target: 0,
                        len: 250,
                        how: plain,
                    },
                    Read {
                        stream: 0,
                        len: 255,
                    },
                    Read {
                        stream: 0,
                        len: 255,
                    },
                    all.clone(),
                    PeerMaxStreams {
                        uni: false,
                        amount: 3,
                    },
                    Open { uni: false },
                    all.clone(),
                ],
            ),
        ),
        (
            // Pings, datagrams and the blocked frames, then the peer's CONNECTION_CLOSE.
            "pings_and_datagrams",
            input(
                Side::Server,
                2 | 4,
                vec![
                    SendDatagram { len: 20 },
                    all.clone(),
                    PeerParams(PEER_PARAMS),
                    SendDatagram { len: 40 },
                    SendDatagram { len: 60 },
                    Ping,
                    all.clone(),
                    PeerPing {
                        response: true,
                        echo: true,
                        number: 0,
                    },
                    PeerPing {
                        response: false,
                        echo: false,
                        number: 3,
                    },
                    PeerDatagram { len: 10 },
                    ReadDatagram,
                    PeerBlocked { kind: 0, target: 5 },
                    PeerBlocked { kind: 1, target: 0 },
                    PeerBlocked { kind: 6, target: 1 },
                    Advance { millis: 3000 },
                    all.clone(),
                    ToDeadline,
                    all.clone(),
                    PeerClose {
                        connection: true,
                        code: 10,
                    },
                    all.clone(),
                    TakeEvents,
                ],
            ),
        ),
        (
            // The peer breaks rules: a frame before its parameters, a gap, data beyond credit, a
            // stream of ours never opened, an unknown frame type.
            "frame_before_parameters",
            input(
                Side::Client,
                0,
                vec![
                    PeerStream {
                        target: new_bidi,
                        len: 5,
                        how: plain,
                    },
                    all.clone(),
                    TakeEvents,
                ],
            ),
        ),
        (
            "gap",
            input(
                Side::Server,
                0,
                vec![
                    PeerParams(PEER_PARAMS),
                    all.clone(),
                    PeerStream {
                        target: new_bidi,
                        len: 5,
                        how: 4,
                    },
                    all.clone(),
                ],
            ),
        ),
        (
            "over_credit_and_raw",
            input(
                Side::Server,
                0,
                vec![
                    PeerParams(PEER_PARAMS),
                    all.clone(),
                    PeerStream {
                        target: new_uni,
                        len: 255,
                        how: 8,
                    },
                    PeerStream {
                        target: first,
                        len: 255,
                        how: 8,
                    },
                    PeerStream {
                        target: first,
                        len: 255,
                        how: 8,
                    },
                    PeerStream {
                        target: first,
                        len: 255,
                        how: 8,
                    },
                    PeerStream {
                        target: 240,
                        len: 1,
                        how: 0,
                    },
                    PeerRaw {
                        bytes: vec![0x24, 0, 7],
                    },
                    all.clone(),
                ],
            ),
        ),
        (
            // A graceful shutdown: the peer's new stream is refused, ours drains, then the close.
            "shutdown",
            input(
                Side::Client,
                0,
                vec![
                    PeerParams(PEER_PARAMS),
                    Open { uni: false },
                    Write { stream: 0, len: 30 },
                    Shutdown {
                        code: 2,
                        timeout: 50,
                    },
                    PeerStream {
                        target: new_bidi,
                        len: 5,
                        how: 1,
                    },
                    all.clone(),
                    Finish { stream: 0 },
                    // Our stream 0, the second the peer knows.
                    PeerStream {
                        target: 1,
                        len: 3,
                        how: 1,
                    },
                    Read { stream: 0, len: 9 },
                    Read { stream: 0, len: 9 },
                    all.clone(),
                    Flushed,
                    Advance { millis: 1500 },
                    all.clone(),
                    Ended,
                    TakeEvents,
                ],
            ),
        ),
    ]
}

/// Where the seed corpus of `target` lives: `corpus/TARGET/` beside this crate's manifest.
pub fn corpus_dir(target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, fs};

    use arbitrary::{Arbitrary, Unstructured};

    use super::*;

    fn run(target: &str, bytes: &[u8]) {
        match target {
            "wire_decode" => crate::wire_decode::run(bytes),
            "mux_core" => crate::mux_core::run(&decode(bytes)),
            "transport" => crate::transport::run(&decode(bytes)),
            "qmux_decode" => crate::qmux_decode::run(bytes),
            "qmux_core" => crate::qmux_core::run(&decode(bytes)),
            // request_head's harness is its fuzz target file.
            _ => {}
        }
    }

    fn decode<'a, T: Arbitrary<'a>>(bytes: &'a [u8]) -> T {
        T::arbitrary_take_rest(Unstructured::new(bytes)).expect("every input decodes")
    }

    #[test]
    fn structured_seeds_decode_to_what_was_encoded() {
        for (name, input) in mux_inputs() {
            assert_eq!(decode::<MuxInput>(&input.to_input()), input, "{name}");
        }
        for (name, input) in transport_inputs() {
            assert_eq!(decode::<TransportInput>(&input.to_input()), input, "{name}");
        }
        for (name, input) in qmux_inputs() {
            assert_eq!(decode::<QmuxInput>(&input.to_input()), input, "{name}");
        }
    }

    #[test]
    fn seed_corpus_is_up_to_date() {
        let write = std::env::var_os("WRITE_SEEDS").is_some();
        for target in TARGETS {
            let dir = corpus_dir(target);
            let generated: BTreeMap<&str, Vec<u8>> = all()
                .into_iter()
                .filter(|seed| seed.target == target)
                .map(|seed| (seed.name, seed.bytes))
                .collect();
            if write {
                // Kept crashes stay; every other file is the generator's.
                for entry in fs::read_dir(&dir).into_iter().flatten() {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    if !name.starts_with("crash-") {
                        fs::remove_file(&path).unwrap();
                    }
                }
                fs::create_dir_all(&dir).unwrap();
                for (name, bytes) in &generated {
                    fs::write(dir.join(name), bytes).unwrap();
                }
                continue;
            }
            for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap().to_owned();
                if name.starts_with("crash-") {
                    continue;
                }
                let on_disk = fs::read(&path).unwrap();
                assert_eq!(
                    generated.get(name.as_str()),
                    Some(&on_disk),
                    "{path:?} differs from the generator: run WRITE_SEEDS=1 cargo test"
                );
            }
            for name in generated.keys() {
                assert!(
                    dir.join(name).exists(),
                    "{target}/{name} missing: run WRITE_SEEDS=1 cargo test"
                );
            }
        }
    }

    #[test]
    fn every_seed_and_kept_crash_runs_clean() {
        for target in TARGETS {
            for entry in fs::read_dir(corpus_dir(target)).into_iter().flatten() {
                let path = entry.unwrap().path();
                run(target, &fs::read(&path).unwrap());
            }
        }
        for seed in all() {
            run(seed.target, &seed.bytes);
        }
    }
}
