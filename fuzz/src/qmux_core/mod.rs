//! `qmux_core`: the sans-IO core (`proto::Mux`) speaking QMux, driven by an arbitrary sequence of
//! user actions, peer records and socket events, against a model of both ends.
//!
//! The input ([`QmuxInput`]) picks the side, the version, a small configuration and a list of
//! [`Op`]s. The harness ([`harness`]) plays the application and the peer at once, like
//! `mux_core`'s: it calls the core's public API only, builds the peer's records with the QMux
//! codec (well-formed frames within the limits the core granted, or deliberately outside them,
//! and raw bytes) and decodes every record the core sends with the same codec. After every op it
//! checks the invariants listed in [`harness`].

pub mod harness;

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use ws_stream_mux::proto::{
    qmux::{TransportParams, MIN_RECORD_SIZE},
    Config, ErrorCode, QmuxVersion, Side,
};

use crate::input::{blob, byte, flag, until_empty, word, Encode, Writer};

pub use harness::run;

/// One fuzz input: who we are, which QMux version, how we are configured, what happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmuxInput {
    pub side: Side,
    pub version: QmuxVersion,
    pub config: ConfigChoice,
    pub ops: Vec<Op>,
}

fn pick<T: Copy>(table: &[T], index: u8) -> T {
    table[usize::from(index) % table.len()]
}

/// A small configuration, as indices into tables of interesting values (see [`Self::config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigChoice {
    pub window: u8,
    pub receive_budget: u8,
    pub max_data_per_message: u8,
    pub send_buffer: u8,
    /// Bits 0–1: bidi streams (1–4); 2–3: uni streams (0–3); 4–5: datagram queue (1–4).
    pub streams: u8,
    /// Bit 0: coalesce writes; 1: keep-alive; 2: idle timeout; 3: no close timeout; 4: no reply
    /// timeout.
    pub flags: u8,
    pub drop_code: u8,
}

impl ConfigChoice {
    /// The configuration (always valid).
    pub fn config(&self) -> Config {
        let bit = |n: u8| self.flags & (1 << n) != 0;
        Config::default()
            .window(pick(&[1, 7, 100, 1000, 65_536], self.window))
            .receive_budget(pick(&[1, 50, 1000, 65_536, 1 << 20], self.receive_budget))
            .max_data_per_message(pick(&[1, 3, 37, 1000, 65_536], self.max_data_per_message))
            .send_buffer(pick(&[1, 10, 300, 65_536], self.send_buffer))
            .max_streams(1 + usize::from(self.streams & 3))
            .max_uni_streams(usize::from((self.streams >> 2) & 3))
            .datagram_queue(1 + usize::from((self.streams >> 4) & 3))
            .coalesce_writes(bit(0))
            .keep_alive_interval(bit(1).then_some(Duration::from_secs(1)))
            .idle_timeout(bit(2).then_some(Duration::from_secs(5)))
            .close_timeout((!bit(3)).then_some(Duration::from_secs(2)))
            .reply_timeout((!bit(4)).then_some(Duration::from_secs(3)))
            .drop_code(ErrorCode(u64::from(self.drop_code)))
    }
}

/// The peer's transport parameters, as table indices (see [`Self::params`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParamsChoice {
    pub data: u8,
    /// Three base-5 digits: bidi local, bidi remote, uni stream credit.
    pub stream: u8,
    /// Bits 0–1: bidi streams; 2–3: uni streams.
    pub streams: u8,
    /// Bits 0–2: datagram frame size; 3–4: record size (3: below the minimum, invalid); 5–6:
    /// idle timeout; 7: reset_stream_at.
    pub misc: u8,
}

impl ParamsChoice {
    /// The parameters; invalid when the record size is below the minimum.
    pub fn params(&self) -> TransportParams {
        const CREDIT: [u64; 5] = [0, 1, 30, 1000, 1 << 20];
        const COUNT: [u64; 4] = [0, 1, 2, 100];
        let m = self.misc;
        TransportParams {
            max_idle_timeout: pick(&[0, 400, 30_000, 0], m >> 5),
            initial_max_data: pick(&[0, 1, 50, 1000, 1 << 20, 1 << 40], self.data),
            initial_max_stream_data_bidi_local: pick(&CREDIT, self.stream),
            initial_max_stream_data_bidi_remote: pick(&CREDIT, self.stream / 5),
            initial_max_stream_data_uni: pick(&CREDIT, self.stream / 25),
            initial_max_streams_bidi: pick(&COUNT, self.streams),
            initial_max_streams_uni: pick(&COUNT, self.streams >> 2),
            max_datagram_frame_size: pick(&[0, 3, 4, 50, 16_382, 1 << 20, 0, 100], m),
            max_record_size: pick(
                &[MIN_RECORD_SIZE, MIN_RECORD_SIZE + 1, 1 << 20, 100],
                m >> 3,
            ),
            reset_stream_at: m & 0x80 != 0,
        }
    }
}

