//! Settings of the message-level adapter.

use std::time::Duration;

/// Settings for a [`MessageSocket`](super::MessageSocket).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MessageConfig {
    /// How long [`ping`](super::MessageSocket::ping) waits for its Pong. Default 30 s.
    pub ping_timeout: Duration,
    /// How long [`close`](super::MessageSocket::close) may take to send the Close frame. Default
    /// 10 s.
    pub close_timeout: Duration,
    /// How many data messages a [`ping`](super::MessageSocket::ping) keeps for
    /// [`read`](super::MessageSocket::read) while it waits for its Pong with nobody reading. When
    /// that many are waiting the ping stops reading (the peer is slowed down by TCP) until a
    /// `read` takes one. Each message is at most the WebSocket's `max_message_size`. Default 64.
    pub max_buffered: usize,
}

impl Default for MessageConfig {
    fn default() -> Self {
        Self {
            ping_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(10),
            max_buffered: 64,
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

    /// Sets [`max_buffered`](Self::max_buffered) (at least 1).
    pub fn max_buffered(mut self, messages: usize) -> Self {
        self.max_buffered = messages.max(1);
        self
    }
}
