#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod connect;
mod engine;
mod error;
mod event;
pub mod handshake;
mod io;
mod messages;
mod mux;
pub mod proto;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "tokio")]
pub mod tokio;
mod websocket;

pub use engine::events::EventStream;
pub use error::{Error, Timeout};
pub use event::WsEvent;
pub use io::{WsIo, WsIoConfig};
pub use messages::{DataMessage, MessageConfig, MessageSocket};
pub use mux::{Connection, RecvStream, SendStream, WsStream};
pub use proto::{
    CloseCode, Config, Dir, ErrorCode, Half, ProtoError, Protocol, QmuxProtocols, QmuxVersion,
    Side, Stats, StreamId, MAX_CLOSE_REASON_LEN,
};
pub use websocket::{io_websocket_config, websocket_config};

/// The async-tungstenite version this crate is built on, re-exported so that your `WebSocketStream`
/// type is the same as ours.
pub use async_tungstenite;
