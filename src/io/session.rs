//! The core of a [`WsIo`](super::WsIo): the connection's [`Lifecycle`] plus the messages waiting
//! to be read and to be sent. Sans-IO like the multiplexer: the engine drives it.

use std::{collections::VecDeque, time::Instant};

use async_tungstenite::tungstenite::Message;
use bytes::Bytes;

use crate::{
    engine::{lifecycle_message, Input, Session},
    event::WsEvent,
    proto::{ConnectionError, Event, Lifecycle, LifecycleConfig, Wake},
};

/// How many written messages may wait for the socket before writes wait.
pub(crate) const MAX_OUTBOX: usize = 2;

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct ByteSession {
    pub(crate) lifecycle: Lifecycle,
    /// Binary messages received and not yet read. Reading the socket pauses while one waits, so
    /// a reader that does not read holds at most one message.
    pub(crate) inbox: VecDeque<Bytes>,
    /// How many messages the inbox may hold before the socket is no longer read (more while a ping
    /// waits for its pong).
    pub(crate) inbox_limit: usize,
    /// Written messages waiting for the socket.
    pub(crate) outbox: VecDeque<Bytes>,
    text_as_bytes: bool,
    /// Something was handed to the socket since the last complete flush.
    pub(crate) unflushed: bool,
}

impl ByteSession {
    pub(crate) fn new(config: LifecycleConfig, text_as_bytes: bool, now: Instant) -> Self {
        Self {
            lifecycle: Lifecycle::new(config, now),
            inbox: VecDeque::new(),
            inbox_limit: 1,
            outbox: VecDeque::new(),
            text_as_bytes,
            unflushed: false,
        }
    }

    fn deliver(&mut self, data: Bytes) {
        // Once either side has sent a Close frame, nothing more is delivered; empty messages
        // carry nothing.
        if self.lifecycle.accepts_data() && !data.is_empty() {
            self.inbox.push_back(data);
        }
    }

    /// Why the connection ended, once it has.
    pub(crate) fn terminal(&self) -> Option<&ConnectionError> {
        self.lifecycle.terminal()
    }
}

impl Session for ByteSession {
    fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Binary(data) => {
                self.lifecycle.handle_heard(now);
                self.deliver(data);
            }
            Input::Text(text) if self.text_as_bytes => {
                self.lifecycle.handle_heard(now);
                self.deliver(Bytes::from(text));
            }
            Input::Text(text) => {
                self.lifecycle.handle_text(now, text.len());
            }
            Input::Ping(payload) => self.lifecycle.handle_ping(now, payload),
            Input::Pong(payload) => self.lifecycle.handle_pong(now, payload),
            Input::Close(frame) => self.lifecycle.handle_close_frame(now, frame),
            Input::Violation(violation) => self.lifecycle.handle_violation(now, violation),
            Input::Ended(detail) => self.lifecycle.handle_ended(detail),
        }
        if !self.lifecycle.is_open() && !self.lifecycle.is_closing_by_us() {
            // Nothing written can leave any more.
            self.outbox.clear();
        }
    }

    fn handle_flushed(&mut self, now: Instant) {
        self.unflushed = false;
        self.lifecycle.handle_flushed(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.lifecycle.handle_timeout(now);
    }

    fn poll_output(&mut self, now: Instant, _flush_partial: bool) -> Option<Message> {
        let message = if let Some(output) = self.lifecycle.poll_output(now) {
            lifecycle_message(output)
        } else if let Some(data) = self.outbox.pop_front() {
            Message::Binary(data)
        } else if self.lifecycle.is_closing_by_us() {
            // Everything written before the close is out: our Close frame goes now.
            self.lifecycle.clear_close();
            lifecycle_message(self.lifecycle.poll_output(now)?)
        } else {
            return None;
        };
        self.unflushed = true;
        Some(message)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.lifecycle.poll_timeout()
    }

    fn poll_wake(&mut self) -> Option<Wake> {
        None
    }

    fn poll_event(&mut self) -> Option<WsEvent> {
        self.lifecycle
            .poll_event()
            .map(|event| WsEvent::from(Event::from(event)))
    }

    fn input_allowance(&self) -> usize {
        if self.lifecycle.wants_input() {
            self.inbox_limit.saturating_sub(self.inbox.len())
        } else {
            0
        }
    }

    fn is_done(&self) -> bool {
        self.lifecycle.terminal().is_some()
    }

    fn has_output(&self) -> bool {
        !self.outbox.is_empty() || self.lifecycle.flush_owed()
    }

    fn abandon(&mut self, _now: Instant) {
        self.lifecycle.handle_ended(String::new());
    }
}
