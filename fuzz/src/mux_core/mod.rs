//! `mux_core`: the sans-IO core (`proto::Mux`) driven by an arbitrary sequence of user actions,
//! peer messages and socket events, against a model of what the peer sent and the user did.
//!
//! The input ([`MuxInput`]) picks the side, a small configuration and a list of [`Op`]s. The
//! harness ([`harness`]) plays the application and the peer at once: it calls the core's public
//! API only, builds the peer's messages with the wire codec (or takes raw bytes), and keeps a
//! model of every stream ([`model`]) from both ends. After every op it checks the invariants
//! listed in [`harness`].

pub mod harness;
pub mod model;

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use ws_stream_mux::proto::{CloseCode, Config, ErrorCode, Side};

use crate::input::{blob, byte, flag, until_empty, word, Encode, Writer};

pub use harness::run;

/// One fuzz input: who we are, how we are configured, what happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxInput {
    /// The core's side.
    pub side: Side,
    /// Its configuration, as table indices.
    pub config: ConfigChoice,
    /// What happens, in order.
    pub ops: Vec<Op>,
}

/// A small configuration, as indices into tables of interesting values (see [`Self::config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigChoice {
    pub window: u8,
    pub initial_window: u8,
    pub receive_budget: u8,
    pub max_data_per_message: u8,
    pub send_buffer: u8,
    /// Bit 0: coalesce writes; 1: keep-alive; 2: idle timeout; 3: no close timeout; 4: no reply
    /// timeout; 5: a message size limit, chosen by bits 6–7.
    pub flags: u8,
    /// 255 means 0 (invalid); otherwise 1–4 streams.
    pub max_streams: u8,
    pub drop_code: u8,
}

impl ConfigChoice {
    /// The configuration; it may be invalid (a zero limit, a message size that leaves no room for
    /// a header), which the harness checks `Config::validate` refuses.
    pub fn config(&self) -> Config {
        fn pick<T: Copy>(table: &[T], index: u8) -> T {
            table[usize::from(index) % table.len()]
        }
        let bit = |n: u8| self.flags & (1 << n) != 0;
        Config::default()
            .window(pick(&[1, 5, 64, 1000, 65_536, 1 << 20], self.window))
            .initial_window(pick(&[1, 16, 100, 4096, 65_536], self.initial_window))
            .receive_budget(pick(&[1, 64, 1000, 65_536, 16 << 20], self.receive_budget))
            .max_data_per_message(pick(&[1, 3, 37, 1000, 65_536], self.max_data_per_message))
            .send_buffer(pick(&[1, 10, 300, 65_536], self.send_buffer))
            .coalesce_writes(bit(0))
            .keep_alive_interval(bit(1).then_some(Duration::from_secs(1)))
            .idle_timeout(bit(2).then_some(Duration::from_secs(5)))
            .close_timeout((!bit(3)).then_some(Duration::from_secs(2)))
            .reply_timeout((!bit(4)).then_some(Duration::from_secs(3)))
            .max_message_size(bit(5).then(|| pick(&[5, 11, 40, 300], self.flags >> 6)))
            .max_streams(match self.max_streams {
                255 => 0,
                n => 1 + usize::from(n % 4),
            })
            .drop_code(ErrorCode(u64::from(self.drop_code)))
    }
}

