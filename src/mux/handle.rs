//! What every handle of a multiplexed connection holds: the shared engine, counted, so that the
//! connection knows when the application has let go of it entirely.

use std::{net::SocketAddr, sync::Arc, sync::OnceLock};

use crate::{engine::shared::Shared, proto::Mux};

/// The engine and what the handles share besides the core.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) engine: Shared<Mux>,
    pub(crate) peer_addr: OnceLock<SocketAddr>,
}

/// A counted reference to a connection: `Connection` clones and stream halves each hold one.
/// When the last is dropped, the connection is closed (see `Shared::remove_handle`).
#[derive(Debug)]
pub(crate) struct Handle(pub(crate) Arc<Inner>);

impl Handle {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        inner.engine.add_handle();
        Self(inner)
    }

    pub(crate) fn engine(&self) -> &Shared<Mux> {
        &self.0.engine
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        Handle::new(Arc::clone(&self.0))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.engine.remove_handle();
    }
}
