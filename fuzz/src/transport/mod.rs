//! `transport`: the adapters (`Connection`, `WsIo`, `MessageSocket`) over a WebSocket whose peer
//! is the fuzz input, an in-memory [`socket::FuzzSocket`] wrapped with
//! `WebSocketStream::from_raw_socket` (no HTTP handshake).
//!
//! The peer's bytes are either raw, or built from structured [`WsFrame`]s (any opcode, FIN, RSV1,
//! masking, length form; payloads raw, a mux message built with the codec, a close payload, or
//! text) so that the fuzzer gets past the framing quickly. Scripts choose how the socket delivers
//! and takes bytes. [`harness`] runs the adapter's tasks with a bounded number of polls.

pub mod frames;
pub mod harness;
pub mod socket;

use arbitrary::{Arbitrary, Unstructured};

use crate::input::{blob, byte, until_empty, word, Encode, Writer};
use socket::{End, ReadStep, WriteStep};

pub use harness::run;

/// Which adapter, on which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    ConnectionClient,
    ConnectionServer,
    WsIoClient,
    WsIoServer,
    MessagesClient,
    MessagesServer,
}

impl Adapter {
    const ALL: [Adapter; 6] = [
        Adapter::ConnectionClient,
        Adapter::ConnectionServer,
        Adapter::WsIoClient,
        Adapter::WsIoServer,
        Adapter::MessagesClient,
        Adapter::MessagesServer,
    ];

    /// Whether our side is the server (then the peer masks its frames).
    pub fn is_server(self) -> bool {
        matches!(
            self,
            Adapter::ConnectionServer | Adapter::WsIoServer | Adapter::MessagesServer
        )
    }

    fn index(self) -> u8 {
        Self::ALL.iter().position(|a| *a == self).expect("listed") as u8
    }
}

/// What the harness does besides the adapter's basic tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// Once the input is used up the peer closes TCP (else it stays silent).
    pub const EOF: u8 = 1;
    /// A `Connection` gets a spawned driver (`run()`).
    pub const DRIVER: u8 = 2;
    /// Small windows, few streams, small messages.
    pub const SMALL: u8 = 4;
    /// Our side closes, starting at `close_round`.
    pub const CLOSE: u8 = 8;
    /// Our side pings.
    pub const PING: u8 = 16;

    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }
}

/// One fuzz input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportInput {
    pub adapter: Adapter,
    pub flags: Flags,
    /// The poll round at which our close starts (with [`Flags::CLOSE`]).
    pub close_round: u8,
    pub reads: Vec<ReadStep>,
    pub writes: Vec<WriteStep>,
    pub peer: Peer,
}

impl TransportInput {
    /// What happens once the input is used up.
    pub fn end(&self) -> End {
        if self.flags.has(Flags::EOF) {
            End::Eof
        } else {
            End::Silence
        }
    }
}

/// What the peer sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// These bytes, as they are.
    Raw(Vec<u8>),
    /// These frames, serialized.
    Frames(Vec<WsFrame>),
}

/// One frame the peer sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsFrame {
    /// Bits 0–3: the opcode; 4: FIN; 5: RSV1; 6: masked the wrong way for the peer's role;
    /// 7: the length in a longer form than needed.
    pub head: u8,
    pub payload: Payload,
}

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Bytes(Vec<u8>),
    /// A mux message built with the codec: `id` (small), `kind` (DATA, ACK, ERROR Read/Write,
    /// CLOSE Read/Write), `arg` (DATA length, credit, code).
    Mux {
        id: u8,
        kind: u8,
        arg: u8,
    },
    /// A close payload: a code, then `reason_len` bytes of reason.
    Close {
        code: u16,
        reason_len: u8,
    },
}

impl WsFrame {
    /// Serializes the frame as a peer of `server`'s side would, masking wrongly if asked.
    pub fn write(&self, our_side_is_server: bool, out: &mut Vec<u8>) {
        use ws_stream_mux::proto::{wire::Frame, ErrorCode, Half, StreamId};
        let head = self.head;
        let header = frames::Header {
            opcode: head & 0x0f,
            fin: head & 0x10 != 0,
            rsv1: head & 0x20 != 0,
            // A client masks its frames, a server does not.
            masked: our_side_is_server != (head & 0x40 != 0),
            long_length: head & 0x80 != 0,
        };
        let payload = match &self.payload {
            Payload::Bytes(bytes) => bytes.clone(),
            Payload::Mux { id, kind, arg } => {
                let frame = match kind % 6 {
                    0 => Frame::Data(vec![0xd0; usize::from(*arg)].into()),
                    1 => Frame::Ack(u32::from(*arg) << 8),
                    2 => Frame::Error(Half::Read, ErrorCode(u64::from(*arg))),
                    3 => Frame::Error(Half::Write, ErrorCode(u64::from(*arg))),
                    4 => Frame::Close(Half::Read),
                    _ => Frame::Close(Half::Write),
                };
                frame.to_bytes(StreamId(u64::from(*id))).to_vec()
            }
            Payload::Close { code, reason_len } => {
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend(std::iter::repeat_n(b'r', usize::from(*reason_len)));
                payload
            }
        };
        frames::write_frame(header, &payload, out);
    }
}

