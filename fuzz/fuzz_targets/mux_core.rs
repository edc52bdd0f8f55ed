//! The sans-IO core driven by arbitrary user actions and peer input: see
//! `ws_stream_mux_fuzz::mux_core`.
//!
//! Run with `cargo +nightly fuzz run mux_core` from the crate root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_stream_mux_fuzz::mux_core::{self, MuxInput};

fuzz_target!(|input: MuxInput| mux_core::run(&input));
