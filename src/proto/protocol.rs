//! The two wire protocols a [`Mux`](super::Mux) can speak, and the one seam between it and them.
//!
//! Both protocols work on the same [`Streams`]; [`Codec`] dispatches to the one negotiated, so
//! that the multiplexer has one copy of everything else (lifecycle, scheduling, credit, wakes).

use bytes::Bytes;

use super::{
    error::{ApiError, ProtoError},
    event::EventQueue,
    id::{Dir, StreamId},
    qmux::{Inbound, Qmux, QmuxVersion},
    streams::{Framing, StreamKey, Streams},
    wire::Wire,
};

/// Which wire protocol a connection speaks, chosen once, at the WebSocket handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// The @matrixai/ws stream protocol (WIRE.md): what a handshake without a QMux subprotocol
    /// speaks.
    Wire,
    /// QMux (QMUX.md), negotiated as `qmux-02[.app]` or `qmux-01[.app]`.
    Qmux(QmuxVersion),
}

impl Protocol {
    /// The protocol a handshake's negotiated subprotocol selects: QMux for `qmux-02[.app]` and
    /// `qmux-01[.app]`, the @matrixai/ws protocol for anything else or nothing.
    ///
    /// ```
    /// use ws_stream_mux::{Protocol, QmuxVersion};
    ///
    /// assert_eq!(Protocol::from_subprotocol(Some("qmux-02.chat")), Protocol::Qmux(QmuxVersion::V02));
    /// assert_eq!(Protocol::from_subprotocol(None), Protocol::Wire);
    /// assert_eq!(Protocol::from_subprotocol(Some("chat.v1")), Protocol::Wire);
    /// ```
    pub fn from_subprotocol(subprotocol: Option<&str>) -> Self {
        match subprotocol.and_then(QmuxVersion::parse) {
            Some((version, _)) => Protocol::Qmux(version),
            None => Protocol::Wire,
        }
    }
}

/// The negotiated protocol's own state.
#[derive(Debug)]
pub(crate) enum Codec {
    Wire(Wire),
    Qmux(Box<Qmux>),
}

impl Framing for Codec {
    fn header_room(&self, id: StreamId) -> usize {
        match self {
            Codec::Wire(wire) => wire.header_room(id),
            Codec::Qmux(qmux) => qmux.header_room(id),
        }
    }

    fn write_header(
        &self,
        id: StreamId,
        offset: u64,
        len: usize,
        fin: bool,
        room: &mut [u8],
    ) -> usize {
        match self {
            Codec::Wire(wire) => wire.write_header(id, offset, len, fin, room),
            Codec::Qmux(qmux) => qmux.write_header(id, offset, len, fin, room),
        }
    }

    fn carries_fin(&self) -> bool {
        match self {
            Codec::Wire(wire) => wire.carries_fin(),
            Codec::Qmux(qmux) => qmux.carries_fin(),
        }
    }
}

impl Codec {
    /// Which protocol this is.
    pub(crate) fn protocol(&self) -> Protocol {
        match self {
            Codec::Wire(_) => Protocol::Wire,
            Codec::Qmux(qmux) => Protocol::Qmux(qmux.version()),
        }
    }

    /// The QMux state, if that is what is spoken.
    pub(crate) fn qmux(&mut self) -> Option<&mut Qmux> {
        match self {
            Codec::Qmux(qmux) => Some(qmux),
            Codec::Wire(_) => None,
        }
    }

    /// The QMux state, if that is what is spoken.
    pub(crate) fn qmux_ref(&self) -> Option<&Qmux> {
        match self {
            Codec::Qmux(qmux) => Some(qmux),
            Codec::Wire(_) => None,
        }
    }

    /// Opens a stream: `Ok(None)` means wait for [`Wake::Openable`](super::Wake::Openable).
    pub(crate) fn open(
        &mut self,
        streams: &mut Streams,
        dir: Dir,
    ) -> Result<Option<StreamKey>, ApiError> {
        match self {
            Codec::Wire(wire) => wire.open(streams, dir),
            Codec::Qmux(qmux) => Ok(qmux.open(streams, dir)),
        }
    }

    /// One binary message from the peer.
    pub(crate) fn handle_message(
        &mut self,
        streams: &mut Streams,
        events: &mut EventQueue,
        message: Bytes,
    ) -> Result<Inbound, ProtoError> {
        match self {
            Codec::Wire(wire) => wire
                .handle_message(streams, events, &message)
                .map(|()| Inbound::default()),
            Codec::Qmux(qmux) => qmux.handle_message(streams, events, message),
        }
    }

    /// The next message to send.
    pub(crate) fn poll_message(
        &mut self,
        streams: &mut Streams,
        hold_partial: bool,
    ) -> Option<Bytes> {
        match self {
            Codec::Wire(wire) => wire.poll_message(streams, hold_partial),
            Codec::Qmux(qmux) => qmux.poll_message(streams, hold_partial),
        }
    }

    /// Whether anything may be waiting to be sent.
    pub(crate) fn has_transmit(&self, streams: &Streams) -> bool {
        match self {
            Codec::Wire(wire) => wire.has_transmit(streams),
            Codec::Qmux(qmux) => qmux.has_transmit(streams),
        }
    }

    /// Whether replies pile up because the socket does not take them.
    pub(crate) fn backlogged(&self) -> bool {
        match self {
            Codec::Wire(wire) => wire.backlogged(),
            // Every reply QMux owes is a flag or a single slot, bounded by the streams.
            Codec::Qmux(_) => false,
        }
    }

    /// Nothing can leave any more.
    pub(crate) fn abandon(&mut self) {
        match self {
            Codec::Wire(wire) => wire.abandon(),
            Codec::Qmux(qmux) => qmux.end(),
        }
    }
}
