//! The whole WebSocket connection as one byte stream: [`WsIo`] and its [`WsIoConfig`].

mod config;
mod session;
#[cfg(feature = "tokio")]
pub(crate) mod tokio_compat;
mod ws_io;

pub use config::WsIoConfig;
pub use ws_io::WsIo;
