//! The `jsonrpc_duplex` example's cases, asserted at both ends: JSON-RPC error objects in both
//! directions (layer 1), and each transport failure — cancel, timeout, bad frame, handler panic —
//! as the same reason at the end that caused it and at the end that observed it (layer 2).
//!
//! Real TCP on 127.0.0.1, one server per test; the server's view comes from its call reports.
//! Nothing waits on a clock except the timeout case itself; every wait has a safety limit that
//! fails loudly.
#![cfg(feature = "tokio")]

#[allow(dead_code)]
#[path = "../examples/jsonrpc_duplex.rs"]
mod jsonrpc_duplex;

use std::{future::Future, time::Duration};

use futures::{channel::mpsc::UnboundedReceiver, StreamExt};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use ws_stream_mux::{CloseCode, Error, ErrorCode};

use jsonrpc_duplex::rpc::{
    self, CallError, CallReport, Client, Failure, Outcome, Reply, RpcError, TransportError,
};

const SAFETY: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(SAFETY, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done after {SAFETY:?} (hang)"))
}

/// A server serving one connection, with a client on it.
struct Harness {
    client: Client,
    server_log: UnboundedReceiver<CallReport>,
    server: JoinHandle<Result<(), Error>>,
}

impl Harness {
    async fn start() -> Self {
        let (client, server_log, server) = within("start", rpc::start()).await.expect("start");
        Self {
            client,
            server_log,
            server,
        }
    }

    /// The server's report of the next call's end.
    async fn server_outcome(&mut self) -> CallReport {
        within("server report", rpc::next_outcome(&mut self.server_log)).await
    }

    /// Closes the connection and checks the server ended cleanly, with no report left unread.
    async fn finish(self) {
        within(
            "close",
            self.client.connection().close(CloseCode::NORMAL, "bye"),
        )
        .await
        .expect("close");
        within("server end", self.server)
            .await
            .expect("server task")
            .expect("server ends cleanly");
        // The server is gone, so its report channel is closed: collecting ends.
        let unread: Vec<_> = within("reports", self.server_log.collect::<Vec<_>>())
            .await
            .into_iter()
            .filter(|report| !matches!(report.outcome, Outcome::Started))
            .collect();
        assert!(unread.is_empty(), "unexpected server reports: {unread:?}");
    }
}

#[track_caller]
fn client_failure<T: std::fmt::Debug>(result: &Result<T, CallError>) -> &TransportError {
    match result {
        Err(CallError::Transport(err)) => err,
        other => panic!("expected a transport failure, got {other:?}"),
    }
}

#[track_caller]
fn server_failure(report: &CallReport) -> &TransportError {
    match &report.outcome {
        Outcome::Broken(err) => err,
        other => panic!("expected the server to see a broken call, got {other:?}"),
    }
}

#[track_caller]
fn assert_by_peer(err: &TransportError, expected: Failure) {
    assert!(
        matches!(err, TransportError::ByPeer(failure) if *failure == expected),
        "expected {expected:?} from the peer, got {err:?}"
    );
}

#[track_caller]
fn assert_by_us(err: &TransportError, expected: Failure) {
    assert!(
        matches!(err, TransportError::ByUs(failure) if *failure == expected),
        "expected {expected:?} sent by us, got {err:?}"
    );
}

