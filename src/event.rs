//! Out-of-band events: what happens on the wire, for observers and logs.
//!
//! Reads and writes return only what ends them. Everything else that happens on the wire — control
//! frames, a stream the peer shut down, a stream that failed because the peer misbehaved — is a
//! [`WsEvent`], so it can go to your logs without interrupting the data path. Subscribe with
//! `events()` on [`Connection`](crate::Connection), [`WsIo`](crate::WsIo) or
//! [`MessageSocket`](crate::MessageSocket) (an [`EventStream`](crate::EventStream)), or through
//! [`pharos::Observable`]. Each observer has a bounded queue; [`WsEvent::Closed`] comes last.

use bytes::Bytes;

use crate::{
    error::{Error, Timeout},
    proto::{CloseCode, ErrorCode, Event, Half, StreamId},
};

/// Something that happened on a connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum WsEvent {
    /// The peer sent a Close frame. `code` is 1005 if the frame had none.
    CloseFrame {
        /// The peer's close code.
        code: CloseCode,
        /// The peer's reason (possibly empty).
        reason: String,
    },

    /// The peer sent a Ping (it is answered automatically).
    Ping(Bytes),

    /// The peer sent a Pong.
    Pong(Bytes),

    /// A text message arrived where only binary messages are accepted (the connection then closes
    /// with 1003). The payload is the text's length in bytes, not its content, so that a hostile
    /// peer cannot put large strings into your logs.
    TextReceived {
        /// Length of the text message in bytes.
        len: usize,
    },

    /// The peer shut down one half of a stream: gracefully (`code` is `None`) or abruptly, with
    /// its code. `half` is the half of *our* stream that ended: `Read` when the peer finished or
    /// reset its writing, `Write` when it stopped reading.
    StreamShutdown {
        /// The stream.
        id: StreamId,
        /// Our half that the peer's message ends.
        half: Half,
        /// The error code for an abrupt end, `None` for a graceful one.
        code: Option<ErrorCode>,
    },

    /// The peer sent a malformed message on this stream. The stream ended (ERROR with code 1 was
    /// sent on both halves); the connection carries on.
    StreamParseError {
        /// The stream.
        id: StreamId,
    },

    /// The peer sent more data than its credit on this stream. The stream ended (ERROR with code 2
    /// was sent on both halves); the connection carries on.
    StreamOverflow {
        /// The stream.
        id: StreamId,
    },

    /// The peer opened a stream beyond [`Config::max_streams`](crate::Config::max_streams) (or
    /// while shutting down); it was refused. The connection carries on.
    StreamRefused {
        /// The refused stream.
        id: StreamId,
    },

    /// Something went wrong that is worth a log line: a protocol violation (the connection is
    /// being closed for it), a closing handshake that timed out.
    Error(Error),

    /// Events were produced faster than the connection could hand them on, and this many were
    /// dropped.
    EventsDropped {
        /// How many.
        count: u64,
    },

    /// The connection is closed; no more events follow. `code` is what ended it: the Close frame's
    /// code (sent or received), or 1006 when the connection ended without one.
    Closed {
        /// The close code.
        code: CloseCode,
        /// The close reason (possibly empty).
        reason: String,
    },
}

impl From<Event> for WsEvent {
    fn from(event: Event) -> Self {
        match event {
            Event::CloseFrame { code, reason } => WsEvent::CloseFrame { code, reason },
            Event::Ping(payload) => WsEvent::Ping(payload),
            Event::Pong(payload) => WsEvent::Pong(payload),
            Event::TextReceived { len } => WsEvent::TextReceived { len },
            Event::StreamShutdown { id, half, code } => WsEvent::StreamShutdown { id, half, code },
            Event::StreamParseError { id } => WsEvent::StreamParseError { id },
            Event::StreamOverflow { id } => WsEvent::StreamOverflow { id },
            Event::StreamRefused { id } => WsEvent::StreamRefused { id },
            Event::Violation(violation) => WsEvent::Error(Error::Protocol(violation)),
            Event::CloseTimedOut => WsEvent::Error(Error::TimedOut(Timeout::Close)),
            Event::Dropped(count) => WsEvent::EventsDropped { count },
            Event::Closed(err) => WsEvent::Closed {
                code: err.close_code(),
                reason: err.close_reason().to_owned(),
            },
        }
    }
}
