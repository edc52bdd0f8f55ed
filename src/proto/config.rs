//! Limits and sizes of a multiplexed connection.

use std::time::Duration;

use super::{
    code::ErrorCode, error::ApiError, lifecycle::LifecycleConfig, protocol::Protocol,
    qmux::MIN_RECORD_SIZE, wire::MAX_HEADER_LEN,
};

/// Configuration of a multiplexed connection: every limit on what the peer can make us hold, and
/// how the connection behaves over time. Start from [`Default`] and change what you need; each
/// setter has the name of its field. Values are checked when the connection is built
/// ([`Config::validate`]); invalid ones are an [`ApiError::InvalidConfig`] naming the field.
///
/// ```
/// use std::time::Duration;
/// use ws_stream_mux::Config;
///
/// let config = Config::default()
///     .window(64 * 1024)
///     .max_streams(100)
///     .keep_alive_interval(Some(Duration::from_secs(15)));
/// assert!(config.validate().is_ok());
/// assert_eq!(config.window, 64 * 1024);
/// assert_eq!(config.effective_max_message_size(), 64 * 1024 + 10);
/// ```
///
/// What a hostile peer can make one connection hold, whatever it sends and whether or not it
/// reads, is in the crate documentation ("Limits").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// How many bytes the peer may send on one stream beyond what the application has read (the
    /// stream's receive window), at most. Default 1 MiB. Credit goes back in one grant once half
    /// the window has been read. With QMux it is every `initial_max_stream_data_*` we advertise;
    /// the connection window ([`receive_budget`](Self::receive_budget)) bounds all of them
    /// together.
    pub window: u32,

    /// The window a stream starts with (the @matrixai/ws protocol). It doubles, up to
    /// [`window`](Self::window), each time the peer has used all its credit and the receive
    /// budget has room — so a stream that carries bulk data reaches the full window after a few
    /// round trips, while an idle stream holds only this much. Default 64 KiB.
    pub initial_window: u32,

    /// How many bytes all streams together may hold granted and unread beyond their initial
    /// windows (the connection's receive window). Default 16 MiB. When it is spent, streams wait
    /// in turn for the credit that reads free. With QMux it is the connection window
    /// (`initial_max_data`).
    pub receive_budget: u64,

    /// The largest DATA payload we put in one message. Smaller values share the connection more
    /// fairly between streams (streams with data take turns, one message each); larger ones cost
    /// less per byte. Default 64 KiB. QMux records are never larger than the peer allows.
    pub max_data_per_message: usize,

    /// How many bytes one stream may have written and not yet handed to the socket. A write
    /// beyond it waits. Default 256 KiB.
    pub send_buffer: usize,

    /// Hold back a partly filled DATA message until it is full, the stream is flushed or closed,
    /// or a task waits on the connection (any read, accept, a spawned driver, …) — like
    /// `TCP_CORK`. Off by default: every write goes out at once, like `TCP_NODELAY`.
    pub coalesce_writes: bool,

    /// Bidirectional streams open at once, counted separately for those we open and those the
    /// peer opens. `open` waits for a free slot; a peer's stream over the limit is refused. With
    /// QMux it is our `initial_max_streams_bidi`, granted again (cumulative MAX_STREAMS) as the
    /// peer's streams end, and a peer that opens beyond it is a STREAM_LIMIT_ERROR; our own opens
    /// also wait for the peer's limit. Default 1024.
    pub max_streams: usize,

    /// Unidirectional streams (QMux only), counted like [`max_streams`](Self::max_streams): our
    /// `initial_max_streams_uni`. Default 100.
    pub max_uni_streams: usize,

    /// The largest WebSocket message accepted; a larger one closes the connection with 1009. `None`
    /// (the default) means the largest valid message: the window plus the header. With QMux a
    /// record over 16,382 bytes (the `max_record_size` we advertise) is a FRAME_ENCODING_ERROR
    /// whatever this says.
    pub max_message_size: Option<usize>,

    /// Ping when nothing has been heard from the peer for this long. Off (`None`) by default.
    /// With QMux the ping is a QX_PING record (a WebSocket Ping does not count as a sign of life
    /// for QMux peers), and one is also sent after a third of the negotiated idle timeout without
    /// sending anything, so that the peer's idle timer never fires on a live connection.
    pub keep_alive_interval: Option<Duration>,

    /// Close with 1001 ("idle timeout") when nothing has been heard from the peer for this long.
    /// Combine with `keep_alive_interval` so that a live peer's pongs count. Off by default. With
    /// QMux it is our `max_idle_timeout`; the one in force is the smaller of both sides' (a
    /// QMux peer usually advertises 30 s), and the close sends no QMux frame.
    pub idle_timeout: Option<Duration>,

    /// How long closing may take, counted from the moment it starts (our `close`, the peer's
    /// Close frame, a violation), data still to send included. Then the connection is dropped
    /// and `close` reports a timeout. Default 10 s; `None` waits for ever.
    pub close_timeout: Option<Duration>,

    /// How long the peer may leave our replies (pongs, credit, refusals) unread while it keeps
    /// sending. We stop reading meanwhile; after this long we close with 1008. Default 30 s.
    pub reply_timeout: Option<Duration>,

    /// Events kept for observers that do not keep up; beyond this the oldest are dropped and
    /// counted. Default 1024.
    pub event_queue: usize,

    /// The code a stream sends when it is dropped before its peer finished (stop) or while its
    /// thread panics (reset). Default 0; each stream can change its own.
    pub drop_code: ErrorCode,

    /// Datagrams (QMux) kept for the application before the oldest are dropped, and queued to be
    /// sent before the oldest are dropped. Each is at most one record (16,382 bytes), so each
    /// queue holds at most about 1 MiB with the default of 64.
    pub datagram_queue: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            window: 1 << 20,
            initial_window: 64 * 1024,
            receive_budget: 16 << 20,
            max_data_per_message: 64 * 1024,
            send_buffer: 256 * 1024,
            coalesce_writes: false,
            max_streams: 1024,
            max_uni_streams: 100,
            max_message_size: None,
            keep_alive_interval: None,
            idle_timeout: None,
            close_timeout: Some(Duration::from_secs(10)),
            reply_timeout: Some(Duration::from_secs(30)),
            event_queue: 1024,
            drop_code: ErrorCode::UNKNOWN,
            datagram_queue: 64,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.$name = value;
                self
            }
        )*
    };
}