/// One step. `target` fields pick a stream id, see `harness::Harness::target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    // ----- the application -----
    Open {
        uni: bool,
    },
    Accept {
        uni: bool,
    },
    Write {
        stream: u8,
        len: u8,
    },
    Read {
        stream: u8,
        len: u8,
    },
    ReadChunk {
        stream: u8,
        max: u8,
    },
    Flush {
        stream: u8,
    },
    Finish {
        stream: u8,
    },
    Reset {
        stream: u8,
        code: u8,
    },
    Stop {
        stream: u8,
        code: u8,
    },
    /// Bit 0: the send half; 1: the receive half; 2: while panicking.
    Release {
        stream: u8,
        how: u8,
    },
    /// `application`: `close_application` with `code` as a QMux code; else `close`.
    Close {
        code: u8,
        application: bool,
    },
    Shutdown {
        code: u8,
        timeout: u8,
    },
    Ping,
    SendDatagram {
        len: u8,
    },
    ReadDatagram,
    // ----- the peer: frames built with the codec -----
    PeerParams(ParamsChoice),
    /// `how` bit 0: FIN; bits 1–2: the offset (0, 1: where the data is; 2: one past; 3: one
    /// before); bit 3: as long as asked, whatever the credit.
    PeerStream {
        target: u8,
        len: u8,
        how: u8,
    },
    /// `size`: 0–1 the bytes sent, 2: fewer, 3: more (plus `size / 4`).
    PeerReset {
        target: u8,
        code: u8,
        size: u8,
    },
    PeerStop {
        target: u8,
        code: u8,
    },
    PeerMaxData {
        amount: u8,
    },
    PeerMaxStreamData {
        target: u8,
        amount: u8,
    },
    PeerMaxStreams {
        uni: bool,
        amount: u8,
    },
    /// DATA_BLOCKED, STREAM_DATA_BLOCKED, STREAMS_BLOCKED, PADDING.
    PeerBlocked {
        kind: u8,
        target: u8,
    },
    /// `response`: a QX_PING response (`echo`: to the latest request we sent); else a request.
    PeerPing {
        response: bool,
        echo: bool,
        number: u8,
    },
    PeerDatagram {
        len: u8,
    },
    /// `connection`: CONNECTION_CLOSE with a transport code; else APPLICATION_CLOSE.
    PeerClose {
        connection: bool,
        code: u8,
    },
    /// The next peer frame joins this one in one record.
    Glue,
    PeerRaw {
        bytes: Vec<u8>,
    },
    PeerText {
        len: u8,
    },
    PeerWsClose {
        code: u8,
    },
    Ended,
    // ----- the socket and the clock -----
    Flushed,
    Transmit {
        max: u8,
        flush_partial: bool,
    },
    Advance {
        millis: u16,
    },
    ToDeadline,
    TakeEvents,
}

/// The number of `Op` variants: the tag byte is read modulo this.
const OPS: u8 = 38;

impl Op {
    fn read(u: &mut Unstructured<'_>) -> Op {
        use Op::*;
        match byte(u) % OPS {
            0 => Open { uni: flag(u) },
            1 => Accept { uni: flag(u) },
            2 => Write {
                stream: byte(u),
                len: byte(u),
            },
            3 => Read {
                stream: byte(u),
                len: byte(u),
            },
            4 => ReadChunk {
                stream: byte(u),
                max: byte(u),
            },
            5 => Flush { stream: byte(u) },
            6 => Finish { stream: byte(u) },
            7 => Reset {
                stream: byte(u),
                code: byte(u),
            },
            8 => Stop {
                stream: byte(u),
                code: byte(u),
            },
            9 => Release {
                stream: byte(u),
                how: byte(u),
            },
            10 => Close {
                code: byte(u),
                application: flag(u),
            },
            11 => Shutdown {
                code: byte(u),
                timeout: byte(u),
            },
            12 => Ping,
            13 => SendDatagram { len: byte(u) },
            14 => ReadDatagram,
            15 => PeerParams(ParamsChoice {
                data: byte(u),
                stream: byte(u),
                streams: byte(u),
                misc: byte(u),
            }),
            16 => PeerStream {
                target: byte(u),
                len: byte(u),
                how: byte(u),
            },
            17 => PeerReset {
                target: byte(u),
                code: byte(u),
                size: byte(u),
            },
            18 => PeerStop {
                target: byte(u),
                code: byte(u),
            },
            19 => PeerMaxData { amount: byte(u) },
            20 => PeerMaxStreamData {
                target: byte(u),
                amount: byte(u),
            },
            21 => PeerMaxStreams {
                uni: flag(u),
                amount: byte(u),
            },
            22 => PeerBlocked {
                kind: byte(u),
                target: byte(u),
            },
            23 => PeerPing {
                response: flag(u),
                echo: flag(u),
                number: byte(u),
            },
            24 => PeerDatagram { len: byte(u) },
            25 => PeerClose {
                connection: flag(u),
                code: byte(u),
            },
            26 => Glue,
            27 => PeerRaw { bytes: blob(u) },
            28 => PeerText { len: byte(u) },
            29 => PeerWsClose { code: byte(u) },
            30 => Ended,
            31 => Flushed,
            32 => Transmit {
                max: byte(u),
                flush_partial: flag(u),
            },
            33 => Advance { millis: word(u) },
            34 => ToDeadline,
            35 => TakeEvents,
            // Two slots for the commonest peer frame.
            _ => PeerStream {
                target: byte(u),
                len: byte(u),
                how: byte(u),
            },
        }
    }
}

