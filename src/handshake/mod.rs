//! The server side of the opening handshake, with real HTTP answers for bad requests.
//!
//! [`accept`] reads the upgrade request itself (with [`httparse`], bounded in size and time),
//! checks it against RFC 6455 §4.2.1 and an [`AcceptConfig`], and answers:
//!
//! | request | answer |
//! |---|---|
//! | not GET, HTTP/1.0, no `Host`, no `Upgrade: websocket`, no `upgrade` in `Connection`, a `Sec-WebSocket-Key` that is not base64 of 16 bytes, a head too large, bytes after the head | `400 Bad Request` |
//! | `Sec-WebSocket-Version` other than `13` | `426 Upgrade Required` with `Sec-WebSocket-Version: 13` |
//! | an `Origin` the [`OriginPolicy`] refuses | `403 Forbidden` |
//! | a path the [`PathPolicy`] does not serve | `404 Not Found` |
//! | anything else | `101 Switching Protocols`, with the selected subprotocol |
//!
//! The result is an ordinary async-tungstenite [`WebSocketStream`](async_tungstenite::WebSocketStream),
//! so it goes straight into [`WsIo::new`](crate::WsIo::new),
//! [`Connection::server`](crate::Connection::server) or [`MessageSocket::new`](crate::MessageSocket::new).
//! [`check_request`] is the same check without I/O.

mod accept;
mod config;
mod error;
mod policy;
mod request;
mod response;

pub use accept::accept;
pub use config::AcceptConfig;
pub use error::{HandshakeError, Rejection};
pub use policy::{OriginCheck, OriginPolicy, PathCheck, PathPolicy};
pub use request::{check_request, UpgradeRequest};
