//! The `transport` harness: an adapter over the fuzz socket, its tasks polled by a small
//! executor with a poll budget, so that every input terminates.
//!
//! The tasks are what an application does: accept streams and echo, open one and write, read
//! messages, close, ping, drive (`run()`), watch events. Each task's future is polled only when its
//! waker was woken (as a real executor would); when no task is woken the run is quiescent and
//! ends. Invariants:
//!
//! - nothing panics, and every operation ends in `Ok` or a typed error: the `io::Error`s of the
//!   byte streams carry our `Error` inside;
//! - nothing spins: a task woken again and again while nothing moves (no byte read or written,
//!   no script step, no task finished) for [`MAX_IDLE_ROUNDS`] rounds is a bug, and so is running
//!   out of [`MAX_ROUNDS`];
//! - when the peer ends the TCP connection after its bytes (`End::Eof`), every task that waits on
//!   the connection completes: nothing waits for ever on a connection that is over;
//! - an event stream ends only after `Closed`;
//! - what our side writes is a sequence of valid WebSocket frames: masked exactly when we are the
//!   client, unfragmented, no RSV bits, control frames within 125 bytes, no data frame and no
//!   second Close frame after our Close frame (whose code is one that may be sent), and for a
//!   `Connection` every binary message decodes as a mux message.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    task::{Context, Wake, Waker},
};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use ws_stream_mux::{
    async_tungstenite::{tungstenite::protocol::Role, WebSocketStream},
    io_websocket_config,
    proto::wire::Frame,
    websocket_config, CloseCode, Config, Connection, DataMessage, Error, EventStream,
    MessageConfig, MessageSocket, WsEvent, WsIo, WsIoConfig,
};

use super::{
    socket::{End, FuzzSocket, Progress},
    Adapter, Flags, TransportInput,
};

/// Rounds in a row in which tasks are woken and nothing moves, before we call it a spin.
pub const MAX_IDLE_ROUNDS: usize = 64;

/// The most poll rounds of one run: far more than any input of libFuzzer's sizes needs.
pub const MAX_ROUNDS: usize = 100_000;

/// The most bytes a task reads before it stops reading.
const READ_LIMIT: usize = 64 * 1024;

type TaskFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A task: a future, the round it starts at, and whether it was woken since its last poll.
struct Task {
    name: &'static str,
    start: usize,
    future: Option<TaskFuture>,
    woken: Arc<WakeFlag>,
    /// Whether it completes when the peer ends TCP (an event watcher does not drive).
    ends_with_the_connection: bool,
}

#[derive(Default)]
struct WakeFlag(AtomicBool);

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Task {
    fn new(name: &'static str, start: usize, future: impl Future<Output = ()> + 'static) -> Self {
        Self {
            name,
            start,
            future: Some(Box::pin(future)),
            // Woken, so that its first poll happens at its start.
            woken: Arc::new(WakeFlag(AtomicBool::new(true))),
            ends_with_the_connection: true,
        }
    }

    fn watcher(name: &'static str, future: impl Future<Output = ()> + 'static) -> Self {
        Self {
            ends_with_the_connection: false,
            ..Self::new(name, 0, future)
        }
    }
}

