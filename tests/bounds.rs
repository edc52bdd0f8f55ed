//! Nothing a peer does costs us more than we granted: a hostile peer over real TCP (a raw
//! async-tungstenite client writing hand-built messages, in the same process), and the live heap
//! measured by a counting allocator in this test binary. Each test holds a lock for its whole run,
//! so the counts of one are not disturbed by another.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        atomic::{AtomicUsize, Ordering},
        OnceLock,
    },
    time::Duration,
};

use async_std::net::{TcpListener, TcpStream};
use async_tungstenite::{
    tungstenite::{
        protocol::frame::{coding::Data, coding::OpCode, Frame, FrameHeader},
        Message,
    },
    WebSocketStream,
};
use futures::{SinkExt, StreamExt};
use ws_stream_mux::{websocket_config, CloseCode, Config, Connection, Error, ProtoError, WsEvent};

/// Counts live heap bytes and the peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size > layout.size() {
                let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test at a time in this binary.
static SERIAL: OnceLock<futures::lock::Mutex<()>> = OnceLock::new();

async fn serial() -> futures::lock::MutexGuard<'static, ()> {
    SERIAL.get_or_init(Default::default).lock().await
}

fn live() -> usize {
    LIVE.load(Ordering::SeqCst)
}

/// Starts a peak measurement; returns the live heap now.
fn reset_peak() -> usize {
    let now = live();
    PEAK.store(now, Ordering::SeqCst);
    now
}

fn peak() -> usize {
    PEAK.load(Ordering::SeqCst)
}

const MIB: usize = 1 << 20;
const SAFETY: Duration = Duration::from_secs(120);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match async_std::future::timeout(SAFETY, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not done after {SAFETY:?} (hang)"),
    }
}

type Raw = WebSocketStream<TcpStream>;

/// Our server (its socket built with `websocket_config(&config)`, the documented way) and a
/// raw client peer, over real TCP; our side's driver runs.
async fn pair(config: Config) -> (Raw, Connection) {
    pair_with_buffers(config, None).await
}

/// As [`pair`], with our send buffer and the peer's receive buffer set to `kernel_buffer` bytes
/// (which also turns the kernel's autotuning off). A peer that does not read is then felt after
/// kilobytes instead of the megabytes loopback buffers hold by default, whose filling takes as
/// long as the machine is slow.
async fn pair_with_buffers(config: Config, kernel_buffer: Option<usize>) -> (Raw, Connection) {
    use socket2::{Domain, Socket, Type};
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("address");
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    if let Some(bytes) = kernel_buffer {
        // Accepted sockets inherit it.
        listener.set_send_buffer_size(bytes).expect("SO_SNDBUF");
    }
    listener.bind(&any.into()).expect("bind");
    listener.listen(8).expect("listen");
    let listener = TcpListener::from(std::net::TcpListener::from(listener));
    let addr = listener.local_addr().expect("addr");
    let ws_config = websocket_config(&config);
    let server = async_std::task::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        async_tungstenite::accept_async_with_config(tcp, Some(ws_config))
            .await
            .expect("server handshake")
    });
    let client = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    if let Some(bytes) = kernel_buffer {
        // Before connecting, so that the window offered in the handshake is the small one.
        client.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
    }
    // A connect to 127.0.0.1 completes at once.
    client.connect(&addr.into()).expect("connect");
    client.set_nonblocking(true).expect("nonblocking");
    let tcp = TcpStream::from(std::net::TcpStream::from(client));
    let (client, _) = async_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .expect("client handshake");
    let conn = Connection::server(server.await, config).expect("valid config");
    async_std::task::spawn(conn.run());
    (client, conn)
}

/// The kernel buffers of the tests whose peer does not read.
const SMALL_KERNEL_BUFFER: usize = 8 * 1024;

/// A @matrixai/ws message: id (one byte), type, body.
fn msg(id: u8, kind: u8, body: &[u8]) -> Message {
    Message::binary([&[id, 0, kind][..], body].concat())
}

const DATA: u8 = 0;
const ACK: u8 = 1;

async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    within(what, async {
        while !ready() {
            async_std::task::yield_now().await;
        }
    })
    .await;
}

