//! QMux over WebSocket (draft-ietf-quic-qmux-02 with the WebSocket binding; QMUX.md): QUIC's
//! streams, frames and flow control, one record per binary message.
//!
//! Like [`wire`](super::wire), this module keeps no stream state: it decodes records into calls on
//! the shared `Streams` and encodes what the streams owe. What is QMux's own lives here:
//!
//! - transport parameters, sent first and required first;
//! - QUIC stream ids (`index << 2 | uni << 1 | server`), streams opened by their first frame (a
//!   frame on an index opens every lower one), cumulative stream limits granted back as streams
//!   end;
//! - absolute offsets and final sizes, the connection-level window (MAX_DATA) on top of each
//!   stream's;
//! - QX_PING, datagrams, and the close frames: APPLICATION_CLOSE after our data, CONNECTION_CLOSE
//!   ahead of everything when the peer broke a rule. A violation is always a connection error
//!   with an RFC 9000 code.
//!
//! A stream's first frame carries its data: with the peer's initial limits known from its
//! parameters, nothing waits for a round trip (the @matrixai/ws protocol waits for an ACK).
//!
#![doc = include_str!("QMUX.md")]

mod frame;
mod params;
mod subprotocol;

use std::{collections::VecDeque, time::Duration};

use bytes::{Bytes, BytesMut};

pub use frame::{
    stream_header_len, transport_error, Decoder, Frame, FrameError, MAX_STREAM_HEADER,
    MAX_STREAM_PAYLOAD,
};
pub use params::{ParamsError, TransportParams, MIN_RECORD_SIZE};
pub use subprotocol::{QmuxProtocols, QmuxVersion};

use super::{
    code::ErrorCode,
    config::Config,
    error::{ConnectionError, ProtoError},
    event::{Event, EventQueue, Wake},
    id::{Dir, Half, Initiator, Side, StreamId},
    streams::{dir_index, DataError, DataTurn, Framing, StreamKey, Streams},
    trace::debug,
};
use transport_error as code;

/// The largest frame a stream or the connection owes in a control record (RESET_STREAM: type,
/// id, code, final size), so that a control record is cut before it could outgrow a record.
const MAX_CONTROL_FRAME: usize = 1 + 8 + 8 + 8;

/// The datagram frame header: type and a 2-byte length (datagrams fit a record).
const DATAGRAM_HEADER: usize = 1 + 2;

/// What a record told the connection beyond its streams.
#[derive(Debug, Default)]
pub(crate) struct Inbound {
    /// The peer closed the connection (APPLICATION_CLOSE or CONNECTION_CLOSE).
    pub(crate) closed: Option<ConnectionError>,
    /// The largest QX_PING sequence number the peer answered.
    pub(crate) pong: Option<u64>,
    /// The peer's transport parameters arrived with this record.
    pub(crate) params_arrived: bool,
}

/// Datagrams counted.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DatagramStats {
    pub(crate) sent: u64,
    pub(crate) received: u64,
    /// Dropped because a queue was full (the oldest go) or the peer's limit shrank below them.
    pub(crate) dropped: u64,
}