/// Runs one input.
pub fn run(input: &TransportInput) {
    let progress = Progress::default();
    let written = Arc::new(Mutex::new(Vec::new()));
    let socket = FuzzSocket::new(
        input.peer_bytes(),
        input.reads.clone(),
        input.writes.clone(),
        input.end(),
        progress.clone(),
        Arc::clone(&written),
    );
    let small = input.flags.has(Flags::SMALL);
    let close_round = usize::from(input.close_round);
    let role = if input.adapter.is_server() {
        Role::Server
    } else {
        Role::Client
    };
    let mut tasks = Vec::new();
    match input.adapter {
        Adapter::ConnectionClient | Adapter::ConnectionServer => {
            let config = if small {
                Config::default()
                    .window(4096)
                    .initial_window(1024)
                    .max_streams(2)
                    .max_data_per_message(100)
            } else {
                Config::default()
            };
            let ws = websocket(socket, role, websocket_config(&config));
            let conn = match input.adapter {
                Adapter::ConnectionClient => Connection::client(ws, config),
                _ => Connection::server(ws, config),
            }
            .expect("a valid configuration");
            tasks.push(Task::watcher("events", watch(conn.events())));
            tasks.push(Task::new("accept", 0, accept_and_echo(conn.clone())));
            tasks.push(Task::new("open", 0, open_and_write(conn.clone())));
            if input.flags.has(Flags::DRIVER) {
                let run = conn.run();
                tasks.push(Task::new("run", 0, async move { ok_or_typed(run.await) }));
            }
            if input.flags.has(Flags::PING) {
                let conn = conn.clone();
                tasks.push(Task::new("ping", 0, async move {
                    ok_or_typed(conn.ping().await)
                }));
            }
            if input.flags.has(Flags::CLOSE) {
                let conn = conn.clone();
                tasks.push(Task::new("close", close_round, async move {
                    ok_or_typed(conn.close(CloseCode::NORMAL, "bye").await)
                }));
            }
        }
        Adapter::WsIoClient | Adapter::WsIoServer => {
            let config = if small {
                WsIoConfig::default()
                    .max_message_size(1000)
                    .write_message_size(64)
            } else {
                WsIoConfig::default()
            };
            let ws = websocket(socket, role, io_websocket_config(&config));
            let mut io = WsIo::with_config(ws, config).expect("a valid configuration");
            tasks.push(Task::watcher("events", watch(io.events())));
            let close_first = input.flags.has(Flags::CLOSE);
            tasks.push(Task::new("wsio", 0, byte_stream(io, close_first)));
        }
        Adapter::MessagesClient | Adapter::MessagesServer => {
            let mut ws_config = websocket_config(&Config::default());
            if small {
                ws_config.max_message_size = Some(1000);
            }
            let config = MessageConfig::default().max_buffered(if small { 2 } else { 64 });
            let ws = websocket(socket, role, ws_config);
            let socket = MessageSocket::new(ws, config).expect("a valid configuration");
            tasks.push(Task::watcher("events", watch(socket.events())));
            tasks.push(Task::new("read", 0, read_messages(socket.clone())));
            tasks.push(Task::new("write", 0, write_messages(socket.clone())));
            if input.flags.has(Flags::PING) {
                let socket = socket.clone();
                tasks.push(Task::new("ping", 0, async move {
                    ok_or_typed(socket.ping().await)
                }));
            }
            if input.flags.has(Flags::CLOSE) {
                let socket = socket.clone();
                tasks.push(Task::new("close", close_round, async move {
                    ok_or_typed(socket.close(CloseCode::NORMAL, "bye").await)
                }));
            }
        }
    }
    run_tasks(&mut tasks, &progress);
    // Every task that waits on the connection ends with it, our own close included: a frame
    // tungstenite rejects while our close waits for the answer fails the connection at once.
    if input.end() == End::Eof {
        for task in &tasks {
            assert!(
                task.future.is_none() || !task.ends_with_the_connection,
                "task {} still waits after the peer ended the connection",
                task.name
            );
        }
    }
    // The adapters go with their tasks here; dropping them must not panic either.
    drop(tasks);
    let written = written.lock().unwrap_or_else(|p| p.into_inner());
    let is_mux = matches!(
        input.adapter,
        Adapter::ConnectionClient | Adapter::ConnectionServer
    );
    check_our_frames(&written, !input.adapter.is_server(), is_mux);
}

fn websocket(
    socket: FuzzSocket,
    role: Role,
    config: ws_stream_mux::async_tungstenite::tungstenite::protocol::WebSocketConfig,
) -> WebSocketStream<FuzzSocket> {
    // Wrapping does no I/O: it completes at its first poll.
    futures::executor::block_on(WebSocketStream::from_raw_socket(socket, role, Some(config)))
}

/// Polls the tasks that were woken until none is, within the budgets.
fn run_tasks(tasks: &mut [Task], progress: &Progress) {
    let mut idle_rounds = 0;
    let mut round = 0;
    while round < MAX_ROUNDS {
        let before = progress.get();
        let mut polled = false;
        let mut finished = false;
        for task in tasks.iter_mut() {
            if task.start > round || !task.woken.0.swap(false, Ordering::SeqCst) {
                continue;
            }
            let Some(future) = task.future.as_mut() else {
                continue;
            };
            polled = true;
            let waker = Waker::from(Arc::clone(&task.woken));
            if future
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
            {
                task.future = None;
                finished = true;
            }
        }
        if !polled {
            // Quiescent — unless a task has yet to start: then time passes until it does.
            match tasks
                .iter()
                .filter(|task| task.start > round && task.future.is_some())
                .map(|task| task.start)
                .min()
            {
                Some(start) => round = start,
                None => return,
            }
            continue;
        }
        if finished || progress.get() != before {
            idle_rounds = 0;
        } else {
            idle_rounds += 1;
            let woken: Vec<&str> = tasks
                .iter()
                .filter(|task| task.woken.0.load(Ordering::SeqCst))
                .map(|task| task.name)
                .collect();
            assert!(
                idle_rounds <= MAX_IDLE_ROUNDS,
                "spinning: {woken:?} woken {idle_rounds} times in a row while nothing moves"
            );
        }
        round += 1;
    }
    panic!("the poll budget of {MAX_ROUNDS} rounds ran out");
}

// ----- the tasks -----

fn ok_or_typed<T>(result: Result<T, Error>) {
    if let Err(err) = result {
        typed(&err);
    }
}

/// Our errors are typed by construction; make sure describing one works.
fn typed(err: &Error) {
    let _ = (err.to_string(), err.io_kind());
}

/// An `io::Error` from a byte stream must carry our `Error`.
fn typed_io(err: &io::Error) {
    match Error::from_io(err) {
        Some(inner) => typed(inner),
        None => panic!("an io::Error without our Error inside: {err:?}"),
    }
}

async fn watch(mut events: EventStream) {
    let mut last = None;
    while let Some(event) = events.next().await {
        last = Some(event);
    }
    assert!(
        matches!(last, Some(WsEvent::Closed { .. })),
        "the events ended with {last:?}"
    );
}

