//! Throughput through the `tunnel` example (a TCP port forwarder over one WebSocket, a stream per
//! TCP connection) against TCP straight to the target:
//!
//! ```text
//!  client TCP ──► tunnel client ═══ one WebSocket ═══► tunnel server ──► target (sink or echo)
//!  client TCP ─────────────────────────────────────────────────────────► target (direct)
//! ```
//!
//! The forwarding is the example's own: `examples/tunnel.rs` is compiled in here (as
//! `tests/example_tunnel.rs` does) and each forwarded connection runs its public
//! `forwarder::forward` (both directions, half-close, resets); the echo target is its
//! `forwarder::echo_target`. The accept loops around `forward` are written here with the same
//! structure as the example's `run_server`/`serve_tunnel` and `forward_listener`, because the
//! example's print a line per forwarded connection (into this benchmark's report on stdout), and
//! its server accepts the @matrixai/ws protocol only: here it also offers QMux, so the tunnel runs
//! over either protocol, chosen by the tunnel client (`tokio::connect` or
//! `tokio::connect_qmux`). Everything has TCP_NODELAY (the example sets it on every socket, and so
//! do the tokio helpers). Each round builds a fresh target, tunnel server and tunnel client; only
//! the transfer is timed.

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../examples/tunnel.rs"]
mod example;

use std::net::SocketAddr;

use futures::channel::{mpsc, oneshot};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use ws_stream_mux::{handshake::AcceptConfig, CloseCode, Config, Connection, QmuxProtocols};

use self::example::forwarder::{echo_target, forward};
use super::{
    bulk::pattern,
    measure::{Sample, Stopwatch},
    Named,
};

/// Write size of the TCP client.
const WRITE: usize = 64 * 1024;

/// How the client's bytes reach the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// TCP straight to the target.
    Direct,
    /// Through the tunnel, speaking the @matrixai/ws protocol.
    TunnelWire,
    /// Through the tunnel, speaking QMux-02.
    TunnelQmux,
}

impl Path {
    pub const ALL: [Path; 3] = [Path::Direct, Path::TunnelWire, Path::TunnelQmux];

    pub fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct TCP to the target",
            Path::TunnelWire => "through the tunnel, ours @matrixai/ws",
            Path::TunnelQmux => "through the tunnel, ours QMux-02",
        }
    }
}

/// What the target does with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Reads everything and discards it: one direction.
    Sink,
    /// Sends everything back (the example's `echo_target`): both directions at once.
    Echo,
}

