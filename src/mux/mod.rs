//! The multiplexed adapter: [`Connection`] and its streams, over the engine that drives the
//! sans-IO [`Mux`](crate::proto::Mux).

mod connection;
mod handle;
mod session;
mod stream;

pub use connection::Connection;
pub use stream::{RecvStream, SendStream, WsStream};