/// One step. Stream fields pick among the streams known so far (modulo their number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    // ----- the application -----
    Open,
    Accept,
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
    SetPriority {
        stream: u8,
        priority: u8,
    },
    SetDropCode {
        stream: u8,
        code: u8,
    },
    /// Bit 0: the send half; 1: the receive half; 2: while panicking.
    Release {
        stream: u8,
        how: u8,
    },
    Close {
        code: u8,
        reason: u8,
    },
    Shutdown {
        code: u8,
        timeout: u8,
    },
    Ping,
    // ----- the peer: well-formed messages built with the codec -----
    PeerOpen {
        credit: u8,
    },
    PeerAck {
        stream: u8,
        credit: u8,
    },
    /// `fit`: no more than the credit the core has granted so far.
    PeerData {
        stream: u8,
        len: u8,
        fit: bool,
    },
    PeerFin {
        stream: u8,
    },
    PeerReset {
        stream: u8,
        code: u8,
    },
    PeerStop {
        stream: u8,
        code: u8,
    },
    PeerCloseWrite {
        stream: u8,
    },
    /// A message on any id (known, new, ours never opened, huge), well formed or not: see
    /// `harness::peer_message`.
    PeerMessage {
        id: u8,
        kind: u8,
        arg: u8,
    },
    // ----- the peer: anything else the socket can deliver -----
    PeerRaw {
        bytes: Vec<u8>,
    },
    PeerText {
        len: u8,
    },
    PeerPing {
        payload: Vec<u8>,
    },
    /// `echo`: the payload of our latest ping; otherwise an unsolicited pong.
    PeerPong {
        echo: bool,
    },
    PeerClose {
        code: u8,
        reason: u8,
    },
    PeerViolation,
    Ended,
    // ----- the socket and the clock -----
    Flushed,
    /// Takes up to `max` transmits, as a socket with room for that many would.
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
const OPS: u8 = 35;

impl Op {
    fn read(u: &mut Unstructured<'_>) -> Op {
        use Op::*;
        match byte(u) % OPS {
            0 => Open,
            1 => Accept,
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
            9 => SetPriority {
                stream: byte(u),
                priority: byte(u),
            },
            10 => SetDropCode {
                stream: byte(u),
                code: byte(u),
            },
            11 => Release {
                stream: byte(u),
                how: byte(u),
            },
            12 => Close {
                code: byte(u),
                reason: byte(u),
            },
            13 => Shutdown {
                code: byte(u),
                timeout: byte(u),
            },
            14 => Ping,
            15 => PeerOpen { credit: byte(u) },
            16 => PeerAck {
                stream: byte(u),
                credit: byte(u),
            },
            17 => PeerData {
                stream: byte(u),
                len: byte(u),
                fit: flag(u),
            },
            18 => PeerFin { stream: byte(u) },
            19 => PeerReset {
                stream: byte(u),
                code: byte(u),
            },
            20 => PeerStop {
                stream: byte(u),
                code: byte(u),
            },
            21 => PeerCloseWrite { stream: byte(u) },
            22 => PeerMessage {
                id: byte(u),
                kind: byte(u),
                arg: byte(u),
            },
            23 => PeerRaw { bytes: blob(u) },
            24 => PeerText { len: byte(u) },
            25 => PeerPing { payload: blob(u) },
            26 => PeerPong { echo: flag(u) },
            27 => PeerClose {
                code: byte(u),
                reason: byte(u),
            },
            28 => PeerViolation,
            29 => Ended,
            30 => Flushed,
            31 => Transmit {
                max: byte(u),
                flush_partial: flag(u),
            },
            32 => Advance { millis: word(u) },
            33 => ToDeadline,
            _ => TakeEvents,
        }
    }
}

