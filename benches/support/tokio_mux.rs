//! Multiplexers under tokio (a multi-threaded runtime; run inside it): ours speaking the
//! @matrixai/ws protocol and ours speaking QMux-02, each with `run()` spawned on both ends and
//! driven by its handles only, and qmux. The workloads are the async-std sections' (bulk, many
//! streams at once, round trips, stream opens), written once for tokio's `spawn`.
//!
//! Ours speaking QMux with `run()` spawned is made the way an application makes it:
//! `ws_stream_mux::tokio::accept` (offering `QmuxProtocols::default().subprotocols()`) and
//! `ws_stream_mux::tokio::connect_qmux`, which set TCP_NODELAY, build the socket with
//! `websocket_config(&config)` and spawn `run()`. Without a driver: the same handshake
//! (`net::tokio_qmux_ws_pair`) and `Connection::new(.., Protocol::Qmux(V02), ..)`. Ours speaking
//! @matrixai/ws keeps this table's earlier set-up: a plain async-tungstenite handshake with its
//! default `WebSocketConfig` (`net::tokio_ws_pair`), TCP_NODELAY too.

use std::time::Duration;

use futures::{future::BoxFuture, AsyncWriteExt};
use ws_stream_mux::{
    handshake::AcceptConfig, websocket_config, CloseCode, Config, Connection, Error, Protocol,
    QmuxProtocols, QmuxVersion, Side,
};

use super::{
    active::{echo, round_trips_on},
    bulk::{mux_config, read_total, write_total},
    measure::{Sample, Stopwatch},
    net, qmux_mux,
    runtime::Rt,
    streams::{client_cycle, server_cycle},
    Named,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// Ours, @matrixai/ws protocol: one WsStream per stream, `run()` spawned on both ends.
    OursDriven,
    /// The same without a driver: the tasks waiting on handles drive the connection.
    OursNoDriver,
    /// Ours, QMux-02: the tokio helpers (`accept`, `connect_qmux`), `run()` spawned by them.
    OursQmuxDriven,
    /// Ours, QMux-02, without a driver.
    OursQmuxNoDriver,
    QMux,
}

impl Contender {
    pub const ALL: [Contender; 5] = [
        Contender::OursDriven,
        Contender::OursNoDriver,
        Contender::OursQmuxDriven,
        Contender::OursQmuxNoDriver,
        Contender::QMux,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Contender::OursDriven => "ours @matrixai/ws, run() spawned",
            Contender::OursNoDriver => "ours @matrixai/ws, no driver",
            Contender::OursQmuxDriven => "ours QMux-02, run() spawned",
            Contender::OursQmuxNoDriver => "ours QMux-02, no driver",
            Contender::QMux => "qmux 0.6.6 (QMux-02)",
        }
    }

    /// A short name, for ratio columns.
    pub fn short(self) -> &'static str {
        match self {
            Contender::OursDriven => "wire run()",
            Contender::OursNoDriver => "wire no driver",
            Contender::OursQmuxDriven => "QMux run()",
            Contender::OursQmuxNoDriver => "QMux no driver",
            Contender::QMux => "qmux",
        }
    }

    /// Ours: whether `run()` is spawned, and which protocol.
    fn ours(self) -> Option<(bool, Protocol)> {
        const QMUX: Protocol = Protocol::Qmux(QmuxVersion::V02);
        match self {
            Contender::OursDriven => Some((true, Protocol::Wire)),
            Contender::OursNoDriver => Some((false, Protocol::Wire)),
            Contender::OursQmuxDriven => Some((true, QMUX)),
            Contender::OursQmuxNoDriver => Some((false, QMUX)),
            Contender::QMux => None,
        }
    }
}

impl Named for Contender {
    fn label(self) -> String {
        format!("tokio, {}", self.name())
    }
}

/// A connected pair of ours, with their drivers when asked for.
struct Pair {
    client: Connection,
    server: Connection,
    /// The drivers we spawned (the tokio helpers spawn their own: not awaited here).
    drivers: Vec<BoxFuture<'static, Result<(), Error>>>,
}

impl Pair {
    async fn new(contender: Contender, config: Config) -> Self {
        let (driver, protocol) = contender.ours().expect("ours");
        if driver && protocol != Protocol::Wire {
            return Self::from_helpers(config).await;
        }
        let (client, server) = match protocol {
            Protocol::Wire => {
                let (c, s) = net::tokio_ws_pair().await;
                (
                    Connection::client(c, config.clone()).expect("valid config"),
                    Connection::server(s, config).expect("valid config"),
                )
            }
            _ => {
                let (c, s, chosen) = net::tokio_qmux_ws_pair(websocket_config(&config)).await;
                assert_eq!(chosen, protocol);
                (
                    Connection::new(c, Side::Client, chosen, config.clone()).expect("valid config"),
                    Connection::new(s, Side::Server, chosen, config).expect("valid config"),
                )
            }
        };
        let drivers = if driver {
            vec![Rt::Tokio.spawn(client.run()), Rt::Tokio.spawn(server.run())]
        } else {
            Vec::new()
        };
        Self {
            client,
            server,
            drivers,
        }
    }