/// Why a datagram was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DatagramRefused {
    /// The peer accepts no datagrams.
    Unsupported,
    /// Larger than the peer accepts: at most this many bytes.
    TooLarge(usize),
}

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Qmux {
    side: Side,
    version: QmuxVersion,
    ours: TransportParams,
    peer: Option<TransportParams>,
    params_sent: bool,
    /// The next index we open, per direction (bidi, uni).
    next_local: [u64; 2],
    /// How many streams the peer lets us open in total (its MAX_STREAMS).
    local_limit: [u64; 2],
    /// How many of our streams may be open at once (our configuration).
    local_cap: [usize; 2],
    /// The lowest index of the peer's not yet opened.
    next_peer: [u64; 2],
    /// How many streams we let the peer open in total (our MAX_STREAMS).
    peer_limit: [u64; 2],
    /// How many of the peer's streams may be open at once.
    peer_cap: [u64; 2],
    /// How far ahead of what the application read the peer may send on all streams.
    conn_window: u64,
    /// The connection-level limit we advertised (MAX_DATA).
    conn_granted: u64,
    /// The largest QX_PING request to answer.
    ping_response: Option<u64>,
    /// The last QX_PING request's number (-02 requires them to increase).
    last_ping_request: Option<u64>,
    datagrams_out: VecDeque<Bytes>,
    datagrams_in: VecDeque<Bytes>,
    datagram_queue: usize,
    pub(crate) datagram_stats: DatagramStats,
    /// Our close frame, to go last (after the data for APPLICATION_CLOSE, first for
    /// CONNECTION_CLOSE).
    close_frame: Option<Bytes>,
    /// A close frame was sent or received.
    close_exchanged: bool,
    /// Our APPLICATION_CLOSE was handed out.
    close_sent: bool,
    /// No frame is processed or sent any more: a close frame went or came, or the socket is
    /// gone.
    over: bool,
}

fn violation(code: u64, what: &'static str) -> ProtoError {
    ProtoError::Qmux { code, what }
}

fn stream_dir(id: StreamId) -> Dir {
    if id.0 & 2 != 0 {
        Dir::Uni
    } else {
        Dir::Bi
    }
}

fn stream_index(id: StreamId) -> u64 {
    id.0 >> 2
}

/// Which half of ours a frame is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Our receiving half (STREAM, RESET_STREAM).
    Recv,
    /// Our sending half (STOP_SENDING, MAX_STREAM_DATA).
    Send,
}

impl Framing for Qmux {
    fn header_room(&self, _id: StreamId) -> usize {
        MAX_STREAM_HEADER
    }

    fn write_header(
        &self,
        id: StreamId,
        offset: u64,
        len: usize,
        fin: bool,
        room: &mut [u8],
    ) -> usize {
        frame::write_stream_header(id, offset, len, fin, room)
    }

    fn carries_fin(&self) -> bool {
        true
    }
}

impl Qmux {
    /// The QMux state of a new connection: our parameters from `config`.
    pub(crate) fn new(side: Side, version: QmuxVersion, config: &Config) -> Self {
        let window = u64::from(config.window);
        let ours = TransportParams {
            max_idle_timeout: config.idle_timeout.map_or(0, |idle| {
                u64::try_from(idle.as_millis()).unwrap_or(u64::MAX)
            }),
            initial_max_data: config.receive_budget,
            initial_max_stream_data_bidi_local: window,
            initial_max_stream_data_bidi_remote: window,
            initial_max_stream_data_uni: window,
            initial_max_streams_bidi: config.max_streams as u64,
            initial_max_streams_uni: config.max_uni_streams as u64,
            max_datagram_frame_size: MIN_RECORD_SIZE,
            max_record_size: MIN_RECORD_SIZE,
            reset_stream_at: false,
        };
        Self {
            side,
            version,
            next_local: [0; 2],
            local_limit: [0; 2],
            local_cap: [config.max_streams, config.max_uni_streams],
            next_peer: [0; 2],
            peer_limit: [ours.initial_max_streams_bidi, ours.initial_max_streams_uni],
            peer_cap: [ours.initial_max_streams_bidi, ours.initial_max_streams_uni],
            conn_window: config.receive_budget,
            conn_granted: config.receive_budget,
            ours,
            peer: None,
            params_sent: false,
            ping_response: None,
            last_ping_request: None,
            datagrams_out: VecDeque::new(),
            datagrams_in: VecDeque::new(),
            datagram_queue: config.datagram_queue,
            datagram_stats: DatagramStats::default(),
            close_frame: None,
            close_exchanged: false,
            close_sent: false,
            over: false,
        }
    }

    /// The version spoken.
    pub(crate) fn version(&self) -> QmuxVersion {
        self.version
    }

