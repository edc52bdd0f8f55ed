#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod code;
mod config;
mod conn;
mod conn_lock;
pub mod connect;
mod error;
mod event;
pub mod handshake;
mod io;
mod keepalive;
mod messages;
pub mod proto;
mod stream;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;
mod waiters;

pub use code::{CloseCode, ErrorCode, MAX_CLOSE_REASON_LEN};
pub use config::Config;
pub use conn::Connection;
pub use error::Error;
pub use event::WsEvent;
pub use io::{WsIo, WsIoConfig};
pub use messages::{DataMessage, MessageConfig, MessageSocket};
pub use proto::{Half, ProtoError, Side, StreamId};
pub use stream::WsStream;

/// The async-tungstenite version this crate is built on, re-exported so that your `WebSocketStream`
/// type is the same as ours.
pub use async_tungstenite;
