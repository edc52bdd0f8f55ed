//! One stream's state: the receiving half, the sending half and what each owes the wire.
//!
//! Both halves follow QUIC's model: the sender may finish (FIN, `CLOSE Read` to the peer) or reset
//! (`ERROR Read`); the receiver may stop (`ERROR Write`), and the peer may do each of those to us.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    credit::{Overflow, RecvCredit, SendCredit},
    message::{encode_data_header, Frame},
    StreamId,
};
use crate::{code::ErrorCode, error::Error};

/// The receiving half.
#[derive(Debug, Clone)]
pub enum RecvState {
    /// The peer is writing.
    Open,
    /// The peer finished (FIN): end of stream once the buffer is drained.
    Finished,
    /// The half ended with an error: reads return it once the buffer is drained (the buffer is
    /// discarded for a peer's reset or our own stop).
    Failed(Error),
}

/// The sending half.
#[derive(Debug, Clone)]
pub enum SendState {
    /// The application may write.
    Open,
    /// The application finished: the FIN follows the queued data.
    Finishing,
    /// The FIN has been handed to the socket.
    Finished,
    /// The half ended with an error; writes return it.
    Failed(Error),
}

/// Outcome of a read.
#[derive(Debug)]
pub enum ReadOutcome {
    /// This many bytes were copied.
    Data(usize),
    /// End of stream.
    End,
    /// Nothing yet.
    Blocked,
}

/// One stream.
#[derive(Debug)]
pub struct Stream {
    id: StreamId,
    pub(super) recv: RecvState,
    recv_buf: VecDeque<Bytes>,
    recv_credit: RecvCredit,
    pub(super) send: SendState,
    send_credit: SendCredit,
    /// Encoded messages (DATA, then possibly the FIN) waiting for the socket.
    send_queue: VecDeque<Bytes>,
    /// A DATA message being filled by writes: header, then payload. Coalesces small writes while
    /// the socket is busy.
    building: BytesMut,
    /// Payload bytes written but not yet handed to the socket.
    send_queued: usize,
    /// Whether the stream is in the connection's round-robin list.
    pub(super) scheduled: bool,
    /// Whether the stream waits in the connection's corked list (see `Config::coalesce_writes`).
    pub(super) corked: bool,
    /// Whether the application still holds a handle (or the stream waits to be accepted).
    pub(super) has_handle: bool,
}

impl Stream {
    pub(super) fn new(id: StreamId, window: u32) -> Self {
        Self {
            id,
            recv: RecvState::Open,
            recv_buf: VecDeque::new(),
            recv_credit: RecvCredit::new(window),
            send: SendState::Open,
            send_credit: SendCredit::default(),
            send_queue: VecDeque::new(),
            building: BytesMut::new(),
            send_queued: 0,
            scheduled: false,
            corked: false,
            has_handle: true,
        }
    }

    /// The stream's id.
    pub(super) fn id(&self) -> StreamId {
        self.id
    }

    /// The window our first ACK announces.
    pub(super) fn window(&self) -> u32 {
        self.recv_credit.window()
    }

    // ----- receiving -----

    /// DATA from the peer. `Err` when it exceeds the credit we granted.
    pub(super) fn on_data(&mut self, payload: Bytes) -> Result<bool, Overflow> {
        if !matches!(self.recv, RecvState::Open) {
            // Data racing our stop, or after the peer's own FIN/reset: nothing to deliver.
            return Ok(false);
        }
        self.recv_credit.on_data(payload.len())?;
        self.recv_buf.push_back(payload);
        Ok(true)
    }

    /// Copies buffered bytes into `out`. Returns the outcome and the credit to grant, if any.
    pub(super) fn read(&mut self, out: &mut [u8]) -> Result<(ReadOutcome, Option<u32>), Error> {
        if out.is_empty() {
            return Ok((ReadOutcome::Data(0), None));
        }
        let mut copied = 0;
        while copied < out.len() {
            let Some(front) = self.recv_buf.front_mut() else {
                break;
            };
            let n = front.len().min(out.len() - copied);
            out[copied..copied + n].copy_from_slice(&front[..n]);
            copied += n;
            if n == front.len() {
                self.recv_buf.pop_front();
            } else {
                let _ = front.split_to(n);
            }
        }
        if copied > 0 {
            let grant = match self.recv {
                // No ACKs once our read side has ended.
                RecvState::Open => self.recv_credit.on_consumed(copied),
                _ => None,
            };
            return Ok((ReadOutcome::Data(copied), grant));
        }
        match &self.recv {
            RecvState::Open => Ok((ReadOutcome::Blocked, None)),
            RecvState::Finished => Ok((ReadOutcome::End, None)),
            RecvState::Failed(err) => Err(err.clone()),
        }
    }

    /// Whether a read would not wait: data is buffered or the half has ended.
    pub(super) fn readable(&self) -> bool {
        !self.recv_buf.is_empty() || !matches!(self.recv, RecvState::Open)
    }

    /// Ends the receiving half with `err`. `discard` drops buffered data (reset, stop); otherwise
    /// the application reads it before the error (connection closed).
    pub(super) fn fail_recv(&mut self, err: Error, discard: bool) {
        // A half that already ended keeps its end and its data: a late ERROR after the peer's
        // FIN (the peer library sends such mirror replies) must not lose bytes already received.
        if matches!(self.recv, RecvState::Open) {
            if discard {
                self.recv_buf.clear();
            }
            self.recv = RecvState::Failed(err);
        }
    }