impl Encode for Op {
    fn encode(&self, out: &mut Writer) {
        use Op::*;
        match *self {
            Open => out.byte(0),
            Accept => out.byte(1),
            Write { stream, len } => out.byte(2).byte(stream).byte(len),
            Read { stream, len } => out.byte(3).byte(stream).byte(len),
            ReadChunk { stream, max } => out.byte(4).byte(stream).byte(max),
            Flush { stream } => out.byte(5).byte(stream),
            Finish { stream } => out.byte(6).byte(stream),
            Reset { stream, code } => out.byte(7).byte(stream).byte(code),
            Stop { stream, code } => out.byte(8).byte(stream).byte(code),
            SetPriority { stream, priority } => out.byte(9).byte(stream).byte(priority),
            SetDropCode { stream, code } => out.byte(10).byte(stream).byte(code),
            Release { stream, how } => out.byte(11).byte(stream).byte(how),
            Close { code, reason } => out.byte(12).byte(code).byte(reason),
            Shutdown { code, timeout } => out.byte(13).byte(code).byte(timeout),
            Ping => out.byte(14),
            PeerOpen { credit } => out.byte(15).byte(credit),
            PeerAck { stream, credit } => out.byte(16).byte(stream).byte(credit),
            PeerData { stream, len, fit } => out.byte(17).byte(stream).byte(len).flag(fit),
            PeerFin { stream } => out.byte(18).byte(stream),
            PeerReset { stream, code } => out.byte(19).byte(stream).byte(code),
            PeerStop { stream, code } => out.byte(20).byte(stream).byte(code),
            PeerCloseWrite { stream } => out.byte(21).byte(stream),
            PeerMessage { id, kind, arg } => out.byte(22).byte(id).byte(kind).byte(arg),
            PeerRaw { ref bytes } => out.byte(23).blob(bytes),
            PeerText { len } => out.byte(24).byte(len),
            PeerPing { ref payload } => out.byte(25).blob(payload),
            PeerPong { echo } => out.byte(26).flag(echo),
            PeerClose { code, reason } => out.byte(27).byte(code).byte(reason),
            PeerViolation => out.byte(28),
            Ended => out.byte(29),
            Flushed => out.byte(30),
            Transmit { max, flush_partial } => out.byte(31).byte(max).flag(flush_partial),
            Advance { millis } => out.byte(32).word(millis),
            ToDeadline => out.byte(33),
            TakeEvents => out.byte(34),
        };
    }
}

impl<'a> Arbitrary<'a> for MuxInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let side = if flag(u) { Side::Server } else { Side::Client };
        let config = ConfigChoice {
            window: byte(u),
            initial_window: byte(u),
            receive_budget: byte(u),
            max_data_per_message: byte(u),
            send_buffer: byte(u),
            flags: byte(u),
            max_streams: byte(u),
            drop_code: byte(u),
        };
        let ops = until_empty(u, Op::read);
        Ok(MuxInput { side, config, ops })
    }
}

impl Encode for MuxInput {
    fn encode(&self, out: &mut Writer) {
        let c = &self.config;
        out.flag(self.side == Side::Server);
        for value in [
            c.window,
            c.initial_window,
            c.receive_budget,
            c.max_data_per_message,
            c.send_buffer,
            c.flags,
            c.max_streams,
            c.drop_code,
        ] {
            out.byte(value);
        }
        for op in &self.ops {
            op.encode(out);
        }
    }
}

/// An error code from a byte: small ones, and near the largest a varint carries.
pub fn error_code(byte: u8) -> ErrorCode {
    match byte {
        0..=199 => ErrorCode(u64::from(byte)),
        _ => ErrorCode(ErrorCode::MAX.0 - u64::from(byte - 200)),
    }
}

/// Credit for an ACK from a byte: zero, small, a window's worth, the largest.
pub fn credit(byte: u8) -> u32 {
    match byte % 8 {
        0 => 0,
        1 => 1,
        2 => 7,
        3 => 100,
        4 => 4096,
        5 => 65_536,
        6 => 1 << 20,
        _ => u32::MAX,
    }
}

/// A close code an application may send (the adapters refuse others before the core sees them).
pub fn application_close_code(byte: u8) -> CloseCode {
    const CODES: [u16; 5] = [1000, 1001, 4000, 4001, 4999];
    CloseCode(CODES[usize::from(byte) % CODES.len()])
}

/// A close code a peer may send, or none (`None`: a Close frame without a code).
pub fn peer_close_code(byte: u8) -> Option<CloseCode> {
    const CODES: [u16; 12] = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999,
    ];
    match byte {
        0 => None,
        _ => Some(CloseCode(CODES[usize::from(byte) % CODES.len()])),
    }
}
