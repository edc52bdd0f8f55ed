//! Load: 200 connections of 10 streams each, every stream echoing 256 KiB, all at once in one
//! process over 127.0.0.1 — 2,000 streams and 1 GiB on the wire. Every echo is checked (length
//! and checksum), every stream must end cleanly on both sides (FIN both ways, no error), and every
//! connection must close with 1000 on both sides.
//!
//! Runtime: async-std, the suite's default. Each connection's driver runs on its own task
//! (`Connection::run`), the mode the README recommends for many streams, and every stream has a
//! task per direction. async-std needs no feature gate (tokio's helpers would need the `tokio`
//! feature), and its two worker threads on this 2-core machine keep both cores busy. With tokio's
//! multi-threaded runtime the test took about as long; the work is in the WebSocket framing and
//! the copies, not in the scheduler.
//!
//! The one timeout is the safety net of `within`; the test asserts outcomes only.

use crate::common;

use async_std::{
    net::{TcpListener, TcpStream},
    task,
};
use common::within;
use futures::{AsyncReadExt, AsyncWriteExt};
use ws_stream_mux::{
    handshake::{self, AcceptConfig},
    websocket_config, CloseCode, Config, Connection, Error,
};

const CONNECTIONS: usize = 200;
const STREAMS: usize = 10;
const LEN: usize = 256 * 1024;

/// The bytes a stream carries, generated as they are written and checked as they are read, so
/// that 2,000 streams in flight hold no copies of their payloads.
struct Pattern {
    state: u64,
}

impl Pattern {
    fn new(seed: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for byte in buf {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *byte = self.state as u8;
        }
    }
}

/// A running FNV-1a checksum and length of what went through a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sum {
    hash: u64,
    len: usize,
}

impl Sum {
    fn new() -> Self {
        Self {
            hash: 0xcbf2_9ce4_8422_2325,
            len: 0,
        }
    }

    fn add(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.hash = (self.hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
        }
        self.len += bytes.len();
    }
}

/// One server connection: the checked handshake, a driver, an echo task per stream. Resolves to
/// how each stream's echo ended and how the connection ended.
async fn serve_one(tcp: TcpStream) -> (Vec<Result<(), Error>>, Error) {
    let config = Config::default();
    let accept_config = AcceptConfig::default().websocket(websocket_config(&config));
    let (ws, _request) = handshake::accept(tcp, &accept_config)
        .await
        .expect("server handshake");
    let conn = Connection::server(ws, config).expect("config");
    task::spawn(conn.run());
    let mut echoes = Vec::new();
    let end = loop {
        match conn.accept().await {
            Ok(stream) => echoes.push(task::spawn(async move {
                let (mut send, recv) = stream.into_split();
                futures::io::copy(recv, &mut send).await?;
                send.close().await
            })),
            Err(end) => break end,
        }
    };
    let mut outcomes = Vec::new();
    for echo in echoes {
        outcomes.push(echo.await.map_err(Error::from));
    }
    (outcomes, end)
}

/// One client connection: `STREAMS` streams at once, each echoing `LEN` bytes; then a close with
/// 1000. Resolves to each stream's checksums (sent, echoed).
async fn client(addr: std::net::SocketAddr, index: usize) -> Vec<(Sum, Sum)> {
    let config = Config::default();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (ws, _) = async_tungstenite::client_async_with_config(
        format!("ws://{addr}/"),
        tcp,
        Some(websocket_config(&config)),
    )
    .await
    .expect("client handshake");
    let conn = Connection::client(ws, config).expect("config");
    let driver = task::spawn(conn.run());
    let streams = (0..STREAMS).map(|i| echo_one(&conn, (index * STREAMS + i) as u64));
    let sums = futures::future::join_all(streams).await;
    conn.close(CloseCode::NORMAL, "done")
        .await
        .expect("the connection closes with 1000");
    driver
        .await
        .expect("the driver ends with the closing handshake");
    sums
}

/// Writes `LEN` bytes of pattern `seed` and finishes, while reading the echo to its end.
async fn echo_one(conn: &Connection, seed: u64) -> (Sum, Sum) {
    let stream = conn.open().await.expect("open");
    let (mut send, mut recv) = stream.into_split();
    let write = async {
        let mut pattern = Pattern::new(seed);
        let mut sent = Sum::new();
        let mut chunk = vec![0u8; 16 * 1024];
        while sent.len < LEN {
            pattern.fill(&mut chunk);
            send.write_all(&chunk).await.expect("write");
            sent.add(&chunk);
        }
        send.close().await.expect("FIN");
        sent
    };
    let read = async {
        let mut echoed = Sum::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match recv.read(&mut buf).await.expect("read the echo") {
                0 => return echoed,
                n => echoed.add(&buf[..n]),
            }
        }
    };
    futures::join!(write, read)
}

#[async_std::test]
async fn two_hundred_connections_of_ten_streams_each_echo_256_kib_intact() {
    within("the load", async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = task::spawn(async move {
            let mut connections = Vec::with_capacity(CONNECTIONS);
            for _ in 0..CONNECTIONS {
                let (tcp, _) = listener.accept().await.expect("accept");
                tcp.set_nodelay(true).expect("nodelay");
                connections.push(task::spawn(serve_one(tcp)));
            }
            futures::future::join_all(connections).await
        });
        let clients = (0..CONNECTIONS).map(|index| task::spawn(client(addr, index)));
        let sums = futures::future::join_all(clients).await;

        for (index, connection) in sums.iter().enumerate() {
            assert_eq!(connection.len(), STREAMS, "connection {index}");
            for (stream, (sent, echoed)) in connection.iter().enumerate() {
                assert_eq!(sent.len, LEN, "connection {index}, stream {stream}: sent");
                assert_eq!(
                    echoed, sent,
                    "connection {index}, stream {stream}: the echo differs"
                );
            }
        }
        let served = server.await;
        assert_eq!(served.len(), CONNECTIONS);
        for (index, (echoes, end)) in served.into_iter().enumerate() {
            assert_eq!(echoes.len(), STREAMS, "server connection {index}: streams");
            for outcome in echoes {
                outcome.expect("every echo ends cleanly");
            }
            match end {
                Error::ConnectionClosed { code, .. } if code == CloseCode::NORMAL => {}
                other => panic!("server connection {index} ended with {other:?}"),
            }
        }
    })
    .await;
}
