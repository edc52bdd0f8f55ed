//! Multiplexed connections (`Connection`, `WsStream`, `MessageSocket`): against ourselves, raw
//! peers, faults and load.
//!
//! One test binary for many files: each file below is a module, so the library's generic code is
//! compiled and linked once for all of them rather than once per file (the files keep their
//! names; `cargo test --test suite_mux <file>::` runs one of them).

mod common;
mod faults_support;

mod connect;
mod example_jsonrpc;
mod example_tunnel;
mod fairness;
mod faults;
mod handshake;
mod load;
mod message_adapter;
mod mux_abrupt;
mod mux_api;
mod mux_coalesce;
mod mux_driving;
mod mux_echo;
mod mux_keepalive;
mod mux_raw_peer;
mod mux_runtimes;
mod mux_semantics;
mod qmux_semantics;
mod tls_accept;
mod tokio_helpers;
mod truthful;
