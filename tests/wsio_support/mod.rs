//! Helpers shared by the `WsIo` integration tests: real TCP on 127.0.0.1, real handshakes.
#![allow(dead_code)] // each test file uses a different part

use std::{future::Future, time::Duration};

use async_std::net::{TcpListener, TcpStream};
use futures::{Stream, StreamExt};
use ws_stream_mux::{
    async_tungstenite::{self, tungstenite::Message, WebSocketStream},
    WsEvent,
};

/// A raw async-tungstenite WebSocket over async-std TCP: the independent peer of most tests.
pub type RawWs = WebSocketStream<TcpStream>;

/// Generous safety net for every test step: fails loudly instead of hanging.
pub const STEP: Duration = Duration::from_secs(60);

/// Awaits `fut`, panicking with `what` if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match async_std::future::timeout(STEP, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

/// A listener on an ephemeral port of 127.0.0.1 and its `ws://` URL.
pub async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("ws://{}/", listener.local_addr().expect("local addr"));
    (listener, url)
}

/// Two ends of one WebSocket over real TCP: (server side, client side).
pub async fn ws_pair() -> (RawWs, RawWs) {
    let (listener, url) = listen().await;
    let server = async {
        let (tcp, _) = listener.accept().await.expect("accept");
        async_tungstenite::accept_async(tcp)
            .await
            .expect("server handshake")
    };
    let client = async {
        let tcp = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (ws, _) = async_tungstenite::client_async(url.as_str(), tcp)
            .await
            .expect("client handshake");
        ws
    };
    within("handshake", futures::future::join(server, client)).await
}

/// Reads the next message that is not a ping or pong.
pub async fn next_data(ws: &mut RawWs) -> Option<Message> {
    loop {
        match within("next message", ws.next()).await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(message)) => return Some(message),
            Some(Err(err)) => panic!("websocket error: {err}"),
            None => return None,
        }
    }
}

/// Collects binary messages until the peer's Close frame; returns them and the frame's code and
/// reason. Drives the stream to its end.
pub async fn binaries_until_close(ws: &mut RawWs) -> (Vec<Vec<u8>>, Option<(u16, String)>) {
    let mut messages = Vec::new();
    let mut close = None;
    while let Some(message) = next_data(ws).await {
        match message {
            Message::Binary(data) => messages.push(data.to_vec()),
            Message::Close(frame) => {
                close = frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned()));
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    (messages, close)
}

/// Collects every event until the stream of events ends (after `Closed`).
pub async fn all_events(events: impl Stream<Item = WsEvent>) -> Vec<WsEvent> {
    within("events to end", events.collect()).await
}

/// Deterministic test data: `len` bytes of a pattern that does not repeat every 256 bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + i / 251) as u8).wrapping_add(seed))
        .collect()
}
