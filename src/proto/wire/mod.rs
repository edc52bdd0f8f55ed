//! The @matrixai/ws protocol (WIRE.md): each message is one WebSocket binary message
//! `| stream id | type | body |`; credit is granted in relative ACKs; a stream is opened by its
//! opener's ACK and accepted by the acceptor's; streams are bidirectional.
//!
//! This module decodes messages into calls on the shared stream state and encodes what the streams owe. The
//! rules that are this protocol's own live here: ids, the opening exchange, refusing streams over
//! the limit, and ending only the stream a peer misbehaves on (ERROR with code 1 or 2 on both
//! halves) rather than the connection.

mod message;

use std::collections::VecDeque;

use bytes::Bytes;

pub use message::{Frame, MessageError, MAX_HEADER_LEN};

use super::{
    code::ErrorCode,
    error::{ApiError, ProtoError, StreamError},
    event::{Event, EventQueue},
    id::{Dir, Half, Side, StreamId},
    streams::{DataError, DataTurn, Framing, StreamKey, Streams},
    trace::debug,
    varint,
};

/// How many replies to streams that do not exist (refusals) may wait for the socket before we
/// stop reading: a peer opening streams it is refused without reading our answers stalls itself.
pub const MAX_ORPHAN_REPLIES: usize = 256;

/// The protocol's state: ids and replies that belong to no stream.
#[derive(Debug)]
pub(crate) struct Wire {
    side: Side,
    max_streams: usize,
    /// The next id we open.
    next_local: u64,
    /// The lowest peer id not seen yet; lower ones not in the store have ended.
    next_peer: u64,
    /// Encoded replies for ids that have no stream (refusals).
    orphans: VecDeque<Bytes>,
}

impl Framing for Wire {
    fn header_room(&self, id: StreamId) -> usize {
        message::data_header_len(id)
    }

    fn write_header(
        &self,
        id: StreamId,
        _offset: u64,
        _len: usize,
        _fin: bool,
        room: &mut [u8],
    ) -> usize {
        let len = message::data_header_len(id);
        let start = room.len() - len;
        let mut header = &mut room[start..];
        message::encode_header(id, 0, &mut header);
        len
    }
}

impl Wire {
    pub(crate) fn new(side: Side, max_streams: usize) -> Self {
        Self {
            side,
            max_streams,
            next_local: side.parity(),
            next_peer: side.peer().parity(),
            orphans: VecDeque::new(),
        }
    }

    fn is_local(&self, id: StreamId) -> bool {
        id.0 % 2 == self.side.parity()
    }

    /// Opens a stream: our first message is an ACK with its window. `Ok(None)` at the limit.
    pub(crate) fn open(
        &mut self,
        streams: &mut Streams,
        dir: Dir,
    ) -> Result<Option<StreamKey>, ApiError> {
        if dir == Dir::Uni {
            return Err(ApiError::Unsupported("unidirectional streams (QMux only)"));
        }
        if streams.local_open[0] >= self.max_streams {
            return Ok(None);
        }
        if self.next_local > varint::MAX {
            return Err(ApiError::Unsupported("more streams than ids (2^62)"));
        }
        let id = StreamId(self.next_local);
        self.next_local += 2;
        let key = streams.create(id, Dir::Bi, true, 0, 0);
        // The opening ACK always goes, with its initial window.
        streams.grant_initial(key);
        streams.stats.opened += 1;
        debug!(stream = id.0, "stream opened");
        Ok(Some(key))
    }

    /// Handles one binary message. `Err` is a violation that ends the connection.
    pub(crate) fn handle_message(
        &mut self,
        streams: &mut Streams,
        events: &mut EventQueue,
        msg: &Bytes,
    ) -> Result<(), ProtoError> {
        let (id, frame) = match Frame::decode(msg) {
            Ok(decoded) => decoded,
            Err(MessageError::BadStreamId) => return Err(ProtoError::BadStreamId),
            Err(MessageError::Malformed { id, .. }) => {
                self.check_opened(id)?;
                if let Some(key) = streams.find(id) {
                    // A stream that failed already gets no second ERROR pair or event.
                    if !streams.get(key).is_some_and(|s| s.failed) {
                        self.fail_stream(streams, events, key, ErrorCode::PARSE);
                    }
                } else if self.is_new_peer(id) {
                    self.next_peer = id.0.saturating_add(2);
                    self.refuse(id, ErrorCode::PARSE);
                    events.push(Event::StreamParseError { id });
                }
                return Ok(());
            }
        };
        self.check_opened(id)?;
        if let Some(key) = streams.find(id) {
            self.on_frame(streams, events, key, frame);
        } else if self.is_new_peer(id) {
            self.on_new_peer_stream(streams, events, id, frame);
        }
        // Otherwise the stream has ended: late messages (ACKs, mirror replies) are ignored.
        Ok(())
    }

