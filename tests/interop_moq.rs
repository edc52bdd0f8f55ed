//! QMux against @moq/qmux 0.3.3, the TypeScript implementation (npm), in Node and in headless
//! Chromium, over real TCP on 127.0.0.1 under tokio.
//!
//! Each case runs twice: the Node peer (`tests/interop_moq/peer.mjs`, installed by
//! `.ci/setup/31-moq.sh`) as the WebSocket server with our client (`moq_serves`), and as the
//! client with our server (`moq_connects`). Both sides check their part — content byte for byte,
//! stream codes, close codes and reasons — and the Node process exits 0 only if its part went as
//! expected. The cases mirror `tests/interop_qmux.rs`; `tests/interop_moq/README.md` lists them.
//!
//! Most cases end the same way, so that no side closes while the other still checks something:
//! once its part passed, the Node peer sends "done" on a unidirectional stream; once ours passed
//! too, we close with application code 0 and "done", which its `closed` must report.
#![cfg(feature = "tokio")]

use crate::interop_moq_support;

use std::{future::Future, time::Duration};

use bytes::Bytes;
use futures::{future::join_all, AsyncReadExt, AsyncWriteExt, StreamExt};
use interop_moq_support::{browser, pattern, within, NodePeer, Role};
use tokio::{net::TcpListener, task::JoinSet};
use ws_stream_mux::{
    async_tungstenite::{self, tungstenite::Message, WebSocketStream},
    handshake::{AcceptConfig, OriginPolicy},
    Config, Connection, Error, ErrorCode, ProtoError, Protocol, QmuxProtocols, QmuxVersion,
    WsStream,
};

/// The application protocol both sides configure: the subprotocol is `qmux-02.interop`.
const APP: &str = "interop";

fn offer() -> QmuxProtocols {
    QmuxProtocols::default().application(APP)
}

fn accept_config() -> AcceptConfig {
    AcceptConfig::default().protocols(offer().subprotocols())
}

/// How a case's session ends.
#[derive(Clone, Copy, Debug)]
enum End {
    /// The Node peer sends "done" on a uni stream; then we close with 0 and "done".
    Done,
    /// The part closes, or sees the close, itself.
    InPart,
}

/// Connects to (or accepts) the Node peer playing `case` in `moq`'s role, checking that `version`
/// with our application was negotiated. We offer and accept both versions: the one the Node peer
/// offers or accepts decides.
async fn connect(
    moq: Role,
    case: &str,
    config: Config,
    version: QmuxVersion,
) -> (Connection, NodePeer) {
    match moq {
        Role::Server => {
            let mut node = NodePeer::spawn(Role::Server, case, None);
            let port = node.port().await;
            let conn = within(
                "our client connects",
                ws_stream_mux::tokio::connect_qmux(
                    &format!("ws://127.0.0.1:{port}/"),
                    &offer(),
                    config,
                ),
            )
            .await
            .expect("our client connects to @moq/qmux");
            assert_eq!(conn.protocol(), Protocol::Qmux(version));
            (conn, node)
        }
        Role::Client => {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let mut node = NodePeer::spawn(Role::Client, case, Some(port));
            let tcp = tokio::select! {
                accepted = within("the Node client connects", listener.accept()) => {
                    accepted.expect("accept").0
                }
                exit = node.exit() => {
                    panic!("the Node peer exited before connecting\n{}", exit.report)
                }
            };
            let (conn, request) = within(
                "our server accepts",
                ws_stream_mux::tokio::accept(tcp, &accept_config(), config),
            )
            .await
            .expect("our server accepts @moq/qmux");
            assert_eq!(request.protocol, Some(format!("{version}.{APP}")));
            assert_eq!(conn.protocol(), Protocol::Qmux(version));
            (conn, node)
        }
    }
}