    /// The idle timeout in force once the peer's parameters are known: the smaller of ours and
    /// the peer's, ignoring zeros.
    pub(crate) fn idle_timeout(&self) -> Option<Duration> {
        let peer = self.peer.as_ref()?.max_idle_timeout;
        [self.ours.max_idle_timeout, peer]
            .into_iter()
            .filter(|&ms| ms > 0)
            .min()
            .map(Duration::from_millis)
    }

    fn local_id(&self, dir: Dir, index: u64) -> StreamId {
        let uni = u64::from(dir == Dir::Uni) << 1;
        StreamId(index << 2 | uni | self.side.parity())
    }

    fn peer_id(&self, dir: Dir, index: u64) -> StreamId {
        let uni = u64::from(dir == Dir::Uni) << 1;
        StreamId(index << 2 | uni | self.side.peer().parity())
    }

    // ----- opening -----

    /// Opens a stream of ours. `None`: wait for the peer's parameters, its MAX_STREAMS or one of
    /// ours to end ([`Wake::Openable`]).
    pub(crate) fn open(&mut self, streams: &mut Streams, dir: Dir) -> Option<StreamKey> {
        let peer = self.peer.as_ref()?;
        let d = dir_index(dir);
        if self.next_local[d] >= self.local_limit[d] || streams.local_open[d] >= self.local_cap[d] {
            return None;
        }
        let send_limit = match dir {
            Dir::Bi => peer.initial_max_stream_data_bidi_remote,
            Dir::Uni => peer.initial_max_stream_data_uni,
        };
        let id = self.local_id(dir, self.next_local[d]);
        self.next_local[d] += 1;
        let key = streams.create(
            id,
            dir,
            true,
            send_limit,
            self.ours.initial_max_stream_data_bidi_local,
        );
        if let Some(stream) = streams.get_mut(key) {
            // The peer learns of it from its first frame: its data, or an empty one.
            stream.announced = true;
            stream.peer_ready = true;
            stream.owe.announce = true;
        }
        streams.queue_control(key);
        streams.stats.opened += 1;
        debug!(stream = id.0, "stream opened");
        Some(key)
    }

    /// Opens the peer's streams up to and including `index` (a frame on an index opens every
    /// lower one, RFC 9000 §3.2).
    fn open_peer_streams(
        &mut self,
        streams: &mut Streams,
        events: &mut EventQueue,
        dir: Dir,
        index: u64,
    ) {
        let Some(peer) = self.peer.as_ref() else {
            return;
        };
        let d = dir_index(dir);
        let (send_limit, recv_granted) = match dir {
            Dir::Bi => (
                peer.initial_max_stream_data_bidi_local,
                self.ours.initial_max_stream_data_bidi_remote,
            ),
            Dir::Uni => (0, self.ours.initial_max_stream_data_uni),
        };
        while self.next_peer[d] <= index {
            let id = self.peer_id(dir, self.next_peer[d]);
            self.next_peer[d] += 1;
            let key = streams.create(id, dir, false, send_limit, recv_granted);
            if let Some(stream) = streams.get_mut(key) {
                stream.peer_ready = true;
            }
            if streams.refusing {
                // A graceful shutdown: the stream is ended at once, both ways. It stays known
                // until the peer says where its data ends, so that the connection window counts
                // what it sent.
                debug!(stream = id.0, "refused: shutting down");
                streams.refuse_incoming(key);
                events.push(Event::StreamRefused { id });
                streams.stop(key, ErrorCode::UNKNOWN);
                streams.reset(key, ErrorCode::UNKNOWN);
                streams.maybe_remove(key);
            } else {
                debug!(stream = id.0, "peer opened a stream");
            }
        }
    }

