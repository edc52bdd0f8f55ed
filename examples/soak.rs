//! Soak: the crate under sustained load and misbehaving peers, in one process, for minutes.
//!
//! ```text
//! cargo run --release --example soak -- --minutes 30 --connections 50
//! ```
//!
//! Options: `--minutes N` (default 1), `--connections C` (default 50), `--seed S` (default 1).
//!
//! A server on 127.0.0.1 — the checked handshake, a spawned driver per connection, an echo task
//! per stream — and `C` client slots, each playing one role for the whole run, one session after
//! another on a fresh connection each time:
//!
//! | role | what it does | what the server should see |
//! |---|---|---|
//! | well-behaved | rounds of 8 streams echoing 1 B–256 KiB each, compared byte for byte; close 1000 | clean streams, close 1000 |
//! | slow reader | the same, reading the echo 4 KiB at a time with pauses | writes waiting for credit, then clean |
//! | resetter | writes part of a request, then resets the stream with 4001 | reads fail with `Reset(4001)` |
//! | stopper | stops reading the echo with 4002 | writes fail with `Stopped(4002)` |
//! | dropper | cuts TCP in the middle of its transfers | every operation fails with 1006 |
//! | ping flooder | raw async-tungstenite: pings as fast as TCP takes them, never reads | closed with 1008 |
//! | never reads | opens streams and writes, never reads the echo, drops them after a while | writes wait for credit, then `Stopped(0)` |
//!
//! Every minute a report: bytes moved and verified, errors by kind (the typed [`Error`], grouped
//! by who saw it), resident memory (`/proc/self/statm`), the server's open streams and
//! connections. At the end a summary. The exit code is 1 if a byte was lost or corrupted, an
//! operation of a well-behaved peer (or a slow reader: slowness is no fault) failed, an operation
//! hung, or the server still holds connections or streams once every client is gone.
//!
//! It is also a worked example of running the crate under load: build sockets with
//! [`websocket_config`], accept with [`handshake::accept`], spawn [`Connection::run`] for every
//! connection, give every stream its own task, and treat each error by its kind.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    net::{Shutdown, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use async_std::{
    net::{TcpListener, TcpStream},
    task,
};
use async_tungstenite::tungstenite::Message;
use futures::{AsyncReadExt, AsyncWriteExt};
use ws_stream_mux::{
    handshake::{self, AcceptConfig},
    websocket_config, CloseCode, Config, Connection, Error, ErrorCode, WsStream,
};

/// Streams a well-behaved session opens at once, and how many such rounds it runs before it
/// closes the connection.
const STREAMS: usize = 8;
const ROUNDS: usize = 4;
/// The largest payload one stream echoes.
const MAX_PAYLOAD: usize = 256 * 1024;
/// How long any single operation may take before the run calls it a hang. Every deadline of the
/// configurations below is far shorter.
const HANG: Duration = Duration::from_secs(60);
/// How long a peer that never reads holds its streams.
const HOLD: Duration = Duration::from_secs(3);
/// How long a ping flooder floods at most, and then stays connected without reading: longer
/// than the server's reply timeout and close timeout together, so that the server is the one that
/// ends the connection.
const FLOOD: Duration = Duration::from_secs(15);
const FLOOD_HOLD: Duration = Duration::from_secs(12);