/// Runs our `part` of `case` against the Node peer in `moq`'s role, ends the session as `end`
/// says, and checks that the Node peer's part passed too. If either side fails, the Node peer's
/// log is part of the failure message.
async fn run<F, Fut>(
    moq: Role,
    case: &str,
    (config, version): (Config, QmuxVersion),
    end: End,
    part: F,
) where
    F: FnOnce(Connection) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (conn, mut node) = connect(moq, case, config, version).await;
    let part = part(conn.clone());
    let mut ours = tokio::spawn(async move {
        within("our part", part).await;
        if let End::Done = end {
            finish_done(&conn).await;
        }
    });
    let finished = tokio::select! {
        finished = &mut ours => finished,
        exit = node.exit() => {
            // The peer may be done before us (it closed the session itself), never failed.
            assert!(exit.success, "the Node peer failed while our part ran\n{}", exit.report);
            ours.await
        }
    };
    if let Err(failure) = finished {
        let report = node.report_after_failure(Duration::from_secs(10)).await;
        eprintln!("our part failed; the Node peer said:\n{report}");
        std::panic::resume_unwind(failure.into_panic());
    }
    node.finish().await;
}

/// The usual end: its "done" on a uni stream (its part passed), then our close with 0, "done".
async fn finish_done(conn: &Connection) {
    let mut done = within("its \"done\"", conn.accept_uni())
        .await
        .expect("its \"done\" stream");
    let mut said = String::new();
    within("its \"done\"", done.read_to_string(&mut said))
        .await
        .expect("read its \"done\"");
    assert_eq!(said, "done");
    within("our close", conn.close_application(ErrorCode(0), "done"))
        .await
        .expect("our close, answered");
}

/// Two tests for a case: the Node peer as server (`moq_serves`) and as client (`moq_connects`).
/// QMux-02 unless the case names a version.
macro_rules! both_roles {
    ($case:ident, $config:expr, $end:expr, $part:path) => {
        both_roles!($case, $config, $end, $part, QmuxVersion::V02);
    };
    ($case:ident, $config:expr, $end:expr, $part:path, $version:expr) => {
        mod $case {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moq_serves() {
                let setup = ($config, $version);
                run(Role::Server, stringify!($case), setup, $end, $part).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moq_connects() {
                let setup = ($config, $version);
                run(Role::Client, stringify!($case), setup, $end, $part).await;
            }
        }
    };
}

// ----- our side's building blocks -----

/// Opens a stream, writes `pattern(seed, len)` and our FIN while reading the echo to its end,
/// and checks the echo.
async fn round_trip(conn: &Connection, seed: u32, len: usize) {
    let data = pattern(seed, len);
    let stream = conn.open().await.expect("we open");
    let (mut writer, mut reader) = stream.into_split();
    let write = async {
        writer.write_all(&data).await.expect("we write");
        writer.close().await.expect("our FIN");
    };
    let read = async {
        let mut back = Vec::new();
        reader
            .read_to_end(&mut back)
            .await
            .expect("we read the echo");
        back
    };
    let ((), back) = futures::join!(write, read);
    assert_eq!(back.len(), data.len(), "stream {seed}: echo length");
    assert!(back == data, "stream {seed}: echo differs");
}

/// Accepts exactly `count` bidirectional streams and echoes each (read to its FIN, then written
/// back and finished); returns once all are echoed. Store and forward, as `peer.mjs` echoes: with
/// small windows, echoes that read only as fast as they write back would tie both directions'
/// credit together, until both connection windows hold data that waits for each other.
async fn echo(conn: &Connection, count: usize) {
    let mut echoes = JoinSet::new();
    for _ in 0..count {
        let stream = conn.accept().await.expect("we accept its stream");
        echoes.spawn(echo_stream(stream));
    }
    while let Some(echoed) = echoes.join_next().await {
        echoed.expect("an echo of ours");
    }
}

async fn echo_stream(mut stream: WsStream) {
    let mut data = Vec::new();
    stream
        .read_to_end(&mut data)
        .await
        .expect("we read its stream");
    stream.write_all(&data).await.expect("we echo it");
    stream.close().await.expect("our FIN");
}

async fn read_exactly(stream: &mut WsStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).await.expect("read");
    buf
}

fn is_application_close(err: &Error, code: u64, reason: &str) -> bool {
    matches!(err, Error::ApplicationClosed { code: c, reason: r } if *c == code && r == reason)
}

// ----- the cases -----

const ONE: usize = 300_000;
const MANY: u32 = 100;

