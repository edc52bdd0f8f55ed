//! With the `tracing` feature, a connection has a span, each stream a span inside it, and the
//! protocol's decisions are debug events: checked with a subscriber that records them.
#![cfg(feature = "tracing")]

mod common;

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
};

use common::{conn_pair, within};
use futures::{AsyncReadExt, AsyncWriteExt};
use tracing::{
    field::{Field, Visit},
    span, Event, Metadata, Subscriber,
};
use ws_stream_mux::{CloseCode, Config, ErrorCode};

/// Records span names and event messages.
#[derive(Default)]
struct Recorder {
    spans: Mutex<Vec<String>>,
    messages: Mutex<Vec<String>>,
    next: AtomicU64,
}

struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.push_str(&format!("{value:?}"));
        }
    }
}

/// The subscriber: a handle on the recorder the test reads afterwards.
struct Recording(Arc<Recorder>);

impl Subscriber for Recording {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("ws_stream_mux")
    }

    fn new_span(&self, attrs: &span::Attributes<'_>) -> span::Id {
        self.0
            .spans
            .lock()
            .unwrap()
            .push(attrs.metadata().name().to_owned());
        span::Id::from_u64(self.0.next.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        self.0.messages.lock().unwrap().push(message);
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

#[async_std::test]
async fn spans_and_debug_events_at_each_protocol_decision() {
    let recorder = Arc::new(Recorder::default());
    let _guard = tracing::subscriber::set_default(Recording(recorder.clone()));
    within("traced run", async {
        let (client, server) = conn_pair(
            Config::default().max_streams(1),
            Config::default().max_streams(1),
        )
        .await;
        let mut c = client.open().await.unwrap();
        let (wrote, accepted) = futures::join!(c.write_all(b"hi"), server.accept());
        wrote.unwrap();
        let mut s = accepted.unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).await.unwrap();
        s.stop(ErrorCode(4002)).unwrap();
        assert_eq!(c.stopped().await.unwrap(), Some(ErrorCode(4002)));
        c.abort(ErrorCode(4001)).unwrap();
        assert_eq!(s.stopped().await.unwrap(), Some(ErrorCode(4001)));
        drop((c, s));
        let mut c = client.open().await.unwrap();
        let (wrote, accepted) = futures::join!(c.write_all(b"hi"), server.accept());
        wrote.unwrap();
        let mut s = accepted.unwrap();
        c.reset(ErrorCode(4003)).unwrap();
        assert!(s.read_to_end(&mut Vec::new()).await.is_err(), "reset");
        let (closed, _) = futures::join!(client.close(CloseCode::NORMAL, "bye"), server.closed());
        closed.unwrap();
    })
    .await;
    let spans = recorder.spans.lock().unwrap().clone();
    assert!(
        spans.iter().any(|s| s == "ws_stream_mux::connection"),
        "{spans:?}"
    );
    assert!(
        spans.iter().any(|s| s == "ws_stream_mux::stream"),
        "{spans:?}"
    );
    let messages = recorder.messages.lock().unwrap().clone();
    for expected in [
        "stream opened",
        "peer opened a stream",
        "credit granted",
        "stopped",
        "stopped by the peer",
        "reset",
        "reset by the peer",
        "close frame sent",
        "close frame received",
    ] {
        assert!(
            messages.iter().any(|m| m == expected),
            "no {expected:?} in {messages:?}"
        );
    }
}