impl Encode for Op {
    fn encode(&self, out: &mut Writer) {
        use Op::*;
        match *self {
            Open { uni } => out.byte(0).flag(uni),
            Accept { uni } => out.byte(1).flag(uni),
            Write { stream, len } => out.byte(2).byte(stream).byte(len),
            Read { stream, len } => out.byte(3).byte(stream).byte(len),
            ReadChunk { stream, max } => out.byte(4).byte(stream).byte(max),
            Flush { stream } => out.byte(5).byte(stream),
            Finish { stream } => out.byte(6).byte(stream),
            Reset { stream, code } => out.byte(7).byte(stream).byte(code),
            Stop { stream, code } => out.byte(8).byte(stream).byte(code),
            Release { stream, how } => out.byte(9).byte(stream).byte(how),
            Close { code, application } => out.byte(10).byte(code).flag(application),
            Shutdown { code, timeout } => out.byte(11).byte(code).byte(timeout),
            Ping => out.byte(12),
            SendDatagram { len } => out.byte(13).byte(len),
            ReadDatagram => out.byte(14),
            PeerParams(p) => out
                .byte(15)
                .byte(p.data)
                .byte(p.stream)
                .byte(p.streams)
                .byte(p.misc),
            PeerStream { target, len, how } => out.byte(16).byte(target).byte(len).byte(how),
            PeerReset { target, code, size } => out.byte(17).byte(target).byte(code).byte(size),
            PeerStop { target, code } => out.byte(18).byte(target).byte(code),
            PeerMaxData { amount } => out.byte(19).byte(amount),
            PeerMaxStreamData { target, amount } => out.byte(20).byte(target).byte(amount),
            PeerMaxStreams { uni, amount } => out.byte(21).flag(uni).byte(amount),
            PeerBlocked { kind, target } => out.byte(22).byte(kind).byte(target),
            PeerPing {
                response,
                echo,
                number,
            } => out.byte(23).flag(response).flag(echo).byte(number),
            PeerDatagram { len } => out.byte(24).byte(len),
            PeerClose { connection, code } => out.byte(25).flag(connection).byte(code),
            Glue => out.byte(26),
            PeerRaw { ref bytes } => out.byte(27).blob(bytes),
            PeerText { len } => out.byte(28).byte(len),
            PeerWsClose { code } => out.byte(29).byte(code),
            Ended => out.byte(30),
            Flushed => out.byte(31),
            Transmit { max, flush_partial } => out.byte(32).byte(max).flag(flush_partial),
            Advance { millis } => out.byte(33).word(millis),
            ToDeadline => out.byte(34),
            TakeEvents => out.byte(35),
        };
    }
}

impl<'a> Arbitrary<'a> for QmuxInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let head = byte(u);
        let side = if head & 1 == 1 {
            Side::Server
        } else {
            Side::Client
        };
        let version = if head & 2 == 2 {
            QmuxVersion::V01
        } else {
            QmuxVersion::V02
        };
        let config = ConfigChoice {
            window: byte(u),
            receive_budget: byte(u),
            max_data_per_message: byte(u),
            send_buffer: byte(u),
            streams: byte(u),
            flags: byte(u),
            drop_code: byte(u),
        };
        let ops = until_empty(u, Op::read);
        Ok(QmuxInput {
            side,
            version,
            config,
            ops,
        })
    }
}

impl Encode for QmuxInput {
    fn encode(&self, out: &mut Writer) {
        let c = &self.config;
        let head =
            u8::from(self.side == Side::Server) | u8::from(self.version == QmuxVersion::V01) << 1;
        out.byte(head);
        for value in [
            c.window,
            c.receive_budget,
            c.max_data_per_message,
            c.send_buffer,
            c.streams,
            c.flags,
            c.drop_code,
        ] {
            out.byte(value);
        }
        for op in &self.ops {
            op.encode(out);
        }
    }
}