// An empty stream each way (its first frame is the FIN), one 300 kB stream each way, then a
// hundred concurrent ones each way, every echo checked by its opener. Each echoer writes after
// the opener's FIN: half-close works both ways.
both_roles!(echo, Config::default(), End::Done, echo_part);

async fn echo_part(conn: Connection) {
    let opened = async {
        within("an empty stream", round_trip(&conn, 4, 0)).await;
        within("one stream", round_trip(&conn, 2, ONE)).await;
        within(
            "a hundred concurrent streams",
            join_all((0..MANY).map(|i| round_trip(&conn, 100 + i, 10_000 + i as usize * 97))),
        )
        .await;
    };
    futures::join!(
        opened,
        within("our echoes of its streams", echo(&conn, 2 + MANY as usize))
    );
}

// 1 KiB stream windows and a 4 KiB connection window on both sides (ours: `window`,
// `receive_budget`; its `maxStreamData*`, `maxData`), four 64 KiB echoes each way at once. Either
// side closes the session with a flow control error if the other sends beyond its credit.
both_roles!(
    window,
    Config::default().window(1024).receive_budget(4096),
    End::Done,
    window_part
);

async fn window_part(conn: Connection) {
    futures::join!(
        within(
            "four echoes through small windows",
            join_all((0..4).map(|i| round_trip(&conn, 600 + i, 65_536)))
        ),
        within("our echoes through small windows", echo(&conn, 4)),
    );
}

// Two streams of each kind at once on both sides (ours: `max_streams`, `max_uni_streams`; its
// `maxStreamsBidi`, `maxStreamsUni`): ten concurrent echoes and four uni streams each way, every
// opener waiting for the other's MAX_STREAMS as streams end. A stream over the limit would be a
// connection error at the receiver.
both_roles!(
    limits,
    Config::default().max_streams(2).max_uni_streams(2),
    End::Done,
    limits_part
);

async fn limits_part(conn: Connection) {
    let unis_out = join_all((0..4).map(|i| {
        let conn = conn.clone();
        async move {
            let mut send = conn.open_uni().await.expect("open uni");
            send.write_all(&pattern(960 + i, 2000 + i as usize))
                .await
                .expect("write uni");
            send.close().await.expect("finish uni");
        }
    }));
    let unis_in = async {
        let mut received = Vec::new();
        for _ in 0..4 {
            let mut recv = conn.accept_uni().await.expect("accept its uni stream");
            let mut got = Vec::new();
            recv.read_to_end(&mut got)
                .await
                .expect("read its uni stream");
            // Streams opened concurrently get their ids in no set order: the length says which.
            let i = got.len().wrapping_sub(1000);
            assert!(
                i < 4 && !received.contains(&i),
                "a uni stream of {} bytes",
                got.len()
            );
            assert!(
                got == pattern(950 + i as u32, 1000 + i),
                "its uni stream {i} differs"
            );
            received.push(i);
        }
    };
    within("streams through small limits", async {
        futures::join!(
            join_all((0..10).map(|i| round_trip(&conn, 910 + i, 1000 + i as usize))),
            echo(&conn, 10),
            unis_out,
            unis_in,
        )
    })
    .await;
}

// Draft -01, when it is all the Node peer offers or accepts: an echo each way.
both_roles!(
    v01,
    Config::default(),
    End::Done,
    v01_part,
    QmuxVersion::V01
);

async fn v01_part(conn: Connection) {
    futures::join!(
        within("an echo over qmux-01", round_trip(&conn, 71, 50_000)),
        within("our echo over qmux-01", echo(&conn, 1)),
    );
}

// Resets and stops each way, with their codes: our reset (4001) fails its read; its stop (4002)
// reaches our `stopped()` and fails our next write; its reset (4003) fails our read; our stop
// (4004) fails its write. Windows of 8 KiB on both sides; the stream we stop has just used up
// our connection window. Then a 64 KiB echo each way, which stalls if either side still counts a
// byte of the reset or stopped streams against its connection window.
//
// We write nothing more on the stream it stops: @moq/qmux does not count data that arrives for a
// stream after it stopped reading it, and those bytes would shrink its window for good.
both_roles!(
    codes,
    Config::default().window(8192).receive_budget(8192),
    End::Done,
    codes_part
);

