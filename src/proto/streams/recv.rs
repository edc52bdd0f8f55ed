//! The receiving half of one stream: bytes the peer sent that the application has not read yet, the
//! credit we granted for them, and how the half ends.
//!
//! ```text
//!          FIN             read to the end
//!   Open ───────► Finished ───────────────► (end of stream)
//!    │ peer's reset ──► Reset(code)    (buffered data dropped, reads fail with the code)
//!    │ our stop ──────► Stopped(code)  (buffered data dropped, reads fail)
//!    └ the peer misbehaves on it, or the connection ends ──► Failed(error)
//!                                      (data already buffered stays readable first)
//! ```
//!
//! Offsets are absolute, counted from the stream's first byte, for both protocols: the
//! @matrixai/ws protocol's relative ACKs are turned into limits by its codec.
//!
//! Memory: what is buffered never exceeds what we granted (`granted - consumed`). A payload below
//! [`SHARE_MIN`] bytes is copied into a buffer of the stream's own, so that a flood of tiny
//! messages cannot pin one of tungstenite's read buffers each; larger ones are kept as they came
//! (zero-copy) while the connection's pin budget lasts (see `Streams`), and copied after that.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::proto::{code::ErrorCode, error::StreamError};

/// Payloads smaller than this are always copied into the stream's own buffer.
pub const SHARE_MIN: usize = 16 * 1024;

/// The smallest buffer a copied payload starts; later small payloads fill it.
const OWNED_CHUNK: usize = 4 * 1024;

/// How the receiving half stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecvState {
    /// The peer may send.
    Open,
    /// The peer finished: reads reach the end once the buffer is drained.
    Finished,
    /// The peer reset its writing; reads fail with the code.
    Reset(ErrorCode),
    /// We stopped reading; reads fail.
    Stopped(ErrorCode),
    /// Ended otherwise; reads return the buffered data, then this error.
    Failed(StreamError),
}

/// Buffered bytes: shared with the buffer they arrived in (`pin` bytes of the connection's pin
/// budget charged for it), or copied into one of ours.
#[derive(Debug)]
enum Chunk {
    Shared { bytes: Bytes, pin: usize },
    Owned(BytesMut),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Shared { bytes, .. } => bytes.len(),
            Chunk::Owned(bytes) => bytes.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Shared { bytes, .. } => bytes,
            Chunk::Owned(bytes) => bytes,
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Chunk::Shared { bytes, .. } => bytes.advance(n),
            Chunk::Owned(bytes) => bytes.advance(n),
        }
    }

    fn pin(&self) -> usize {
        match self {
            Chunk::Shared { pin, .. } => *pin,
            Chunk::Owned(_) => 0,
        }
    }
}

/// Why incoming data was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataError {
    /// More than the credit we granted.
    Overflow,
    /// Not at the offset where the previous data ended.
    Gap,
    /// Beyond the final size, or a second, different final size.
    FinalSize,
}

/// What a read produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes were copied.
    Data(usize),
    /// End of stream.
    End,
    /// Nothing yet.
    Blocked,
}

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Recv {
    pub(crate) state: RecvState,
    chunks: VecDeque<Chunk>,
    buffered: usize,
    /// Offset of the next byte expected from the peer.
    pub(crate) received: u64,
    /// Bytes read by the application or discarded.
    pub(crate) consumed: u64,
    /// The absolute limit we advertised: the peer may send up to this offset.
    pub(crate) granted: u64,
    /// How far ahead of `consumed` we are willing to grant.
    pub(crate) window: u64,
    /// Where the stream ends, once known (FIN, reset).
    pub(crate) final_size: Option<u64>,
}

impl Recv {
    /// A new half; the peer may send `granted` bytes before our first grant.
    pub(crate) fn new(window: u64, granted: u64) -> Self {
        Self {
            state: RecvState::Open,
            chunks: VecDeque::new(),
            buffered: 0,
            received: 0,
            consumed: 0,
            granted,
            window,
            final_size: None,
        }
    }