#[async_std::test]
async fn one_byte_messages_filling_the_windows_cost_what_was_granted() {
    let _serial = serial().await;
    const STREAMS: u8 = 4;
    const WINDOW: usize = 256 * 1024;
    let config = Config::default()
        .window(WINDOW as u32)
        .initial_window(WINDOW as u32);
    let (mut peer, conn) = pair(config).await;
    let before = live();
    // The peer opens streams (client ids 0, 2, 4, 6) and fills each window byte by byte; we
    // never read.
    for i in 0..STREAMS {
        peer.feed(msg(2 * i, ACK, &[0, 0, 0, 16])).await.unwrap();
    }
    for _ in 0..WINDOW {
        for i in 0..STREAMS {
            peer.feed(msg(2 * i, DATA, b"x")).await.unwrap();
        }
    }
    peer.flush().await.unwrap();
    let total = STREAMS as u64 * WINDOW as u64;
    wait_until("every byte buffered", || conn.stats().buffered == total).await;
    let held = live().saturating_sub(before);
    // What we granted, plus small per-stream and per-connection constants.
    let bound = STREAMS as usize * (WINDOW + WINDOW / 8) + MIB;
    assert!(
        held <= bound,
        "{held} bytes live for {total} bytes granted (bound {bound})"
    );
    drop(peer);
    let _ = within("closed", conn.closed()).await;
}

#[async_std::test]
async fn a_fragmented_message_over_the_limit_is_refused_before_it_grows() {
    let _serial = serial().await;
    let config = Config::default(); // 1 MiB + 10 bytes
    let (mut peer, conn) = pair(config).await;
    let start = reset_peak();
    // 63 MiB in 1 MiB fragments.
    let fragment = vec![7u8; MIB];
    let frame = |opcode, is_final| {
        let header = FrameHeader {
            opcode,
            is_final,
            ..FrameHeader::default()
        };
        Message::Frame(Frame::from_payload(header, fragment.clone().into()))
    };
    let send = async {
        peer.send(frame(OpCode::Data(Data::Binary), false)).await?;
        for _ in 0..61 {
            peer.send(frame(OpCode::Data(Data::Continue), false))
                .await?;
        }
        peer.send(frame(OpCode::Data(Data::Continue), true)).await
    };
    let _ = within("send", send).await; // fails once we closed
    let end = within("closed", conn.closed()).await;
    assert!(
        matches!(end, Error::Protocol(ProtoError::MessageTooBig { .. })),
        "{end:?}"
    );
    let grew = peak().saturating_sub(start);
    // The peer's own fragment copies (a few MiB) and the first MiB assembled: never 63 MiB.
    assert!(grew <= 8 * MIB, "heap grew by {grew} bytes");
}

#[async_std::test]
async fn a_peer_that_opens_streams_over_the_limit_without_reading_is_closed_with_1008() {
    let _serial = serial().await;
    let config = Config::default()
        .max_streams(4)
        .reply_timeout(Some(Duration::from_millis(500)))
        .close_timeout(Some(Duration::from_millis(500)));
    let (peer, conn) = pair_with_buffers(config, Some(SMALL_KERNEL_BUFFER)).await;
    let start = reset_peak();
    // The peer only writes: each new stream over the limit is refused with two replies that it
    // never reads. It stops once we stop reading (its writes block) or close.
    let (mut sink, _stream) = peer.split();
    let flood = async_std::task::spawn(async move {
        let mut id: u64 = 0;
        loop {
            let mut message = Vec::with_capacity(12);
            // 8-byte varint ids, all of the client's parity.
            message.extend_from_slice(&(0xc000_0000_0000_0000u64 | id).to_be_bytes());
            message.extend_from_slice(&[0, ACK, 0, 0, 0, 16]);
            if sink.send(Message::binary(message)).await.is_err() {
                return id / 2;
            }
            id += 2;
        }
    });
    let end = within("closed", conn.closed()).await;
    assert!(
        matches!(end, Error::Protocol(ProtoError::RepliesNotRead)),
        "{end:?}"
    );
    let grew = peak().saturating_sub(start);
    assert!(grew <= 4 * MIB, "heap grew by {grew} bytes");
    let opened = within("flood ends", flood).await;
    assert!(opened > 4, "the peer opened {opened} streams");
}

#[async_std::test]
async fn a_peer_that_pings_without_reading_is_closed_with_1008() {
    let _serial = serial().await;
    let config = Config::default()
        .reply_timeout(Some(Duration::from_millis(500)))
        .close_timeout(Some(Duration::from_millis(500)));
    let (peer, conn) = pair_with_buffers(config, Some(SMALL_KERNEL_BUFFER)).await;
    let start = reset_peak();
    let (mut sink, _stream) = peer.split();
    let flood = async_std::task::spawn(async move {
        let mut sent = 0u64;
        // The largest control payload: each pong that does leave fills the buffers the most.
        let payload = bytes::Bytes::from_static(&[0x5a; 125]);
        while sink.send(Message::Ping(payload.clone())).await.is_ok() {
            sent += 1;
        }
        sent
    });
    let end = within("closed", conn.closed()).await;
    assert!(
        matches!(end, Error::Protocol(ProtoError::RepliesNotRead)),
        "{end:?}"
    );
    let grew = peak().saturating_sub(start);
    assert!(grew <= 4 * MIB, "heap grew by {grew} bytes");
    let sent = within("flood ends", flood).await;
    assert!(sent > 64, "{sent} pings");
}