#[async_std::main]
async fn main() {
    let args = Args::parse();
    let tally = Arc::new(Tally::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    println!(
        "soak: {} minute(s), {} connections, seed {}, server on ws://{addr}/",
        args.minutes, args.connections, args.seed
    );
    task::spawn(serve(listener, Arc::clone(&tally)));

    let started = Instant::now();
    let deadline = started + Duration::from_secs(60 * args.minutes);
    let slots: Vec<_> = (0..args.connections)
        .map(|slot| {
            let role = Role::for_slot(slot);
            let seed = args.seed.wrapping_mul(1_000_003).wrapping_add(slot as u64);
            task::spawn(run_slot(role, addr, seed, deadline, Arc::clone(&tally)))
        })
        .collect();

    let mut samples = Vec::new();
    for minute in 1..=args.minutes {
        task::sleep(
            (started + Duration::from_secs(60 * minute)).saturating_duration_since(Instant::now()),
        )
        .await;
        let snapshot = tally.snapshot();
        println!("\n== minute {minute}/{} ==", args.minutes);
        snapshot.print();
        samples.push(snapshot.rss);
    }

    // The clients finish the session they are in; none starts another.
    for slot in slots {
        if async_std::future::timeout(HANG * 2, slot).await.is_err() {
            tally.fail("a client slot is still running after its last session (hang)".into());
        }
    }
    // Every client is gone: the server's connections end (EOF, or their close) and with them
    // their echo tasks.
    // (Polled: this is a report of what the server holds, not a test's synchronisation.)
    let drained = Instant::now();
    while !tally.server_idle() && drained.elapsed() < HANG {
        task::sleep(Duration::from_millis(100)).await;
    }
    let end = tally.snapshot();
    println!(
        "\n== summary after {:.1} minutes ==",
        started.elapsed().as_secs_f64() / 60.0
    );
    end.print();
    let memory_flat = report_memory(&samples);
    if !tally.server_idle() {
        tally.fail(format!(
            "the server still holds {} connection(s) and {} echo task(s) after every client ended",
            end.connections, end.echo_tasks
        ));
    }
    let failures = tally.failures.lock().expect("tally").clone();
    if failures.is_empty() {
        println!("verdict: PASS — no byte lost or corrupted, no well-behaved operation failed");
        if !memory_flat {
            println!("         (but see the memory note above)");
        }
    } else {
        println!("verdict: FAIL — {} failure(s):", failures.len());
        for failure in failures.iter().take(20) {
            println!("  {failure}");
        }
        std::process::exit(1);
    }
}

// ----- the server -----

/// The server's settings: the defaults, with deadlines short enough that misbehaving peers are
/// dealt with within seconds: keep-alive pings, an idle timeout, 5 s for a peer that leaves our
/// replies unread (the ping flooder) and for closing handshakes.
fn server_config() -> Config {
    Config::default()
        .keep_alive_interval(Some(Duration::from_secs(5)))
        .idle_timeout(Some(Duration::from_secs(20)))
        .reply_timeout(Some(Duration::from_secs(5)))
        .close_timeout(Some(Duration::from_secs(5)))
}

async fn serve(listener: TcpListener, tally: Arc<Tally>) {
    let config = server_config();
    // The socket is built with our limits: a message over them is refused while it arrives.
    let accept_config = AcceptConfig::default().websocket(websocket_config(&config));
    let mut next_id = 0u64;
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tally.count("server accept", &Error::from(err));
                continue;
            }
        };
        next_id += 1;
        let (id, config, accept_config, tally) = (
            next_id,
            config.clone(),
            accept_config.clone(),
            Arc::clone(&tally),
        );
        // A task per connection, so that a slow handshake holds up nobody else.
        task::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let ws = match handshake::accept(tcp, &accept_config).await {
                Ok((ws, _request)) => ws,
                Err(err) => return tally.count("server handshake", &Error::from(err)),
            };
            let conn = Connection::server(ws, config).expect("valid config");
            task::spawn(conn.run());
            tally
                .connections
                .lock()
                .expect("tally")
                .insert(id, conn.clone());
            let end = loop {
                match conn.accept().await {
                    Ok(stream) => {
                        task::spawn(echo(stream, Arc::clone(&tally)));
                    }
                    Err(end) => break end,
                }
            };
            tally.count("server connection ended", &end);
            tally.connections.lock().expect("tally").remove(&id);
        });
    }
}

