//! What the core tells the IO layer besides what to send:
//!
//! - [`Wake`]: which waiting handle might now make progress (a hint: a spurious one costs a poll);
//! - [`Event`]: what happened on the connection, for observers and logs.

use bytes::Bytes;

use super::{
    code::{CloseCode, ErrorCode},
    error::{ConnectionError, ProtoError},
    id::{Dir, Half, StreamId},
    streams::StreamKey,
};

/// A handle that might make progress now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The stream's reader: data, the end, or an error arrived.
    Read(StreamKey),
    /// The stream's writer: credit or buffer room arrived, data left, or the half ended.
    Write(StreamKey),
    /// Tasks accepting streams of this direction: one arrived, or the connection ended.
    Incoming(Dir),
    /// Tasks waiting to open a stream of this direction: the limit allows one now.
    Openable(Dir),
    /// A datagram arrived (QMux).
    Datagram,
    /// Connection-level waiters: a close, a ping, a shutdown, the driver.
    Connection,
}

/// Something that happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The peer sent a WebSocket Close frame (1005 when it had no code).
    CloseFrame {
        /// Its code.
        code: CloseCode,
        /// Its reason.
        reason: String,
    },
    /// The peer sent a Ping.
    Ping(Bytes),
    /// The peer sent a Pong.
    Pong(Bytes),
    /// A text message arrived where only binary ones are accepted.
    TextReceived {
        /// Its length in bytes.
        len: usize,
    },
    /// The peer ended one half of a stream: gracefully (`code` is `None`) or with a code.
    StreamShutdown {
        /// The stream.
        id: StreamId,
        /// Our half that the peer's message ends.
        half: Half,
        /// The code, `None` for a graceful end.
        code: Option<ErrorCode>,
    },
    /// The peer sent a malformed message on this stream; the stream ended (code 1).
    StreamParseError {
        /// The stream.
        id: StreamId,
    },
    /// The peer sent more than its credit on this stream; the stream ended (code 2).
    StreamOverflow {
        /// The stream.
        id: StreamId,
    },
    /// The peer opened a stream beyond our limit; it was refused.
    StreamRefused {
        /// The stream.
        id: StreamId,
    },
    /// The peer broke the protocol; we close the connection.
    Violation(ProtoError),
    /// The closing handshake did not finish within the close timeout; the connection was dropped.
    CloseTimedOut,
    /// Events were dropped because they were produced faster than taken.
    Dropped(u64),
    /// The connection is over; nothing follows.
    Closed(ConnectionError),
}

/// Events waiting for the IO layer: bounded, the oldest dropped (and counted) when full, so a
/// peer cannot grow it. [`Event::Closed`] is never dropped: it is the last event.
#[derive(Debug)]
pub(crate) struct EventQueue {
    queue: std::collections::VecDeque<Event>,
    limit: usize,
    dropped: u64,
}

impl EventQueue {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            queue: std::collections::VecDeque::new(),
            limit: limit.max(1),
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, event: Event) {
        if self.queue.len() >= self.limit {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(event);
    }

    /// The next event; a count of dropped ones comes first if there are any.
    pub(crate) fn pop(&mut self) -> Option<Event> {
        if self.dropped > 0 {
            return Some(Event::Dropped(std::mem::take(&mut self.dropped)));
        }
        self.queue.pop_front()
    }
}
