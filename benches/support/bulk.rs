//! Bulk transfer in one direction (client writes, server reads), on async-std or tokio.
//!
//! Byte-stream contenders write `total` bytes in `write_size` writes and the reader reads with a
//! 64 KiB buffer. Raw async-tungstenite sends one `Message::Binary` per write (`feed`, one flush at
//! the end: tungstenite writes out whenever its buffer fills) and the reader counts payload bytes.
//! Each round uses a fresh connection; setting it up is not timed.

use std::future::Future;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, SinkExt, StreamExt};
use ws_stream_mux::{async_tungstenite::tungstenite::Message, Config, Connection, WsIo};

use super::{
    measure::{Sample, Stopwatch},
    net, yamux_mux,
};

/// What carries the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    RawTcp,
    RawTungstenite,
    WsStreamTungstenite,
    YamuxOverWst,
    OursWsIo,
    OursStream,
    /// One `WsStream` with `Config::coalesce_writes` (bulk only).
    OursStreamCoalesced,
}

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::RawTcp => "raw TCP",
            Contender::RawTungstenite => "raw async-tungstenite 0.35",
            Contender::WsStreamTungstenite => "ws_stream_tungstenite 0.15",
            Contender::YamuxOverWst => "yamux 0.14 over ws_stream_tungstenite",
            Contender::OursWsIo => "ours: WsIo",
            Contender::OursStream => "ours: one WsStream",
            Contender::OursStreamCoalesced => "ours: one WsStream, coalesce_writes",
        }
    }

    pub const ALL: [Contender; 6] = [
        Contender::RawTcp,
        Contender::RawTungstenite,
        Contender::WsStreamTungstenite,
        Contender::YamuxOverWst,
        Contender::OursWsIo,
        Contender::OursStream,
    ];

    /// The bulk workload also measures the opt-in write coalescing.
    pub const BULK: [Contender; 7] = [
        Contender::RawTcp,
        Contender::RawTungstenite,
        Contender::WsStreamTungstenite,
        Contender::YamuxOverWst,
        Contender::OursWsIo,
        Contender::OursStream,
        Contender::OursStreamCoalesced,
    ];
}

/// Deterministic, not trivially compressible data.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub async fn write_total<W: AsyncWrite + Unpin>(w: &mut W, total: u64, write_size: usize) {
    let chunk = pattern(write_size);
    let mut left = total;
    while left > 0 {
        let n = left.min(write_size as u64) as usize;
        w.write_all(&chunk[..n]).await.expect("bulk write");
        left -= n as u64;
    }
    w.flush().await.expect("bulk flush");
}

pub async fn read_total<R: AsyncRead + Unpin>(r: &mut R, total: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < total {
        let n = r.read(&mut buf).await.expect("bulk read");
        assert!(n > 0, "bulk: end of stream after {got} of {total} bytes");
        got += n as u64;
    }
    assert_eq!(got, total, "bulk: read more than was written");
}

/// One timed round over a byte stream: `reader` (set up inside the spawned task, e.g. an
/// `accept`) reads while this task writes.
async fn bytes_round<W, R, F>(mut writer: W, reader: F, total: u64, write_size: usize) -> Sample
where
    W: AsyncWrite + Unpin,
    F: Future<Output = R> + Send + 'static,
    R: AsyncRead + Unpin + Send + 'static,
{
    let reader = async_std::task::spawn(async move {
        let mut r = reader.await;
        read_total(&mut r, total).await;
        r
    });
    let clock = Stopwatch::start();
    write_total(&mut writer, total, write_size).await;
    let reader = reader.await;
    let sample = clock.stop();
    drop((writer, reader));
    sample
}

/// A multiplexed configuration that allows `streams` streams each way.
pub fn mux_config(streams: usize) -> Config {
    Config::default().max_streams(streams.max(1024))
}

