//! The sans-IO core speaking QMux, driven by arbitrary user actions and peer records: see
//! `ws_stream_mux_fuzz::qmux_core`.
//!
//! Run with `cargo +nightly fuzz run qmux_core` from the crate root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_stream_mux_fuzz::qmux_core::{self, QmuxInput};

fuzz_target!(|input: QmuxInput| qmux_core::run(&input));
