//! Settings for [`WsIo`](crate::WsIo).

use std::time::Duration;

use crate::error::Error;

/// Settings for a [`WsIo`](crate::WsIo). Start from [`Default`] and change what you need:
///
/// ```
/// use std::time::Duration;
/// use ws_stream_mux::WsIoConfig;
///
/// let config = WsIoConfig::default()
///     .write_message_size(16 * 1024)
///     .close_timeout(Some(Duration::from_secs(2)));
/// assert_eq!(config.get_write_message_size(), 16 * 1024);
/// ```
///
/// Values are checked when the `WsIo` is built ([`WsIo::with_config`](crate::WsIo::with_config)),
/// which fails with [`Error::InvalidConfig`] for a zero size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsIoConfig {
    max_message_size: usize,
    write_message_size: usize,
    close_timeout: Option<Duration>,
    event_queue: usize,
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

    /// The largest binary message accepted from the peer, in bytes. A larger one closes the
    /// connection with 1009 (message too big) and fails reads with
    /// [`ProtoError::MessageTooBig`](crate::ProtoError::MessageTooBig).
    ///
    /// The WebSocket layer has its own limit (async-tungstenite's `WebSocketConfig`, 64 MiB by
    /// default), checked before this one while the message is still arriving: set that one when
    /// you build the `WebSocketStream` if you lower this far below it and want to bound memory
    /// during reception too.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// How many written bytes are coalesced into one binary message. Writes fill a buffer of this
    /// size, which is sent as one message when it is full or on `flush`/`close`. Also the size of
    /// the largest message this side sends.
    pub fn write_message_size(mut self, bytes: usize) -> Self {
        self.write_message_size = bytes;
        self
    }

    /// How long the closing handshake may take, from the first Close frame sent or received until
    /// the connection is over. A client waits for the server to close TCP after the handshake (RFC
    /// 6455 §7.1.1); with a timeout it drops the connection itself when the server does not. The
    /// outcome is the same as if the peer had closed TCP then, and a
    /// [`WsEvent::Error`](crate::WsEvent::Error) with [`std::io::ErrorKind::TimedOut`] tells it
    /// happened. `None` waits for ever.
    pub fn close_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// How many events may wait for a slow observer (one on a bounded pharos channel) before the
    /// oldest are dropped. Observers never slow down the connection.
    pub fn event_queue(mut self, events: usize) -> Self {
        self.event_queue = events;
        self
    }

    /// See [`max_message_size`](Self::max_message_size).
    pub fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// See [`write_message_size`](Self::write_message_size).
    pub fn get_write_message_size(&self) -> usize {
        self.write_message_size
    }

    /// See [`close_timeout`](Self::close_timeout).
    pub fn get_close_timeout(&self) -> Option<Duration> {
        self.close_timeout
    }

    /// See [`event_queue`](Self::event_queue).
    pub fn get_event_queue(&self) -> usize {
        self.event_queue
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
}

impl Default for WsIoConfig {
    fn default() -> Self {
        Self {
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            write_message_size: Self::DEFAULT_WRITE_MESSAGE_SIZE,
            close_timeout: Some(Self::DEFAULT_CLOSE_TIMEOUT),
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
