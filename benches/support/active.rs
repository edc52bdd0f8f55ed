//! One active stream among N idle ones: what idle streams cost the one that works.
//!
//! The client opens `idle` streams and writes one byte on each; the server spawns a task per
//! accepted stream that answers with one byte and then parks in `read()`; the client parks a task
//! in `read()` on each of its idle streams too. Once every idle stream was answered, one more
//! (active) stream does 64-byte request/response round trips and then a bulk echo. At the end the
//! connection closes and, with ours, every parked read must end (a read that returns data instead
//! is a failure, so is a task that never ends: the caller's safety net catches it). yamux leaves
//! reads parked on a closed connection pending, so its parked tasks are told to stop instead.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use futures::{
    channel::{mpsc, oneshot},
    future::{BoxFuture, Shared},
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt, Stream, StreamExt,
};
use ws_stream_mux::{
    async_tungstenite::WebSocketStream, websocket_config, CloseCode, Connection, Protocol, Side,
};

use super::{
    bulk::{mux_config, read_total, write_total},
    measure::{Sample, Stopwatch},
    net,
    runtime::Rt,
    yamux_mux, Named,
};

/// The first byte on a stream says what it is for.
const IDLE: u8 = 1;
const ACTIVE: u8 = 2;
/// Request and reply size of a round trip.
const SIZE: usize = 64;
const WARM_UP: usize = 100;
/// Write size of the bulk echo.
const WRITE: usize = 64 * 1024;

/// Tells parked tasks to stop waiting (completes when its sender is dropped).
type Stop = Shared<oneshot::Receiver<()>>;

/// Who carries the streams, on which runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// Ours on a tokio multi-threaded runtime, `run()` spawned on both ends.
    OursTokio,
    /// The same speaking QMux-02 (negotiated at the handshake, sockets built with
    /// `websocket_config`, as `ws_stream_mux::tokio::{accept, connect_qmux}` build them).
    OursQmuxTokio,
    /// Ours on async-std, `run()` spawned on both ends.
    OursAsyncStd,
    /// Ours on async-std without a driver: the tasks waiting on handles drive the connection.
    OursNoDriver,
    /// yamux 0.14 over ws_stream_tungstenite 0.15 (its driver spawned on async-std).
    Yamux,
}

impl Contender {
    pub const ALL: [Contender; 5] = [
        Contender::OursTokio,
        Contender::OursQmuxTokio,
        Contender::OursAsyncStd,
        Contender::OursNoDriver,
        Contender::Yamux,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Contender::OursTokio => "ours: tokio (2 workers), run() spawned",
            Contender::OursQmuxTokio => "ours QMux-02: tokio (2 workers), run() spawned",
            Contender::OursAsyncStd => "ours: async-std, run() spawned",
            Contender::OursNoDriver => "ours: async-std, no driver",
            Contender::Yamux => "yamux 0.14 over ws_stream_tungstenite (async-std)",
        }
    }

    /// The runtime the round must be run on.
    pub fn runtime(self) -> Rt {
        match self {
            Contender::OursTokio | Contender::OursQmuxTokio => Rt::Tokio,
            _ => Rt::AsyncStd,
        }
    }
}

impl Named for (Contender, usize) {
    fn label(self) -> String {
        format!("{}, {} idle", self.0.name(), self.1)
    }
}

/// What one round measured.
#[derive(Debug, Clone)]
pub struct Round {
    /// Opening the idle streams until each was answered (with its task parked).
    pub setup: Duration,
    /// Each round trip on the active stream.
    pub latencies: Vec<Duration>,
    /// The bulk echo on the active stream.
    pub bulk: Sample,
}

/// One round: `idle` idle streams, then `trips` round trips and a `bulk`-byte echo on one more.
/// Run it on `contender.runtime()`.
pub async fn round(contender: Contender, idle: usize, trips: usize, bulk: u64) -> Round {
    match contender {
        Contender::OursTokio => {
            let (c, s) = net::tokio_ws_pair().await;
            let ends = (c, s, Protocol::Wire);
            ours(Rt::Tokio, true, ends, idle, trips, bulk).await
        }
        Contender::OursQmuxTokio => {
            let ends = net::tokio_qmux_ws_pair(websocket_config(&mux_config(idle + 2))).await;
            ours(Rt::Tokio, true, ends, idle, trips, bulk).await
        }
        Contender::OursAsyncStd | Contender::OursNoDriver => {
            let (c, s) = net::ws_pair().await;
            let driver = contender == Contender::OursAsyncStd;
            let ends = (c, s, Protocol::Wire);
            ours(Rt::AsyncStd, driver, ends, idle, trips, bulk).await
        }
        Contender::Yamux => yamux(idle, trips, bulk).await,
    }
}

