//! Byte streams over WebSockets.
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