/// Echoes one stream to its end: its own task, so that a stream waiting for credit holds up no
/// other. Every way it can end is counted by kind.
async fn echo(stream: WsStream, tally: Arc<Tally>) {
    tally.echo_tasks.fetch_add(1, Ordering::SeqCst);
    let (mut send, recv) = stream.into_split();
    let copied = futures::io::copy(recv, &mut send).await;
    let outcome = match copied {
        Ok(_) => send.close().await,
        Err(err) => Err(err),
    };
    if let Err(err) = outcome {
        tally.count("server stream", &Error::from(err));
    }
    tally.echo_tasks.fetch_sub(1, Ordering::SeqCst);
}

// ----- the clients -----

/// What a client slot does, session after session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    WellBehaved,
    SlowReader,
    Resetter,
    Stopper,
    Dropper,
    PingFlooder,
    NeverReads,
}

impl Role {
    /// The mix: half the slots well-behaved, the rest spread over the other roles.
    const MIX: [Role; 14] = [
        Role::WellBehaved,
        Role::SlowReader,
        Role::WellBehaved,
        Role::Resetter,
        Role::WellBehaved,
        Role::Stopper,
        Role::WellBehaved,
        Role::Dropper,
        Role::WellBehaved,
        Role::NeverReads,
        Role::WellBehaved,
        Role::PingFlooder,
        Role::WellBehaved,
        Role::SlowReader,
    ];

    fn for_slot(slot: usize) -> Role {
        Role::MIX[slot % Role::MIX.len()]
    }

    fn name(self) -> &'static str {
        match self {
            Role::WellBehaved => "well-behaved",
            Role::SlowReader => "slow reader",
            Role::Resetter => "resetter",
            Role::Stopper => "stopper",
            Role::Dropper => "dropper",
            Role::PingFlooder => "ping flooder",
            Role::NeverReads => "never reads",
        }
    }

    /// Whether every operation of this role must succeed: slowness is no fault.
    fn must_succeed(self) -> bool {
        matches!(self, Role::WellBehaved | Role::SlowReader)
    }
}

async fn run_slot(role: Role, addr: SocketAddr, seed: u64, deadline: Instant, tally: Arc<Tally>) {
    let mut rng = Rng(seed | 1);
    while Instant::now() < deadline {
        let peer = Peer {
            role,
            addr,
            tally: Arc::clone(&tally),
        };
        match role {
            Role::WellBehaved => peer.echo_session(&mut rng, None).await,
            Role::SlowReader => {
                peer.echo_session(&mut rng, Some(Duration::from_millis(2)))
                    .await
            }
            Role::Resetter => peer.reset_session(&mut rng).await,
            Role::Stopper => peer.stop_session(&mut rng).await,
            Role::Dropper => peer.drop_session(&mut rng).await,
            Role::PingFlooder => peer.flood_session().await,
            Role::NeverReads => peer.never_read_session(&mut rng).await,
        }
        *tally
            .sessions
            .lock()
            .expect("tally")
            .entry(role.name())
            .or_default() += 1;
    }
}

/// One client session of a role.
struct Peer {
    role: Role,
    addr: SocketAddr,
    tally: Arc<Tally>,
}

/// How one operation of a client went wrong.
enum Failure {
    /// The operation failed with this error.
    Op(&'static str, Error),
    /// The echo differed from what was sent at this offset.
    Corrupt { offset: u64 },
    /// The echo ended early, cleanly: bytes lost without an error.
    Lost { expected: u64, got: u64 },
}

impl Peer {
    /// Records what happened to one operation: the kind of error for any role, and a failure of
    /// the run if the role's operations must succeed or bytes were lost or corrupted.
    fn record(&self, what: &str, outcome: Result<(), Failure>) {
        let who = self.role.name();
        match outcome {
            Ok(()) => {}
            Err(Failure::Op(op, err)) => {
                self.tally.count(&format!("{who} {op}"), &err);
                if self.role.must_succeed() {
                    self.tally
                        .fail(format!("{who}: {what}: {op} failed: {err}"));
                }
            }
            Err(Failure::Corrupt { offset }) => self
                .tally
                .fail(format!("{who}: {what}: the echo differs at byte {offset}")),
            Err(Failure::Lost { expected, got }) => self.tally.fail(format!(
                "{who}: {what}: the echo ended cleanly after {got} of {expected} bytes"
            )),
        }
    }

