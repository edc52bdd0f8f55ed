//! The adapters over a WebSocket whose peer is the fuzz input: see
//! `ws_stream_mux_fuzz::transport`.
//!
//! Run with `cargo +nightly fuzz run transport` from the crate root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_stream_mux_fuzz::transport::{self, TransportInput};

fuzz_target!(|input: TransportInput| transport::run(&input));