async fn codes_part(conn: Connection) {
    within("codes", async {
        let mut a = conn.open().await.expect("open A");
        a.write_all(b"partial").await.expect("write A");
        a.flush().await.expect("flush A");
        a.reset(ErrorCode(4001)).expect("reset A");

        let mut b = conn.open().await.expect("open B");
        b.write_all(b"x").await.expect("write B");
        b.flush().await.expect("flush B");
        assert_eq!(b.stopped().await.expect("B"), Some(ErrorCode(4002)));
        let err = b.write_all(b"y").await.expect_err("B is stopped");
        assert!(
            matches!(Error::from_io(&err), Some(Error::Stopped(ErrorCode(4002)))),
            "writing B: {err}"
        );

        let mut c = conn.accept().await.expect("accept C");
        let err = c
            .read_to_end(&mut Vec::new())
            .await
            .expect_err("C is reset");
        assert!(
            matches!(Error::from_io(&err), Some(Error::Reset(ErrorCode(4003)))),
            "reading C: {err}"
        );

        let mut d = conn.accept().await.expect("accept D");
        assert_eq!(read_exactly(&mut d, 3).await, b"abc");
        d.stop(ErrorCode(4004)).expect("stop D");
    })
    .await;
    futures::join!(
        within(
            "a 64 KiB echo after the codes",
            round_trip(&conn, 81, 65_536)
        ),
        within("our echo after the codes", echo(&conn, 1)),
    );
}

// @moq/qmux sends data past the final size of its own RESET_STREAM: a write of its that waits
// for connection credit when we stop the stream goes out once our MAX_DATA comes, after the
// RESET_STREAM that answered the stop. We close the session with FINAL_SIZE_ERROR, as QMUX.md
// says (RFC 9000 §4.5: SHOULD), and it reports that close. (Had our application dropped the
// stream before the late frame came, the stream would be forgotten and the frame ignored.)
//
// Our stream window is larger than our connection window, so that its write waits for
// connection credit only: the MAX_DATA that goes with our stop (the bytes it drops count as
// read) releases it.
both_roles!(
    past_final_size,
    Config::default().window(16_384).receive_budget(8192),
    End::InPart,
    past_final_size_part
);

async fn past_final_size_part(conn: Connection) {
    let mut stream = conn.accept().await.expect("accept its stream");
    // Its datagram says that its 8 KiB went out (and, the socket being ordered, came).
    assert_eq!(conn.read_datagram().await.expect("its datagram"), "full");
    stream.stop(ErrorCode(4004)).expect("stop");
    let err = within("our FINAL_SIZE_ERROR", conn.closed()).await;
    assert!(
        matches!(
            err,
            Error::Protocol(ProtoError::Qmux {
                code: FINAL_SIZE_ERROR,
                ..
            })
        ),
        "{err}"
    );
}

const UNI: usize = 200_000;

// A unidirectional stream each way (ours first), content checked by each receiver.
both_roles!(uni, Config::default(), End::Done, uni_part);

async fn uni_part(conn: Connection) {
    within("uni streams", async {
        let mut send = conn.open_uni().await.expect("open uni");
        send.write_all(&pattern(11, UNI)).await.expect("write uni");
        send.close().await.expect("finish uni");

        let mut recv = conn.accept_uni().await.expect("accept its uni stream");
        let mut got = Vec::new();
        recv.read_to_end(&mut got)
            .await
            .expect("read its uni stream");
        assert!(got == pattern(12, UNI), "its uni stream differs");
    })
    .await;
}

/// The largest datagram each side accepts from the other: both advertise a 16,382-byte DATAGRAM
/// frame, less the frame's type and 2-byte length.
const MAX_DATAGRAM: usize = 16_379;

// Datagrams each way, a short one and one of the largest size, taking turns (ours, its, ours,
// its), after a stream round trip: by then both sides have the other's parameters (@moq/qmux
// drops datagrams written before). Turns, because @moq/qmux also drops a datagram written while
// its previous socket write is under way; on loopback, ours all arrive.
both_roles!(datagram, Config::default(), End::Done, datagram_part);

