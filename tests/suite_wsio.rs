//! The whole connection as one byte stream (`WsIo`): against ourselves, codecs, independent peers
//! and a browser.
//!
//! One test binary for many files: each file below is a module, so the library's generic code is
//! compiled and linked once for all of them rather than once per file (the files keep their
//! names; `cargo test --test suite_wsio <file>::` runs one of them).

mod wsio_support;

mod wsio;
mod wsio_browser;
mod wsio_codec;
mod wsio_peers;