impl Config {
    setters! {
        /// Sets [`window`](Self::window).
        window: u32;
        /// Sets [`initial_window`](Self::initial_window).
        initial_window: u32;
        /// Sets [`receive_budget`](Self::receive_budget).
        receive_budget: u64;
        /// Sets [`max_data_per_message`](Self::max_data_per_message).
        max_data_per_message: usize;
        /// Sets [`send_buffer`](Self::send_buffer).
        send_buffer: usize;
        /// Sets [`coalesce_writes`](Self::coalesce_writes).
        coalesce_writes: bool;
        /// Sets [`max_streams`](Self::max_streams).
        max_streams: usize;
        /// Sets [`max_uni_streams`](Self::max_uni_streams).
        max_uni_streams: usize;
        /// Sets [`max_message_size`](Self::max_message_size).
        max_message_size: Option<usize>;
        /// Sets [`keep_alive_interval`](Self::keep_alive_interval).
        keep_alive_interval: Option<Duration>;
        /// Sets [`idle_timeout`](Self::idle_timeout).
        idle_timeout: Option<Duration>;
        /// Sets [`close_timeout`](Self::close_timeout).
        close_timeout: Option<Duration>;
        /// Sets [`reply_timeout`](Self::reply_timeout).
        reply_timeout: Option<Duration>;
        /// Sets [`event_queue`](Self::event_queue).
        event_queue: usize;
        /// Sets [`drop_code`](Self::drop_code).
        drop_code: ErrorCode;
        /// Sets [`datagram_queue`](Self::datagram_queue).
        datagram_queue: usize;
    }

    /// The effective limit on incoming message size for the @matrixai/ws protocol.
    pub fn effective_max_message_size(&self) -> usize {
        self.max_message_size
            .unwrap_or(self.window as usize + MAX_HEADER_LEN)
    }

    /// The limit on incoming message size with `protocol`: for QMux never below the record size
    /// every QMux peer may send (16,382 bytes; a larger record is QMux's own error).
    pub fn max_message_size_for(&self, protocol: Protocol) -> usize {
        match protocol {
            Protocol::Wire => self.effective_max_message_size(),
            Protocol::Qmux(_) => self
                .effective_max_message_size()
                .max(MIN_RECORD_SIZE as usize),
        }
    }

    /// Checks every value is in its range.
    ///
    /// # Errors
    /// [`ApiError::InvalidConfig`] naming the first value out of range.
    pub fn validate(&self) -> Result<(), ApiError> {
        let checks: [(bool, &'static str); 10] = [
            (self.window > 0, "window must be at least 1"),
            (self.initial_window > 0, "initial_window must be at least 1"),
            (self.receive_budget > 0, "receive_budget must be at least 1"),
            (
                self.max_data_per_message > 0,
                "max_data_per_message must be at least 1",
            ),
            (self.send_buffer > 0, "send_buffer must be at least 1"),
            (self.max_streams > 0, "max_streams must be at least 1"),
            (self.event_queue > 0, "event_queue must be at least 1"),
            (self.datagram_queue > 0, "datagram_queue must be at least 1"),
            (
                self.max_message_size.is_none_or(|max| max > MAX_HEADER_LEN),
                "max_message_size must leave room for a header (more than 10 bytes)",
            ),
            (
                self.drop_code.validate().is_ok(),
                "drop_code must fit in a varint (at most 2^62-1)",
            ),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, what)) => Err(ApiError::InvalidConfig(what)),
            None => Ok(()),
        }
    }

    /// The connection lifecycle's settings.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zeros_are_named() {
        assert!(Config::default().validate().is_ok());
        for (config, field) in [
            (Config::default().window(0), "window"),
            (Config::default().send_buffer(0), "send_buffer"),
            (Config::default().max_streams(0), "max_streams"),
            (
                Config::default().max_message_size(Some(3)),
                "max_message_size",
            ),
            (Config::default().drop_code(ErrorCode(1 << 62)), "drop_code"),
        ] {
            match config.validate() {
                Err(ApiError::InvalidConfig(what)) => assert!(what.starts_with(field), "{what}"),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