async fn datagram_part(conn: Connection) {
    within("datagrams", async {
        round_trip(&conn, 20, 1000).await;
        assert_eq!(conn.max_datagram_size(), Some(MAX_DATAGRAM));
        let err = conn
            .send_datagram(Bytes::from(vec![0; MAX_DATAGRAM + 1]))
            .expect_err("one byte too many");
        assert!(matches!(
            err,
            Error::DatagramTooLarge {
                size: 16_380,
                max: MAX_DATAGRAM
            }
        ));
        for (what, ours, theirs) in [
            ("short", b"ours".to_vec(), b"theirs".to_vec()),
            (
                "largest",
                pattern(21, MAX_DATAGRAM),
                pattern(22, MAX_DATAGRAM),
            ),
        ] {
            conn.send_datagram(ours.into()).expect("send a datagram");
            let got = conn.read_datagram().await.expect("its datagram");
            assert!(got == theirs, "its {what} datagram differs");
        }
        let stats = conn.stats();
        assert_eq!(
            (
                stats.datagrams_sent,
                stats.datagrams_received,
                stats.datagrams_dropped
            ),
            (2, 2, 0)
        );
    })
    .await;
}

// We close with application code 42 while it waits in a read: its read fails and its `closed`
// fulfils with the code and reason.
both_roles!(
    close_by_rust,
    Config::default(),
    End::InPart,
    close_by_rust_part
);

async fn close_by_rust_part(conn: Connection) {
    let mut stream = conn.open().await.expect("open");
    stream.write_all(b"pending").await.expect("write");
    stream.flush().await.expect("flush");
    assert_eq!(
        within("its answer", read_exactly(&mut stream, 7)).await,
        b"reading"
    );
    within(
        "our close",
        conn.close_application(ErrorCode(42), "interop complete"),
    )
    .await
    .expect("our close, answered");
    let err = stream.read(&mut [0; 1]).await.expect_err("closed");
    assert!(
        matches!(Error::from_io(&err), Some(e) if is_application_close(e, 42, "interop complete")),
        "{err}"
    );
}

// It closes with 43 "bye" (`session.close({closeCode, reason})`) while we wait in a read: our read
// and `closed()` report its code and reason.
both_roles!(
    close_by_moq,
    Config::default(),
    End::InPart,
    close_by_moq_part
);

async fn close_by_moq_part(conn: Connection) {
    let mut stream = within("its stream", conn.accept()).await.expect("accept");
    assert_eq!(read_exactly(&mut stream, 7).await, b"pending");
    stream.write_all(b"reading").await.expect("write");
    stream.flush().await.expect("flush");
    let err = within("the close", stream.read(&mut [0; 1]))
        .await
        .expect_err("closed");
    assert!(
        matches!(Error::from_io(&err), Some(e) if is_application_close(e, 43, "bye")),
        "{err}"
    );
    let err = within("closed()", conn.closed()).await;
    assert!(is_application_close(&err, 43, "bye"), "{err}");
}

/// Three of @moq/qmux's idle timeouts (1.5 s in this case).
const QUIET: Duration = Duration::from_millis(4_500);

// It advertises an idle timeout of 1.5 s; we advertise none. Nothing is sent for three of its
// idle timeouts — it pings when it has not sent for a third of it, we answer (and ping after a
// third of the timeout in force ourselves) — then the session still carries a stream and a ping.
both_roles!(idle, Config::default(), End::Done, idle_part);

async fn idle_part(conn: Connection) {
    let before = conn.stats().messages_received;
    // The quiet time is what this case is about.
    tokio::time::sleep(QUIET).await;
    assert!(!conn.is_closed(), "closed: {:?}", conn.close_reason());
    // Each side's idle timer needs a record from the other at least once per 1.5 s.
    let heard = conn.stats().messages_received - before;
    assert!(heard >= 3, "only {heard} records from it in {QUIET:?}");
    within("a stream after the quiet time", round_trip(&conn, 30, 1000)).await;
    let rtt = within("our QX_PING", conn.ping())
        .await
        .expect("its answer");
    assert!(rtt < Duration::from_secs(5), "{rtt:?}");
}