/// Reads until the end, an error or `READ_LIMIT` bytes.
async fn read_some(reader: &mut (impl futures::AsyncRead + Unpin)) {
    let mut buf = [0; 512];
    let mut total = 0;
    while total < READ_LIMIT {
        match reader.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => total += n,
            Err(err) => return typed_io(&err),
        }
    }
}

async fn accept_and_echo(conn: Connection) {
    for _ in 0..3 {
        let mut stream = match conn.accept().await {
            Ok(stream) => stream,
            Err(err) => return typed(&err),
        };
        read_some(&mut stream).await;
        if let Err(err) = stream.write_all(b"echo").await {
            typed_io(&err);
        }
        if let Err(err) = stream.close().await {
            typed_io(&err);
        }
    }
}

async fn open_and_write(conn: Connection) {
    let mut stream = match conn.open().await {
        Ok(stream) => stream,
        Err(err) => return typed(&err),
    };
    if let Err(err) = stream.write_all(&[7; 300]).await {
        typed_io(&err);
    }
    if let Err(err) = stream.close().await {
        typed_io(&err);
    }
    read_some(&mut stream).await;
}

async fn byte_stream(mut io: WsIo<FuzzSocket>, close_first: bool) {
    if let Err(err) = io.write_all(&[7; 100]).await {
        typed_io(&err);
    }
    if let Err(err) = io.flush().await {
        typed_io(&err);
    }
    if close_first {
        ok_or_typed(io.close_with(CloseCode(4000), "first").await);
    }
    read_some(&mut io).await;
    ok_or_typed(io.close_with(CloseCode::NORMAL, "bye").await);
}

/// Reads until the connection ends (the input is finite): a reader that stops early leaves the
/// socket unread once `max_buffered` messages wait, and the EOF behind them is never seen.
async fn read_messages(socket: MessageSocket) {
    loop {
        if let Err(err) = socket.read().await {
            return typed(&err);
        }
    }
}

async fn write_messages(socket: MessageSocket) {
    ok_or_typed(socket.write(DataMessage::binary(vec![7; 100])).await);
    ok_or_typed(socket.write(DataMessage::text("hello")).await);
}

// ----- what our side wrote -----

/// Checks the bytes our side wrote (see the module docs). The last frame may be cut short: the
/// run ends wherever it ends.
fn check_our_frames(mut bytes: &[u8], we_are_client: bool, is_mux: bool) {
    let mut closed = false;
    while bytes.len() >= 2 {
        let (b0, b1) = (bytes[0], bytes[1]);
        let (fin, rsv, opcode) = (b0 & 0x80 != 0, b0 & 0x70, b0 & 0x0f);
        let masked = b1 & 0x80 != 0;
        let (len, mut at) = match b1 & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => {
                let len = u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes"));
                (usize::try_from(len).expect("a length that fits"), 10)
            }
            126 | 127 => return,
            len => (usize::from(len), 2),
        };
        assert!(fin && rsv == 0, "we sent a fragment or RSV bits: {b0:#x}");
        assert_eq!(
            masked, we_are_client,
            "masking is the client's, and only its"
        );
        // RFC 6455 §5.5.1: no data frame after our Close frame (tungstenite may still answer a
        // ping it read before, and a pong is a control frame), and one Close frame only.
        assert!(
            !closed || !matches!(opcode, 0x0..=0x2 | 0x8),
            "opcode {opcode:#x} after our Close frame"
        );
        let mask: [u8; 4] = if masked {
            let Some(key) = bytes.get(at..at + 4) else {
                return;
            };
            at += 4;
            key.try_into().expect("4 bytes")
        } else {
            [0; 4]
        };
        let Some(payload) = bytes.get(at..at + len) else {
            return;
        };
        let payload: Vec<u8> = payload
            .iter()
            .zip(mask.iter().cycle())
            .map(|(b, m)| b ^ m)
            .collect();
        match opcode {
            0x1 => assert!(!is_mux, "a text message from a multiplexed connection"),
            0x2 if is_mux => {
                if let Err(err) = Frame::decode(&payload.into()) {
                    panic!("we sent a binary message that is no mux message: {err}");
                }
            }
            0x2 => {}
            0x8 => {
                closed = true;
                check_close_payload(&payload);
            }
            0x9 | 0xa => assert!(len <= 125, "a control frame of {len} bytes"),
            other => panic!("we sent opcode {other:#x}"),
        }
        bytes = &bytes[at + len..];
    }
}

fn check_close_payload(payload: &[u8]) {
    assert!(
        payload.len() <= 125 && payload.len() != 1,
        "a bad close payload"
    );
    if let [hi, lo, reason @ ..] = payload {
        let code = u16::from_be_bytes([*hi, *lo]);
        assert!(
            !matches!(code, 1005 | 1006 | 1015) && (1000..5000).contains(&code),
            "we closed with {code}"
        );
        assert!(
            std::str::from_utf8(reason).is_ok(),
            "a reason that is not UTF-8"
        );
    }
}