    /// The stream a frame is for, opening the peer's as needed. `Ok(None)`: a stream that has
    /// ended (late frames are ignored).
    fn locate(
        &mut self,
        streams: &mut Streams,
        events: &mut EventQueue,
        id: StreamId,
        needs: Needs,
    ) -> Result<Option<StreamKey>, ProtoError> {
        let dir = stream_dir(id);
        let index = stream_index(id);
        let d = dir_index(dir);
        if id.initiator() == self.side {
            if index >= self.next_local[d] {
                return Err(violation(
                    code::STREAM_STATE_ERROR,
                    "frame for a stream we never opened",
                ));
            }
            if dir == Dir::Uni && needs == Needs::Recv {
                return Err(violation(
                    code::STREAM_STATE_ERROR,
                    "data or reset on our own unidirectional stream",
                ));
            }
        } else {
            if dir == Dir::Uni && needs == Needs::Send {
                return Err(violation(
                    code::STREAM_STATE_ERROR,
                    "stop or credit for the peer's unidirectional stream",
                ));
            }
            if index >= self.peer_limit[d] {
                return Err(violation(
                    code::STREAM_LIMIT_ERROR,
                    "stream beyond the limit we granted",
                ));
            }
            if index >= self.next_peer[d] {
                self.open_peer_streams(streams, events, dir, index);
            }
        }
        Ok(streams.find(id))
    }

    // ----- input -----

    /// Handles one record. `Err` is a violation that ends the connection.
    pub(crate) fn handle_message(
        &mut self,
        streams: &mut Streams,
        events: &mut EventQueue,
        record: Bytes,
    ) -> Result<Inbound, ProtoError> {
        let mut inbound = Inbound::default();
        if self.over {
            return Ok(inbound);
        }
        if record.len() as u64 > self.ours.max_record_size {
            return Err(violation(
                code::FRAME_ENCODING_ERROR,
                "record larger than max_record_size",
            ));
        }
        let mut decoder = Decoder::new(record);
        while let Some(frame) = decoder.next_frame() {
            let frame = frame.map_err(|err| {
                violation(
                    code::FRAME_ENCODING_ERROR,
                    match err {
                        FrameError::Truncated => "frame truncated",
                        FrameError::UnknownType(_) => "unknown frame type",
                        FrameError::OutOfRange(what) => what,
                    },
                )
            })?;
            self.handle_frame(streams, events, frame, &mut inbound)?;
            if inbound.closed.is_some() {
                // After a close frame nothing more is processed.
                self.close_exchanged = true;
                self.over = true;
                break;
            }
        }
        Ok(inbound)
    }

