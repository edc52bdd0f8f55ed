//! The IO layer that drives a sans-IO core over an async-tungstenite WebSocket — one engine for
//! all three adapters.
//!
//! - [`transport`]: the socket, seen as inputs (messages, control frames, its end) and outputs;
//!   it honours the socket's write limits by waiting for room instead of failing.
//! - [`pump`]: one pass of the engine: what the core wants sent goes out, what arrived goes in,
//!   deadlines are acted on. `WsIo` pumps on its own (it has one owner); the shared handles pump
//!   through [`shared`].
//! - [`shared`]: the core behind a lock for handles in many tasks, and who drives the socket: a
//!   spawned driver (`run()`), or whichever handle waits. A socket wake-up reaches the driver
//!   only; handles are woken by the driver when the core names them.
//! - [`events`]: observers' queues, bounded, with the connection's end always delivered.
//!
//! Nothing here decides what the protocol does: that is the core's (`crate::proto`).

pub(crate) mod events;
pub(crate) mod pump;
pub(crate) mod shared;
pub(crate) mod span;
pub(crate) mod timer;
pub(crate) mod transport;
pub(crate) mod wakers;

use std::time::Instant;

use async_tungstenite::tungstenite::{protocol::CloseFrame, Message};
use bytes::Bytes;

use crate::{
    event::WsEvent,
    proto::{
        lifecycle::{ping_payload, LifecycleOutput},
        CloseCode, ProtoError, Wake,
    },
};

/// A Close frame as a WebSocket message.
pub(crate) fn close_message(code: CloseCode, reason: String) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.0.into(),
        reason: reason.into(),
    }))
}

/// What the lifecycle wants sent, as a WebSocket message.
pub(crate) fn lifecycle_message(output: LifecycleOutput) -> Message {
    match output {
        LifecycleOutput::Ping(number) => Message::Ping(ping_payload(number)),
        LifecycleOutput::Close { code, reason } => close_message(code, reason),
    }
}

/// What the socket produced.
#[derive(Debug)]
pub(crate) enum Input {
    /// A binary message.
    Binary(Bytes),
    /// A text message (UTF-8 checked by tungstenite).
    Text(async_tungstenite::tungstenite::Utf8Bytes),
    /// A Ping (tungstenite queues the pong).
    Ping(Bytes),
    /// A Pong.
    Pong(Bytes),
    /// The peer's Close frame (`None` without a code).
    Close(Option<(CloseCode, String)>),
    /// The WebSocket layer found the peer breaking the protocol.
    Violation(ProtoError),
    /// The socket ended: EOF (empty) or an error.
    Ended(String),
}

/// A sans-IO core the engine can drive: the multiplexer, or the lifecycle of a byte stream or a
/// message socket. Every method is quick and never touches the socket.
pub(crate) trait Session {
    /// Something from the socket.
    fn handle_input(&mut self, now: Instant, input: Input);
    /// Everything handed to the socket was written out.
    fn handle_flushed(&mut self, now: Instant);
    /// A deadline passed.
    fn handle_timeout(&mut self, now: Instant);
    /// The next message to send, if any. `flush_partial`: a task waits on the connection, so
    /// output held back to coalesce small writes goes now.
    fn poll_output(&mut self, now: Instant, flush_partial: bool) -> Option<Message>;
    /// The next deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next handle to wake.
    fn poll_wake(&mut self) -> Option<Wake>;
    /// The next event for observers.
    fn poll_event(&mut self) -> Option<WsEvent>;
    /// How many messages may be read from the socket now (0: do not read). A reader that does not
    /// read makes this 0, so that what arrives waits in the kernel, not in our memory.
    fn input_allowance(&self) -> usize;
    /// Whether the connection is over: the socket can go.
    fn is_done(&self) -> bool;
    /// Whether something waits to be sent (the engine then sends it without waiting for the next
    /// socket wake-up).
    fn has_output(&self) -> bool;
    /// Whether output is held back to coalesce small writes: it leaves when a task waits.
    fn has_held_output(&self) -> bool {
        false
    }
    /// Every handle is gone: close as well as can be done without anyone waiting for it.
    fn abandon(&mut self, now: Instant);
}