#[test]
fn failure_reasons_and_codes_map_both_ways() {
    for failure in [
        Failure::Cancelled,
        Failure::TimedOut,
        Failure::BadFrame,
        Failure::HandlerPanicked,
        Failure::Other(ErrorCode(4321)),
    ] {
        assert_eq!(Failure::from_code(failure.code()), failure);
    }
    // The library's reserved codes are no reason of ours.
    for reserved in [ErrorCode::UNKNOWN, ErrorCode::PARSE, ErrorCode::OVERFLOW] {
        assert_eq!(Failure::from_code(reserved), Failure::Other(reserved));
    }
    assert_eq!(Failure::Cancelled.code(), rpc::CANCELLED);
    assert_eq!(Failure::HandlerPanicked.code(), rpc::HANDLER_PANICKED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_unary_calls_each_get_their_answer() {
    let mut h = Harness::start().await;
    let calls = (0..20).map(|i| h.client.call("add", json!([i, 1000])));
    let sums = within("calls", futures::future::try_join_all(calls))
        .await
        .expect("calls");
    for (i, sum) in sums.iter().enumerate() {
        assert_eq!(sum, &json!(i as f64 + 1000.0));
    }
    for _ in 0..20 {
        let report = h.server_outcome().await;
        assert_eq!(report.method.as_deref(), Some("add"));
        assert!(
            matches!(report.outcome, Outcome::Answered(Ok(_))),
            "{report:?}"
        );
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_error_reaches_the_client_as_its_error_object() {
    let mut h = Harness::start().await;
    let result = within("divide", h.client.call("divide", json!([7, 0]))).await;
    let expected = RpcError::new(RpcError::DIVISION_BY_ZERO, "division by zero")
        .with_data(json!({ "dividend": 7.0 }));
    match &result {
        Err(CallError::Rpc(error)) => assert_eq!(error, &expected),
        other => panic!("expected the error object, got {other:?}"),
    }
    let report = h.server_outcome().await;
    match &report.outcome {
        Outcome::Answered(Err(error)) => assert_eq!(error, &expected),
        other => panic!("{other:?}"),
    }

    // JSON-RPC's own errors travel the same way.
    let unknown = within("unknown", h.client.call("no_such_method", Value::Null)).await;
    assert!(
        matches!(&unknown, Err(CallError::Rpc(e)) if e.code == RpcError::METHOD_NOT_FOUND),
        "{unknown:?}"
    );
    h.server_outcome().await;
    let not_a_request = within("raw", h.client.call_raw(br#"{"hello": "world"}"#)).await;
    assert!(
        matches!(&not_a_request, Err(CallError::Rpc(e)) if e.code == RpcError::INVALID_REQUEST),
        "{not_a_request:?}"
    );
    let report = h.server_outcome().await;
    assert!(
        matches!(&report.outcome, Outcome::Answered(Err(e)) if e.code == RpcError::INVALID_REQUEST),
        "{report:?}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_streaming_call_carries_items_both_ways() {
    let mut h = Harness::start().await;
    let mut sum = within("open", h.client.call_streaming("running_sum", Value::Null))
        .await
        .expect("open");
    let mut expected_total = 0.0;
    for number in [5.0, -2.0, 10.0, 0.5] {
        within("send", sum.send(json!(number))).await.expect("send");
        expected_total += number;
        let reply = within("item", sum.next()).await.expect("item");
        assert_eq!(reply, Reply::Item(json!(expected_total)));
    }
    within("finish", sum.finish_sending())
        .await
        .expect("finish");
    let done = within("result", sum.next()).await.expect("result");
    assert_eq!(done, Reply::Done(json!(13.5)));
    let report = h.server_outcome().await;
    assert_eq!(report.method.as_deref(), Some("running_sum"));
    assert!(
        matches!(&report.outcome, Outcome::Answered(Ok(total)) if *total == json!(13.5)),
        "{report:?}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_clients_error_object_reaches_the_streaming_handler() {
    let mut h = Harness::start().await;
    let mut sum = within("open", h.client.call_streaming("running_sum", Value::Null))
        .await
        .expect("open");
    within("send", sum.send(json!(3))).await.expect("send");
    assert_eq!(
        within("item", sum.next()).await.expect("item"),
        Reply::Item(json!(3.0))
    );
    let client_error =
        RpcError::new(RpcError::CLIENT_GAVE_UP, "changed my mind").with_data(json!({ "after": 1 }));
    within("send error", sum.send_error(client_error.clone()))
        .await
        .expect("send error");

    // The handler saw the client's error object: its answer quotes it. The client gets that
    // answer, the stream ending normally.
    let answer = within("answer", sum.next()).await;
    let server_answer = match &answer {
        Err(CallError::Rpc(error)) => error.clone(),
        other => panic!("expected the handler's error object, got {other:?}"),
    };
    assert_eq!(server_answer.code, RpcError::ABANDONED_BY_CLIENT);
    assert!(server_answer.message.contains("changed my mind"));
    assert_eq!(
        RpcError::from_json(server_answer.data.as_ref().expect("data")),
        Some(client_error)
    );
    let report = h.server_outcome().await;
    match &report.outcome {
        Outcome::Answered(Err(error)) => assert_eq!(error, &server_answer),
        other => panic!("{other:?}"),
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_a_unary_call_cancels_its_handler() {
    let mut h = Harness::start().await;
    let client = h.client.clone();
    let call = client.call("sleep", json!({ "ms": 600_000 }));
    let started = within("handler start", async {
        tokio::select! {
            result = call => panic!("sleep(10 min) returned {result:?}"),
            started = rpc::next_started(&mut h.server_log) => started,
        }
    })
    .await;
    // `call` was dropped when the select ended: the server must see CANCELLED.
    let report = h.server_outcome().await;
    assert_eq!(report.stream, started.stream);
    assert_eq!(report.method.as_deref(), Some("sleep"));
    assert_by_peer(server_failure(&report), Failure::Cancelled);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_streaming_call_is_seen_by_its_handler() {
    let mut h = Harness::start().await;
    let mut sum = within("open", h.client.call_streaming("running_sum", Value::Null))
        .await
        .expect("open");
    within("send", sum.send(json!(1))).await.expect("send");
    within("item", sum.next()).await.expect("item"); // the handler runs
    sum.cancel();
    let report = h.server_outcome().await;
    assert_eq!(report.method.as_deref(), Some("running_sum"));
    assert_by_peer(server_failure(&report), Failure::Cancelled);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_timeout_is_seen_by_the_server_as_timed_out() {
    let mut h = Harness::start().await;
    let result = within(
        "call",
        h.client.call_with_timeout(
            "sleep",
            json!({ "ms": 600_000 }),
            Duration::from_millis(100),
        ),
    )
    .await;
    assert_by_us(client_failure(&result), Failure::TimedOut);
    let report = h.server_outcome().await;
    assert_eq!(report.method.as_deref(), Some("sleep"));
    assert_by_peer(server_failure(&report), Failure::TimedOut);

    // A call that is fast enough is not affected by its limit.
    let fast = within(
        "fast call",
        h.client
            .call_with_timeout("add", json!([1, 2]), Duration::from_secs(20)),
    )
    .await
    .expect("fast call");
    assert_eq!(fast, json!(3.0));
    h.server_outcome().await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frame_that_is_not_json_is_refused_with_bad_frame_either_way() {
    let mut h = Harness::start().await;
    // Client to server: the server refuses, the client (the sender) sees BAD_FRAME.
    let result = within("raw call", h.client.call_raw(b"\xff{ not JSON")).await;
    assert_by_peer(client_failure(&result), Failure::BadFrame);
    let report = h.server_outcome().await;
    assert_eq!(report.method, None, "no request was read");
    assert_by_us(server_failure(&report), Failure::BadFrame);

    // Server to client: the client refuses, the server (the sender) sees BAD_FRAME.
    let result = within("garbage", h.client.call("send_garbage", Value::Null)).await;
    assert_by_us(client_failure(&result), Failure::BadFrame);
    let report = h.server_outcome().await;
    assert_eq!(report.method.as_deref(), Some("send_garbage"));
    assert_by_peer(server_failure(&report), Failure::BadFrame);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_handler_resets_its_stream_and_nothing_else() {
    let mut h = Harness::start().await;
    // Another call in flight on the same connection must not notice.
    let mut neighbour = within("open", h.client.call_streaming("running_sum", Value::Null))
        .await
        .expect("open");
    within("send", neighbour.send(json!(1)))
        .await
        .expect("send");
    within("item", neighbour.next()).await.expect("item");

    let result = within("panic call", h.client.call("panic", Value::Null)).await;
    assert_by_peer(client_failure(&result), Failure::HandlerPanicked);
    let report = h.server_outcome().await;
    assert_by_us(server_failure(&report), Failure::HandlerPanicked);

    within("send", neighbour.send(json!(2)))
        .await
        .expect("neighbour still works");
    within("finish", neighbour.finish_sending())
        .await
        .expect("finish");
    assert_eq!(
        within("item", neighbour.next()).await.expect("item"),
        Reply::Item(json!(3.0))
    );
    assert_eq!(
        within("result", neighbour.next()).await.expect("result"),
        Reply::Done(json!(3.0))
    );
    h.server_outcome().await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_examples_demo_runs_every_case() {
    within("demo", rpc::demo()).await.expect("demo");
}