    fn handle_frame(
        &mut self,
        streams: &mut Streams,
        events: &mut EventQueue,
        frame: Frame,
        inbound: &mut Inbound,
    ) -> Result<(), ProtoError> {
        if self.peer.is_none() && !matches!(frame, Frame::TransportParameters(_) | Frame::Padding) {
            return Err(self.params_violation("a frame before the transport parameters"));
        }
        match frame {
            Frame::Padding
            | Frame::DataBlocked(_)
            | Frame::StreamDataBlocked { .. }
            | Frame::StreamsBlocked { .. } => {}
            Frame::TransportParameters(body) => {
                if self.peer.is_some() {
                    return Err(self.params_violation("transport parameters sent twice"));
                }
                let params = TransportParams::decode(&body).map_err(|_| {
                    violation(
                        code::TRANSPORT_PARAMETER_ERROR,
                        "invalid transport parameters",
                    )
                })?;
                self.on_params(streams, params);
                inbound.params_arrived = true;
            }
            Frame::Stream {
                id,
                offset,
                data,
                fin,
            } => self.on_stream(streams, events, id, offset, data, fin)?,
            Frame::ResetStream {
                id,
                code,
                final_size,
            } => self.on_reset(streams, events, id, ErrorCode(code), final_size)?,
            Frame::StopSending { id, code } => {
                if let Some(key) = self.locate(streams, events, id, Needs::Send)? {
                    let code = ErrorCode(code);
                    if let Some(owe_reset) = streams.on_stop(key, code) {
                        debug!(stream = id.0, code = code.0, "stopped by the peer");
                        events.push(Event::StreamShutdown {
                            id,
                            half: Half::Write,
                            code: Some(code),
                        });
                        // QMux answers a stop with a reset, unless our FIN already left.
                        if owe_reset {
                            streams.owe_reset(key, code);
                        }
                    }
                    streams.maybe_remove(key);
                }
            }
            Frame::MaxData(max) => streams.on_conn_credit(max),
            Frame::MaxStreamData { id, max } => {
                if let Some(key) = self.locate(streams, events, id, Needs::Send)? {
                    streams.on_credit(key, max);
                }
            }
            Frame::MaxStreams { dir, count } => {
                let d = dir_index(dir);
                if count > self.local_limit[d] {
                    self.local_limit[d] = count;
                    streams.push_wake(Wake::Openable(dir));
                }
            }
            Frame::ConnectionClose { code, reason, .. } => {
                debug!(code, reason = %reason, "the peer closed with an error");
                inbound.closed = Some(ConnectionError::PeerError { code, reason });
            }
            Frame::ApplicationClose { code, reason } => {
                debug!(code, reason = %reason, "the peer closed");
                inbound.closed = Some(ConnectionError::ApplicationClosed {
                    code,
                    reason,
                    initiator: Initiator::Peer,
                });
            }
            Frame::Datagram(data) => self.on_datagram(streams, data)?,
            Frame::PingRequest(sequence) => {
                if self.version == QmuxVersion::V02
                    && self.last_ping_request.is_some_and(|last| sequence <= last)
                {
                    return Err(violation(
                        code::PROTOCOL_VIOLATION,
                        "QX_PING request numbers must increase",
                    ));
                }
                self.last_ping_request = Some(sequence);
                // Several pending requests get one response, with the largest number.
                self.ping_response = Some(self.ping_response.map_or(sequence, |n| n.max(sequence)));
            }
            Frame::PingResponse(sequence) => {
                inbound.pong = Some(inbound.pong.map_or(sequence, |n| n.max(sequence)));
            }
        }
        Ok(())
    }

    fn params_violation(&self, what: &'static str) -> ProtoError {
        let code = match self.version {
            QmuxVersion::V01 => code::TRANSPORT_PARAMETER_ERROR,
            QmuxVersion::V02 => code::PROTOCOL_VIOLATION,
        };
        violation(code, what)
    }

    fn on_params(&mut self, streams: &mut Streams, params: TransportParams) {
        debug!(?params, "peer's transport parameters");
        self.local_limit = [
            params.initial_max_streams_bidi,
            params.initial_max_streams_uni,
        ];
        streams.on_conn_credit(params.initial_max_data);
        let max = self.max_datagram_size_of(&params);
        let before = self.datagrams_out.len();
        self.datagrams_out
            .retain(|d| max.is_some_and(|max| d.len() <= max));
        self.datagram_stats.dropped += (before - self.datagrams_out.len()) as u64;
        self.peer = Some(params);
        streams.push_wake(Wake::Openable(Dir::Bi));
        streams.push_wake(Wake::Openable(Dir::Uni));
    }

    /// Checks that `added` more bytes fit the connection window we advertised.
    fn check_conn_window(&self, streams: &Streams, added: u64) -> Result<(), ProtoError> {
        if streams.received_total.saturating_add(added) > self.conn_granted {
            return Err(violation(
                code::FLOW_CONTROL_ERROR,
                "data beyond the connection window",
            ));
        }
        Ok(())
    }

