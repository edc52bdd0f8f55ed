//! Stream life cycles: how fast streams open, echo a byte and close; what an idle stream costs in
//! memory; whether 10,000 streams work at once.

use std::time::{Duration, Instant};

use futures::{channel::oneshot, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ws_stream_mux::Connection;

use super::{
    bulk::{mux_config, Contender},
    measure::{resident_bytes, Sample, Stopwatch},
    net, yamux_mux,
};

/// The client's side of one stream's life: write a byte, finish, read the echo to the end.
pub async fn client_cycle<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    s.write_all(&[42]).await.expect("open/echo write");
    s.close().await.expect("open/echo close");
    let mut reply = Vec::with_capacity(1);
    s.read_to_end(&mut reply).await.expect("open/echo read");
    assert_eq!(reply, [42], "open/echo: wrong reply");
}

/// The server's side: read to the end, echo, finish.
pub async fn server_cycle<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let mut got = Vec::with_capacity(1);
    s.read_to_end(&mut got).await.expect("echo read");
    s.write_all(&got).await.expect("echo write");
    s.close().await.expect("echo close");
}

/// `count` streams, one after the other: open, 1-byte echo, close (both ways).
pub async fn open_echo_close(contender: Contender, count: usize) -> Sample {
    match contender {
        Contender::OursStream => {
            let (c, s) = net::ws_pair().await;
            let client = Connection::client(c, mux_config(0)).expect("valid config");
            let server = Connection::server(s, mux_config(0)).expect("valid config");
            let accepting = server.clone();
            let echo = async_std::task::spawn(async move {
                for _ in 0..count {
                    server_cycle(accepting.accept().await.expect("accept")).await;
                }
            });
            let clock = Stopwatch::start();
            for _ in 0..count {
                client_cycle(client.open().await.expect("open")).await;
            }
            echo.await;
            let sample = clock.stop();
            drop((client, server));
            sample
        }
        Contender::YamuxOverWst => {
            let (client, mut server) = yamux_mux::pair(512).await;
            let echo = async_std::task::spawn(async move {
                for _ in 0..count {
                    server_cycle(server.accept().await).await;
                }
                server
            });
            let clock = Stopwatch::start();
            for _ in 0..count {
                client_cycle(client.open().await).await;
            }
            let server = echo.await;
            let sample = clock.stop();
            drop((client, server));
            sample
        }
        other => unreachable!("{other:?} has no streams"),
    }
}

/// `count` streams through the same cycle, `parallel` at a time: the client runs `parallel`
/// tasks one after another's streams, the server spawns a task per accepted stream.
pub async fn open_echo_close_parallel(
    contender: Contender,
    count: usize,
    parallel: usize,
) -> Sample {
    let per_task = count / parallel;
    let count = per_task * parallel;
    match contender {
        Contender::OursStream => {
            let (c, s) = net::ws_pair().await;
            let client = Connection::client(c, mux_config(0)).expect("valid config");
            let server = Connection::server(s, mux_config(0)).expect("valid config");
            let accepting = server.clone();
            let echo = async_std::task::spawn(async move {
                let mut handlers = Vec::with_capacity(count);
                for _ in 0..count {
                    let stream = accepting.accept().await.expect("accept");
                    handlers.push(async_std::task::spawn(server_cycle(stream)));
                }
                futures::future::join_all(handlers).await;
            });
            let clock = Stopwatch::start();
            let clients: Vec<_> = (0..parallel)
                .map(|_| {
                    let client = client.clone();
                    async_std::task::spawn(async move {
                        for _ in 0..per_task {
                            client_cycle(client.open().await.expect("open")).await;
                        }
                    })
                })
                .collect();
            futures::future::join_all(clients).await;
            echo.await;
            let sample = clock.stop();
            drop((client, server));
            sample
        }
        Contender::YamuxOverWst => {
            let (client, mut server) = yamux_mux::pair(512).await;
            let client = std::sync::Arc::new(client);
            let echo = async_std::task::spawn(async move {
                let mut handlers = Vec::with_capacity(count);
                for _ in 0..count {
                    let stream = server.accept().await;
                    handlers.push(async_std::task::spawn(server_cycle(stream)));
                }
                futures::future::join_all(handlers).await;
                server
            });
            let clock = Stopwatch::start();
            let clients: Vec<_> = (0..parallel)
                .map(|_| {
                    let client = client.clone();
                    async_std::task::spawn(async move {
                        for _ in 0..per_task {
                            client_cycle(client.open().await).await;
                        }
                    })
                })
                .collect();
            futures::future::join_all(clients).await;
            let server = echo.await;
            let sample = clock.stop();
            drop((client, server));
            sample
        }
        other => unreachable!("{other:?} has no streams"),
    }
}