    /// Runs `op`, calling it a hang if it takes longer than [`HANG`].
    async fn bounded<T>(&self, what: &str, op: impl Future<Output = T>) -> Option<T> {
        match async_std::future::timeout(HANG, op).await {
            Ok(value) => Some(value),
            Err(_) => {
                let who = self.role.name();
                self.tally
                    .fail(format!("{who}: {what} still pending after {HANG:?} (hang)"));
                None
            }
        }
    }

    /// A multiplexed client connection, its socket built with our limits, its driver spawned —
    /// the async-std recipe of the README. Also returns the TCP stream, for the dropper.
    async fn connect(&self) -> Result<(Connection, TcpStream), Failure> {
        let config = Config::default();
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|err| Failure::Op("connect", err.into()))?;
        tcp.set_nodelay(true)
            .map_err(|err| Failure::Op("connect", err.into()))?;
        let (ws, _response) = async_tungstenite::client_async_with_config(
            format!("ws://{}/", self.addr),
            tcp.clone(),
            Some(websocket_config(&config)),
        )
        .await
        .map_err(|err| Failure::Op("handshake", handshake::HandshakeError::from(err).into()))?;
        let conn = Connection::client(ws, config).expect("valid config");
        task::spawn(conn.run());
        Ok((conn, tcp))
    }

    /// Connects, or records why not.
    async fn connected(&self) -> Option<(Connection, TcpStream)> {
        match self.bounded("connect", self.connect()).await? {
            Ok(connected) => Some(connected),
            Err(failure) => {
                self.record("session", Err(failure));
                None
            }
        }
    }

    /// Closes with 1000 and records the outcome.
    async fn close(&self, conn: &Connection) {
        if let Some(closed) = self
            .bounded("close", conn.close(CloseCode::NORMAL, "done"))
            .await
        {
            self.record("session", closed.map_err(|err| Failure::Op("close", err)));
        }
    }

    /// Well-behaved (and slow reader): rounds of streams echoing checked payloads.
    async fn echo_session(&self, rng: &mut Rng, pause: Option<Duration>) {
        let Some((conn, _tcp)) = self.connected().await else {
            return;
        };
        let conn = &conn;
        for _ in 0..ROUNDS {
            let echoes = (0..STREAMS).map(|_| {
                let (seed, len) = (rng.next(), rng.below(MAX_PAYLOAD) + 1);
                async move {
                    let outcome = self
                        .bounded("echo", echo_once(conn, seed, len, pause, &self.tally))
                        .await;
                    if let Some(outcome) = outcome {
                        if outcome.is_ok() {
                            self.tally.verified.fetch_add(len as u64, Ordering::Relaxed);
                        }
                        self.record("echo", outcome);
                    }
                }
            });
            futures::future::join_all(echoes).await;
        }
        self.close(conn).await;
    }

    /// Writes part of a request on each stream, then resets it: the server's reads fail with
    /// 4001. What it echoed before that comes back, then the end of its stream.
    async fn reset_session(&self, rng: &mut Rng) {
        let Some((conn, _tcp)) = self.connected().await else {
            return;
        };
        for _ in 0..4 {
            let outcome = self.bounded("reset", async {
                let mut stream = conn.open().await.map_err(|err| Failure::Op("open", err))?;
                let request = payload(rng.next(), 32 * 1024);
                stream
                    .write_all(&request)
                    .await
                    .map_err(|err| Failure::Op("write", err.into()))?;
                stream
                    .reset(ErrorCode(4001))
                    .map_err(|err| Failure::Op("reset", err))?;
                let mut echoed = Vec::new();
                stream
                    .read_to_end(&mut echoed)
                    .await
                    .map_err(|err| Failure::Op("read", err.into()))?;
                // The echo is a prefix of the request: whatever arrived before the reset.
                match echoed.iter().zip(&request).position(|(a, b)| a != b) {
                    Some(offset) => Err(Failure::Corrupt {
                        offset: offset as u64,
                    }),
                    None if echoed.len() > request.len() => Err(Failure::Corrupt {
                        offset: request.len() as u64,
                    }),
                    None => Ok(()),
                }
            });
            if let Some(outcome) = outcome.await {
                self.record("reset", outcome);
            }
        }
        self.close(&conn).await;
    }