    /// A message for one of our ids that we never opened is a connection error.
    fn check_opened(&self, id: StreamId) -> Result<(), ProtoError> {
        if self.is_local(id) && id.0 >= self.next_local {
            Err(ProtoError::UnopenedStream(id.0))
        } else {
            Ok(())
        }
    }

    fn is_new_peer(&self, id: StreamId) -> bool {
        !self.is_local(id) && id.0 >= self.next_peer
    }

    fn on_new_peer_stream(
        &mut self,
        streams: &mut Streams,
        events: &mut EventQueue,
        id: StreamId,
        frame: Frame,
    ) {
        self.next_peer = id.0.saturating_add(2);
        let Frame::Ack(credit) = frame else {
            // A first message other than ACK: a parse error for that id.
            debug!(stream = id.0, "refused: its first message is not an ACK");
            self.refuse(id, ErrorCode::PARSE);
            events.push(Event::StreamParseError { id });
            return;
        };
        if streams.peer_open[0] >= self.max_streams || streams.refusing {
            debug!(stream = id.0, shutting_down = streams.refusing, "refused");
            self.refuse(id, ErrorCode::UNKNOWN);
            streams.stats.refused += 1;
            events.push(Event::StreamRefused { id });
            return;
        }
        debug!(stream = id.0, credit, "peer opened a stream");
        let key = streams.create(id, Dir::Bi, false, u64::from(credit), 0);
        if let Some(stream) = streams.get_mut(key) {
            stream.peer_ready = true;
        }
        // Our answering ACK, with our window.
        streams.grant_initial(key);
    }

    /// Ends a stream we never created: ERROR on both halves.
    fn refuse(&mut self, id: StreamId, code: ErrorCode) {
        self.orphans
            .push_back(Frame::Error(Half::Read, code).to_bytes(id));
        self.orphans
            .push_back(Frame::Error(Half::Write, code).to_bytes(id));
    }

    fn on_frame(
        &mut self,
        streams: &mut Streams,
        events: &mut EventQueue,
        key: StreamKey,
        frame: Frame,
    ) {
        let Some(stream) = streams.get_mut(key) else {
            return;
        };
        if stream.failed {
            // It failed already: no second ERROR pair, no second event.
            return;
        }
        let id = stream.id;
        let recv_open = stream.recv.as_ref().is_some_and(|recv| recv.is_open());
        match frame {
            // Empty DATA is tolerated (the peer library sends it).
            Frame::Data(payload) if payload.is_empty() => {}
            Frame::Data(payload) => {
                let offset = stream.recv.as_ref().map_or(0, |recv| recv.received);
                match streams.on_data(key, offset, payload, false) {
                    Ok(_) => {}
                    Err(DataError::Overflow) => {
                        self.fail_stream(streams, events, key, ErrorCode::OVERFLOW)
                    }
                    // Data after the peer's own FIN: nothing to deliver (tolerated).
                    Err(DataError::Gap | DataError::FinalSize) => {}
                }
            }
            Frame::Ack(credit) => {
                stream.peer_ready = true;
                let limit = stream
                    .send
                    .as_ref()
                    .map_or(0, |send| send.limit.saturating_add(u64::from(credit)));
                streams.on_credit(key, limit);
                // The opener's writer may start even on an ACK of 0 (the peer library sends it).
                streams.wake_write(key);
            }
            // Once our read side has ended, a further CLOSE/ERROR Read (a mirror reply, a late
            // reset) changes nothing and is not reported again.
            Frame::Error(Half::Read, _) | Frame::Close(Half::Read) if !recv_open => {}
            Frame::Error(Half::Read, code) => {
                debug!(stream = id.0, code = code.0, "reset by the peer");
                events.push(Event::StreamShutdown {
                    id,
                    half: Half::Read,
                    code: Some(code),
                });
                streams.on_reset(key, code);
            }
            Frame::Close(Half::Read) => {
                debug!(stream = id.0, "finished by the peer");
                events.push(Event::StreamShutdown {
                    id,
                    half: Half::Read,
                    code: None,
                });
                let _ = streams.on_fin(key);
            }
            Frame::Error(Half::Write, code) => self.on_peer_stop(streams, events, key, code, true),
            // CLOSE Write is "stop writing" without a code: ERROR Write with code 0.
            Frame::Close(Half::Write) => {
                self.on_peer_stop(streams, events, key, ErrorCode::UNKNOWN, false)
            }
        }
        streams.maybe_remove(key);
    }