    fn on_stream(
        &mut self,
        streams: &mut Streams,
        events: &mut EventQueue,
        id: StreamId,
        offset: u64,
        data: Bytes,
        fin: bool,
    ) -> Result<(), ProtoError> {
        let Some(key) = self.locate(streams, events, id, Needs::Recv)? else {
            return Ok(());
        };
        let Some(recv) = streams.get(key).and_then(|s| s.recv.as_ref()) else {
            return Ok(());
        };
        let was_open = recv.is_open();
        let end = offset + data.len() as u64;
        self.check_conn_window(streams, end.saturating_sub(recv.received))?;
        match streams.on_data(key, offset, data, fin) {
            Ok(_) => {}
            Err(DataError::Gap) => {
                return Err(violation(
                    code::PROTOCOL_VIOLATION,
                    "stream data not contiguous",
                ))
            }
            Err(DataError::Overflow) => {
                return Err(violation(
                    code::FLOW_CONTROL_ERROR,
                    "data beyond the stream window",
                ))
            }
            Err(DataError::FinalSize) => {
                return Err(violation(
                    code::FINAL_SIZE_ERROR,
                    "data beyond the stream's final size",
                ))
            }
        }
        if fin && was_open {
            debug!(stream = id.0, "finished by the peer");
            events.push(Event::StreamShutdown {
                id,
                half: Half::Read,
                code: None,
            });
        }
        streams.maybe_remove(key);
        Ok(())
    }

    fn on_reset(
        &mut self,
        streams: &mut Streams,
        events: &mut EventQueue,
        id: StreamId,
        code: ErrorCode,
        final_size: u64,
    ) -> Result<(), ProtoError> {
        let Some(key) = self.locate(streams, events, id, Needs::Recv)? else {
            return Ok(());
        };
        let Some(recv) = streams.get(key).and_then(|s| s.recv.as_ref()) else {
            return Ok(());
        };
        if recv.final_size.is_some_and(|known| final_size > known) {
            return Err(violation(
                code::FINAL_SIZE_ERROR,
                "reset beyond the stream's final size",
            ));
        }
        // A final size below what arrived is tolerated (the peers send that): the larger counts.
        let final_size = final_size.max(recv.received);
        if final_size > recv.granted {
            return Err(violation(
                code::FLOW_CONTROL_ERROR,
                "reset beyond the stream window",
            ));
        }
        self.check_conn_window(streams, final_size - recv.received)?;
        if streams.on_reset_at(key, code, final_size) {
            debug!(stream = id.0, code = code.0, "reset by the peer");
            events.push(Event::StreamShutdown {
                id,
                half: Half::Read,
                code: Some(code),
            });
        }
        Ok(())
    }

    fn on_datagram(&mut self, streams: &mut Streams, data: Bytes) -> Result<(), ProtoError> {
        if (data.len() + DATAGRAM_HEADER) as u64 > self.ours.max_datagram_frame_size {
            return Err(violation(
                code::PROTOCOL_VIOLATION,
                "datagram larger than max_datagram_frame_size",
            ));
        }
        self.datagram_stats.received += 1;
        if self.datagrams_in.len() >= self.datagram_queue {
            // Datagrams are unreliable: the oldest unread one gives way (as in quinn).
            self.datagrams_in.pop_front();
            self.datagram_stats.dropped += 1;
        }
        self.datagrams_in.push_back(data);
        streams.push_wake(Wake::Datagram);
        Ok(())
    }

    // ----- datagrams -----

    fn max_datagram_size_of(&self, params: &TransportParams) -> Option<usize> {
        let frame = params.max_datagram_frame_size.min(params.max_record_size);
        let frame = usize::try_from(frame).unwrap_or(usize::MAX);
        (frame > DATAGRAM_HEADER).then(|| frame - DATAGRAM_HEADER)
    }

    /// The largest datagram the peer accepts: `None` before its parameters arrive or if it
    /// accepts none.
    pub(crate) fn max_datagram_size(&self) -> Option<usize> {
        self.max_datagram_size_of(self.peer.as_ref()?)
    }