    /// Reads the first KiB of each echo, then stops reading with 4002: the server's writes fail
    /// with it, and its dropped reader stops our writes in turn (code 0).
    async fn stop_session(&self, rng: &mut Rng) {
        let Some((conn, _tcp)) = self.connected().await else {
            return;
        };
        for _ in 0..4 {
            let outcome = self.bounded("stop", async {
                let stream = conn.open().await.map_err(|err| Failure::Op("open", err))?;
                let (mut send, mut recv) = stream.into_split();
                let request = payload(rng.next(), MAX_PAYLOAD);
                let write = async {
                    send.write_all(&request).await?;
                    send.close().await
                };
                let read = async {
                    let mut first = vec![0u8; 1024];
                    recv.read_exact(&mut first)
                        .await
                        .map_err(|err| Failure::Op("read", err.into()))?;
                    if first[..] != request[..1024] {
                        return Err(Failure::Corrupt { offset: 0 });
                    }
                    recv.stop(ErrorCode(4002))
                        .map_err(|err| Failure::Op("stop", err))
                };
                let (written, read) = futures::join!(write, read);
                read?;
                // Our writes may all have left before the stop came back, or fail with it.
                written.map_err(|err| Failure::Op("write", err.into()))
            });
            if let Some(outcome) = outcome.await {
                self.record("stop", outcome);
            }
        }
        self.close(&conn).await;
    }

    /// Starts echoes on several streams, cuts TCP once the first 64 KiB came back, and checks
    /// that every operation then fails in band (never a silent end of stream).
    async fn drop_session(&self, rng: &mut Rng) {
        let Some((conn, tcp)) = self.connected().await else {
            return;
        };
        let (cut, cut_rx) = futures::channel::oneshot::channel::<()>();
        let mut cut = Some(cut);
        let streams = (0..4).map(|_| (rng.next(), MAX_PAYLOAD));
        let mut echoes = Vec::new();
        for (i, (seed, len)) in streams.enumerate() {
            // The first stream says when to cut; the others are mid-transfer by then.
            let on_progress = if i == 0 { cut.take() } else { None };
            echoes.push(echo_until_cut(&conn, seed, len, on_progress, &self.tally));
        }
        let cutter = async {
            if cut_rx.await.is_ok() {
                let _ = tcp.shutdown(Shutdown::Both);
            }
        };
        let Some((outcomes, ())) = self
            .bounded(
                "dropped echoes",
                futures::future::join(futures::future::join_all(echoes), cutter),
            )
            .await
        else {
            return;
        };
        for outcome in outcomes {
            self.record("echo cut short", outcome);
        }
        // Later operations fail the same way.
        if let Some(opened) = self.bounded("open after the cut", conn.open()).await {
            self.record(
                "open after the cut",
                opened.map(drop).map_err(|err| Failure::Op("open", err)),
            );
        }
    }