    fn on_peer_stop(
        &mut self,
        streams: &mut Streams,
        events: &mut EventQueue,
        key: StreamKey,
        code: ErrorCode,
        with_code: bool,
    ) {
        let Some(id) = streams.get(key).map(|s| s.id) else {
            return;
        };
        // `None`: our writing is already over (FIN sent, or reset): a mirror reply.
        if streams.on_stop(key, code).is_some() {
            debug!(stream = id.0, code = code.0, "stopped by the peer");
            events.push(Event::StreamShutdown {
                id,
                half: Half::Write,
                code: with_code.then_some(code),
            });
        }
    }

    /// The peer misbehaved on this stream: end both halves, tell the peer with `code`, publish.
    fn fail_stream(
        &mut self,
        streams: &mut Streams,
        events: &mut EventQueue,
        key: StreamKey,
        code: ErrorCode,
    ) {
        let Some(id) = streams.get(key).map(|s| s.id) else {
            return;
        };
        let (err, event) = if code == ErrorCode::OVERFLOW {
            (StreamError::Overflow, Event::StreamOverflow { id })
        } else {
            (StreamError::Parse, Event::StreamParseError { id })
        };
        debug!(
            stream = id.0,
            code = code.0,
            "the peer misbehaved on the stream: it failed"
        );
        events.push(event);
        streams.fail_stream(key, err);
        if let Some(stream) = streams.get_mut(key) {
            stream.owe.reset = Some(code);
            stream.owe.stop = Some(code);
        }
        streams.queue_control(key);
    }

    /// The next message for the socket: replies that belong to no stream, then what streams owe
    /// (credit, resets, stops), then one DATA message or FIN from the stream whose turn it is.
    pub(crate) fn poll_message(
        &mut self,
        streams: &mut Streams,
        hold_partial: bool,
    ) -> Option<Bytes> {
        if let Some(message) = self.orphans.pop_front() {
            return Some(message);
        }
        while let Some(key) = streams.next_control() {
            let stream = streams.get_mut(key).expect("queued streams exist");
            let id = stream.id;
            let owe = &mut stream.owe;
            if owe.credit > 0 {
                let credit = u32::try_from(owe.credit).unwrap_or(u32::MAX);
                owe.credit -= u64::from(credit);
                stream.announced = true;
                return Some(Frame::Ack(credit).to_bytes(id));
            }
            if let Some(code) = owe.reset.take() {
                return Some(Frame::Error(Half::Read, code).to_bytes(id));
            }
            if let Some(code) = owe.stop.take() {
                return Some(Frame::Error(Half::Write, code).to_bytes(id));
            }
            streams.control_done(key);
        }
        // Our writes on a stream we opened wait for the acceptor's ACK.
        match streams.next_data(hold_partial, self, |stream| stream.peer_ready)? {
            DataTurn::Data(message) => Some(message),
            DataTurn::Fin(key) => {
                let id = streams.get(key).map(|s| s.id)?;
                streams.fin_sent(key);
                Some(Frame::Close(Half::Read).to_bytes(id))
            }
        }
    }

    /// Whether anything may be waiting to be sent.
    pub(crate) fn has_transmit(&self, streams: &Streams) -> bool {
        !self.orphans.is_empty() || streams.has_control() || streams.has_data()
    }

    /// Whether replies pile up because the socket does not take them.
    pub(crate) fn backlogged(&self) -> bool {
        self.orphans.len() >= MAX_ORPHAN_REPLIES
    }

    /// Nothing can leave any more.
    pub(crate) fn abandon(&mut self) {
        self.orphans.clear();
    }
}