    /// The peer finished writing.
    pub(super) fn finish_recv(&mut self) {
        if matches!(self.recv, RecvState::Open) {
            self.recv = RecvState::Finished;
        }
    }

    // ----- sending -----

    /// The peer granted credit.
    pub(super) fn grant(&mut self, credit: u32) {
        self.send_credit.grant(credit);
    }

    /// Accepts as much of `data` as credit and the send buffer allow, appending it to DATA
    /// messages of at most `max_data` payload bytes. `Ok(0)` means "wait".
    pub(super) fn write(
        &mut self,
        data: &[u8],
        max_data: usize,
        send_buffer: usize,
    ) -> Result<usize, Error> {
        match &self.send {
            SendState::Open => {}
            SendState::Finishing | SendState::Finished => return Err(Error::Finished),
            SendState::Failed(err) => return Err(err.clone()),
        }
        let room = send_buffer.saturating_sub(self.send_queued);
        let mut remaining = self.send_credit.allowance(data.len().min(room));
        let accepted = remaining;
        let mut data = &data[..accepted];
        while remaining > 0 {
            if self.building.is_empty() {
                self.building
                    .reserve(super::message::MAX_HEADER_LEN + max_data.min(remaining));
                encode_data_header(self.id, &mut self.building);
            }
            let header = super::varint::encoded_len(self.id.0) + 2;
            let space = max_data - (self.building.len() - header);
            let n = space.min(remaining);
            self.building.put_slice(&data[..n]);
            data = &data[n..];
            remaining -= n;
            if self.building.len() - header == max_data {
                self.seal();
            }
        }
        self.send_credit.spend(accepted);
        self.send_queued += accepted;
        Ok(accepted)
    }

    /// Moves the message being built to the queue.
    pub(super) fn seal(&mut self) {
        if !self.building.is_empty() {
            self.send_queue.push_back(self.building.split().freeze());
        }
    }

    /// Queues the FIN after the data. Idempotent once finishing.
    pub(super) fn finish_send(&mut self) -> Result<(), Error> {
        match &self.send {
            SendState::Open => {
                self.seal();
                self.send_queue
                    .push_back(Frame::Close(super::Half::Read).to_bytes(self.id));
                self.send = SendState::Finishing;
                Ok(())
            }
            SendState::Finishing | SendState::Finished => Ok(()),
            SendState::Failed(err) => Err(err.clone()),
        }
    }

    /// Ends the sending half with `err`, discarding data not yet sent (reset, stop, failure).
    /// A half that already sent its FIN keeps its graceful end.
    pub(super) fn fail_send(&mut self, err: Error) {
        self.discard_unsent();
        if matches!(self.send, SendState::Open | SendState::Finishing) {
            self.send = SendState::Failed(err);
        }
    }

    /// Ends the sending half because the connection closed: unlike a reset, data already written
    /// still goes out ahead of the Close frame.
    pub(super) fn close_send(&mut self, err: Error) {
        if matches!(self.send, SendState::Open) {
            self.seal();
            self.send = SendState::Failed(err);
        }
    }

    fn discard_unsent(&mut self) {
        self.send_queue.clear();
        self.building.clear();
        self.send_queued = 0;
    }

    /// The next message to send, if any; at most one DATA message per turn. A DATA message still
    /// being filled is sent too unless `coalesce` holds it back until it is full or flushed.
    pub(super) fn next_message(&mut self, coalesce: bool) -> Option<Bytes> {
        if self.send_queue.is_empty() && !coalesce {
            self.seal();
        }
        let msg = self.send_queue.pop_front()?;
        if self.send_queue.is_empty() && matches!(self.send, SendState::Finishing) {
            // The FIN was the last message queued.
            self.send = SendState::Finished;
            self.send_queued = 0;
        } else {
            let header = super::varint::encoded_len(self.id.0) + 2;
            self.send_queued = self.send_queued.saturating_sub(msg.len() - header);
        }
        Some(msg)
    }

    /// Whether complete messages (not just one being filled) wait for the socket.
    pub(super) fn has_sealed(&self) -> bool {
        !self.send_queue.is_empty()
    }

    /// Whether messages wait for the socket.
    pub(super) fn has_pending(&self) -> bool {
        !self.send_queue.is_empty() || !self.building.is_empty()
    }

    /// Whether the sending half is over and nothing more will leave.
    pub(super) fn send_done(&self) -> bool {
        !matches!(self.send, SendState::Open | SendState::Finishing) && !self.has_pending()
    }

    /// Whether a write would make progress or fail (rather than wait).
    pub(super) fn writable(&self, send_buffer: usize) -> bool {
        !matches!(self.send, SendState::Open)
            || (self.send_credit.available() > 0 && self.send_queued < send_buffer)
    }

    /// Whether the stream can be forgotten: both halves over and no handle left.
    pub(super) fn is_finished(&self) -> bool {
        !self.has_handle && self.send_done() && !self.has_pending()
    }

    /// Whether the application read side has nothing more to do (for a dropped handle).
    pub(super) fn recv_is_open(&self) -> bool {
        matches!(self.recv, RecvState::Open)
    }

    /// Drops buffered received data (the handle is gone).
    pub(super) fn discard_received(&mut self) {
        self.recv_buf.clear();
    }

    /// The code this side may still use for `reset` (writing not yet over).
    pub(super) fn can_reset(&self) -> bool {
        matches!(self.send, SendState::Open | SendState::Finishing)
    }

    /// Marks a reset half.
    pub(super) fn reset_send(&mut self, code: ErrorCode) {
        self.fail_send(Error::LocallyEnded(code));
    }
}