    /// Bytes buffered for the application.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    pub(crate) fn is_open(&self) -> bool {
        self.state == RecvState::Open
    }

    /// Credit this half holds against the connection's receive budget: everything granted and
    /// not yet consumed while the peer may still send, only what is buffered once it may not.
    pub(crate) fn held_credit(&self) -> u64 {
        if self.is_open() {
            self.granted - self.consumed
        } else {
            self.buffered as u64
        }
    }

    /// Whether a read would not wait.
    pub(crate) fn readable(&self) -> bool {
        self.buffered > 0 || !self.is_open()
    }

    /// How much more credit we would like to grant: up to `consumed + window`.
    pub(crate) fn wanted_credit(&self) -> u64 {
        if !self.is_open() {
            return 0;
        }
        (self.consumed + self.window).saturating_sub(self.granted)
    }

    /// Data from the peer at `offset`, ending the stream there if `fin`. `share` is the pin
    /// charge if the payload may be kept as it came (zero-copy), `None` to copy it. Returns
    /// whether anything new became readable.
    pub(crate) fn on_data(
        &mut self,
        offset: u64,
        payload: Bytes,
        fin: bool,
        share: Option<usize>,
    ) -> Result<bool, DataError> {
        if offset != self.received {
            return Err(DataError::Gap);
        }
        let end = offset + payload.len() as u64;
        if end > self.granted {
            return Err(DataError::Overflow);
        }
        if self
            .final_size
            .is_some_and(|size| end > size || (fin && end != size))
        {
            return Err(DataError::FinalSize);
        }
        if !self.is_open() {
            // Data racing our stop, or after the peer's own reset: nothing to deliver, and it
            // counts as read (QMux's connection window gets it back).
            self.consumed += end - self.received;
            self.received = end;
            return Ok(false);
        }
        self.received = end;
        let new = !payload.is_empty();
        if new {
            self.buffered += payload.len();
            match share {
                Some(pin) => self.chunks.push_back(Chunk::Shared {
                    bytes: payload,
                    pin,
                }),
                None => self.copy_in(&payload),
            }
        }
        if fin {
            self.final_size = Some(end);
            self.state = RecvState::Finished;
            return Ok(true);
        }
        Ok(new)
    }

    fn copy_in(&mut self, payload: &[u8]) {
        if let Some(Chunk::Owned(tail)) = self.chunks.back_mut() {
            if tail.capacity() - tail.len() >= payload.len() {
                tail.extend_from_slice(payload);
                return;
            }
        }
        let mut chunk = BytesMut::with_capacity(payload.len().max(OWNED_CHUNK));
        chunk.extend_from_slice(payload);
        self.chunks.push_back(Chunk::Owned(chunk));
    }

    /// Copies buffered bytes into `out`. Adds the pin budget freed to `unpinned`.
    pub(crate) fn read(
        &mut self,
        out: &mut [u8],
        unpinned: &mut usize,
    ) -> Result<ReadOutcome, StreamError> {
        self.check_readable()?;
        if out.is_empty() {
            return Ok(ReadOutcome::Data(0));
        }
        let mut copied = 0;
        while copied < out.len() {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let n = front.len().min(out.len() - copied);
            out[copied..copied + n].copy_from_slice(&front.bytes()[..n]);
            copied += n;
            if n == front.len() {
                *unpinned += front.pin();
                self.chunks.pop_front();
            } else {
                front.advance(n);
            }
        }
        self.finish_read(copied)
    }

    /// Takes up to `max` buffered bytes without copying them.
    pub(crate) fn read_chunk(
        &mut self,
        max: usize,
        unpinned: &mut usize,
    ) -> Result<Result<Bytes, ReadOutcome>, StreamError> {
        self.check_readable()?;
        let Some(front) = self.chunks.front_mut() else {
            return self.finish_read(0).map(Err);
        };
        let n = front.len().min(max.max(1));
        let taken = match front {
            Chunk::Shared { bytes, .. } => bytes.split_to(n),
            Chunk::Owned(bytes) => bytes.split_to(n).freeze(),
        };
        if front.len() == 0 {
            *unpinned += front.pin();
            self.chunks.pop_front();
        }
        self.finish_read(n)?;
        Ok(Ok(taken))
    }

    fn check_readable(&self) -> Result<(), StreamError> {
        match &self.state {
            RecvState::Reset(code) => Err(StreamError::Reset(*code)),
            RecvState::Stopped(code) => Err(StreamError::LocallyEnded(*code)),
            _ => Ok(()),
        }
    }

    fn finish_read(&mut self, copied: usize) -> Result<ReadOutcome, StreamError> {
        if copied > 0 {
            self.buffered -= copied;
            self.consumed += copied as u64;
            return Ok(ReadOutcome::Data(copied));
        }
        match &self.state {
            RecvState::Open => Ok(ReadOutcome::Blocked),
            RecvState::Finished => Ok(ReadOutcome::End),
            RecvState::Failed(err) => Err(err.clone()),
            RecvState::Reset(code) => Err(StreamError::Reset(*code)),
            RecvState::Stopped(code) => Err(StreamError::LocallyEnded(*code)),
        }
    }

    /// Drops what is buffered (counted as consumed). Adds the pin budget freed to `unpinned`.
    pub(crate) fn discard(&mut self, unpinned: &mut usize) {
        *unpinned += self.chunks.iter().map(Chunk::pin).sum::<usize>();
        self.chunks.clear();
        self.consumed += self.buffered as u64;
        self.buffered = 0;
    }

    /// The peer reset its writing at `final_size`. Returns whether it changed anything.
    pub(crate) fn on_reset(&mut self, code: ErrorCode, unpinned: &mut usize) -> bool {
        if !self.is_open() {
            // A half that already ended keeps its end and its data: a late reset after the FIN
            // (the peer library sends such mirror replies) must not lose bytes received.
            return false;
        }
        self.discard(unpinned);
        self.state = RecvState::Reset(code);
        true
    }

    /// We stop reading. Returns whether the peer must be told (the half was open).
    pub(crate) fn stop(&mut self, code: ErrorCode, unpinned: &mut usize) -> bool {
        let dropped = self.buffered > 0;
        self.discard(unpinned);
        match self.state {
            RecvState::Open => {
                self.state = RecvState::Stopped(code);
                true
            }
            // The peer had finished, but bytes it sent were dropped unread: a later read must
            // fail, not end the stream as if everything had been read.
            RecvState::Finished if dropped => {
                self.state = RecvState::Stopped(code);
                false
            }
            _ => false,
        }
    }

    /// The half ends with `err` (the peer misbehaved on it, the connection ended). Buffered data
    /// stays readable unless `discard`.
    pub(crate) fn fail(&mut self, err: StreamError, discard: bool, unpinned: &mut usize) {
        if !self.is_open() {
            return;
        }
        if discard {
            self.discard(unpinned);
        }
        self.state = RecvState::Failed(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(recv: &mut Recv) -> Vec<u8> {
        let mut out = vec![0; 1000];
        let mut pins = 0;
        match recv.read(&mut out, &mut pins).unwrap() {
            ReadOutcome::Data(n) => out[..n].to_vec(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn data_within_credit_is_read_in_order_then_the_end() {
        let mut recv = Recv::new(10, 10);
        assert_eq!(
            recv.on_data(0, Bytes::from_static(b"abc"), false, None),
            Ok(true)
        );
        assert_eq!(
            recv.on_data(3, Bytes::from_static(b"de"), true, Some(7)),
            Ok(true)
        );
        assert_eq!(read_all(&mut recv), b"abcde");
        let mut pins = 0;
        assert_eq!(recv.read(&mut [0; 4], &mut pins), Ok(ReadOutcome::End));
        assert_eq!(recv.consumed, 5);
    }

    #[test]
    fn overflow_gaps_and_final_sizes_are_refused() {
        let mut recv = Recv::new(4, 4);
        assert_eq!(
            recv.on_data(1, Bytes::from_static(b"a"), false, None),
            Err(DataError::Gap)
        );
        assert_eq!(
            recv.on_data(0, Bytes::from_static(b"abcde"), false, None),
            Err(DataError::Overflow)
        );
        assert_eq!(
            recv.on_data(0, Bytes::from_static(b"ab"), true, None),
            Ok(true)
        );
        assert_eq!(
            recv.on_data(2, Bytes::from_static(b"c"), false, None),
            Err(DataError::FinalSize)
        );
    }

    #[test]
    fn small_payloads_share_one_owned_buffer() {
        let mut recv = Recv::new(1 << 20, 1 << 20);
        for i in 0..1000u64 {
            recv.on_data(i, Bytes::from(vec![i as u8]), false, None)
                .unwrap();
        }
        assert!(
            recv.chunks.len() <= 1,
            "{} chunks for 1000 bytes",
            recv.chunks.len()
        );
        assert_eq!(recv.held_credit(), 1 << 20);
    }

    #[test]
    fn a_reset_discards_data_and_releases_pins_but_not_after_the_fin() {
        let mut recv = Recv::new(100, 100);
        recv.on_data(0, Bytes::from(vec![1; 50]), false, Some(128))
            .unwrap();
        let mut pins = 0;
        assert!(recv.on_reset(ErrorCode(7), &mut pins));
        assert_eq!(pins, 128);
        assert_eq!(
            recv.read(&mut [0; 4], &mut pins),
            Err(StreamError::Reset(ErrorCode(7)))
        );

        let mut recv = Recv::new(100, 100);
        recv.on_data(0, Bytes::from_static(b"kept"), true, None)
            .unwrap();
        assert!(!recv.on_reset(ErrorCode(7), &mut pins));
        assert_eq!(read_all(&mut recv), b"kept");
    }

    #[test]
    fn read_chunk_hands_out_bytes_without_copying() {
        let mut recv = Recv::new(100, 100);
        let payload = Bytes::from(vec![9u8; 40]);
        recv.on_data(0, payload.clone(), false, Some(64)).unwrap();
        let mut pins = 0;
        let chunk = recv.read_chunk(30, &mut pins).unwrap().unwrap();
        assert_eq!(chunk.as_ptr(), payload.as_ptr(), "zero-copy");
        assert_eq!(pins, 0, "still pinned by the rest");
        let rest = recv.read_chunk(30, &mut pins).unwrap().unwrap();
        assert_eq!(rest.len(), 10);
        assert_eq!(pins, 64);
        assert_eq!(
            recv.read_chunk(30, &mut pins).unwrap(),
            Err(ReadOutcome::Blocked)
        );
    }
}
