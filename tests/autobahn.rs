//! Conformance with the Autobahn|Testsuite (cases 1.* to 10.*; 12.* and 13.* are compression,
//! which we do not offer).
//!
//! - `server_passes_fuzzingclient`: `wstest -m fuzzingclient` connects to an echo server built on
//!   `handshake::accept` and `MessageSocket`.
//! - `client_passes_fuzzingserver`: `wstest -m fuzzingserver` runs the cases against an echo
//!   client built on `connect::Connector` and `MessageSocket`.
//!
//! `wstest` exits 0 even when cases fail, so each test reads the suite's `index.json` and fails on
//! any FAILED verdict. The suite is installed by `.ci/setup/40-autobahn.sh`. Without it the tests
//! say so loudly and pass, except under CI (`CI=true`), where they fail.

#[path = "autobahn/support.rs"]
mod support;

use support::{echo_client, echo_server, free_port, wstest, Verdicts, Wstest, CASES};

#[test]
fn server_passes_fuzzingclient() {
    let Some(wstest) = wstest() else { return };
    let dir = support::fresh_dir("autobahn-fuzzingclient");
    let port = async_std::task::block_on(echo_server());
    let spec = serde_json::json!({
        "outdir": dir.join("reports").to_string_lossy(),
        "servers": [{ "agent": "ws_stream_mux", "url": format!("ws://127.0.0.1:{port}") }],
        "cases": CASES,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    });
    let started = std::time::Instant::now();
    let run = Wstest::start(&wstest, &dir, "fuzzingclient", &spec);
    run.wait();
    eprintln!(
        "autobahn fuzzingclient (our server) took {:?}",
        started.elapsed()
    );
    Verdicts::read(&dir.join("reports/index.json")).assert_no_failures("server");
}

#[test]
fn client_passes_fuzzingserver() {
    let Some(wstest) = wstest() else { return };
    let dir = support::fresh_dir("autobahn-fuzzingserver");
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}");
    let spec = serde_json::json!({
        "url": url,
        "outdir": dir.join("reports").to_string_lossy(),
        "cases": CASES,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    });
    let started = std::time::Instant::now();
    let run = Wstest::start(&wstest, &dir, "fuzzingserver", &spec);
    async_std::task::block_on(echo_client(&url, port));
    eprintln!(
        "autobahn fuzzingserver (our client) took {:?}",
        started.elapsed()
    );
    drop(run); // stops wstest
    Verdicts::read(&dir.join("reports/index.json")).assert_no_failures("client");
}

#[test]
fn a_failed_verdict_fails_the_check() {
    let dir = support::fresh_dir("autobahn-verdicts");
    let index = dir.join("index.json");
    let mut cases = serde_json::Map::new();
    for i in 0..300 {
        let verdict = if i == 7 { "FAILED" } else { "OK" };
        cases.insert(
            format!("1.1.{i}"),
            serde_json::json!({ "behavior": verdict, "behaviorClose": "OK" }),
        );
    }
    std::fs::write(&index, serde_json::json!({ "agent": cases }).to_string()).unwrap();
    let verdicts = support::Verdicts::read(&index);
    let outcome = std::panic::catch_unwind(|| verdicts.assert_no_failures("test"));
    assert!(outcome.is_err(), "a FAILED case must fail the test");
}
