//! The sending half of one stream: bytes the application wrote that have not left yet, the credit
//! the peer granted, and how the half ends.
//!
//! ```text
//!          finish()              all data and the FIN handed out
//!   Open ───────────► Finishing ─────────────────────────────────► Finished
//!    │ reset(code) (before the FIN left) ──► Reset(code)       (unsent data dropped)
//!    │ the peer's stop ──► Stopped(code)   (unsent data dropped; writes fail with the code)
//!    └ the connection ends ──► Failed(error)
//! ```
//!
//! A stop that arrives once every byte has been handed out does not fail a pending finish: the
//! data was delivered as far as we can tell, and [`Send::stop_code`] keeps the code for
//! `stopped()`.
//!
//! Writes are framed as they are accepted: bytes go straight into the DATA message being built,
//! behind room reserved for its header, which [`Framing`] writes when the message is sealed. So
//! the application's bytes are copied once, into the message that goes to the socket.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::proto::{code::ErrorCode, error::StreamError, id::StreamId};

/// How a protocol frames stream data, for messages built in place.
pub(crate) trait Framing {
    /// The most bytes a data header of stream `id` can take.
    fn header_room(&self, id: StreamId) -> usize;

    /// Writes the header of a data message for `len` bytes at `offset` of stream `id` at the end
    /// of `room`, marked as the stream's last if `fin` (only when [`Framing::carries_fin`]);
    /// returns its length.
    fn write_header(
        &self,
        id: StreamId,
        offset: u64,
        len: usize,
        fin: bool,
        room: &mut [u8],
    ) -> usize;

    /// Whether a data message can carry the FIN (QMux's STREAM frame can; the @matrixai/ws
    /// protocol's DATA cannot, its FIN is a CLOSE message of its own). A stream that finished
    /// before its last bytes were framed then saves a message.
    fn carries_fin(&self) -> bool {
        false
    }
}

/// How the sending half stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendState {
    /// The application may write.
    Open,
    /// The application finished; the FIN follows the queued data.
    Finishing,
    /// Everything, the FIN included, has been handed out (or the peer stopped us after that).
    Finished,
    /// We reset the half with this code.
    Reset(ErrorCode),
    /// The peer stopped us with this code before our data left; writes fail with it.
    Stopped(ErrorCode),
    /// The connection ended; writes fail with this.
    Failed(StreamError),
}

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Send {
    pub(crate) state: SendState,
    /// Bytes accepted from the application: the offset of the next byte written.
    pub(crate) offset: u64,
    /// Bytes handed out to the socket.
    pub(crate) sent: u64,
    /// The absolute limit the peer granted: we may send up to this offset.
    pub(crate) limit: u64,
    /// Sealed DATA messages, with their payload lengths.
    queue: VecDeque<(Bytes, usize)>,
    /// The message being filled: header room, then payload.
    building: BytesMut,
    /// Room reserved in front of `building`'s payload.
    building_room: usize,
    /// The stream offset of `building`'s first payload byte.
    building_offset: u64,
    /// The code of the peer's stop, whenever it came.
    pub(crate) stop_code: Option<ErrorCode>,
    /// Whether written bytes were dropped before they left (reset, stop).
    pub(crate) dropped_data: bool,
    /// Higher goes first; equal priorities take turns.
    pub(crate) priority: i32,
    /// The last queued message carries the FIN (framed so when the application finished).
    fin_framed: bool,
}

