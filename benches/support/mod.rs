//! The pieces of the side-by-side benchmark (`benches/compare.rs`).

pub mod bulk;
pub mod measure;
pub mod net;
pub mod rtt;
pub mod streams;
pub mod yamux_mux;