/// A read script byte: 0 waits, 1 fails, `n` moves at most `n - 1` bytes.
fn read_step(b: u8) -> ReadStep {
    match b {
        0 => ReadStep::Pending,
        1 => ReadStep::Error,
        n => ReadStep::Chunk(usize::from(n - 1)),
    }
}

/// A write script byte: 0 waits, 1 fails, `n` takes at most `4 n` bytes.
fn write_step(b: u8) -> WriteStep {
    match b {
        0 => WriteStep::Pending,
        1 => WriteStep::Error,
        n => WriteStep::Partial(usize::from(n) * 4),
    }
}

impl<'a> Arbitrary<'a> for TransportInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let adapter = Adapter::ALL[usize::from(byte(u)) % Adapter::ALL.len()];
        let flags = Flags(byte(u));
        let close_round = byte(u);
        let reads = blob(u).into_iter().map(read_step).collect();
        let writes = blob(u).into_iter().map(write_step).collect();
        let peer = if byte(u) & 1 == 0 {
            Peer::Raw(u.bytes(u.len()).map(<[u8]>::to_vec).unwrap_or_default())
        } else {
            Peer::Frames(until_empty(u, |u| {
                let head = byte(u);
                let payload = match byte(u) % 3 {
                    0 => Payload::Bytes(blob(u)),
                    1 => Payload::Mux {
                        id: byte(u),
                        kind: byte(u),
                        arg: byte(u),
                    },
                    _ => Payload::Close {
                        code: word(u),
                        reason_len: byte(u),
                    },
                };
                WsFrame { head, payload }
            }))
        };
        Ok(TransportInput {
            adapter,
            flags,
            close_round,
            reads,
            writes,
            peer,
        })
    }
}

impl Encode for TransportInput {
    fn encode(&self, out: &mut Writer) {
        out.byte(self.adapter.index())
            .byte(self.flags.0)
            .byte(self.close_round);
        let reads: Vec<u8> = self
            .reads
            .iter()
            .map(|step| match *step {
                ReadStep::Pending => 0,
                ReadStep::Error => 1,
                ReadStep::Chunk(n) => u8::try_from(n + 1)
                    .ok()
                    .filter(|b| *b >= 2)
                    .expect("a chunk of 1 to 254 bytes"),
            })
            .collect();
        let writes: Vec<u8> = self
            .writes
            .iter()
            .map(|step| match *step {
                WriteStep::Pending => 0,
                WriteStep::Error => 1,
                WriteStep::Partial(n) => u8::try_from(n / 4)
                    .ok()
                    .filter(|b| *b >= 2 && n % 4 == 0)
                    .expect("room for 8 to 1020 bytes, by 4"),
            })
            .collect();
        out.blob(&reads).blob(&writes);
        match &self.peer {
            Peer::Raw(bytes) => {
                out.byte(0);
                for b in bytes {
                    out.byte(*b);
                }
            }
            Peer::Frames(frames) => {
                out.byte(1);
                for frame in frames {
                    out.byte(frame.head);
                    match &frame.payload {
                        Payload::Bytes(bytes) => out.byte(0).blob(bytes),
                        Payload::Mux { id, kind, arg } => {
                            out.byte(1).byte(*id).byte(*kind).byte(*arg)
                        }
                        Payload::Close { code, reason_len } => {
                            out.byte(2).word(*code).byte(*reason_len)
                        }
                    };
                }
            }
        }
    }
}

impl TransportInput {
    /// The bytes the peer sends.
    pub fn peer_bytes(&self) -> Vec<u8> {
        match &self.peer {
            Peer::Raw(bytes) => bytes.clone(),
            Peer::Frames(frames) => {
                let mut out = Vec::new();
                for frame in frames {
                    frame.write(self.adapter.is_server(), &mut out);
                }
                out
            }
        }
    }
}
