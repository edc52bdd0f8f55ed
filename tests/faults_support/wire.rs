//! A recorded direction of a WebSocket connection read back: the HTTP head, then the frames
//! (RFC 6455 §5.2), each with the offset where it ends — the byte offsets at which a cut falls
//! before or after a given message.

/// Frame opcodes (RFC 6455 §5.2).
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// One frame as it went over the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The offset just after its last byte, counted from the first byte of the connection.
    pub end: u64,
    pub opcode: u8,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

/// One direction of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// The length of the HTTP head (request or response), its blank line included.
    pub head_len: u64,
    pub frames: Vec<Frame>,
}

impl Transcript {
    /// Reads `bytes`: an HTTP head, then frames. A frame still incomplete at the end (a
    /// recording taken while the connection runs) is left out: compare [`total`](Self::total)
    /// with the length of `bytes` to tell.
    ///
    /// # Panics
    /// If the head is unterminated.
    pub fn parse(bytes: &[u8]) -> Transcript {
        let head_len = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP head")
            + 4;
        let mut frames = Vec::new();
        let mut at = head_len;
        while let Some((frame, len)) = parse_frame(&bytes[at..]) {
            at += len;
            frames.push(Frame {
                end: at as u64,
                ..frame
            });
        }
        Transcript {
            head_len: head_len as u64,
            frames,
        }
    }

    /// The offset after the last byte.
    pub fn total(&self) -> u64 {
        self.frames.last().map_or(self.head_len, |frame| frame.end)
    }

    /// Where the last frame with `opcode` ends.
    pub fn last_end(&self, opcode: u8) -> u64 {
        self.frames
            .iter()
            .rev()
            .find(|frame| frame.opcode == opcode)
            .expect("a frame of that kind")
            .end
    }

    /// Where the first frame with `opcode` ends.
    pub fn first_end(&self, opcode: u8) -> u64 {
        self.frames
            .iter()
            .find(|frame| frame.opcode == opcode)
            .expect("a frame of that kind")
            .end
    }

    /// The frames' opcodes and payloads, without offsets: what two recordings of the same
    /// session must share (the client's masks differ, its frame sizes do not).
    pub fn messages(&self) -> Vec<(u8, Vec<u8>)> {
        self.frames
            .iter()
            .map(|frame| (frame.opcode, frame.payload.clone()))
            .collect()
    }
}

/// One frame at the start of `bytes` (with its length in bytes), or `None` if it is incomplete.
fn parse_frame(bytes: &[u8]) -> Option<(Frame, usize)> {
    let (&first, &second) = (bytes.first()?, bytes.get(1)?);
    let opcode = first & 0x0f;
    let masked = second & 0x80 != 0;
    let (len, mut at) = match second & 0x7f {
        126 => (
            u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        short => (short as usize, 2),
    };
    let mask = if masked {
        let key: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(key)
    } else {
        None
    };
    let mut payload = bytes.get(at..at + len)?.to_vec();
    if let Some(key) = mask {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
    }
    Some((
        Frame {
            end: 0,
            opcode,
            payload,
        },
        at + len,
    ))
}