/// One round of `contender` on async-std.
pub async fn round(contender: Contender, total: u64, write_size: usize) -> Sample {
    match contender {
        Contender::RawTcp => {
            let (c, s) = net::tcp_pair().await;
            bytes_round(c, async move { s }, total, write_size).await
        }
        Contender::RawTungstenite => {
            let (c, s) = net::ws_pair().await;
            messages_round(c, s, total, write_size).await
        }
        Contender::WsStreamTungstenite => {
            let (c, s) = net::ws029_pair().await;
            let s = ws_stream_tungstenite::WsStream::new(s);
            bytes_round(
                ws_stream_tungstenite::WsStream::new(c),
                async move { s },
                total,
                write_size,
            )
            .await
        }
        Contender::YamuxOverWst => {
            let (c, mut s) = yamux_mux::pair(512).await;
            let writer = c.open().await;
            let sample = bytes_round(
                writer,
                async move {
                    let stream = s.accept().await;
                    yamux_mux::KeepAlive::new(stream, s)
                },
                total,
                write_size,
            )
            .await;
            drop(c);
            sample
        }
        Contender::OursWsIo => {
            let (c, s) = net::ws_pair().await;
            let s = WsIo::new(s);
            bytes_round(WsIo::new(c), async move { s }, total, write_size).await
        }
        Contender::OursStream | Contender::OursStreamCoalesced => {
            let (c, s) = net::ws_pair().await;
            let config =
                Config::default().coalesce_writes(contender == Contender::OursStreamCoalesced);
            let (client, server) = (
                Connection::client(c, config.clone()).expect("valid config"),
                Connection::server(s, config).expect("valid config"),
            );
            let writer = client.open().await.expect("open");
            let accepting = server.clone();
            let sample = bytes_round(
                writer,
                async move { accepting.accept().await.expect("accept") },
                total,
                write_size,
            )
            .await;
            drop((client, server));
            sample
        }
    }
}

/// Raw async-tungstenite: one binary message per write, flushed once at the end.
async fn messages_round<S>(
    mut client: async_tungstenite::WebSocketStream<S>,
    server: async_tungstenite::WebSocketStream<S>,
    total: u64,
    write_size: usize,
) -> Sample
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
{
    let reader = async_std::task::spawn(count_messages(server, total));
    let clock = Stopwatch::start();
    send_messages(&mut client, total, write_size).await;
    let server = reader.await;
    let sample = clock.stop();
    drop((client, server));
    sample
}

pub async fn send_messages<S>(
    ws: &mut async_tungstenite::WebSocketStream<S>,
    total: u64,
    write_size: usize,
) where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let chunk = pattern(write_size);
    let mut left = total;
    while left > 0 {
        let n = left.min(write_size as u64) as usize;
        // A user holding a byte slice copies it into the message.
        ws.feed(Message::Binary(bytes::Bytes::copy_from_slice(&chunk[..n])))
            .await
            .expect("send");
        left -= n as u64;
    }
    ws.flush().await.expect("flush");
}

pub async fn count_messages<S>(
    mut ws: async_tungstenite::WebSocketStream<S>,
    total: u64,
) -> async_tungstenite::WebSocketStream<S>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let mut got = 0u64;
    while got < total {
        match ws.next().await {
            Some(Ok(Message::Binary(data))) => got += data.len() as u64,
            Some(Ok(_)) => {}
            other => panic!("raw tungstenite bulk: {other:?} after {got} of {total} bytes"),
        }
    }
    ws
}