    /// Queues a datagram. Before the peer's parameters arrive it is queued unchecked (and dropped
    /// then if too large). A full queue drops its oldest.
    pub(crate) fn send_datagram(&mut self, data: Bytes) -> Result<(), DatagramRefused> {
        if self.peer.is_some() {
            match self.max_datagram_size() {
                None => return Err(DatagramRefused::Unsupported),
                Some(max) if data.len() > max => return Err(DatagramRefused::TooLarge(max)),
                Some(_) => {}
            }
        } else if data.len() + DATAGRAM_HEADER > MIN_RECORD_SIZE as usize {
            return Err(DatagramRefused::TooLarge(
                MIN_RECORD_SIZE as usize - DATAGRAM_HEADER,
            ));
        }
        if self.datagrams_out.len() >= self.datagram_queue {
            self.datagrams_out.pop_front();
            self.datagram_stats.dropped += 1;
        }
        self.datagrams_out.push_back(data);
        Ok(())
    }

    /// The oldest datagram received and not yet read.
    pub(crate) fn read_datagram(&mut self) -> Option<Bytes> {
        self.datagrams_in.pop_front()
    }

    // ----- closing -----

    /// Our close: APPLICATION_CLOSE with `code` and `reason`, sent after the data written before.
    pub(crate) fn close(&mut self, code: u64, reason: &str) {
        if self.over || self.close_frame.is_some() {
            return;
        }
        self.close_frame = Some(
            Frame::ApplicationClose {
                code,
                reason: reason.to_owned(),
            }
            .to_bytes(),
        );
    }

    /// The peer broke a rule: CONNECTION_CLOSE with the RFC 9000 code goes ahead of everything.
    /// Returns the frame once.
    pub(crate) fn poll_violation_close(&mut self, violation: &ProtoError) -> Option<Bytes> {
        // Sent even when the streams were abandoned: the Close frame it precedes still goes.
        if self.close_exchanged || !self.params_sent {
            return None;
        }
        self.close_exchanged = true;
        self.over = true;
        Some(
            Frame::ConnectionClose {
                code: violation.qmux_code(),
                frame_type: 0,
                reason: violation.close_reason().to_owned(),
            }
            .to_bytes(),
        )
    }

    /// Our APPLICATION_CLOSE, once the data before it is out. Returns it once.
    pub(crate) fn poll_close(&mut self) -> Option<Bytes> {
        let frame = self.close_frame.take()?;
        self.close_exchanged = true;
        self.close_sent = true;
        self.over = true;
        Some(frame)
    }

    /// Whether our APPLICATION_CLOSE was handed out.
    pub(crate) fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether a close frame of ours waits.
    pub(crate) fn has_close(&self) -> bool {
        self.close_frame.is_some()
    }

    /// No frame is processed or sent any more (a close frame went or came, or the socket is
    /// gone).
    pub(crate) fn end(&mut self) {
        self.over = true;
        self.datagrams_out.clear();
    }

    // ----- output -----

    /// Our transport parameters: the first record, before anything else. Returns it once.
    pub(crate) fn poll_params(&mut self) -> Option<Bytes> {
        if self.params_sent {
            return None;
        }
        self.params_sent = true;
        Some(Frame::TransportParameters(self.ours.encode()).to_bytes())
    }

    /// The MAX_DATA to send, if the application has read half a window since the last one.
    fn max_data_due(&self, streams: &Streams) -> Option<u64> {
        let target = streams.consumed_total + self.conn_window;
        (target >= self.conn_granted + (self.conn_window / 2).max(1)).then_some(target)
    }

    /// The MAX_STREAMS to send for `dir`, once half the limit's worth of the peer's streams ended.
    fn max_streams_due(&self, streams: &Streams, dir: Dir) -> Option<u64> {
        let d = dir_index(dir);
        let cap = self.peer_cap[d];
        let target = streams.peer_retired[d] + cap;
        (cap > 0 && target >= self.peer_limit[d] + (cap / 2).max(1)).then_some(target)
    }

    /// Whether anything may be waiting to be sent.
    pub(crate) fn has_transmit(&self, streams: &Streams) -> bool {
        if self.over {
            return false;
        }
        !self.params_sent
            || self.ping_response.is_some()
            || (self.peer.is_some() && !self.datagrams_out.is_empty())
            || streams.has_control()
            || streams.has_data()
            || self.max_data_due(streams).is_some()
            || [Dir::Bi, Dir::Uni]
                .into_iter()
                .any(|dir| self.max_streams_due(streams, dir).is_some())
    }

