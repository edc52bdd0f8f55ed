//! The multiplexer: all streams of one connection, the rules of WIRE.md, and the choice of what
//! to send next.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::{
    message::{Frame, MessageError},
    stream::{ReadOutcome, SendState, Stream},
    Half, ProtoError, Side, StreamId,
};
use crate::{code::ErrorCode, config::Config, error::Error, event::WsEvent};

/// Which handle of a stream should be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The reader: data, end of stream or an error arrived.
    Read(StreamId),
    /// The writer: credit arrived, queued data left, or the half ended.
    Write(StreamId),
    /// Tasks waiting in `accept`.
    Accept,
    /// Tasks waiting in `open` for a free slot.
    Open,
}

/// The sans-IO connection state. See the [module docs](super).
#[derive(Debug)]
pub struct Mux {
    side: Side,
    config: Config,
    streams: HashMap<StreamId, Stream>,
    /// The next id we open.
    next_local: u64,
    /// The lowest peer id not seen yet; lower ones not in `streams` have ended.
    next_peer: u64,
    /// Streams in `streams` opened by us / by the peer, for the limits.
    local_count: usize,
    peer_count: usize,
    /// Peer-opened streams not yet accepted.
    accept_queue: VecDeque<StreamId>,
    /// ACK, ERROR and CLOSE-Write messages: sent before any DATA.
    control: VecDeque<Bytes>,
    /// Streams with DATA or a FIN to send, taking turns one message each.
    ready: VecDeque<StreamId>,
    /// Streams holding back a partly filled DATA message (`Config::coalesce_writes`).
    corked: Vec<StreamId>,
    events: Vec<WsEvent>,
    wakes: Vec<Wake>,
    /// Set once the connection is over: every stream fails with it.
    closed: Option<Error>,
    /// Whether queued messages were dropped for good (the socket is gone).
    transmit_discarded: bool,
}

impl Mux {
    /// A new connection for `side`.
    pub fn new(side: Side, config: Config) -> Self {
        Self {
            side,
            config,
            streams: HashMap::new(),
            next_local: side.parity(),
            next_peer: 1 - side.parity(),
            local_count: 0,
            peer_count: 0,
            accept_queue: VecDeque::new(),
            control: VecDeque::new(),
            ready: VecDeque::new(),
            corked: Vec::new(),
            events: Vec::new(),
            wakes: Vec::new(),
            closed: None,
            transmit_discarded: false,
        }
    }

