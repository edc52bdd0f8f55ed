//! Out-of-band events, published on a [`pharos`] channel.
//!
//! Reads and writes return only what ends them. Everything else that happens on the wire — control
//! frames, a stream the peer shut down, a stream that failed because the peer misbehaved — is a
//! [`WsEvent`], so it can go to your logs without interrupting the data path. Subscribe with
//! [`pharos::Observable::observe`] on [`Connection`](crate::Connection) or
//! [`WsIo`](crate::WsIo).

use bytes::Bytes;

use crate::{
    code::{CloseCode, ErrorCode},
    error::Error,
    proto::{Half, StreamId},
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

    /// The peer shut down one half of a stream: `CLOSE` (graceful, `code` is `None`) or `ERROR`
    /// (abrupt, with its code). `half` is the half of *our* stream that ended: `Read` when the peer
    /// finished or reset its writing, `Write` when it stopped reading.
    StreamShutdown {
        /// The stream.
        id: StreamId,
        /// Our half that the peer's message ends.
        half: Half,
        /// The error code for `ERROR`, `None` for a graceful `CLOSE`.
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

    /// The peer opened a stream beyond [`Config::max_streams`](crate::Config::max_streams); it was
    /// refused with ERROR on both halves. The connection carries on.
    StreamRefused {
        /// The refused stream.
        id: StreamId,
    },

    /// An error that did not end the connection, such as a message for a stream that has ended.
    Error(Error),

    /// The connection is closed; no more events follow. `code` is what ended it: the Close frame's
    /// code (sent or received), or 1006 when the connection ended without one.
    Closed {
        /// The close code.
        code: CloseCode,
        /// The close reason (possibly empty).
        reason: String,
    },
}

/// Publishes events to pharos observers without ever blocking the connection.
///
/// Events wait in a queue until every observer's channel accepts them. With the default unbounded
/// channels that is at once; a slow observer on a bounded channel makes the queue grow up to
/// `limit` events, after which the oldest are dropped (counted in `dropped`) rather than stalling
/// every stream behind a log reader.
pub(crate) struct EventSink {
    pharos: pharos::Pharos<WsEvent>,
    queue: std::collections::VecDeque<WsEvent>,
    limit: usize,
    dropped: u64,
    closed: bool,
}

impl EventSink {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            pharos: pharos::Pharos::default(),
            queue: Default::default(),
            limit: limit.max(1),
            dropped: 0,
            closed: false,
        }
    }

    /// Queues an event; [`EventSink::poll_deliver`] hands it to the observers.
    pub(crate) fn emit(&mut self, event: WsEvent) {
        if self.closed {
            return;
        }
        if self.queue.len() >= self.limit {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(event);
    }

    /// How many events were dropped because observers did not keep up.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Adds an observer. Fails once the connection is closed.
    pub(crate) fn observe(
        &mut self,
        options: pharos::ObserveConfig<WsEvent>,
    ) -> Result<pharos::Events<WsEvent>, pharos::PharErr> {
        use futures::FutureExt;
        use pharos::Observable;
        // Pharos's observe future does its work synchronously; it is ready on the first poll.
        self.pharos
            .observe(options)
            .now_or_never()
            .unwrap_or_else(|| Err(pharos::ErrorKind::Closed.into()))
    }

    /// Delivers queued events as far as observers accept them. After a `Closed` event is
    /// delivered, the observers' streams end.
    pub(crate) fn poll_deliver(&mut self, cx: &mut std::task::Context<'_>) {
        use futures::Sink;
        use std::{pin::Pin, task::Poll};
        while !self.queue.is_empty() {
            match Pin::new(&mut self.pharos).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                // Pharos only fails once closed; nothing more can be delivered.
                Poll::Ready(Err(_)) => return self.queue.clear(),
                Poll::Pending => return,
            }
            let Some(event) = self.queue.pop_front() else {
                break;
            };
            let last = matches!(event, WsEvent::Closed { .. });
            let _ = Pin::new(&mut self.pharos).start_send(event);
            if last {
                self.closed = true;
                self.queue.clear();
            }
        }
        if self.closed {
            let _ = Pin::new(&mut self.pharos).poll_close(cx);
        }
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("queued", &self.queue.len())
            .field("dropped", &self.dropped)
            .finish()
    }
}
