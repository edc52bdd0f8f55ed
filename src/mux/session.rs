//! The multiplexer core as the engine drives it.

use std::time::Instant;

use async_tungstenite::tungstenite::Message;

use crate::{
    engine::{close_message, Input, Session},
    event::WsEvent,
    proto::{CloseCode, Mux, Transmit, Wake},
};

impl Session for Mux {
    fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Binary(message) => self.handle_message(now, message),
            Input::Text(text) => self.handle_text(now, text.len()),
            Input::Ping(payload) => self.handle_ping(now, payload),
            Input::Pong(payload) => self.handle_pong(now, payload),
            Input::Close(frame) => self.handle_close_frame(now, frame),
            Input::Violation(violation) => self.handle_violation(now, violation),
            Input::Ended(detail) => self.handle_ended(now, detail),
        }
    }

    fn handle_flushed(&mut self, now: Instant) {
        Mux::handle_flushed(self, now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Mux::handle_timeout(self, now);
    }

    fn poll_output(&mut self, now: Instant, flush_partial: bool) -> Option<Message> {
        self.poll_transmit(now, flush_partial).map(message)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Mux::poll_timeout(self)
    }

    fn poll_wake(&mut self) -> Option<Wake> {
        Mux::poll_wake(self)
    }

    fn poll_event(&mut self) -> Option<WsEvent> {
        Mux::poll_event(self).map(WsEvent::from)
    }

    fn input_allowance(&self) -> usize {
        if self.wants_input() {
            usize::MAX
        } else {
            0
        }
    }

    fn is_done(&self) -> bool {
        self.terminal().is_some()
    }

    fn has_output(&self) -> bool {
        self.has_transmit()
    }

    fn has_held_output(&self) -> bool {
        self.has_corked()
    }

    fn abandon(&mut self, now: Instant) {
        // Nobody can use the connection any more: close it normally.
        let _ = self.close(now, CloseCode::NORMAL, "");
    }
}

/// A core transmit as a WebSocket message.
pub(crate) fn message(transmit: Transmit) -> Message {
    match transmit {
        Transmit::Binary(data) => Message::Binary(data),
        Transmit::Ping(payload) => Message::Ping(payload),
        Transmit::Close { code, reason } => close_message(code, reason),
    }
}