/// What the memory child process reports.
#[derive(Debug, Clone, Copy)]
pub struct IdleReport {
    pub streams: usize,
    pub rss_before: u64,
    pub rss_after: u64,
    /// Time for one 1-byte echo on every stream at once.
    pub concurrent: Duration,
}

impl IdleReport {
    pub fn to_line(self) -> String {
        format!(
            "IDLE {} {} {} {}",
            self.streams,
            self.rss_before,
            self.rss_after,
            self.concurrent.as_nanos()
        )
    }

    pub fn from_line(line: &str) -> Option<Self> {
        let mut parts = line.strip_prefix("IDLE ")?.split_whitespace();
        let mut next = || parts.next()?.parse::<u128>().ok();
        Some(Self {
            streams: next()? as usize,
            rss_before: next()? as u64,
            rss_after: next()? as u64,
            concurrent: Duration::from_nanos(next()? as u64),
        })
    }

    /// Resident bytes per stream, both ends counted (both live in the measuring process).
    pub fn per_stream(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.streams as f64
    }
}

async fn echo_once<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    s.write_all(&[1]).await.expect("write");
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.expect("read");
}

async fn answer_once<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.expect("read");
    s.write_all(&b).await.expect("write");
}

/// Opens `n` streams, each established both ways by a 1-byte echo and then idle; measures the
/// resident set before and after; then echoes one byte on all of them at once. Run in a fresh
/// process so that the allocator's earlier history does not hide the cost.
pub async fn idle_streams(contender: Contender, n: usize) -> IdleReport {
    match contender {
        Contender::OursStream => {
            let (c, s) = net::ws_pair().await;
            let client = Connection::client(c, mux_config(n + 1)).expect("valid config");
            let server = Connection::server(s, mux_config(n + 1)).expect("valid config");
            let (go_tx, go_rx) = oneshot::channel::<()>();
            let accepting = server.clone();
            let peer = async_std::task::spawn(async move {
                let mut streams = Vec::with_capacity(n + 1);
                for _ in 0..=n {
                    let mut s = accepting.accept().await.expect("accept");
                    answer_once(&mut s).await;
                    streams.push(s);
                }
                go_rx.await.expect("go");
                futures::future::join_all(streams.iter_mut().skip(1).map(answer_once)).await;
                streams
            });
            // One stream first, so that buffers and threads exist before the baseline.
            let mut first = client.open().await.expect("open");
            echo_once(&mut first).await;
            let mut streams = Vec::with_capacity(n);
            measured(n, &mut streams, go_tx, peer, || async {
                let mut s = client.open().await.expect("open");
                echo_once(&mut s).await;
                s
            })
            .await
        }
        Contender::YamuxOverWst => {
            let (client, mut server) = yamux_mux::pair(n + 1).await;
            let (go_tx, go_rx) = oneshot::channel::<()>();
            let peer = async_std::task::spawn(async move {
                let mut streams = Vec::with_capacity(n + 1);
                for _ in 0..=n {
                    let mut s = server.accept().await;
                    answer_once(&mut s).await;
                    streams.push(s);
                }
                go_rx.await.expect("go");
                futures::future::join_all(streams.iter_mut().skip(1).map(answer_once)).await;
                (streams, server)
            });
            let mut first = client.open().await;
            echo_once(&mut first).await;
            let mut streams = Vec::with_capacity(n);
            measured(n, &mut streams, go_tx, peer, || async {
                let mut s = client.open().await;
                echo_once(&mut s).await;
                s
            })
            .await
        }
        other => unreachable!("{other:?} has no streams"),
    }
}

async fn measured<S, F, Fut, P>(
    n: usize,
    streams: &mut Vec<S>,
    go: oneshot::Sender<()>,
    peer: async_std::task::JoinHandle<P>,
    mut open: F,
) -> IdleReport
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    let rss_before = resident_bytes();
    for _ in 0..n {
        streams.push(open().await);
    }
    let rss_after = resident_bytes();
    let start = Instant::now();
    go.send(()).expect("peer gone");
    futures::future::join_all(streams.iter_mut().map(echo_once)).await;
    let peer = peer.await;
    let concurrent = start.elapsed();
    drop(peer);
    IdleReport {
        streams: n,
        rss_before,
        rss_after,
        concurrent,
    }
}
