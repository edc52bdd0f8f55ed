//! Shared test plumbing: real TCP on 127.0.0.1, real WebSocket handshakes.
#![allow(dead_code)]

use std::{future::Future, time::Duration};

use async_std::net::{TcpListener, TcpStream};
use async_tungstenite::WebSocketStream;
use ws_stream_mux::{Config, Connection};

/// Generous safety net: a test that needs it has hung, and says so.
pub const SAFETY: Duration = Duration::from_secs(60);

/// Runs `fut` under the safety timeout, panicking loudly if it hangs.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match async_std::future::timeout(SAFETY, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: still not done after {SAFETY:?} (hang)"),
    }
}

/// A client and a server WebSocket over a fresh loopback TCP connection.
pub async fn ws_pair() -> (WebSocketStream<TcpStream>, WebSocketStream<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = async_std::task::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        async_tungstenite::accept_async(tcp)
            .await
            .expect("server handshake")
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (client, _) = async_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .expect("client handshake");
    (client, server.await)
}

/// A multiplexed client and server over real TCP.
pub async fn conn_pair(client: Config, server: Config) -> (Connection, Connection) {
    let (c, s) = ws_pair().await;
    (
        Connection::client(c, client).expect("valid config"),
        Connection::server(s, server).expect("valid config"),
    )
}

/// Deterministic test data: `len` bytes that differ per `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
