//! The harnesses of the cargo-fuzz targets, as a library: each `fuzz_targets/NAME.rs` is a
//! `fuzz_target!` around one `run` here, so that `cargo test` in this directory (stable Rust, no
//! libFuzzer) runs the seed corpus through the same code and checks the corpus is up to date.
//!
//! - [`wire_decode`]: the @matrixai/ws message codec on arbitrary bytes;
//! - [`mux_core`]: the sans-IO core (`proto::Mux`) under arbitrary user actions and peer input;
//! - [`transport`]: the adapters over a WebSocket whose peer is the fuzz input;
//! - [`qmux_decode`]: the QMux codec (records, frames, transport parameters) on arbitrary bytes;
//! - [`qmux_core`]: the sans-IO core speaking QMux, under arbitrary user actions and peer records;
//! - [`input`]: the byte format of the structured inputs, readable and writable;
//! - [`seeds`]: the seed corpora of `corpus/TARGET/`.
//!
//! The fourth target, `request_head`, is small enough to live in its own file.

pub mod input;
pub mod mux_core;
pub mod qmux_core;
pub mod qmux_decode;
pub mod seeds;
pub mod transport;
pub mod wire_decode;