    /// Which side we are.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn is_local(&self, id: StreamId) -> bool {
        id.0 % 2 == self.side.parity()
    }

    /// Streams currently tracked.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// The error every operation fails with once the connection is over.
    pub fn closed(&self) -> Option<&Error> {
        self.closed.as_ref()
    }

    // ----- user actions -----

    /// Opens a stream: queues our ACK with the window. `Ok(None)` when at the stream limit.
    pub fn open(&mut self) -> Result<Option<StreamId>, Error> {
        if let Some(err) = &self.closed {
            return Err(err.clone());
        }
        if self.local_count >= self.config.max_streams.get() {
            return Ok(None);
        }
        if self.next_local > super::varint::MAX {
            return Err(Error::InvalidConfig("stream ids exhausted"));
        }
        let id = StreamId(self.next_local);
        self.next_local += 2;
        let stream = Stream::new(id, self.config.window.get());
        self.control
            .push_back(Frame::Ack(stream.window()).to_bytes(id));
        self.streams.insert(id, stream);
        self.local_count += 1;
        Ok(Some(id))
    }

    /// The next stream the peer opened, if any.
    pub fn accept(&mut self) -> Result<Option<StreamId>, Error> {
        if let Some(id) = self.accept_queue.pop_front() {
            return Ok(Some(id));
        }
        match &self.closed {
            Some(err) => Err(err.clone()),
            None => Ok(None),
        }
    }

    /// Reads from stream `id` into `out`.
    pub fn read(&mut self, id: StreamId, out: &mut [u8]) -> Result<ReadOutcome, Error> {
        let Some(stream) = self.streams.get_mut(&id) else {
            return Ok(ReadOutcome::End);
        };
        let (outcome, grant) = stream.read(out)?;
        if let Some(credit) = grant {
            self.control.push_back(Frame::Ack(credit).to_bytes(id));
        }
        Ok(outcome)
    }

    /// Writes to stream `id`; `Ok(0)` means wait for credit or buffer space.
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, Error> {
        let (max_data, send_buffer) = (
            self.config.max_data_per_message.get(),
            self.config.send_buffer.get(),
        );
        let stream = self.streams.get_mut(&id).ok_or(Error::Finished)?;
        let n = stream.write(data, max_data, send_buffer)?;
        // A corked stream with no full message yet has nothing to send: leave it in the corked
        // list instead of scheduling it only to find that out again.
        if n > 0 && (!stream.corked || stream.has_sealed()) {
            Self::schedule(&mut self.ready, stream);
        }
        Ok(n)
    }

    /// Whether a write on `id` would make progress or fail rather than wait.
    pub fn writable(&self, id: StreamId) -> bool {
        self.streams
            .get(&id)
            .is_none_or(|s| s.writable(self.config.send_buffer.get()))
    }

    /// The error of `id`'s sending half, if it failed (stopped by the peer, reset, connection
    /// closed before the data left).
    pub fn send_error(&self, id: StreamId) -> Option<Error> {
        match &self.streams.get(&id)?.send {
            SendState::Failed(err) => Some(err.clone()),
            _ => None,
        }
    }

    /// Whether a read on `id` would not wait.
    pub fn readable(&self, id: StreamId) -> bool {
        self.streams.get(&id).is_none_or(Stream::readable)
    }

    /// Whether all that was written on `id` has been handed to the socket.
    pub fn is_flushed(&self, id: StreamId) -> bool {
        self.streams.get(&id).is_none_or(|s| !s.has_pending())
    }

    /// Whether the FIN of `id` has been handed to the socket (or the half ended otherwise).
    pub fn is_send_done(&self, id: StreamId) -> bool {
        self.streams.get(&id).is_none_or(Stream::send_done)
    }

    /// Finishes writing on `id`: the FIN follows the queued data.
    pub fn finish(&mut self, id: StreamId) -> Result<(), Error> {
        let Some(stream) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        stream.finish_send()?;
        Self::schedule(&mut self.ready, stream);
        Ok(())
    }

    /// Aborts writing on `id` (ERROR Read to the peer): unsent data is dropped.
    pub fn reset(&mut self, id: StreamId, code: ErrorCode) -> Result<(), Error> {
        let code = code.validate()?;
        if let Some(err) = &self.closed {
            // Nothing can reach the peer any more.
            return Err(err.clone());
        }
        let Some(stream) = self.streams.get_mut(&id) else {
            return Err(Error::LocallyEnded(code));
        };
        if !stream.can_reset() {
            return match &stream.send {
                SendState::Failed(err) => Err(err.clone()),
                _ => Err(Error::Finished),
            };
        }
        stream.reset_send(code);
        self.control
            .push_back(Frame::Error(Half::Read, code).to_bytes(id));
        self.wakes.push(Wake::Write(id));
        self.maybe_forget(id);
        Ok(())
    }

    /// Stops reading on `id` (ERROR Write to the peer): buffered data is dropped.
    pub fn stop(&mut self, id: StreamId, code: ErrorCode) -> Result<(), Error> {
        let code = code.validate()?;
        if let Some(err) = &self.closed {
            // Nothing can reach the peer any more.
            return Err(err.clone());
        }
        let Some(stream) = self.streams.get_mut(&id) else {
            return Err(Error::LocallyEnded(code));
        };
        if !stream.recv_is_open() {
            // Finished, reset or failed already: nothing to stop. Dropping buffered data is
            // still what the caller asked for.
            stream.discard_received();
            return Ok(());
        }
        stream.fail_recv(Error::LocallyEnded(code), true);
        self.control
            .push_back(Frame::Error(Half::Write, code).to_bytes(id));
        self.wakes.push(Wake::Read(id));
        Ok(())
    }

    /// The application dropped its handle: finish writing, stop reading with code 0.
    pub fn release(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        stream.has_handle = false;
        if matches!(stream.send, SendState::Open) && self.closed.is_none() {
            let _ = stream.finish_send();
            Self::schedule(&mut self.ready, stream);
        }
        if stream.recv_is_open() && self.closed.is_none() {
            stream.fail_recv(Error::LocallyEnded(ErrorCode::UNKNOWN), true);
            self.control
                .push_back(Frame::Error(Half::Write, ErrorCode::UNKNOWN).to_bytes(id));
        }
        stream.discard_received();
        self.maybe_forget(id);
    }

    // ----- the wire -----

    /// Handles one binary message from the peer. `Err` is a violation that ends the connection.
    pub fn handle_message(&mut self, msg: &Bytes) -> Result<(), ProtoError> {
        if self.closed.is_some() {
            return Ok(());
        }
        let (id, frame) = match Frame::decode(msg) {
            Ok(decoded) => decoded,
            Err(MessageError::BadStreamId) => return Err(ProtoError::BadStreamId),
            Err(MessageError::Malformed { id, .. }) => {
                self.check_known_or_new(id)?;
                if self.streams.contains_key(&id) || (!self.is_local(id) && id.0 >= self.next_peer)
                {
                    self.next_peer_past(id);
                    self.fail_stream(id, ErrorCode::PARSE);
                }
                return Ok(());
            }
        };
        self.check_known_or_new(id)?;
        if self.streams.contains_key(&id) {
            self.on_frame(id, frame);
        } else if !self.is_local(id) && id.0 >= self.next_peer {
            self.on_new_peer_stream(id, frame);
        }
        // Otherwise the stream has ended: late messages (ACKs, mirror replies) are ignored.
        Ok(())
    }

    /// A message for one of our ids that we never opened is a connection error.
    fn check_known_or_new(&self, id: StreamId) -> Result<(), ProtoError> {
        if self.is_local(id) && id.0 >= self.next_local {
            Err(ProtoError::UnopenedStream(id.0))
        } else {
            Ok(())
        }
    }

    fn next_peer_past(&mut self, id: StreamId) {
        if !self.is_local(id) && id.0 >= self.next_peer {
            self.next_peer = id.0.saturating_add(2);
        }
    }

    fn on_new_peer_stream(&mut self, id: StreamId, frame: Frame) {
        self.next_peer_past(id);
        let Frame::Ack(credit) = frame else {
            // A first message other than ACK: a parse error for that id.
            self.refuse(id, ErrorCode::PARSE);
            self.events.push(WsEvent::StreamParseError { id });
            return;
        };
        if self.peer_count >= self.config.max_streams.get() {
            self.refuse(id, ErrorCode::UNKNOWN);
            self.events.push(WsEvent::StreamRefused { id });
            return;
        }
        let mut stream = Stream::new(id, self.config.window.get());
        stream.grant(credit);
        self.control
            .push_back(Frame::Ack(stream.window()).to_bytes(id));
        self.streams.insert(id, stream);
        self.peer_count += 1;
        self.accept_queue.push_back(id);
        self.wakes.push(Wake::Accept);
    }

    /// Ends a stream we never created: ERROR on both halves.
    fn refuse(&mut self, id: StreamId, code: ErrorCode) {
        self.control
            .push_back(Frame::Error(Half::Read, code).to_bytes(id));
        self.control
            .push_back(Frame::Error(Half::Write, code).to_bytes(id));
    }

    fn on_frame(&mut self, id: StreamId, frame: Frame) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        match frame {
            // Empty DATA is tolerated (the peer library sends it).
            Frame::Data(payload) if payload.is_empty() => {}
            Frame::Data(payload) => match stream.on_data(payload) {
                Ok(true) => self.wakes.push(Wake::Read(id)),
                Ok(false) => {}
                Err(_overflow) => return self.fail_stream(id, ErrorCode::OVERFLOW),
            },
            Frame::Ack(credit) => {
                if matches!(stream.send, SendState::Open) {
                    stream.grant(credit);
                    self.wakes.push(Wake::Write(id));
                }
            }
            // Once our read side has ended, a further CLOSE/ERROR Read (a mirror reply, a late
            // reset) changes nothing and is not reported again.
            Frame::Error(Half::Read, _) | Frame::Close(Half::Read) if !stream.recv_is_open() => {}
            Frame::Error(Half::Read, code) => {
                self.events.push(WsEvent::StreamShutdown {
                    id,
                    half: Half::Read,
                    code: Some(code),
                });
                stream.fail_recv(Error::Reset(code), true);
                self.wakes.push(Wake::Read(id));
            }
            Frame::Close(Half::Read) => {
                self.events.push(WsEvent::StreamShutdown {
                    id,
                    half: Half::Read,
                    code: None,
                });
                stream.finish_recv();
                self.wakes.push(Wake::Read(id));
            }
            Frame::Error(Half::Write, code) => self.on_peer_stop(id, code, Some(code)),
            // CLOSE Write is "stop writing" without a code: ERROR Write with code 0.
            Frame::Close(Half::Write) => self.on_peer_stop(id, ErrorCode::UNKNOWN, None),
        }
        self.maybe_forget(id);
    }

    fn on_peer_stop(&mut self, id: StreamId, code: ErrorCode, reported: Option<ErrorCode>) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if !stream.can_reset() {
            // Our writing is already over (FIN sent, or reset): a mirror reply, nothing to stop.
            return;
        }
        self.events.push(WsEvent::StreamShutdown {
            id,
            half: Half::Write,
            code: reported,
        });
        stream.fail_send(Error::Stopped(code));
        self.wakes.push(Wake::Write(id));
    }

    /// The peer misbehaved on this stream: end both halves, tell the peer with `code`, publish.
    fn fail_stream(&mut self, id: StreamId, code: ErrorCode) {
        let (err, event) = if code == ErrorCode::OVERFLOW {
            (Error::StreamOverflow(id.0), WsEvent::StreamOverflow { id })
        } else {
            (Error::StreamParse(id.0), WsEvent::StreamParseError { id })
        };
        self.events.push(event);
        self.refuse(id, code);
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.fail_recv(err.clone(), true);
            stream.fail_send(err);
            self.wakes.push(Wake::Read(id));
            self.wakes.push(Wake::Write(id));
        }
        self.maybe_forget(id);
    }

    /// The next message for the socket: control messages first, then one message from the next
    /// stream in turn.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if let Some(msg) = self.control.pop_front() {
            return Some(msg);
        }
        let coalesce = self.config.coalesce_writes;
        while let Some(id) = self.ready.pop_front() {
            let Some(stream) = self.streams.get_mut(&id) else {
                continue;
            };
            let Some(msg) = stream.next_message(coalesce) else {
                stream.scheduled = false;
                if stream.has_pending() && !stream.corked {
                    stream.corked = true;
                    self.corked.push(id);
                }
                continue;
            };
            if stream.has_pending() {
                self.ready.push_back(id);
            } else {
                stream.scheduled = false;
            }
            // Queued bytes left: room for the writer (and a flush or close may now be done).
            self.wakes.push(Wake::Write(id));
            self.maybe_forget(id);
            return Some(msg);
        }
        None
    }

    /// Releases every DATA message held back by `Config::coalesce_writes`: called when a handle is
    /// about to wait, so that nothing written sits unsent while its writer sleeps.
    pub fn uncork_all(&mut self) {
        if !self.config.coalesce_writes {
            return;
        }
        // Streams already scheduled may hold a partial message too: seal those in place.
        for id in &self.ready {
            if let Some(stream) = self.streams.get_mut(id) {
                stream.seal();
            }
        }
        for id in std::mem::take(&mut self.corked) {
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.corked = false;
                stream.seal();
                Self::schedule(&mut self.ready, stream);
            }
        }
    }

    /// Whether anything waits to be sent.
    pub fn has_transmit(&self) -> bool {
        !self.control.is_empty() || !self.ready.is_empty()
    }

    fn schedule(ready: &mut VecDeque<StreamId>, stream: &mut Stream) {
        if !stream.scheduled && stream.has_pending() {
            stream.scheduled = true;
            ready.push_back(stream.id());
        }
    }

    /// Forgets a stream whose handle is gone and whose halves are over.
    fn maybe_forget(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        if !stream.is_finished() {
            return;
        }
        self.streams.remove(&id);
        if self.is_local(id) {
            self.local_count -= 1;
            self.wakes.push(Wake::Open);
        } else {
            self.peer_count -= 1;
        }
    }

    /// The connection is over (closed, failed or dropped): every stream fails with `err`.
    /// Data already received stays readable; data already written still leaves ahead of our
    /// Close frame if the socket still works.
    pub fn close_all(&mut self, err: Error) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(err.clone());
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.fail_recv(err.clone(), false);
                stream.close_send(err.clone());
                self.wakes.push(Wake::Read(id));
                self.wakes.push(Wake::Write(id));
            }
        }
        self.wakes.push(Wake::Accept);
        self.wakes.push(Wake::Open);
    }

    /// The socket is gone: nothing queued can leave any more.
    pub fn discard_transmit(&mut self) {
        // Every poll of a dead connection lands here; after the first pass (with the connection
        // closed, nothing new is queued) there is nothing left to walk.
        if self.transmit_discarded {
            return;
        }
        self.transmit_discarded = self.closed.is_some();
        self.control.clear();
        self.ready.clear();
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            if let Some(stream) = self.streams.get_mut(&id) {
                if let Some(err) = self.closed.clone() {
                    stream.fail_send(err);
                }
                stream.scheduled = false;
                self.wakes.push(Wake::Write(id));
            }
            self.maybe_forget(id);
        }
    }

    /// Takes the events to publish.
    pub fn take_events(&mut self) -> impl Iterator<Item = WsEvent> + '_ {
        self.events.drain(..)
    }

    /// Takes the handles to wake.
    pub fn take_wakes(&mut self) -> impl Iterator<Item = Wake> + '_ {
        self.wakes.drain(..)
    }
}
