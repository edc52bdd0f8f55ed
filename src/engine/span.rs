//! `tracing` spans for connections and streams with the `tracing` feature; a no-op stand-in
//! without it, so that the code that enters them reads the same either way.

#[cfg(feature = "tracing")]
pub(crate) use tracing::Span;

/// Without the `tracing` feature: a span that records nothing.
#[cfg(not(feature = "tracing"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct Span;

#[cfg(not(feature = "tracing"))]
impl Span {
    /// Entering it does nothing.
    pub(crate) fn enter(&self) -> Entered {
        Entered
    }
}

/// What entering a no-op span returns (`tracing::span::Entered` with the feature).
#[cfg(not(feature = "tracing"))]
#[derive(Debug)]
pub(crate) struct Entered;

/// A connection's span: its side and protocol.
pub(crate) fn connection(side: crate::proto::Side, protocol: crate::proto::Protocol) -> Span {
    #[cfg(feature = "tracing")]
    {
        tracing::debug_span!("ws_stream_mux::connection", ?side, ?protocol)
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (side, protocol);
        Span
    }
}

/// A stream's span, inside its connection's.
pub(crate) fn stream(parent: &Span, id: crate::proto::StreamId) -> Span {
    #[cfg(feature = "tracing")]
    {
        tracing::debug_span!(parent: parent, "ws_stream_mux::stream", id = id.0)
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (parent, id);
        Span
    }
}

/// A message socket's span.
pub(crate) fn message_socket() -> Span {
    #[cfg(feature = "tracing")]
    {
        tracing::debug_span!("ws_stream_mux::message_socket")
    }
    #[cfg(not(feature = "tracing"))]
    {
        Span
    }
}
