//! The async-tungstenite `WebSocketConfig` that matches our limits, for sockets we build (the
//! handshake and connect helpers) and for users who build their own.
//!
//! tungstenite reassembles a fragmented message before we see it, up to its own
//! `max_message_size` (64 MiB by default), and queues pongs without bound while the socket does not
//! take them unless `max_write_buffer_size` is set. A socket built with these settings refuses a
//! message over our limit while it is still arriving (1009), and bounds its write buffer (we wait
//! for room instead of failing).

use async_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::{io::WsIoConfig, proto::Config};

/// tungstenite's default write buffer: writes are batched up to this before a syscall.
const WRITE_BUFFER: usize = 128 * 1024;

fn bounded(max_message: usize, max_outgoing: usize) -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(max_message);
    config.max_frame_size = Some(max_message);
    config.write_buffer_size = WRITE_BUFFER;
    // Room for the batch we hand over and one largest message on top; beyond it, writes wait.
    config.max_write_buffer_size = WRITE_BUFFER + 2 * max_outgoing + 1024;
    config
}

/// The WebSocket configuration for a multiplexed [`Connection`](crate::Connection) with `config`:
/// messages (and frames) no larger than [`Config::effective_max_message_size`] — or a QMux record
/// (16,382 bytes) if that is larger, since the protocol is not known before the handshake — and a
/// bounded write buffer. Pass it to async-tungstenite when you build the socket yourself
/// (`client_async_with_config`, `accept_async_with_config`); the crate's helpers do.
///
/// ```
/// use ws_stream_mux::{websocket_config, Config};
///
/// let ws_config = websocket_config(&Config::default());
/// assert_eq!(ws_config.max_message_size, Some(1024 * 1024 + 10));
/// ```
pub fn websocket_config(config: &Config) -> WebSocketConfig {
    let largest_sent = (config.max_data_per_message + crate::proto::wire::MAX_HEADER_LEN)
        .max(crate::proto::qmux::MIN_RECORD_SIZE as usize);
    let qmux = crate::Protocol::Qmux(crate::QmuxVersion::V02);
    bounded(config.max_message_size_for(qmux), largest_sent)
}

/// The WebSocket configuration for a [`WsIo`](crate::WsIo) with `config` (see
/// [`websocket_config`]).
pub fn io_websocket_config(config: &WsIoConfig) -> WebSocketConfig {
    bounded(config.max_message_size, config.write_message_size)
}

/// What the handshake and connect helpers build a socket with when they are not told what it is
/// for: messages and frames up to [`WsIoConfig::DEFAULT_MAX_MESSAGE_SIZE`] (16 MiB, refused while
/// still arriving), tungstenite's defaults otherwise. The write buffer stays unbounded there: the
/// engine never hands tungstenite more than one batch while the socket does not take it, and it
/// stops reading while pongs pile up, so the buffer is bounded by us; a bound here would refuse
/// large messages a `MessageSocket` user may legitimately send.
pub(crate) fn default_websocket_config() -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(WsIoConfig::DEFAULT_MAX_MESSAGE_SIZE);
    config.max_frame_size = Some(WsIoConfig::DEFAULT_MAX_MESSAGE_SIZE);
    config
}
