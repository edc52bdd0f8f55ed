//! Byte streams over WebSockets.
//!
//! [`WsIo`] turns a whole async-tungstenite `WebSocketStream` into one `AsyncRead` + `AsyncWrite`
//! (binary messages in, bytes out; writes coalesced into messages), for any WebSocket peer. With
//! the `tokio` feature it also implements tokio's I/O traits.
//! With the `tls` feature, the `tls` module connects and accepts `wss://` WebSockets with
//! rustls, as peers such as the TypeScript `@matrixai/ws` require.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod code;
mod config;
mod conn;
mod conn_lock;
mod error;
mod event;
mod io;
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
pub use proto::{Half, ProtoError, Side, StreamId};
pub use stream::WsStream;

/// The async-tungstenite version this crate is built on, re-exported so that your `WebSocketStream`
/// type is the same as ours.
pub use async_tungstenite;
