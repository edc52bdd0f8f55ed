//! Limits and sizes of a multiplexed [`Connection`](crate::Connection).

use std::{
    num::{NonZeroU32, NonZeroUsize},
    time::Duration,
};

use crate::proto::message::MAX_HEADER_LEN;

/// Configuration of a multiplexed connection. Every limit on memory the peer could otherwise make
/// us spend is here; the zero-free types make invalid values unrepresentable.
///
/// ```
/// use std::num::NonZeroU32;
/// use ws_stream_mux::Config;
///
/// let config = Config {
///     window: NonZeroU32::new(64 * 1024).unwrap(),
///     ..Config::default()
/// };
/// assert_eq!(config.max_message_size(), 64 * 1024 + 10);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// How many bytes the peer may send on one stream before we grant more (our receive window),
    /// i.e. the most a stream buffers for a reader that does not read. Default 1 MiB. Credit is
    /// granted back in one ACK once half the window has been read.
    pub window: NonZeroU32,

    /// The largest DATA payload we put in one message. Smaller values share the connection more
    /// fairly between streams (streams with data to send take turns, one message each); larger
    /// ones cost less per byte. Default 64 KiB.
    pub max_data_per_message: NonZeroUsize,

    /// How many bytes one stream may have queued for sending, written by the application but not
    /// yet handed to the socket. A write beyond it waits. Default 256 KiB.
    pub send_buffer: NonZeroUsize,

    /// Hold back a partly filled DATA message until it is full (`max_data_per_message`), the
    /// stream is flushed or closed, or a task waits on the connection (a read, a write waiting for
    /// credit, `accept`, ...) — like `TCP_CORK`. Many small writes then travel in few messages and
    /// syscalls. Off by default: every write goes out at once, like `TCP_NODELAY`. With it on, call
    /// `flush` when you write and then wait on something other than this connection.
    pub coalesce_writes: bool,

    /// Streams open at once, counted separately for the streams we open and those the peer opens.
    /// `open` waits for a free slot; a peer's stream over the limit is refused with ERROR on both
    /// halves and a [`WsEvent::StreamRefused`](crate::WsEvent::StreamRefused). Default 1024.
    pub max_streams: NonZeroUsize,

    /// The largest WebSocket message accepted; a larger one closes the connection with 1009.
    /// `None` (the default) means the largest valid DATA message: the window plus the header.
    pub max_message_size: Option<NonZeroUsize>,

    /// Send a WebSocket Ping when nothing has been heard from the peer for this long (a busy
    /// connection never pings). Off (`None`) by default, as in the peer library. Pings go out while
    /// something waits on the connection or [`Connection::run`](crate::Connection::run) drives it.
    pub keep_alive_interval: Option<Duration>,

    /// Close the connection with 1001 ("idle timeout") when nothing has been heard from the peer
    /// for this long; combine with `keep_alive_interval` so that a live peer's Pongs count. Off by
    /// default. Streams then fail with [`Error::ConnectionClosed`](crate::Error::ConnectionClosed)
    /// carrying 1001.
    pub idle_timeout: Option<Duration>,

    /// How long the closing handshake may take once a Close frame was sent or received (a client
    /// also waits for the server to close TCP). When it runs out the connection is dropped, as if
    /// the peer had closed TCP. Default 10 s; `None` waits for ever.
    pub close_timeout: Option<Duration>,

    /// Events kept for observers that do not keep up (see [`WsEvent`](crate::WsEvent)); beyond
    /// this the oldest are dropped. Default 1024.
    pub event_queue: NonZeroUsize,
}

impl Config {
    /// The effective limit on incoming message size.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
            .map(NonZeroUsize::get)
            .unwrap_or(self.window.get() as usize + MAX_HEADER_LEN)
    }
}

impl Default for Config {
    fn default() -> Self {
        const fn nz(n: usize) -> NonZeroUsize {
            match NonZeroUsize::new(n) {
                Some(n) => n,
                None => panic!("zero default"),
            }
        }
        Self {
            window: NonZeroU32::new(1 << 20).expect("non-zero"),
            max_data_per_message: nz(64 * 1024),
            send_buffer: nz(256 * 1024),
            coalesce_writes: false,
            max_streams: nz(1024),
            max_message_size: None,
            keep_alive_interval: None,
            idle_timeout: None,
            close_timeout: Some(Duration::from_secs(10)),
            event_queue: nz(1024),
        }
    }
}