impl Send {
    /// A new half; the peer lets us send `limit` bytes before its first grant.
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            state: SendState::Open,
            offset: 0,
            sent: 0,
            limit,
            queue: VecDeque::new(),
            building: BytesMut::new(),
            building_room: 0,
            building_offset: 0,
            stop_code: None,
            dropped_data: false,
            priority: 0,
            fin_framed: false,
        }
    }

    /// Payload bytes accepted but not yet handed out.
    pub(crate) fn unsent(&self) -> u64 {
        self.offset - self.sent
    }

    /// Credit the peer granted that we have not used.
    pub(crate) fn credit(&self) -> u64 {
        self.limit.saturating_sub(self.offset)
    }

    /// The error a write gets now, if it cannot write at all.
    pub(crate) fn write_error(&self) -> Option<StreamError> {
        match &self.state {
            SendState::Open => None,
            SendState::Finishing | SendState::Finished => Some(StreamError::Finished),
            SendState::Reset(code) => Some(StreamError::LocallyEnded(*code)),
            SendState::Stopped(code) => Some(StreamError::Stopped(*code)),
            SendState::Failed(err) => Some(err.clone()),
        }
    }

    /// Whether a write would make progress or fail rather than wait, given the connection-level
    /// credit and the send buffer.
    pub(crate) fn writable(&self, conn_credit: u64, send_buffer: usize) -> bool {
        self.state != SendState::Open
            || (self.credit() > 0 && conn_credit > 0 && self.unsent() < send_buffer as u64)
    }

    /// Accepts as much of `data` as credit (the stream's and `conn_credit`) and the send buffer
    /// allow, framed in messages of at most `max_payload` bytes. `Ok(0)` means "wait".
    pub(crate) fn write(
        &mut self,
        data: &[u8],
        conn_credit: u64,
        send_buffer: usize,
        max_payload: usize,
        id: StreamId,
        framing: &dyn Framing,
    ) -> Result<usize, StreamError> {
        if let Some(err) = self.write_error() {
            return Err(err);
        }
        let room = (send_buffer as u64).saturating_sub(self.unsent());
        let allowed = room.min(self.credit()).min(conn_credit);
        let accepted = usize::try_from(allowed)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let mut rest = &data[..accepted];
        while !rest.is_empty() {
            if self.building.is_empty() {
                self.building_room = framing.header_room(id);
                self.building
                    .reserve(self.building_room + max_payload.min(rest.len()));
                self.building.resize(self.building_room, 0);
                self.building_offset = self.offset + (accepted - rest.len()) as u64;
            }
            let filled = self.building.len() - self.building_room;
            let n = (max_payload - filled).min(rest.len());
            self.building.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if filled + n == max_payload {
                self.seal(id, framing);
            }
        }
        self.offset += accepted as u64;
        Ok(accepted)
    }

    /// Moves the message being built to the queue, its header written in the room before it.
    pub(crate) fn seal(&mut self, id: StreamId, framing: &dyn Framing) {
        self.seal_with(id, framing, false);
    }

    /// As [`Send::seal`], the header marked as the stream's last if `fin`.
    fn seal_with(&mut self, id: StreamId, framing: &dyn Framing, fin: bool) {
        if self.building.is_empty() {
            return;
        }
        let len = self.building.len() - self.building_room;
        let header = framing.write_header(
            id,
            self.building_offset,
            len,
            fin,
            &mut self.building[..self.building_room],
        );
        let mut message = self.building.split();
        message.advance(self.building_room - header);
        self.queue.push_back((message.freeze(), len));
    }

    /// Whether complete messages (not only one being filled) wait.
    pub(crate) fn has_sealed(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Whether data waits to be handed out (sealed or being filled).
    pub(crate) fn has_data(&self) -> bool {
        !self.queue.is_empty() || !self.building.is_empty()
    }

    /// The next DATA message, and whether it carries the FIN (the half is then finished: see
    /// [`Send::finish`]). A message still being filled is sealed and sent too, unless
    /// `hold_partial` keeps it back until it is full or flushed.
    pub(crate) fn next_data(
        &mut self,
        hold_partial: bool,
        id: StreamId,
        framing: &dyn Framing,
    ) -> Option<(Bytes, bool)> {
        if self.queue.is_empty() && !hold_partial {
            self.seal(id, framing);
        }
        let (message, len) = self.queue.pop_front()?;
        self.sent += len as u64;
        let fin = self.fin_framed && self.queue.is_empty();
        if fin {
            self.fin_framed = false;
            self.on_fin_sent();
        }
        Some((message, fin))
    }

    /// Whether the FIN is due: finishing, and every byte handed out.
    pub(crate) fn fin_due(&self) -> bool {
        self.state == SendState::Finishing && !self.has_data()
    }

    /// The FIN was handed out.
    pub(crate) fn on_fin_sent(&mut self) {
        if self.state == SendState::Finishing {
            self.state = SendState::Finished;
        }
    }

    /// The application finished writing. `Ok(true)` if this call started the finish. The message
    /// being built is sealed: it is the last, and carries the FIN where the framing can (a short
    /// request or answer is then one message); otherwise the FIN follows on its own.
    pub(crate) fn finish(
        &mut self,
        id: StreamId,
        framing: &dyn Framing,
    ) -> Result<bool, StreamError> {
        match &self.state {
            SendState::Open => {
                self.state = SendState::Finishing;
                self.fin_framed = framing.carries_fin() && !self.building.is_empty();
                self.seal_with(id, framing, self.fin_framed);
                Ok(true)
            }
            SendState::Finishing | SendState::Finished => Ok(false),
            // Stopped after every byte had left: everything written was delivered.
            SendState::Stopped(_) if !self.dropped_data => Ok(false),
            _ => Err(self.write_error().expect("not open")),
        }
    }

    /// Whether the finish is complete: `Ok(true)` once the FIN left, or the peer stopped us after
    /// every byte had left (a delivery all the same); the half's error if data was lost.
    pub(crate) fn poll_finished(&self) -> Result<bool, StreamError> {
        match &self.state {
            SendState::Finished => Ok(true),
            SendState::Stopped(_) if !self.dropped_data => Ok(true),
            SendState::Finishing | SendState::Open => Ok(false),
            _ => Err(self.write_error().expect("ended")),
        }
    }

    /// Whether everything written has been handed out: `Err` if it never will.
    pub(crate) fn poll_flushed(&self) -> Result<bool, StreamError> {
        if self.dropped_data {
            return Err(self.write_error().unwrap_or(StreamError::Finished));
        }
        if let SendState::Failed(err) = &self.state {
            if self.has_data() {
                return Err(err.clone());
            }
        }
        Ok(!self.has_data())
    }

    /// We abort writing with `code`. Returns whether the peer must be told (something was still to
    /// be sent: data or the FIN).
    pub(crate) fn reset(&mut self, code: ErrorCode) -> bool {
        match self.state {
            SendState::Open | SendState::Finishing => {
                self.drop_unsent();
                self.state = SendState::Reset(code);
                true
            }
            _ => false,
        }
    }

    /// The peer stopped reading. Returns whether we owe it a reset (QMux answers a stop with one
    /// unless the FIN already left).
    pub(crate) fn on_stop(&mut self, code: ErrorCode) -> bool {
        if self.stop_code.is_none() {
            self.stop_code = Some(code);
        }
        match self.state {
            // Every byte left; only the FIN was pending: the data is delivered. No FIN follows.
            SendState::Finishing if !self.has_data() => {
                self.state = SendState::Finished;
                true
            }
            SendState::Open | SendState::Finishing => {
                self.drop_unsent();
                self.state = SendState::Stopped(code);
                true
            }
            _ => false,
        }
    }

    /// The connection ended: writes fail with `err`; data already framed may still leave ahead of
    /// our Close frame.
    pub(crate) fn fail(&mut self, err: StreamError) {
        if matches!(self.state, SendState::Open | SendState::Finishing) {
            self.state = SendState::Failed(err);
        }
    }

    /// Nothing can leave any more (the socket is gone).
    pub(crate) fn abandon(&mut self) {
        if self.has_data() {
            self.drop_unsent();
        }
    }

    fn drop_unsent(&mut self) {
        if self.has_data() {
            self.dropped_data = true;
        }
        self.queue.clear();
        self.building.clear();
        self.fin_framed = false;
        self.offset = self.sent;
    }

    /// Whether the half will send nothing more.
    pub(crate) fn is_done(&self) -> bool {
        !matches!(self.state, SendState::Open | SendState::Finishing) && !self.has_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A framing whose header is `[len as u8]`, in a room of 3.
    struct Tiny;

    impl Framing for Tiny {
        fn header_room(&self, _: StreamId) -> usize {
            3
        }

        fn write_header(
            &self,
            _: StreamId,
            offset: u64,
            len: usize,
            _fin: bool,
            room: &mut [u8],
        ) -> usize {
            let at = room.len() - 2;
            room[at] = offset as u8;
            room[at + 1] = len as u8;
            2
        }
    }

    const ID: StreamId = StreamId(0);

    #[test]
    fn writes_are_framed_in_place_within_credit() {
        let mut send = Send::new(10);
        assert_eq!(
            send.write(b"abcdefghijkl", u64::MAX, 100, 4, ID, &Tiny),
            Ok(10)
        );
        assert_eq!(
            send.write(b"x", u64::MAX, 100, 4, ID, &Tiny),
            Ok(0),
            "no credit"
        );
        let messages: Vec<(Bytes, bool)> =
            std::iter::from_fn(|| send.next_data(false, ID, &Tiny)).collect();
        assert_eq!(
            messages,
            [
                (Bytes::from_static(&[0, 4, b'a', b'b', b'c', b'd']), false),
                (Bytes::from_static(&[4, 4, b'e', b'f', b'g', b'h']), false),
                (Bytes::from_static(&[8, 2, b'i', b'j']), false)
            ]
        );
        assert_eq!(send.sent, 10);
    }

    /// `Tiny` with the FIN in its header: `[offset, len, fin]`.
    struct TinyWithFin;

    impl Framing for TinyWithFin {
        fn header_room(&self, _: StreamId) -> usize {
            3
        }

        fn write_header(
            &self,
            _: StreamId,
            offset: u64,
            len: usize,
            fin: bool,
            room: &mut [u8],
        ) -> usize {
            room.copy_from_slice(&[offset as u8, len as u8, u8::from(fin)]);
            3
        }

        fn carries_fin(&self) -> bool {
            true
        }
    }

    #[test]
    fn the_last_message_carries_the_fin_where_the_framing_can() {
        // Finished while its last bytes were still being framed: they carry the FIN.
        let mut send = Send::new(100);
        send.write(b"abcdef", u64::MAX, 100, 4, ID, &TinyWithFin)
            .unwrap();
        send.finish(ID, &TinyWithFin).unwrap();
        let messages: Vec<(Bytes, bool)> =
            std::iter::from_fn(|| send.next_data(false, ID, &TinyWithFin)).collect();
        assert_eq!(
            messages,
            [
                (
                    Bytes::from_static(&[0, 4, 0, b'a', b'b', b'c', b'd']),
                    false
                ),
                (Bytes::from_static(&[4, 2, 1, b'e', b'f']), true)
            ]
        );
        assert_eq!(send.state, SendState::Finished);
        assert!(!send.fin_due(), "no FIN of its own follows");

        // Its last message already framed when it finished: the FIN goes on its own.
        let mut send = Send::new(100);
        send.write(b"abcd", u64::MAX, 100, 4, ID, &TinyWithFin)
            .unwrap();
        send.finish(ID, &TinyWithFin).unwrap();
        assert_eq!(
            send.next_data(false, ID, &TinyWithFin),
            Some((
                Bytes::from_static(&[0, 4, 0, b'a', b'b', b'c', b'd']),
                false
            ))
        );
        assert!(send.fin_due());

        // A framing without the FIN in its header: always on its own.
        let mut send = Send::new(100);
        send.write(b"ab", u64::MAX, 100, 4, ID, &Tiny).unwrap();
        send.finish(ID, &Tiny).unwrap();
        assert_eq!(
            send.next_data(false, ID, &Tiny),
            Some((Bytes::from_static(&[0, 2, b'a', b'b']), false))
        );
        assert!(send.fin_due());
    }

    #[test]
    fn a_partial_message_can_be_held_back() {
        let mut send = Send::new(100);
        send.write(b"ab", u64::MAX, 100, 4, ID, &Tiny).unwrap();
        assert_eq!(send.next_data(true, ID, &Tiny), None);
        send.write(b"cd", u64::MAX, 100, 4, ID, &Tiny).unwrap();
        assert!(
            send.next_data(true, ID, &Tiny).is_some(),
            "full messages leave"
        );
    }

    #[test]
    fn the_send_buffer_and_connection_credit_bound_writes() {
        let mut send = Send::new(100);
        assert_eq!(send.write(&[0; 50], 30, 100, 8, ID, &Tiny), Ok(30));
        assert_eq!(send.write(&[0; 50], 100, 40, 8, ID, &Tiny), Ok(10));
        assert!(!send.writable(100, 40));
    }

    #[test]
    fn a_stop_after_everything_left_does_not_fail_the_finish() {
        let mut send = Send::new(100);
        send.write(b"abc", u64::MAX, 100, 8, ID, &Tiny).unwrap();
        send.finish(ID, &Tiny).unwrap();
        while send.next_data(false, ID, &Tiny).is_some() {}
        assert!(send.fin_due());
        send.on_stop(ErrorCode(0));
        assert_eq!(send.poll_finished(), Ok(true));
        assert_eq!(send.poll_flushed(), Ok(true));
        assert_eq!(send.stop_code, Some(ErrorCode(0)));
    }

    #[test]
    fn a_stop_that_drops_data_fails_the_finish_and_the_flush() {
        let mut send = Send::new(100);
        send.write(b"abc", u64::MAX, 100, 8, ID, &Tiny).unwrap();
        send.finish(ID, &Tiny).unwrap();
        send.on_stop(ErrorCode(9));
        assert_eq!(
            send.poll_finished(),
            Err(StreamError::Stopped(ErrorCode(9)))
        );
        assert_eq!(send.poll_flushed(), Err(StreamError::Stopped(ErrorCode(9))));
        assert_eq!(send.offset, send.sent);
    }

    #[test]
    fn reset_after_the_fin_left_is_a_no_op() {
        let mut send = Send::new(100);
        send.finish(ID, &Tiny).unwrap();
        send.on_fin_sent();
        assert!(!send.reset(ErrorCode(5)));
        assert_eq!(send.state, SendState::Finished);
    }
}
