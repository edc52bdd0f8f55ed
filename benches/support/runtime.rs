//! The two runtimes the measurements run on, behind one `spawn`.

use std::future::Future;

use futures::{future::BoxFuture, FutureExt};

/// Where a measurement spawns its tasks. Call `spawn` from inside that runtime (tokio's needs its
/// context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    /// A tokio multi-threaded runtime.
    Tokio,
    /// async-std's global executor.
    AsyncStd,
}

impl Rt {
    /// Spawns `fut`; the returned future is its output (a panic in the task panics there).
    pub fn spawn<F>(self, fut: F) -> BoxFuture<'static, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Rt::Tokio => tokio::spawn(fut)
                .map(|joined| joined.expect("spawned task failed"))
                .boxed(),
            Rt::AsyncStd => async_std::task::spawn(fut).boxed(),
        }
    }
}
