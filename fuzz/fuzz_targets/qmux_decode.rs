//! The QMux codec (records, frames, transport parameters) on arbitrary bytes: see
//! `ws_stream_mux_fuzz::qmux_decode`.
//!
//! Run with `cargo +nightly fuzz run qmux_decode` from the crate root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ws_stream_mux_fuzz::qmux_decode::run(data));
