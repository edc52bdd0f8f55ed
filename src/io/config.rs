//! Settings for [`WsIo`](crate::WsIo).

use std::time::Duration;

use crate::{error::Error, proto::LifecycleConfig};

/// Settings for a [`WsIo`](crate::WsIo), in the same style as [`Config`](crate::Config): public
/// fields, a setter of the same name for each, checked when the `WsIo` is built
/// ([`WsIo::with_config`](crate::WsIo::with_config)), which fails with [`Error::InvalidConfig`]
/// naming the field.
///
/// ```
/// use std::time::Duration;
/// use ws_stream_mux::WsIoConfig;
///
/// let config = WsIoConfig::default()
///     .write_message_size(16 * 1024)
///     .keep_alive_interval(Some(Duration::from_secs(20)))
///     .close_timeout(Some(Duration::from_secs(2)));
/// assert_eq!(config.write_message_size, 16 * 1024);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WsIoConfig {
    /// The largest message accepted from the peer, in bytes. A larger one closes the connection
    /// with 1009 (message too big) and fails reads with
    /// [`ProtoError::MessageTooBig`](crate::ProtoError::MessageTooBig). Default 16 MiB.
    ///
    /// The socket's own limit (async-tungstenite's `WebSocketConfig::max_message_size`, 64 MiB by
    /// default) is checked first, while a fragmented message is still arriving: build the socket
    /// with [`websocket_config`](crate::io_websocket_config) to make that one this.
    pub max_message_size: usize,
    /// How many written bytes are coalesced into one binary message: writes fill a buffer of this
    /// size, which goes out as one message when it is full, on `flush` or `close`, or when a read
    /// waits. Also the largest message this side sends. Capped by the socket's
    /// `max_write_buffer_size`. Default 64 KiB.
    pub write_message_size: usize,
    /// How long closing may take, from the moment it starts until the connection is over. After
    /// that it is dropped and `close` reports [`Error::TimedOut`]. `None` waits for ever.
    /// Default 10 s.
    pub close_timeout: Option<Duration>,
    /// Send a Ping when nothing has been heard from the peer for this long. Off by default. Pings
    /// go out while the `WsIo` is read or written.
    pub keep_alive_interval: Option<Duration>,
    /// Close with 1001 when nothing has been heard from the peer for this long (dead browsers are
    /// noticed). Off by default.
    pub idle_timeout: Option<Duration>,
    /// How long the peer may leave our pongs unread while it keeps sending pings, before we close
    /// with 1008. Default 30 s.
    pub reply_timeout: Option<Duration>,
    /// Read text messages as bytes (their UTF-8), as if they were binary. Off by default: a text
    /// message closes the connection with 1003. Turn it on for browsers that `send("text")`.
    pub text_as_bytes: bool,
    /// How many events may wait for a slow observer before the oldest are dropped. Default 1024.
    pub event_queue: usize,
}

impl WsIoConfig {
    /// Default for [`max_message_size`](Self::max_message_size): 16 MiB.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
    /// Default for [`write_message_size`](Self::write_message_size): 64 KiB.
    pub const DEFAULT_WRITE_MESSAGE_SIZE: usize = 64 * 1024;
    /// Default for [`close_timeout`](Self::close_timeout): 10 seconds.
    pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default for [`event_queue`](Self::event_queue): 1024 events.
    pub const DEFAULT_EVENT_QUEUE: usize = 1024;

    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`write_message_size`](Self::write_message_size).
    pub fn write_message_size(mut self, bytes: usize) -> Self {
        self.write_message_size = bytes;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    pub fn close_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`keep_alive_interval`](Self::keep_alive_interval).
    pub fn keep_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.keep_alive_interval = interval;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`reply_timeout`](Self::reply_timeout).
    pub fn reply_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.reply_timeout = timeout;
        self
    }

    /// Sets [`text_as_bytes`](Self::text_as_bytes).
    pub fn text_as_bytes(mut self, on: bool) -> Self {
        self.text_as_bytes = on;
        self
    }

    /// Sets [`event_queue`](Self::event_queue).
    pub fn event_queue(mut self, events: usize) -> Self {
        self.event_queue = events;
        self
    }

    /// Checks every value is in its range.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first value that is zero.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_message_size == 0 {
            return Err(Error::InvalidConfig("max_message_size must be at least 1"));
        }
        if self.write_message_size == 0 {
            return Err(Error::InvalidConfig(
                "write_message_size must be at least 1",
            ));
        }
        if self.event_queue == 0 {
            return Err(Error::InvalidConfig("event_queue must be at least 1"));
        }
        Ok(())
    }

    pub(crate) fn lifecycle(&self) -> LifecycleConfig {
        LifecycleConfig {
            keep_alive_interval: self.keep_alive_interval,
            idle_timeout: self.idle_timeout,
            close_timeout: self.close_timeout,
            reply_timeout: self.reply_timeout,
            accept_text: false,
        }
    }
}

impl Default for WsIoConfig {
    fn default() -> Self {
        Self {
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            write_message_size: Self::DEFAULT_WRITE_MESSAGE_SIZE,
            close_timeout: Some(Self::DEFAULT_CLOSE_TIMEOUT),
            keep_alive_interval: None,
            idle_timeout: None,
            reply_timeout: Some(Duration::from_secs(30)),
            text_as_bytes: false,
            event_queue: Self::DEFAULT_EVENT_QUEUE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(WsIoConfig::default().validate().is_ok());
    }

    #[test]
    fn zero_sizes_are_rejected() {
        for (config, what) in [
            (
                WsIoConfig::default().max_message_size(0),
                "max_message_size",
            ),
            (
                WsIoConfig::default().write_message_size(0),
                "write_message_size",
            ),
            (WsIoConfig::default().event_queue(0), "event_queue"),
        ] {
            match config.validate() {
                Err(Error::InvalidConfig(msg)) => assert!(msg.starts_with(what), "{msg}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}