// ----- bad input: what it does, what we do -----

/// Its QX_TRANSPORT_PARAMETERS with its default configuration, on qmux-02: the 64 bytes of
/// QMUX.md's test vector (qmux 0.6.6 sends the same).
const MOQ_DEFAULT_PARAMS: &str = "ff5153300d0a0d0a37\
    0104800075300404801000000504800400000604800400000704800400000802406409024064\
    20027ffec571c59429cd0845027ffe1d00";

/// A rule a raw peer breaks, and the two reactions.
struct BadInput {
    /// The case in `peer.mjs` (which knows what its `closed` must say).
    case: &'static str,
    message: fn() -> Message,
    /// Its CONNECTION_CLOSE: code and reason (frame type 0), then a Close frame without a code.
    moq: (u64, &'static str),
    /// Our CONNECTION_CLOSE's RFC 9000 code, then our Close frame's code.
    ours: (u64, u16),
}

const PROTOCOL_VIOLATION: u64 = 0x0a;
const FRAME_ENCODING_ERROR: u64 = 0x07;
const FINAL_SIZE_ERROR: u64 = 0x06;

const TEXT: BadInput = BadInput {
    case: "raw_text",
    message: || Message::text("hello"),
    moq: (1003, "text frames are not valid for QMux"),
    ours: (PROTOCOL_VIOLATION, 1003),
};

const STREAM_FIRST: BadInput = BadInput {
    case: "raw_stream_first",
    // STREAM id 0, offset 0, "x", where the transport parameters must come first.
    message: || Message::binary(Bytes::from_static(b"\x0e\x00\x00\x01x")),
    moq: (1002, "Protocol violation"),
    ours: (PROTOCOL_VIOLATION, 1002),
};

const BIG_RECORD: BadInput = BadInput {
    case: "raw_big_record",
    // One byte over the 16,382-byte max_record_size both sides advertise (PADDING frames).
    message: || Message::binary(vec![0; 16_383]),
    moq: (1002, "Protocol violation"),
    ours: (FRAME_ENCODING_ERROR, 1002),
};

type Raw = WebSocketStream<tokio_util::compat::Compat<tokio::net::TcpStream>>;

async fn raw_client(port: u16) -> Raw {
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = ws_stream_mux::connect::request_with_protocols(
        &format!("ws://127.0.0.1:{port}/"),
        &offer().subprotocols(),
    )
    .expect("request");
    let (raw, response) = within(
        "raw handshake",
        async_tungstenite::client_async(request, tcp.compat()),
    )
    .await
    .expect("raw handshake");
    assert_eq!(
        ws_stream_mux::connect::selected_protocol(&response),
        Some("qmux-02.interop")
    );
    raw
}

async fn raw_server(listener: TcpListener) -> Raw {
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let (tcp, _) = within("raw accept", listener.accept())
        .await
        .expect("accept");
    let (raw, request) = within(
        "raw handshake",
        ws_stream_mux::handshake::accept(tcp.compat(), &accept_config()),
    )
    .await
    .expect("raw handshake");
    assert_eq!(request.protocol.as_deref(), Some("qmux-02.interop"));
    raw
}

/// What a peer answered to our bad message: its binary records, and its Close frame's code
/// (`Some(None)`: a Close frame without one; `None`: no Close frame).
struct Answer {
    records: Vec<Bytes>,
    close: Option<Option<u16>>,
}

async fn provoke(mut raw: Raw, message: Message) -> Answer {
    raw.send(message).await.expect("send the bad message");
    let mut answer = Answer {
        records: Vec::new(),
        close: None,
    };
    // Read to the end, so that tungstenite also answers the Close frame.
    within("its answer", async {
        while let Some(Ok(message)) = raw.next().await {
            match message {
                Message::Binary(record) => answer.records.push(record),
                Message::Close(frame) => answer.close = Some(frame.map(|f| u16::from(f.code))),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    answer
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let first = *bytes.first()?;
    let len = 1 << (first >> 6);
    let (head, rest) = (bytes.get(..len)?, bytes.get(len..)?);
    *bytes = rest;
    Some(
        head[1..]
            .iter()
            .fold(u64::from(first & 0x3f), |n, &b| n << 8 | u64::from(b)),
    )
}

/// A CONNECTION_CLOSE (0x1c) record: code, frame type, reason.
fn connection_close(record: &[u8]) -> Option<(u64, u64, String)> {
    let mut rest = record.strip_prefix(&[0x1c])?;
    let code = varint(&mut rest)?;
    let frame_type = varint(&mut rest)?;
    let len = usize::try_from(varint(&mut rest)?).ok()?;
    (rest.len() == len).then(|| (code, frame_type, String::from_utf8_lossy(rest).into_owned()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// @moq/qmux in `moq`'s role against a raw peer sending `input`: its parameters, then
/// CONNECTION_CLOSE with its code and reason, then a Close frame without a code; its `closed`
/// rejects with the matching error (checked by `peer.mjs`).
async fn moq_on(input: &BadInput, moq: Role) {
    let (raw, node) = match moq {
        Role::Server => {
            let mut node = NodePeer::spawn(Role::Server, input.case, None);
            let port = node.port().await;
            (raw_client(port).await, node)
        }
        Role::Client => {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let mut node = NodePeer::spawn(Role::Client, input.case, Some(port));
            let raw = tokio::select! {
                raw = raw_server(listener) => raw,
                exit = node.exit() => {
                    panic!("the Node peer exited before connecting\n{}", exit.report)
                }
            };
            (raw, node)
        }
    };
    let answer = provoke(raw, (input.message)()).await;
    let records = answer.records.iter().map(|r| hex(r)).collect::<Vec<_>>();
    assert_eq!(records.len(), 2, "{}, {moq:?}: {records:?}", input.case);
    assert_eq!(records[0], MOQ_DEFAULT_PARAMS, "its parameters");
    assert_eq!(
        connection_close(&answer.records[1]),
        Some((input.moq.0, 0, input.moq.1.to_owned())),
        "{}, {moq:?}: {}",
        input.case,
        records[1]
    );
    assert_eq!(answer.close, Some(None), "{}, {moq:?}", input.case);
    node.finish().await;
}

/// Our side in `ours`' role against a raw peer sending `input`: our parameters, then
/// CONNECTION_CLOSE with the RFC 9000 code, then our Close frame with its code; the connection
/// ends with the violation.
async fn ours_on(input: &BadInput, ours: Role) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (raw, conn) = match ours {
        Role::Server => {
            let server = tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.expect("accept");
                ws_stream_mux::tokio::accept(tcp, &accept_config(), Config::default())
                    .await
                    .expect("our server accepts")
                    .0
            });
            let raw = raw_client(port).await;
            (
                raw,
                within("our server", server).await.expect("server task"),
            )
        }
        Role::Client => {
            let url = format!("ws://127.0.0.1:{port}/");
            let offer = offer();
            let (raw, conn) = futures::join!(
                raw_server(listener),
                ws_stream_mux::tokio::connect_qmux(&url, &offer, Config::default())
            );
            (raw, conn.expect("our client connects"))
        }
    };
    let answer = provoke(raw, (input.message)()).await;
    assert_eq!(answer.records.len(), 2, "{}, {ours:?}", input.case);
    assert!(answer.records[0].starts_with(b"\xff\x51\x53\x30\x0d\x0a\x0d\x0a"));
    let (code, frame_type, _) = connection_close(&answer.records[1])
        .unwrap_or_else(|| panic!("not a CONNECTION_CLOSE: {}", hex(&answer.records[1])));
    assert_eq!((code, frame_type), (input.ours.0, 0), "{}", input.case);
    assert_eq!(answer.close, Some(Some(input.ours.1)), "{}", input.case);
    let err = within("our end", conn.closed()).await;
    assert!(
        matches!(&err, Error::Protocol(violation) if violation.qmux_code() == input.ours.0),
        "{}: {err}",
        input.case
    );
    if input.case == TEXT.case {
        assert!(matches!(err, Error::Protocol(ProtoError::TextMessage)));
    }
}

async fn bad_input(input: &BadInput) {
    for role in [Role::Server, Role::Client] {
        moq_on(input, role).await;
        ours_on(input, role).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_message_is_a_connection_error_on_both_sides() {
    bad_input(&TEXT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_frame_before_the_parameters_is_a_connection_error_on_both_sides() {
    bad_input(&STREAM_FIRST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_max_record_size_is_a_connection_error_on_both_sides() {
    bad_input(&BIG_RECORD).await;
}

// ----- Chromium -----

/// Our server's side of the page's session: five bidirectional echoes, its uni stream sent back on
/// one of ours, its datagram sent back; then how the session ended.
async fn serve_the_page(conn: Connection) -> (Vec<u8>, Bytes, Error) {
    let uni = async {
        let mut recv = conn.accept_uni().await.expect("accept its uni stream");
        let mut data = Vec::new();
        recv.read_to_end(&mut data)
            .await
            .expect("read its uni stream");
        let mut send = conn.open_uni().await.expect("open uni");
        send.write_all(&data).await.expect("write uni");
        send.close().await.expect("finish uni");
        data
    };
    let datagram = async {
        let datagram = conn.read_datagram().await.expect("its datagram");
        conn.send_datagram(datagram.clone()).expect("send it back");
        datagram
    };
    let ((), uni, datagram) = futures::join!(echo(&conn, 5), uni, datagram);
    (uni, datagram, conn.closed().await)
}

/// @moq/qmux loads unbundled in a Chromium page (an import map names its two packages' files), and
/// its session to our server multiplexes: streams, a uni stream, a datagram, its close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_page_speaks_qmux_with_our_server() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    // The page loads the installed packages: fail here, not in the page, if they are missing.
    interop_moq_support::node_modules();
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let ws = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
    let origin = format!("http://{}", http.local_addr().expect("addr"));
    let ws_addr = ws.local_addr().expect("addr");
    let (reports_tx, mut reports) = futures::channel::mpsc::unbounded();
    tokio::spawn(browser::serve(http, "chromium.html", reports_tx));

    let accept = accept_config().origins(OriginPolicy::allow_list([origin.clone()]));
    let mut server = tokio::spawn(async move {
        let (tcp, _) = ws.accept().await.expect("accept the page");
        let (conn, request) = ws_stream_mux::tokio::accept(tcp, &accept, Config::default())
            .await
            .expect("our server accepts the page");
        assert_eq!(request.protocol.as_deref(), Some("qmux-02.interop"));
        serve_the_page(conn).await
    });
    let _browser = browser::Browser::open(
        &chromium,
        &format!("{origin}/?ws=ws://{ws_addr}/"),
        &ws_addr.port().to_string(),
    );

    // The page's steps, for the failure message; a failure it reports ends the wait at once.
    let mut log = Vec::new();
    let outcome = {
        let watch = async {
            while let Some(line) = reports.next().await {
                let failed = line.starts_with("chromium fail");
                log.push(line);
                if failed {
                    return;
                }
            }
            std::future::pending().await
        };
        // Starting a browser on a loaded machine is slow: the limit is generous.
        tokio::select! {
            served = tokio::time::timeout(Duration::from_secs(90), &mut server) => Some(served),
            () = watch => None,
        }
    };
    let log = log.join("\n");
    let (uni, datagram, end) = match outcome {
        Some(Ok(Ok(served))) => served,
        Some(Ok(Err(panic))) => {
            eprintln!("our server failed; the page said:\n{log}");
            std::panic::resume_unwind(panic.into_panic())
        }
        Some(Err(_)) => panic!("the page's session did not end within 90 s; the page said:\n{log}"),
        None => panic!("the page failed:\n{log}"),
    };
    if std::env::var_os("MOQ_TRACE").is_some() {
        // Run with --nocapture to see the page's steps.
        eprintln!("the page said:\n{log}");
    }
    assert!(
        is_application_close(&end, 0, "chromium ok"),
        "{end}; the page said:\n{log}"
    );
    assert!(uni == pattern(800, 100_000), "its uni stream differs");
    assert!(datagram == pattern(900, 1000), "its datagram differs");
}