    /// QMux the way an application gets it: `tokio::accept` offering the QMux subprotocols,
    /// `tokio::connect_qmux`; both set TCP_NODELAY and spawn `run()`.
    async fn from_helpers(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server_config = config.clone();
        let accepting = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let accept = AcceptConfig::default().protocols(QmuxProtocols::default().subprotocols());
            ws_stream_mux::tokio::accept(tcp, &accept, server_config)
                .await
                .expect("server handshake")
                .0
        });
        let client = ws_stream_mux::tokio::connect_qmux(
            &format!("ws://{addr}/"),
            &QmuxProtocols::default(),
            config,
        )
        .await
        .expect("connect_qmux");
        let server = accepting.await.expect("accept task");
        let qmux = Protocol::Qmux(QmuxVersion::V02);
        assert_eq!((client.protocol(), server.protocol()), (qmux, qmux));
        Self {
            client,
            server,
            drivers: Vec::new(),
        }
    }

    /// Closes the connection (not timed) and waits for the drivers to end.
    async fn close(self) {
        // Without a driver the server is driven by no one once its tasks are done: a task waits
        // for the connection to end meanwhile.
        let server = self.server.clone();
        let watching = Rt::Tokio.spawn(async move { server.closed().await });
        self.client
            .close(CloseCode::NORMAL, "")
            .await
            .expect("close the connection");
        watching.await;
        for result in futures::future::join_all(self.drivers).await {
            if let Err(err) = result {
                eprintln!("  note: run() ended with {err} after a clean close");
            }
        }
    }
}

/// Bulk in one direction on one stream.
pub async fn bulk(contender: Contender, total: u64, write_size: usize) -> Sample {
    if contender == Contender::QMux {
        return qmux_mux::bulk(total, write_size).await;
    }
    let pair = Pair::new(contender, Config::default()).await;
    // The server waits in `accept` before the client opens: without a driver, a QMux `open` waits
    // for the peer's transport parameters, which only a task on the peer's connection sends.
    let accepting = pair.server.clone();
    let reader = Rt::Tokio.spawn(async move {
        let mut r = accepting.accept().await.expect("accept");
        read_total(&mut r, total).await;
        r
    });
    let mut w = pair.client.open().await.expect("open");
    let clock = Stopwatch::start();
    write_total(&mut w, total, write_size).await;
    let r = reader.await;
    let sample = clock.stop();
    w.close().await.expect("finish");
    drop((w, r));
    pair.close().await;
    sample
}

/// `streams` streams each moving `per_stream` bytes in 64 KiB writes at once.
pub async fn many(contender: Contender, streams: usize, per_stream: u64) -> Sample {
    const WRITE: usize = 64 * 1024;
    if contender == Contender::QMux {
        return qmux_mux::many(streams, per_stream).await;
    }
    let pair = Pair::new(contender, Config::default()).await;
    let clock = Stopwatch::start();
    let accepting = pair.server.clone();
    let readers = Rt::Tokio.spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let mut stream = accepting.accept().await.expect("accept");
            tasks.push(Rt::Tokio.spawn(async move {
                read_total(&mut stream, per_stream).await;
                stream
            }));
        }
        futures::future::join_all(tasks).await
    });
    let mut writers = Vec::new();
    for _ in 0..streams {
        let mut stream = pair.client.open().await.expect("open");
        writers.push(Rt::Tokio.spawn(async move {
            write_total(&mut stream, per_stream, WRITE).await;
            stream
        }));
    }
    let written = futures::future::join_all(writers).await;
    let read = readers.await;
    let sample = clock.stop();
    drop((written, read));
    pair.close().await;
    sample
}

/// Latencies of `count` 64-byte round trips on one stream.
pub async fn round_trips(contender: Contender, count: usize) -> Vec<Duration> {
    if contender == Contender::QMux {
        return qmux_mux::round_trips(count).await;
    }
    let pair = Pair::new(contender, Config::default()).await;
    // Accepting first (see `bulk`).
    let accepting = pair.server.clone();
    let echoing = Rt::Tokio.spawn(async move {
        let mut s = accepting.accept().await.expect("accept");
        echo(&mut s).await;
    });
    let mut stream = pair.client.open().await.expect("open");
    let latencies = round_trips_on(&mut stream, count).await;
    stream.close().await.expect("finish");
    echoing.await;
    drop(stream);
    pair.close().await;
    latencies
}

/// `count` streams, one after the other: open, 1-byte echo, close (both ways).
pub async fn opens(contender: Contender, count: usize) -> Sample {
    if contender == Contender::QMux {
        return qmux_mux::opens(count).await;
    }
    let pair = Pair::new(contender, mux_config(0)).await;
    let accepting = pair.server.clone();
    let echoing = Rt::Tokio.spawn(async move {
        for _ in 0..count {
            server_cycle(accepting.accept().await.expect("accept")).await;
        }
    });
    let clock = Stopwatch::start();
    for _ in 0..count {
        client_cycle(pair.client.open().await.expect("open")).await;
    }
    echoing.await;
    let sample = clock.stop();
    pair.close().await;
    sample
}

/// The same cycle, `parallel` client tasks at a time; the server spawns a task per stream.
pub async fn opens_parallel(contender: Contender, count: usize, parallel: usize) -> Sample {
    if contender == Contender::QMux {
        return qmux_mux::opens_parallel(count, parallel).await;
    }
    let per_task = count / parallel;
    let count = per_task * parallel;
    let pair = Pair::new(contender, mux_config(0)).await;
    let accepting = pair.server.clone();
    let echoing = Rt::Tokio.spawn(async move {
        let mut handlers = Vec::with_capacity(count);
        for _ in 0..count {
            let stream = accepting.accept().await.expect("accept");
            handlers.push(Rt::Tokio.spawn(server_cycle(stream)));
        }
        futures::future::join_all(handlers).await;
    });
    let clock = Stopwatch::start();
    let clients: Vec<_> = (0..parallel)
        .map(|_| {
            let client = pair.client.clone();
            Rt::Tokio.spawn(async move {
                for _ in 0..per_task {
                    client_cycle(client.open().await.expect("open")).await;
                }
            })
        })
        .collect();
    futures::future::join_all(clients).await;
    echoing.await;
    let sample = clock.stop();
    pair.close().await;
    sample
}
