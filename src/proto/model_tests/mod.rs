//! The sans-IO core against a model: two `Mux`es joined by in-memory queues ([`world`]), driven
//! by random interleavings of what applications and networks do.
//!
//! - [`streams`]: opening, writing, reading, finishing, resetting, stopping and dropping streams;
//!   bytes arrive whole and in order, ends and codes arrive as sent, each with its event;
//! - [`close`]: the connection closed from either side, at once from both, or dropped whole: the
//!   closing handshake completes and every stream ends with the close;
//! - [`limits`]: at the stream limit `open` waits and the peer's streams are refused, as documented;
//! - [`bad_input`]: malformed messages, DATA beyond credit or after the FIN, messages for streams
//!   never opened, text and oversized messages: each ends what WIRE.md says, and only that.
//!
//! Whatever happens, nothing panics, and what an application sees is what the wire carried
//! (`World::check_truthful`).

mod bad_input;
mod close;
mod limits;
mod streams;
mod world;

use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

/// `cases` random cases per property. A failing case's seed is kept beside the test's source
/// (`close.rs` → `close.proptest-regressions`) and replayed first on every later run: commit
/// those files.
fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}
