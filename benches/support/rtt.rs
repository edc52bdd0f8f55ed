//! 64-byte request/response round trips: the client writes 64 bytes and waits for them to come
//! back; the server echoes. Every round trip is timed on its own.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use ws_stream_mux::{async_tungstenite::tungstenite::Message, Config, Connection, WsIo};

use super::{bulk::Contender, net, yamux_mux};

const SIZE: usize = 64;
const WARM_UP: usize = 200;

/// Latencies of `count` round trips (after a warm-up) over `contender`.
pub async fn round_trips(contender: Contender, count: usize) -> Vec<Duration> {
    match contender {
        Contender::RawTcp => {
            let (c, s) = net::tcp_pair().await;
            bytes(c, async move { s }, count).await
        }
        Contender::RawTungstenite => {
            let (c, s) = net::ws_pair().await;
            messages(c, s, count).await
        }
        Contender::WsStreamTungstenite => {
            let (c, s) = net::ws029_pair().await;
            let s = ws_stream_tungstenite::WsStream::new(s);
            bytes(
                ws_stream_tungstenite::WsStream::new(c),
                async move { s },
                count,
            )
            .await
        }
        Contender::YamuxOverWst => {
            let (c, mut s) = yamux_mux::pair(512).await;
            let stream = c.open().await;
            let latencies = bytes(
                stream,
                async move {
                    let stream = s.accept().await;
                    yamux_mux::KeepAlive::new(stream, s)
                },
                count,
            )
            .await;
            drop(c);
            latencies
        }
        Contender::OursWsIo => {
            let (c, s) = net::ws_pair().await;
            let s = WsIo::new(s);
            bytes(WsIo::new(c), async move { s }, count).await
        }
        Contender::OursStream | Contender::OursStreamCoalesced => {
            let (c, s) = net::ws_pair().await;
            let config =
                Config::default().coalesce_writes(contender == Contender::OursStreamCoalesced);
            let client = Connection::client(c, config.clone()).expect("valid config");
            let server = Connection::server(s, config).expect("valid config");
            let stream = client.open().await.expect("open");
            let accepting = server.clone();
            let latencies = bytes(
                stream,
                async move { accepting.accept().await.expect("accept") },
                count,
            )
            .await;
            drop((client, server));
            latencies
        }
    }
}

async fn bytes<C, S, F>(mut client: C, server: F, count: usize) -> Vec<Duration>
where
    C: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = S> + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let echo = async_std::task::spawn(async move {
        let mut io = server.await;
        let mut buf = [0u8; SIZE];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if io.write_all(&buf[..n]).await.is_err() || io.flush().await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let request = [7u8; SIZE];
    let mut reply = [0u8; SIZE];
    let mut latencies = Vec::with_capacity(count);
    for i in 0..WARM_UP + count {
        let start = Instant::now();
        client.write_all(&request).await.expect("rtt write");
        client.flush().await.expect("rtt flush");
        client.read_exact(&mut reply).await.expect("rtt read");
        if i >= WARM_UP {
            latencies.push(start.elapsed());
        }
    }
    assert_eq!(reply, request, "echo mismatch");
    drop(client);
    // The echo task ends when it sees the client go (end of stream or connection error).
    let _ = async_std::future::timeout(Duration::from_secs(10), echo).await;
    latencies
}

async fn messages<S>(
    mut client: async_tungstenite::WebSocketStream<S>,
    mut server: async_tungstenite::WebSocketStream<S>,
    count: usize,
) -> Vec<Duration>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
{
    let echo = async_std::task::spawn(async move {
        while let Some(Ok(msg)) = server.next().await {
            if let Message::Binary(data) = msg {
                if server.send(Message::Binary(data)).await.is_err() {
                    break;
                }
            }
        }
    });
    let request = [7u8; SIZE];
    let mut latencies = Vec::with_capacity(count);
    for i in 0..WARM_UP + count {
        let start = Instant::now();
        client
            .send(Message::Binary(bytes::Bytes::copy_from_slice(&request)))
            .await
            .expect("rtt send");
        loop {
            match client.next().await {
                Some(Ok(Message::Binary(data))) => {
                    assert_eq!(&data[..], &request[..], "echo mismatch");
                    break;
                }
                Some(Ok(_)) => {}
                other => panic!("raw tungstenite rtt: {other:?}"),
            }
        }
        if i >= WARM_UP {
            latencies.push(start.elapsed());
        }
    }
    drop(client);
    let _ = async_std::future::timeout(Duration::from_secs(10), echo).await;
    latencies
}
