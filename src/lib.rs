//! Byte streams over WebSockets.
//!
//! Around the streams: [`handshake::accept`] answers bad upgrade requests with real HTTP errors
//! (400, 403, 404, 426) and yields an ordinary async-tungstenite `WebSocketStream`;
//! [`connect::Connector`] keeps one connection per host:port in CONNECTING (RFC 6455 §4.1); and
//! [`MessageSocket`] offers whole messages, ping and close for those who want messages, not bytes.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod code;
pub mod connect;
mod error;
mod event;
pub mod handshake;
mod messages;
pub mod proto;
mod transport;

pub use code::{CloseCode, ErrorCode, MAX_CLOSE_REASON_LEN};
pub use error::Error;
pub use event::WsEvent;
pub use messages::{DataMessage, MessageConfig, MessageSocket};
pub use proto::{Half, ProtoError, Side, StreamId};

/// The async-tungstenite version this crate is built on, re-exported so that your `WebSocketStream`
/// type is the same as ours.
pub use async_tungstenite;
