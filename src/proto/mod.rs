//! The sans-IO protocol core: no sockets, no wakers, no clock, no async.
//!
//! It owns its types (ids, codes, errors, events, configuration) and imports nothing from the rest
//! of the crate; the IO layer drives it and converts on its side, as quinn drives quinn-proto.
//!
//! ```text
//!        the IO layer (engine)                       the core (this module)
//!   socket ── binary, ping, pong, close ──► Mux::handle_* ─┬─► Lifecycle (close handshake, timers)
//!                                                          ├─► Wire / QMux codec ─► Streams
//!   socket ◄── Transmit ◄──────────────── Mux::poll_transmit
//!   handles ◄─ Wake (which task) ◄──────── Mux::poll_wake
//!   observers ◄ Event ◄─────────────────── Mux::poll_event
//!   timer ◄─── Instant ◄────────────────── Mux::poll_timeout ──► Mux::handle_timeout
//! ```
//!
//! - [`Mux`]: one multiplexed connection (the `Connection` adapter drives it);
//! - [`Lifecycle`]: the WebSocket connection's life, on its own (what `WsIo` and `MessageSocket`
//!   drive, and part of every `Mux`);
//! - [`wire`]: the @matrixai/ws protocol's messages; [`qmux`]: QMux's frames, parameters and
//!   rules; `streams`: what both protocols share; `protocol`: the seam between them.
//!
//! Unit tests, the model-based tests and the fuzz targets drive it directly.

pub mod code;
pub mod config;
pub mod error;
pub mod event;
pub mod id;
pub mod lifecycle;
pub mod mux;
mod protocol;
pub mod qmux;
mod streams;
mod trace;
pub mod varint;
pub mod wire;

#[cfg(test)]
mod model_tests;

pub use code::{CloseCode, ErrorCode, MAX_CLOSE_REASON_LEN};
pub use config::Config;
pub use error::{ApiError, ConnectionError, ProtoError, StreamError};
pub use event::{Event, Wake};
pub use id::{Dir, Half, Initiator, Side, StreamId};
pub use lifecycle::{CloseOutcome, CloseRefused, Lifecycle, LifecycleConfig};
pub use mux::{DatagramError, Mux, OpenError, Stats, Transmit};
pub use protocol::Protocol;
pub use qmux::{QmuxProtocols, QmuxVersion};
pub use streams::{ReadOutcome, StreamKey};