/// The client's and the server's socket, and the protocol their handshake negotiated.
type Ends<S> = (WebSocketStream<S>, WebSocketStream<S>, Protocol);

async fn ours<S>(
    rt: Rt,
    driver: bool,
    (c, s, protocol): Ends<S>,
    idle: usize,
    trips: usize,
    bulk: u64,
) -> Round
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let config = mux_config(idle + 2);
    let client = Connection::new(c, Side::Client, protocol, config.clone()).expect("valid config");
    let server = Connection::new(s, Side::Server, protocol, config).expect("valid config");
    let drivers: Vec<_> = if driver {
        vec![rt.spawn(client.run()), rt.spawn(server.run())]
    } else {
        Vec::new()
    };
    let watched = server.clone();
    let incoming = Box::pin(futures::stream::unfold(server, |server| async move {
        let stream = server.accept().await.expect("accept");
        Some((stream, server))
    }));
    let serving = rt.spawn(serve(rt, idle + 1, incoming, None));
    let established = establish(rt, idle, None, || async {
        client.open().await.expect("open")
    })
    .await;
    let (latencies, bulk) = exercise(
        established.active,
        |s| {
            let (send, recv) = s.into_split();
            (recv, send)
        },
        trips,
        bulk,
    )
    .await;

    // Without a driver (and without idle streams) no one else drives the server now that the
    // echo is done: a task waits for the connection to end meanwhile.
    let watching = rt.spawn(async move { watched.closed().await });
    client
        .close(CloseCode::NORMAL, "")
        .await
        .expect("close the connection");
    watching.await;
    futures::future::join_all(established.idle).await;
    let (incoming, served) = serving.await;
    futures::future::join_all(served).await;
    drop(incoming);
    for result in futures::future::join_all(drivers).await {
        if let Err(err) = result {
            eprintln!("  note: run() ended with {err} after a clean close");
        }
    }
    Round {
        setup: established.setup,
        latencies,
        bulk,
    }
}

async fn yamux(idle: usize, trips: usize, bulk: u64) -> Round {
    let rt = Rt::AsyncStd;
    let (client, server) = yamux_mux::pair((idle + 2).max(512)).await;
    let incoming = Box::pin(futures::stream::unfold(server, |mut server| async move {
        let stream = server.accept().await;
        Some((stream, server))
    }));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let stop = stop_rx.shared();
    let serving = rt.spawn(serve(rt, idle + 1, incoming, Some(stop.clone())));
    let established = establish(rt, idle, Some(stop), || client.open()).await;
    let (latencies, bulk) = exercise(established.active, AsyncReadExt::split, trips, bulk).await;

    // The parked tasks stop and drop their streams; dropping the handle closes the connection.
    drop(stop_tx);
    futures::future::join_all(established.idle).await;
    drop(client);
    let (incoming, served) = serving.await;
    futures::future::join_all(served).await;
    drop(incoming);
    Round {
        setup: established.setup,
        latencies,
        bulk,
    }
}

/// The server: a task per accepted stream. Returns the source of streams (it may own the
/// connection) and the tasks.
async fn serve<S, I>(
    rt: Rt,
    count: usize,
    mut incoming: I,
    stop: Option<Stop>,
) -> (I, Vec<BoxFuture<'static, ()>>)
where
    I: Stream<Item = S> + Unpin,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let stream = incoming.next().await.expect("incoming streams ended");
        tasks.push(rt.spawn(serve_stream(stream, stop.clone())));
    }
    (incoming, tasks)
}