    /// A raw WebSocket that sends pings as fast as TCP takes them and never reads: our pongs
    /// pile up unread, the server stops reading and closes with 1008 after its reply timeout.
    async fn flood_session(&self) {
        let Ok(tcp) = TcpStream::connect(self.addr).await else {
            return self.tally.fail("ping flooder: connect failed".into());
        };
        let (ws, _) =
            match async_tungstenite::client_async(format!("ws://{}/", self.addr), tcp).await {
                Ok(connected) => connected,
                Err(err) => {
                    return self.tally.count(
                        "ping flooder handshake",
                        &handshake::HandshakeError::from(err).into(),
                    )
                }
            };
        // The largest payload a ping may carry: each pong we leave unread fills our TCP receive
        // buffer fast, so the server soon has pongs it cannot send.
        const PING: [u8; 125] = [0; 125];
        let (mut sink, _never_read) = ws.split();
        let started = Instant::now();
        while started.elapsed() < FLOOD {
            // A send that cannot finish within a second means TCP is full: the server has
            // stopped reading us.
            match async_std::future::timeout(
                Duration::from_secs(1),
                sink.send(Message::Ping(PING[..].into())),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        // Stay connected, not reading, while the server's reply and close timeouts run out.
        task::sleep(FLOOD_HOLD).await;
    }

    /// Opens streams and writes to them, never reads the echoes, drops the streams after a
    /// while and closes: the server's echoes wait for credit, then fail with our drop code.
    async fn never_read_session(&self, rng: &mut Rng) {
        let Some((conn, _tcp)) = self.connected().await else {
            return;
        };
        let mut streams = Vec::new();
        for _ in 0..4 {
            match conn.open().await {
                Ok(stream) => streams.push(stream),
                Err(err) => return self.record("open", Err(Failure::Op("open", err))),
            }
        }
        let writes = streams.iter_mut().map(|stream| {
            let request = payload(rng.next(), 4 * MAX_PAYLOAD);
            async move { stream.write_all(&request).await }
        });
        // The writes wait for credit that never comes; they are abandoned after a while.
        let held = async_std::future::timeout(HOLD, futures::future::join_all(writes)).await;
        if let Ok(written) = held {
            for outcome in written {
                self.record(
                    "write",
                    outcome.map_err(|err| Failure::Op("write", err.into())),
                );
            }
        }
        drop(streams);
        self.close(&conn).await;
    }
}

/// Echoes `len` bytes of the pattern `seed` through a new stream and compares what comes back;
/// the reader pauses for `pause` after every 4 KiB when given one (a slow reader).
async fn echo_once(
    conn: &Connection,
    seed: u64,
    len: usize,
    pause: Option<Duration>,
    tally: &Tally,
) -> Result<(), Failure> {
    let stream = conn.open().await.map_err(|err| Failure::Op("open", err))?;
    let (mut send, mut recv) = stream.into_split();
    let write = async {
        let mut pattern = Pattern(seed | 1);
        let mut chunk = vec![0u8; 16 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            pattern.fill(&mut chunk[..n]);
            send.write_all(&chunk[..n]).await?;
            tally.sent.fetch_add(n as u64, Ordering::Relaxed);
            left -= n;
        }
        send.close().await
    };
    let read = async {
        let mut checker = Checker::new(seed, len as u64);
        let mut buf = vec![0u8; if pause.is_some() { 4096 } else { 64 * 1024 }];
        loop {
            let n = recv
                .read(&mut buf)
                .await
                .map_err(|err| Failure::Op("read", err.into()))?;
            if n == 0 {
                return checker.finish();
            }
            checker.check(&buf[..n])?;
            if let Some(pause) = pause {
                task::sleep(pause).await;
            }
        }
    };
    let (written, read) = futures::join!(write, read);
    written.map_err(|err| Failure::Op("write", err.into()))?;
    read
}

/// [`echo_once`] for the dropper: the first stream fires `on_progress` once 64 KiB came back
/// intact. After the cut, an operation must fail in band; a clean end of stream before every
/// byte came back is a lost-bytes failure.
async fn echo_until_cut(
    conn: &Connection,
    seed: u64,
    len: usize,
    mut on_progress: Option<futures::channel::oneshot::Sender<()>>,
    tally: &Tally,
) -> Result<(), Failure> {
    let stream = conn.open().await.map_err(|err| Failure::Op("open", err))?;
    let (mut send, mut recv) = stream.into_split();
    let write = async {
        send.write_all(&payload(seed, len)).await?;
        tally.sent.fetch_add(len as u64, Ordering::Relaxed);
        send.close().await
    };
    let read = async {
        let mut checker = Checker::new(seed, len as u64);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = recv
                .read(&mut buf)
                .await
                .map_err(|err| Failure::Op("read", err.into()))?;
            if n == 0 {
                return checker.finish();
            }
            checker.check(&buf[..n])?;
            if checker.seen >= 64 * 1024 {
                if let Some(cut) = on_progress.take() {
                    let _ = cut.send(());
                }
            }
        }
    };
    let (written, read) = futures::join!(write, read);
    read?;
    written.map_err(|err| Failure::Op("write", err.into()))
}

// ----- data and its checks -----

/// The bytes a stream carries: a xorshift sequence from a seed, so that the reader can
/// regenerate and compare them without keeping a copy.
struct Pattern(u64);

impl Pattern {
    fn fill(&mut self, buf: &mut [u8]) {
        for byte in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *byte = self.0 as u8;
        }
    }
}

fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    Pattern(seed | 1).fill(&mut bytes);
    bytes
}

/// Compares an echo, chunk by chunk, with the pattern it should carry.
struct Checker {
    pattern: Pattern,
    expected: u64,
    seen: u64,
    scratch: Vec<u8>,
}

impl Checker {
    fn new(seed: u64, expected: u64) -> Self {
        Self {
            pattern: Pattern(seed | 1),
            expected,
            seen: 0,
            scratch: Vec::new(),
        }
    }

    fn check(&mut self, got: &[u8]) -> Result<(), Failure> {
        if self.seen + got.len() as u64 > self.expected {
            return Err(Failure::Corrupt {
                offset: self.expected,
            });
        }
        self.scratch.resize(got.len(), 0);
        self.pattern.fill(&mut self.scratch);
        if let Some(at) = got.iter().zip(&self.scratch).position(|(a, b)| a != b) {
            return Err(Failure::Corrupt {
                offset: self.seen + at as u64,
            });
        }
        self.seen += got.len() as u64;
        Ok(())
    }

    /// At the end of the stream: every byte must have come.
    fn finish(&self) -> Result<(), Failure> {
        if self.seen == self.expected {
            Ok(())
        } else {
            Err(Failure::Lost {
                expected: self.expected,
                got: self.seen,
            })
        }
    }
}

/// A small seeded generator (xorshift64*), so that a run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ----- what the run counted -----

/// What the whole run counted; shared by every task.
#[derive(Default)]
struct Tally {
    /// Payload bytes clients wrote (whole writes of well-behaved peers, slow readers and
    /// droppers).
    sent: AtomicU64,
    /// Payload bytes echoed back and found identical to what was sent.
    verified: AtomicU64,
    /// Sessions finished, by role.
    sessions: Mutex<BTreeMap<&'static str, u64>>,
    /// Errors by who saw them and their kind, such as ("server stream", "Reset(4001)").
    errors: Mutex<BTreeMap<(String, String), u64>>,
    /// What makes the run fail.
    failures: Mutex<Vec<String>>,
    /// The server's live connections (kept to ask how many streams each holds).
    connections: Mutex<HashMap<u64, Connection>>,
    /// The server's echo tasks running.
    echo_tasks: AtomicU64,
}

impl Tally {
    fn count(&self, who: &str, err: &Error) {
        let key = (who.to_owned(), kind(err));
        *self.errors.lock().expect("tally").entry(key).or_default() += 1;
    }

    fn fail(&self, failure: String) {
        self.failures.lock().expect("tally").push(failure);
    }

    fn server_idle(&self) -> bool {
        self.connections.lock().expect("tally").is_empty()
            && self.echo_tasks.load(Ordering::SeqCst) == 0
    }

    fn snapshot(&self) -> Snapshot {
        let connections = self.connections.lock().expect("tally");
        Snapshot {
            sent: self.sent.load(Ordering::Relaxed),
            verified: self.verified.load(Ordering::Relaxed),
            sessions: self.sessions.lock().expect("tally").clone(),
            errors: self.errors.lock().expect("tally").clone(),
            failures: self.failures.lock().expect("tally").len(),
            connections: connections.len(),
            open_streams: connections.values().map(Connection::stream_count).sum(),
            echo_tasks: self.echo_tasks.load(Ordering::SeqCst),
            rss: resident_bytes(),
        }
    }
}

