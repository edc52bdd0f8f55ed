//! Whole messages instead of bytes: [`MessageSocket`].
//!
//! For applications that exchange Text and Binary messages rather than byte streams: `read` the
//! next message, `write` one, `ping` for a round-trip time, `close` with a code and reason.
//! Control frames, the closing handshake and the close codes for a misbehaving peer are handled
//! inside, by the same engine and lifecycle as the other adapters. This adapter passes the
//! Autobahn|Testsuite, cases 1 to 10, as client and as server.

mod config;
mod data;
mod session;
mod socket;

pub use config::MessageConfig;
pub use data::DataMessage;
pub use socket::MessageSocket;