async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, stop: Option<Stop>) {
    let mut kind = [0u8; 1];
    s.read_exact(&mut kind).await.expect("first byte");
    match kind[0] {
        IDLE => {
            // The answer also acknowledges the stream (yamux stalls an opener at 256
            // unacknowledged streams).
            s.write_all(&[IDLE]).await.expect("idle answer");
            s.flush().await.expect("idle answer flush");
            park(&mut s, stop).await;
        }
        ACTIVE => echo(&mut s).await,
        other => panic!("unknown stream kind {other}"),
    }
}

/// A task parked in `read()` until the connection ends (or until told to stop).
async fn park<S: AsyncRead + Unpin>(s: &mut S, stop: Option<Stop>) {
    let mut b = [0u8; 1];
    let read = s.read(&mut b);
    let outcome = match stop {
        None => Some(read.await),
        Some(stop) => match futures::future::select(read, stop).await {
            futures::future::Either::Left((outcome, _)) => Some(outcome),
            futures::future::Either::Right(_) => None,
        },
    };
    if let Some(Ok(n)) = outcome {
        assert_eq!(n, 0, "an idle stream received data");
    }
}

/// Echoes what arrives, flushing each write, until the end of the stream; then finishes.
pub async fn echo<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                s.write_all(&buf[..n]).await.expect("echo write");
                s.flush().await.expect("echo flush");
            }
            Err(err) => panic!("echo read: {err}"),
        }
    }
    let _ = s.close().await;
}

/// `count` 64-byte round trips (after a warm-up), each timed on its own.
pub async fn round_trips_on<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    count: usize,
) -> Vec<Duration> {
    let request = [7u8; SIZE];
    let mut reply = [0u8; SIZE];
    let mut latencies = Vec::with_capacity(count);
    for i in 0..WARM_UP + count {
        let start = Instant::now();
        s.write_all(&request).await.expect("rtt write");
        s.flush().await.expect("rtt flush");
        s.read_exact(&mut reply).await.expect("rtt read");
        if i >= WARM_UP {
            latencies.push(start.elapsed());
        }
    }
    assert_eq!(reply, request, "echo mismatch");
    latencies
}

struct Established<S> {
    /// The client's parked tasks.
    idle: Vec<BoxFuture<'static, ()>>,
    active: S,
    setup: Duration,
}

/// Opens `idle` streams, each with a task that waits for the server's answer and parks, then the
/// active stream once all were answered.
async fn establish<S, F, Fut>(
    rt: Rt,
    idle: usize,
    stop: Option<Stop>,
    mut open: F,
) -> Established<S>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let start = Instant::now();
    let (ready_tx, ready_rx) = mpsc::unbounded::<()>();
    let mut tasks = Vec::with_capacity(idle);
    for _ in 0..idle {
        let mut s = open().await;
        s.write_all(&[IDLE]).await.expect("idle write");
        s.flush().await.expect("idle flush");
        let ready = ready_tx.clone();
        let stop = stop.clone();
        tasks.push(rt.spawn(async move {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.expect("idle stream: the answer");
            let _ = ready.unbounded_send(());
            park(&mut s, stop).await;
        }));
    }
    drop(ready_tx);
    let answered = ready_rx.take(idle).count().await;
    assert_eq!(
        answered, idle,
        "idle streams: a task ended before its answer"
    );
    let setup = start.elapsed();
    let mut active = open().await;
    active.write_all(&[ACTIVE]).await.expect("active write");
    active.flush().await.expect("active flush");
    Established {
        idle: tasks,
        active,
        setup,
    }
}

/// Round trips on the active stream, then the bulk echo: the client writes `bulk` bytes in 64 KiB
/// writes while it reads the echo; timed until the last byte came back.
async fn exercise<S, R, W>(
    mut active: S,
    split: impl FnOnce(S) -> (R, W),
    trips: usize,
    bulk: u64,
) -> (Vec<Duration>, Sample)
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let latencies = round_trips_on(&mut active, trips).await;
    let (mut r, mut w) = split(active);
    let clock = Stopwatch::start();
    futures::join!(write_total(&mut w, bulk, WRITE), read_total(&mut r, bulk));
    let sample = clock.stop();
    w.close().await.expect("finish the active stream");
    let mut rest = [0u8; 1];
    let n = r.read(&mut rest).await.expect("active stream: the end");
    assert_eq!(n, 0, "active stream: data after the echo");
    (latencies, sample)
}
