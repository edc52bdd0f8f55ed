//! The pieces of the side-by-side benchmark (`benches/compare.rs`).

pub mod active;
pub mod bulk;
pub mod measure;
pub mod net;
pub mod qmux_mux;
pub mod rtt;
pub mod runtime;
pub mod streams;
pub mod tokio_mux;
pub mod tunnel;
pub mod yamux_mux;

/// What a row of a table measures: a contender, or a contender with a parameter.
pub trait Named: Copy {
    fn label(self) -> String;
}

impl Named for bulk::Contender {
    fn label(self) -> String {
        self.name().to_owned()
    }
}