/// `streams` streams each moving `per_stream` bytes in 64 KiB writes at once; the time until the
/// last byte of the last stream was read.
pub async fn many_round(contender: Contender, streams: usize, per_stream: u64) -> Sample {
    const WRITE: usize = 64 * 1024;
    match contender {
        Contender::RawTcp => {
            let mut pairs = Vec::new();
            for _ in 0..streams {
                pairs.push(net::tcp_pair().await);
            }
            let clock = Stopwatch::start();
            let tasks: Vec<_> = pairs
                .into_iter()
                .flat_map(|(mut c, mut s)| {
                    [
                        async_std::task::spawn(async move {
                            write_total(&mut c, per_stream, WRITE).await;
                        }),
                        async_std::task::spawn(async move {
                            read_total(&mut s, per_stream).await;
                        }),
                    ]
                })
                .collect();
            futures::future::join_all(tasks).await;
            clock.stop()
        }
        Contender::YamuxOverWst => {
            let (c, mut s) = yamux_mux::pair(512).await;
            let clock = Stopwatch::start();
            let readers = async_std::task::spawn(async move {
                let mut tasks = Vec::new();
                for _ in 0..streams {
                    let mut stream = s.accept().await;
                    tasks.push(async_std::task::spawn(async move {
                        read_total(&mut stream, per_stream).await;
                        stream
                    }));
                }
                let streams = futures::future::join_all(tasks).await;
                (streams, s)
            });
            let mut writers = Vec::new();
            for _ in 0..streams {
                let mut stream = c.open().await;
                writers.push(async_std::task::spawn(async move {
                    write_total(&mut stream, per_stream, WRITE).await;
                    stream
                }));
            }
            let written = futures::future::join_all(writers).await;
            let read = readers.await;
            let sample = clock.stop();
            drop((written, read, c));
            sample
        }
        Contender::OursStream => {
            let (c, s) = net::ws_pair().await;
            let client = Connection::client(c, Config::default()).expect("valid config");
            let server = Connection::server(s, Config::default()).expect("valid config");
            let clock = Stopwatch::start();
            let accepting = server.clone();
            let readers = async_std::task::spawn(async move {
                let mut tasks = Vec::new();
                for _ in 0..streams {
                    let mut stream = accepting.accept().await.expect("accept");
                    tasks.push(async_std::task::spawn(async move {
                        read_total(&mut stream, per_stream).await;
                        stream
                    }));
                }
                futures::future::join_all(tasks).await
            });
            let mut writers = Vec::new();
            for _ in 0..streams {
                let mut stream = client.open().await.expect("open");
                writers.push(async_std::task::spawn(async move {
                    write_total(&mut stream, per_stream, WRITE).await;
                    stream
                }));
            }
            let written = futures::future::join_all(writers).await;
            let read = readers.await;
            let sample = clock.stop();
            drop((written, read, client, server));
            sample
        }
        other => unreachable!("{other:?} has no many-streams variant"),
    }
}

/// One bulk round on a tokio multi-threaded runtime (call inside it).
pub async fn tokio_round(contender: Contender, total: u64, write_size: usize) -> Sample {
    let (c, s) = net::tokio_ws_pair().await;
    match contender {
        Contender::RawTungstenite => {
            let reader = tokio::spawn(count_messages(s, total));
            let mut c = c;
            let clock = Stopwatch::start();
            send_messages(&mut c, total, write_size).await;
            let s = reader.await.expect("reader task");
            let sample = clock.stop();
            drop((c, s));
            sample
        }
        Contender::OursWsIo => {
            let mut r = WsIo::new(s);
            let mut w = WsIo::new(c);
            let reader = tokio::spawn(async move {
                read_total(&mut r, total).await;
                r
            });
            let clock = Stopwatch::start();
            write_total(&mut w, total, write_size).await;
            let r = reader.await.expect("reader task");
            let sample = clock.stop();
            drop((w, r));
            sample
        }
        Contender::OursStream => {
            let client = Connection::client(c, Config::default()).expect("valid config");
            let server = Connection::server(s, Config::default()).expect("valid config");
            let mut w = client.open().await.expect("open");
            let accepting = server.clone();
            let reader = tokio::spawn(async move {
                let mut r = accepting.accept().await.expect("accept");
                read_total(&mut r, total).await;
                r
            });
            let clock = Stopwatch::start();
            write_total(&mut w, total, write_size).await;
            let r = reader.await.expect("reader task");
            let sample = clock.stop();
            drop((w, r, client, server));
            sample
        }
        other => unreachable!("{other:?} has no tokio variant here"),
    }
}