#[async_std::test]
async fn a_malformed_message_repeated_on_one_stream_is_answered_once() {
    let _serial = serial().await;
    let (mut peer, conn) = pair(Config::default()).await;
    let mut events = conn.events();
    peer.send(msg(0, ACK, &[0, 0, 0, 16])).await.unwrap();
    for _ in 0..10_000 {
        // Type 9 does not exist: a parse error on stream 0.
        peer.feed(msg(0, 9, b"")).await.unwrap();
    }
    // A stream opened after them shows they were all handled.
    peer.feed(msg(2, ACK, &[0, 0, 0, 16])).await.unwrap();
    peer.flush().await.unwrap();
    let mut errors = Vec::new();
    within("our answers", async {
        loop {
            match peer.next().await.expect("open").expect("message") {
                Message::Binary(data) if data[..3] == [2, 0, ACK] => break,
                Message::Binary(data) if data[..3] == [0, 0, 2] => errors.push(data[3]),
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(errors, [0, 1], "one ERROR Read and one ERROR Write");
    // Every event of those messages was published before the last ACK left.
    let mut parse_errors = 0;
    while let Some(Some(event)) = futures::FutureExt::now_or_never(events.next()) {
        if matches!(event, WsEvent::StreamParseError { .. }) {
            parse_errors += 1;
        }
    }
    assert_eq!(parse_errors, 1);
}

#[async_std::test]
async fn observers_that_never_read_hold_a_bounded_queue_and_still_get_closed() {
    use pharos::Observable;
    let _serial = serial().await;
    let config = Config::default().event_queue(8);
    let (peer, mut conn) = pair(config).await;
    let mut pharos_events = conn.observe(Default::default()).await.unwrap();
    let events = conn.events();
    let start = live();
    let (mut sink, mut stream) = peer.split();
    let answers = async_std::task::spawn(async move { while stream.next().await.is_some() {} });
    for _ in 0..200_000 {
        sink.feed(Message::Ping(Default::default())).await.unwrap();
    }
    // A stream opened after the pings: once it is accepted, every ping was handled.
    sink.send(msg(0, ACK, &[0, 0, 0, 16])).await.unwrap();
    let stream = within("accept after the pings", conn.accept())
        .await
        .unwrap();
    drop(stream);
    sink.send(Message::Close(None)).await.unwrap();
    let _ = within("closed", conn.closed()).await;
    let grew = live().saturating_sub(start);
    assert!(
        grew <= MIB,
        "{grew} bytes held for observers that never read"
    );
    drop(conn);
    within("peer ends", answers).await;
    // The observer that never read: at most its queue, the oldest dropped, Closed last.
    let dropped = events.dropped();
    let seen: Vec<WsEvent> = within("events end", events.collect()).await;
    assert!(seen.len() <= 8, "{} events kept", seen.len());
    assert!(
        matches!(seen.last(), Some(WsEvent::Closed { .. })),
        "{seen:?}"
    );
    assert!(dropped >= 200_000 - 8, "{dropped} dropped");
    // The pharos observer's channel is bounded too, and ends with the connection.
    let pharos_seen: Vec<WsEvent> =
        within("pharos events end", pharos_events.by_ref().collect()).await;
    assert!(
        pharos_seen.len() <= 16,
        "{} pharos events kept",
        pharos_seen.len()
    );
}

#[async_std::test]
async fn an_observer_full_when_the_connection_closes_gets_closed_even_with_nobody_driving() {
    let _serial = serial().await;
    let (mut peer, conn) = pair(Config::default().event_queue(4)).await;
    let events = conn.events();
    for _ in 0..10 {
        peer.feed(Message::Ping(Default::default())).await.unwrap();
    }
    peer.send(Message::Close(Some(
        async_tungstenite::tungstenite::protocol::CloseFrame {
            code: 4321.into(),
            reason: "bye".into(),
        },
    )))
    .await
    .unwrap();
    let _ = within("closed", conn.closed()).await;
    drop(conn);
    drop(peer);
    let seen: Vec<WsEvent> = within("events end", events.collect()).await;
    assert!(seen.len() <= 4, "{seen:?}");
    assert!(
        matches!(
            seen.last(),
            Some(WsEvent::Closed {
                code: CloseCode(4321),
                ..
            })
        ),
        "{seen:?}"
    );
}