impl Named for (Path, Target) {
    fn label(self) -> String {
        let target = match self.1 {
            Target::Sink => "to a sink",
            Target::Echo => "echoed",
        };
        format!("tunnel: {target}, {}", self.0.name())
    }
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// A sink target for one connection: reads to the end, reports the count, then finishes.
async fn sink_target(listener: TcpListener, got: oneshot::Sender<u64>) {
    let (mut tcp, _) = listener.accept().await.expect("sink accept");
    tcp.set_nodelay(true).expect("nodelay");
    let mut buf = vec![0u8; WRITE];
    let mut total = 0u64;
    loop {
        match tcp.read(&mut buf).await.expect("sink read") {
            0 => break,
            n => total += n as u64,
        }
    }
    let _ = got.send(total);
    let _ = tcp.shutdown().await;
}

/// The tunnel server (structure of the example's `run_server` + `serve_tunnel`, without its
/// prints): one tunnel client, a TCP connection to `target` per stream, forwarded by the
/// example's `forward`.
async fn tunnel_server(listener: TcpListener, target: SocketAddr) {
    let (tcp, _) = listener.accept().await.expect("tunnel accept");
    // Offers QMux too: the tunnel client's offer decides.
    let accept = AcceptConfig::default().protocols(QmuxProtocols::default().subprotocols());
    let (conn, _) = ws_stream_mux::tokio::accept(tcp, &accept, Config::default())
        .await
        .expect("tunnel server handshake");
    while let Ok(stream) = conn.accept().await {
        tokio::spawn(async move {
            let tcp = TcpStream::connect(target)
                .await
                .expect("connect the target");
            tcp.set_nodelay(true).expect("nodelay");
            forward(tcp, stream).await
        });
    }
}

/// The tunnel client (structure of the example's `forward_listener`, without its prints): a
/// stream per accepted TCP connection, forwarded by the example's `forward`.
async fn tunnel_client(listener: TcpListener, conn: Connection) {
    loop {
        let (tcp, _) = listener.accept().await.expect("entry accept");
        let conn = conn.clone();
        tokio::spawn(async move {
            tcp.set_nodelay(true).expect("nodelay");
            let stream = conn.open().await.expect("open a stream");
            forward(tcp, stream).await
        });
    }
}

/// Where the client connects, and what to tear down after the round.
struct Setup {
    entry: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    conn: Option<Connection>,
    sunk: Option<oneshot::Receiver<u64>>,
}

async fn set_up(path: Path, target: Target) -> Setup {
    let (target_listener, target_addr) = bind().await;
    let mut tasks = Vec::new();
    let mut sunk = None;
    match target {
        Target::Sink => {
            let (tx, rx) = oneshot::channel();
            sunk = Some(rx);
            tasks.push(tokio::spawn(sink_target(target_listener, tx)));
        }
        Target::Echo => {
            // Nobody listens to how the echo connections end (the transfer checks the bytes).
            let (ends, _) = mpsc::unbounded();
            tasks.push(tokio::spawn(async move {
                echo_target(target_listener, ends)
                    .await
                    .expect("echo target");
            }));
        }
    }
    if path == Path::Direct {
        return Setup {
            entry: target_addr,
            tasks,
            conn: None,
            sunk,
        };
    }
    let (server_listener, server_addr) = bind().await;
    tasks.push(tokio::spawn(tunnel_server(server_listener, target_addr)));
    let url = format!("ws://{server_addr}/");
    let conn = match path {
        Path::TunnelQmux => {
            ws_stream_mux::tokio::connect_qmux(&url, &QmuxProtocols::default(), Config::default())
                .await
        }
        _ => ws_stream_mux::tokio::connect(&url, Config::default()).await,
    }
    .expect("tunnel client connect");
    let (entry_listener, entry) = bind().await;
    tasks.push(tokio::spawn(tunnel_client(entry_listener, conn.clone())));
    Setup {
        entry,
        tasks,
        conn: Some(conn),
        sunk,
    }
}

async fn write_all_then_fin(tcp: &mut tokio::net::tcp::OwnedWriteHalf, total: u64) {
    let chunk = pattern(WRITE);
    let mut left = total;
    while left > 0 {
        let n = left.min(WRITE as u64) as usize;
        tcp.write_all(&chunk[..n]).await.expect("client write");
        left -= n as u64;
    }
    tcp.shutdown().await.expect("client FIN");
}

/// Reads to the end; returns the count.
async fn read_to_end(tcp: &mut tokio::net::tcp::OwnedReadHalf) -> u64 {
    let mut buf = vec![0u8; WRITE];
    let mut total = 0u64;
    loop {
        match tcp.read(&mut buf).await.expect("client read") {
            0 => return total,
            n => total += n as u64,
        }
    }
}

/// One round: `total` bytes from one TCP client through `path` to `target`. Sink: timed until the
/// target has counted the last byte. Echo: the client writes while it reads the echo back, timed
/// until the echo's end. Run inside a tokio runtime.
pub async fn round(path: Path, target: Target, total: u64) -> Sample {
    let setup = set_up(path, target).await;
    let tcp = TcpStream::connect(setup.entry)
        .await
        .expect("client connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (mut from, mut to) = tcp.into_split();
    let clock = Stopwatch::start();
    let sample = match target {
        Target::Sink => {
            write_all_then_fin(&mut to, total).await;
            let got = setup.sunk.expect("a sink").await.expect("the sink's count");
            let sample = clock.stop();
            assert_eq!(got, total, "the sink got another count");
            // The target's FIN comes back through the tunnel: a clean end, nothing else.
            assert_eq!(read_to_end(&mut from).await, 0, "data back from a sink");
            sample
        }
        Target::Echo => {
            let writer = tokio::spawn(async move {
                write_all_then_fin(&mut to, total).await;
                to
            });
            let got = read_to_end(&mut from).await;
            let sample = clock.stop();
            assert_eq!(got, total, "the echo came back with another count");
            drop(writer.await.expect("client writer"));
            sample
        }
    };
    if let Some(conn) = setup.conn {
        conn.close(CloseCode::NORMAL, "")
            .await
            .expect("close the tunnel");
    }
    for task in setup.tasks {
        task.abort();
    }
    sample
}
