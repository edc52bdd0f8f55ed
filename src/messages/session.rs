//! The core of a [`MessageSocket`](super::MessageSocket): the connection's [`Lifecycle`] at the
//! message level (text messages are data; after our Close frame, data is still read until the
//! peer answers), plus the messages waiting to be read and to be sent. The engine drives it.

use std::{collections::VecDeque, time::Instant};

use async_tungstenite::tungstenite::Message;

use super::data::DataMessage;
use crate::{
    engine::{lifecycle_message, Input, Session},
    event::WsEvent,
    proto::{Event, Lifecycle, LifecycleConfig, Wake},
};

/// How many messages written by concurrent `write` calls may wait for the socket.
pub(crate) const MAX_OUTBOX: usize = 16;

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct MessageSession {
    pub(crate) lifecycle: Lifecycle,
    /// Data messages received and not yet read.
    pub(crate) inbox: VecDeque<DataMessage>,
    max_buffered: usize,
    /// Data messages discarded because they arrived after our Close frame with the inbox full.
    pub(crate) discarded: u64,
    /// Written messages waiting for the socket, with their sequence numbers.
    outbox: VecDeque<(u64, Message)>,
    /// Sequence number of the next message written.
    next_seq: u64,
    /// Every message up to this sequence number has been handed to the socket...
    handed_out: u64,
    /// ...and up to this one written out (flushed).
    pub(crate) flushed: u64,
    /// Something happened that connection-level waiters should look at.
    news: bool,
}

impl MessageSession {
    pub(crate) fn new(mut config: LifecycleConfig, max_buffered: usize, now: Instant) -> Self {
        config.accept_text = true;
        Self {
            lifecycle: Lifecycle::new(config, now),
            inbox: VecDeque::new(),
            max_buffered: max_buffered.max(1),
            discarded: 0,
            outbox: VecDeque::new(),
            next_seq: 1,
            handed_out: 0,
            flushed: 0,
            news: false,
        }
    }

    /// Queues a message to send; returns its sequence number, or `None` while the outbox is full.
    pub(crate) fn queue(&mut self, message: Message) -> Option<u64> {
        if self.outbox.len() >= MAX_OUTBOX {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.outbox.push_back((seq, message));
        Some(seq)
    }

    /// The next message for `read`. Taking one from a full inbox is news: a ping that stopped
    /// reading for lack of room may go on.
    pub(crate) fn take_message(&mut self) -> Option<DataMessage> {
        let was_full = self.inbox.len() >= self.max_buffered;
        let message = self.inbox.pop_front()?;
        self.news |= was_full;
        Some(message)
    }

    fn deliver(&mut self, message: DataMessage) {
        self.news = true;
        if self.inbox.len() < self.max_buffered {
            self.inbox.push_back(message);
        } else {
            // Only while we close (otherwise the socket is not read with a full inbox).
            self.discarded += 1;
        }
    }
}

impl Session for MessageSession {
    fn handle_input(&mut self, now: Instant, input: Input) {
        self.news = true;
        match input {
            Input::Binary(data) => {
                self.lifecycle.handle_heard(now);
                if self.lifecycle.accepts_data() {
                    self.deliver(DataMessage::Binary(data));
                }
            }
            Input::Text(text) => {
                if self.lifecycle.handle_text(now, text.len()) && self.lifecycle.accepts_data() {
                    self.deliver(DataMessage::Text(text));
                }
            }
            Input::Ping(payload) => self.lifecycle.handle_ping(now, payload),
            Input::Pong(payload) => self.lifecycle.handle_pong(now, payload),
            Input::Close(frame) => self.lifecycle.handle_close_frame(now, frame),
            Input::Violation(violation) => self.lifecycle.handle_violation(now, violation),
            Input::Ended(detail) => self.lifecycle.handle_ended(detail),
        }
        if !self.lifecycle.is_open() && !self.lifecycle.is_closing_by_us() {
            self.outbox.clear();
        }
    }

    fn handle_flushed(&mut self, now: Instant) {
        self.flushed = self.handed_out;
        self.news = true;
        self.lifecycle.handle_flushed(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.news = true;
        self.lifecycle.handle_timeout(now);
    }

    fn poll_output(&mut self, now: Instant, _flush_partial: bool) -> Option<Message> {
        if let Some(output) = self.lifecycle.poll_output(now) {
            return Some(lifecycle_message(output));
        }
        if let Some((seq, message)) = self.outbox.pop_front() {
            self.handed_out = seq;
            return Some(message);
        }
        if self.lifecycle.is_closing_by_us() {
            // What was written before the close is out: our Close frame goes now.
            self.lifecycle.clear_close();
            return self.lifecycle.poll_output(now).map(lifecycle_message);
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.lifecycle.poll_timeout()
    }

    fn poll_wake(&mut self) -> Option<Wake> {
        std::mem::take(&mut self.news).then_some(Wake::Connection)
    }

    fn poll_event(&mut self) -> Option<WsEvent> {
        self.lifecycle
            .poll_event()
            .map(|event| WsEvent::from(Event::from(event)))
    }

    fn input_allowance(&self) -> usize {
        if !self.lifecycle.wants_input() {
            return 0;
        }
        if self.lifecycle.is_closing_by_us() {
            // While we close, the peer's answer must get through even if nobody reads.
            return usize::MAX;
        }
        self.max_buffered.saturating_sub(self.inbox.len())
    }

    fn is_done(&self) -> bool {
        self.lifecycle.terminal().is_some()
    }

    fn has_output(&self) -> bool {
        !self.outbox.is_empty() || self.lifecycle.flush_owed()
    }

    fn abandon(&mut self, _now: Instant) {
        self.lifecycle
            .handle_ended("every handle was dropped".to_owned());
        self.news = true;
    }
}
