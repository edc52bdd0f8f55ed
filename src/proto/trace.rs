//! Debug events at the core's decisions, with the `tracing` feature; nothing without it.
//!
//! `debug!(field = value, "message")` takes `tracing::debug!`'s syntax. The arguments are not
//! evaluated when the feature is off, so call sites may name values freely.

/// A `tracing::debug!` event when the `tracing` feature is on.
macro_rules! debug {
    ($($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        {
            ::tracing::debug!($($arg)*);
        }
    };
}

pub(crate) use debug;