/// The typed error, named by kind and code: what the report groups by.
fn kind(err: &Error) -> String {
    match err {
        Error::Reset(code) => format!("Reset({code})"),
        Error::Stopped(code) => format!("Stopped({code})"),
        Error::LocallyEnded(code) => format!("LocallyEnded({code})"),
        Error::ConnectionClosed { code, .. } => format!("ConnectionClosed({code})"),
        Error::Protocol(violation) => {
            format!("Protocol({violation:?}, {})", violation.close_code())
        }
        Error::TimedOut(what) => format!("TimedOut({what:?})"),
        Error::Io(io) => format!("Io({:?})", io.kind()),
        Error::Handshake(err) => format!("Handshake({err})"),
        other => format!("{other:?}"),
    }
}

/// One report's numbers.
struct Snapshot {
    sent: u64,
    verified: u64,
    sessions: BTreeMap<&'static str, u64>,
    errors: BTreeMap<(String, String), u64>,
    failures: usize,
    connections: usize,
    open_streams: usize,
    echo_tasks: u64,
    rss: u64,
}

impl Snapshot {
    fn print(&self) {
        println!(
            "bytes moved: {:.1} MiB written by clients, {:.1} MiB echoed back and verified   failures: {}",
            mib(self.sent),
            mib(self.verified),
            self.failures
        );
        println!(
            "resident memory: {:.1} MiB   server: {} connections, {} open streams, {} echo tasks",
            mib(self.rss),
            self.connections,
            self.open_streams,
            self.echo_tasks
        );
        let sessions: Vec<String> = self
            .sessions
            .iter()
            .map(|(role, n)| format!("{role} {n}"))
            .collect();
        println!("sessions: {}", sessions.join(", "));
        println!("errors by kind:");
        for ((who, kind), n) in &self.errors {
            println!("  {n:>8}  {who}: {kind}");
        }
    }
}

/// Resident memory from `/proc/self/statm` (its second field counts pages; 4 KiB pages, as on
/// x86-64 Linux).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Prints the memory after warm-up (the first two minutes, or the first sample of a short run)
/// and whether it stayed flat: within 10% (and 16 MiB) of its first value after warm-up.
fn report_memory(samples: &[u64]) -> bool {
    let warm_up = if samples.len() > 3 { 2 } else { 0 };
    let Some(&first) = samples.get(warm_up) else {
        return true;
    };
    let after = &samples[warm_up..];
    let last = *after.last().expect("one sample at least");
    let max = *after.iter().max().expect("one sample at least");
    let listed: Vec<String> = samples
        .iter()
        .map(|rss| format!("{:.0}", mib(*rss)))
        .collect();
    println!("resident memory by minute (MiB): {}", listed.join(" "));
    let allowance = (first / 10).max(16 << 20);
    let flat = max <= first + allowance;
    println!(
        "memory after warm-up: first {:.1} MiB, last {:.1} MiB, max {:.1} MiB: {}",
        mib(first),
        mib(last),
        mib(max),
        if flat { "flat" } else { "GREW" }
    );
    flat
}

// ----- command line -----

struct Args {
    minutes: u64,
    connections: usize,
    seed: u64,
}

impl Args {
    fn parse() -> Self {
        let mut args = Args {
            minutes: 1,
            connections: 50,
            seed: 1,
        };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            let value = words.next().and_then(|v| v.parse::<u64>().ok());
            match (word.as_str(), value) {
                ("--minutes", Some(n)) if n > 0 => args.minutes = n,
                ("--connections", Some(n)) if n > 0 => args.connections = n as usize,
                ("--seed", Some(n)) => args.seed = n,
                _ => {
                    eprintln!("usage: soak [--minutes N] [--connections C] [--seed S]");
                    std::process::exit(2);
                }
            }
        }
        args
    }
}
