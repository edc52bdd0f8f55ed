//! Settings of the message-level adapter.

use std::time::Duration;

use crate::{error::Error, proto::LifecycleConfig};

/// Settings for a [`MessageSocket`](super::MessageSocket), in the same style as
/// [`Config`](crate::Config): public fields, a setter of the same name for each, checked when the
/// socket is built ([`MessageConfig::validate`]).
///
/// ```
/// use std::time::Duration;
/// use ws_stream_mux::MessageConfig;
///
/// let config = MessageConfig::default().ping_timeout(Duration::from_secs(5)).max_buffered(16);
/// assert_eq!(config.max_buffered, 16);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageConfig {
    /// How long [`ping`](super::MessageSocket::ping) waits for its Pong. Default 30 s.
    pub ping_timeout: Duration,
    /// How long closing may take, from [`close`](super::MessageSocket::close) (or the peer's
    /// Close frame, or a violation) until the connection is over. Default 10 s.
    pub close_timeout: Duration,
    /// How many data messages wait for [`read`](super::MessageSocket::read) while nobody reads
    /// (a ping reads by itself). When that many wait, the socket is not read (the peer is slowed
    /// down by TCP) until a `read` takes one. Each message is at most the WebSocket's
    /// `max_message_size`. Default 64.
    pub max_buffered: usize,
    /// Send a Ping when nothing has been heard from the peer for this long. Off by default.
    pub keep_alive_interval: Option<Duration>,
    /// Close with 1001 when nothing has been heard from the peer for this long. Off by default.
    pub idle_timeout: Option<Duration>,
    /// How long the peer may leave our pongs unread while it keeps sending pings, before we close
    /// with 1008. Default 30 s.
    pub reply_timeout: Option<Duration>,
    /// How many events may wait for a slow observer before the oldest are dropped. Default 1024.
    pub event_queue: usize,
}

impl Default for MessageConfig {
    fn default() -> Self {
        Self {
            ping_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(10),
            max_buffered: 64,
            keep_alive_interval: None,
            idle_timeout: None,
            reply_timeout: Some(Duration::from_secs(30)),
            event_queue: 1024,
        }
    }
}

impl MessageConfig {
    /// Sets [`ping_timeout`](Self::ping_timeout).
    pub fn ping_timeout(mut self, timeout: Duration) -> Self {
        self.ping_timeout = timeout;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`max_buffered`](Self::max_buffered).
    pub fn max_buffered(mut self, messages: usize) -> Self {
        self.max_buffered = messages;
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
        if self.max_buffered == 0 {
            return Err(Error::InvalidConfig("max_buffered must be at least 1"));
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
            close_timeout: Some(self.close_timeout),
            reply_timeout: self.reply_timeout,
            accept_text: true,
        }
    }
}
