//! Independent implementations of both protocols: @matrixai/ws in Node, qmux in process,
//! @moq/qmux in Node and Chromium, and the Autobahn|Testsuite.
//!
//! One test binary for many files: each file below is a module, so the library's generic code is
//! compiled and linked once for all of them rather than once per file (the files keep their
//! names; `cargo test --test suite_interop <file>::` runs one of them).

mod interop_moq_support;
mod interop_support;

mod autobahn;
mod interop_matrixai;
mod interop_moq;
mod interop_qmux;
