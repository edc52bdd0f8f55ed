//! The @matrixai/ws message decoder on arbitrary bytes: see `ws_stream_mux_fuzz::wire_decode`.
//!
//! Run with `cargo +nightly fuzz run wire_decode` from the crate root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ws_stream_mux_fuzz::wire_decode::run(data));