    /// The next record: our parameters first; then one record of what the connection and the
    /// streams owe (ping answers, credit, stream limits, announcements, resets, stops) and
    /// datagrams, packed up to the record size; then one STREAM frame, or a FIN, from the stream
    /// whose turn it is.
    pub(crate) fn poll_message(
        &mut self,
        streams: &mut Streams,
        hold_partial: bool,
    ) -> Option<Bytes> {
        if let Some(params) = self.poll_params() {
            return Some(params);
        }
        if self.over {
            return None;
        }
        let limit = self
            .peer
            .as_ref()
            .map_or(MIN_RECORD_SIZE, |peer| peer.max_record_size);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut record = BytesMut::new();
        self.encode_control(streams, &mut record, limit);
        // Datagrams queued before the peer's parameters wait for them (and for the check of
        // their size against its limit, in `on_params`).
        while let Some(datagram) = self.datagrams_out.front().filter(|_| self.peer.is_some()) {
            if !record.is_empty() && record.len() + DATAGRAM_HEADER + datagram.len() > limit {
                break;
            }
            let datagram = self.datagrams_out.pop_front().expect("checked");
            Frame::Datagram(datagram).encode(&mut record);
            self.datagram_stats.sent += 1;
        }
        if !record.is_empty() {
            return Some(record.freeze());
        }
        match streams.next_data(hold_partial, self, |_| true)? {
            DataTurn::Data(message) => Some(message),
            DataTurn::Fin(key) => {
                let stream = streams.get(key)?;
                let id = stream.id;
                let offset = stream.send.as_ref().map_or(0, |send| send.sent);
                streams.fin_sent(key);
                Some(
                    Frame::Stream {
                        id,
                        offset,
                        data: Bytes::new(),
                        fin: true,
                    }
                    .to_bytes(),
                )
            }
        }
    }

    fn encode_control(&mut self, streams: &mut Streams, record: &mut BytesMut, limit: usize) {
        if let Some(sequence) = self.ping_response.take() {
            Frame::PingResponse(sequence).encode(record);
        }
        if let Some(max) = self.max_data_due(streams) {
            self.conn_granted = max;
            Frame::MaxData(max).encode(record);
        }
        for dir in [Dir::Bi, Dir::Uni] {
            if let Some(count) = self.max_streams_due(streams, dir) {
                self.peer_limit[dir_index(dir)] = count;
                Frame::MaxStreams { dir, count }.encode(record);
            }
        }
        while record.len() + 4 * MAX_CONTROL_FRAME <= limit {
            let Some(key) = streams.next_control() else {
                break;
            };
            let stream = streams.get_mut(key).expect("queued streams exist");
            let id = stream.id;
            let owe = &mut stream.owe;
            if std::mem::take(&mut owe.announce) {
                let data_will_announce = owe.reset.is_some()
                    || stream
                        .send
                        .as_ref()
                        .is_some_and(|send| send.has_data() || send.fin_due());
                if !data_will_announce {
                    Frame::Stream {
                        id,
                        offset: 0,
                        data: Bytes::new(),
                        fin: false,
                    }
                    .encode(record);
                }
            }
            if std::mem::take(&mut owe.credit) > 0 {
                if let Some(recv) = stream.recv.as_ref() {
                    Frame::MaxStreamData {
                        id,
                        max: recv.granted,
                    }
                    .encode(record);
                }
            }
            if let Some(code) = owe.reset.take() {
                let final_size = stream.send.as_ref().map_or(0, |send| send.sent);
                Frame::ResetStream {
                    id,
                    code: code.0,
                    final_size,
                }
                .encode(record);
            }
            if let Some(code) = owe.stop.take() {
                Frame::StopSending { id, code: code.0 }.encode(record);
            }
            streams.control_done(key);
        }
    }
}

#[cfg(test)]
mod tests;
