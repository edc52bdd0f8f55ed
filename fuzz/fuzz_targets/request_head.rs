//! The upgrade request checker on arbitrary bytes: it must never panic, never accept a head larger
//! than the limit, and every verdict must be one of the documented answers.
//!
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run request_head` from the crate root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_stream_mux::handshake::{check_request, AcceptConfig, OriginPolicy, PathPolicy};

fuzz_target!(|data: &[u8]| {
    // The first byte picks a configuration, so policies and small limits get exercised too.
    let (choice, head) = data.split_first().unwrap_or((&0, &[]));
    let config = match choice % 3 {
        0 => AcceptConfig::default(),
        1 => AcceptConfig::default()
            .max_head_size(64)
            .paths(PathPolicy::only(["/ws"]))
            .origins(OriginPolicy::allow_list(["http://a"]))
            .protocols(["p"]),
        _ => AcceptConfig::default().max_head_size(0),
    };
    match check_request(head, &config) {
        Ok(None) => assert!(head.len() < config.max_head_size),
        Ok(Some(request)) => {
            assert!(head.len() <= config.max_head_size);
            // The empty line that ends the head; httparse also takes a bare LF for the line
            // before it, or for both.
            assert!(head.ends_with(b"\n\r\n") || head.ends_with(b"\n\n"));
            if let Some(protocol) = &request.protocol {
                assert!(config.protocols.contains(protocol));
            }
        }
        Err(rejection) => assert!([400, 403, 404, 426].contains(&rejection.status())),
    }
});
