//! Faults between the peers, injected by a TCP proxy (`faults_support`), for `Connection` and its
//! streams and for `WsIo`:
//!
//! - data survives any segmentation and delay (1-byte segments, seeded random chunks and pauses);
//! - a stalled link is detected by keep-alive and the idle timeout: every pending operation fails
//!   with `Error::TimedOut(Timeout::Idle)` and the peer is told 1001;
//! - a cut — during the HTTP handshake, during transfer, during the closing handshake, and at
//!   every byte offset of a small scripted session — ends every pending operation (reads, writes,
//!   flush, accept, open, ping, close) with the documented typed error: a handshake error before
//!   the upgrade, `ConnectionClosed` with 1006 after it, the close code once a Close frame got
//!   through. Never a hang, never a silent end of stream.
//!
//! Durations here are protocol settings under test (keep-alive, idle and close timeouts) or the
//! proxy's delays; every wait for an outcome is bounded by `within`, a safety net that fails
//! loudly.

use crate::common;
use crate::faults_support;

use std::{future::Future, io, pin::pin, sync::Mutex, time::Duration};

use async_std::task;
use common::{pattern, within};
use faults_support::{
    rig::{announced_stream, drive, write_until_blocked, Rig, Ws},
    wire::{self, Transcript},
    Cut, Dir, Plan, Shape,
};
use futures::{future::BoxFuture, AsyncReadExt, AsyncWriteExt, FutureExt};
use ws_stream_mux::{
    handshake::{HandshakeError, Rejection},
    io_websocket_config, websocket_config, CloseCode, Config, Connection, Error, Timeout, WsIo,
    WsIoConfig,
};

// ----- checks shared by the tests -----

/// FNV-1a: what the integrity tests compare, stream by stream.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The typed error inside an `io::Error` from one of our streams, whose kind must be the one
/// the typed error maps to (`Error::io_kind`).
fn typed(err: io::Error) -> Error {
    let Some(inner) = Error::from_io(&err) else {
        panic!("not one of our errors: {err:?}");
    };
    assert_eq!(err.kind(), inner.io_kind(), "the kind of {inner:?}");
    inner.clone()
}

/// An `io::Result` from a stream as a typed result.
fn in_band<T>(result: io::Result<T>) -> Result<(), Error> {
    result.map(drop).map_err(typed)
}

fn is_abnormal(err: &Error) -> bool {
    matches!(err, Error::ConnectionClosed { code, .. } if *code == CloseCode::ABNORMAL)
}

fn assert_abnormal(what: &str, outcome: Result<(), Error>) {
    match outcome {
        Err(err) if is_abnormal(&err) => {}
        other => panic!("{what}: expected ConnectionClosed with 1006, got {other:?}"),
    }
}

fn assert_closed_with(what: &str, outcome: Result<(), Error>, code: CloseCode) {
    match outcome {
        Err(Error::ConnectionClosed { code: got, .. }) if got == code => {}
        other => panic!("{what}: expected ConnectionClosed with {code}, got {other:?}"),
    }
}

/// Named operations that must all be waiting when the fault comes, and then all end.
struct Pending<'a> {
    ops: Vec<(&'static str, BoxFuture<'a, Result<(), Error>>)>,
}

impl<'a> Pending<'a> {
    fn new() -> Self {
        Self { ops: Vec::new() }
    }

    fn add(&mut self, name: &'static str, op: impl Future<Output = Result<(), Error>> + Send + 'a) {
        self.ops.push((name, op.boxed()));
    }

    /// Polls each operation once: each must be waiting (and is now registered to be woken).
    async fn assert_waiting(&mut self) {
        for (name, op) in &mut self.ops {
            assert!(
                futures::poll!(op.as_mut()).is_pending(),
                "{name} did not wait"
            );
        }
    }

    /// Awaits them all, under the safety net; a hang names the operations still waiting.
    async fn outcomes(self) -> Vec<(&'static str, Result<(), Error>)> {
        let slots: Vec<_> = self
            .ops
            .iter()
            .map(|(name, _)| (*name, Mutex::new(None)))
            .collect();
        let all = futures::future::join_all(self.ops.into_iter().zip(&slots).map(
            |((_, op), (_, slot))| async move {
                let outcome = op.await;
                *slot.lock().expect("slot") = Some(outcome);
            },
        ));
        // Half the safety net: a hang is reported here, by name, before the test's own net.
        let limit = common::SAFETY / 2;
        if async_std::future::timeout(limit, all).await.is_err() {
            let waiting: Vec<_> = slots
                .iter()
                .filter(|(_, slot)| slot.lock().expect("slot").is_none())
                .map(|(name, _)| *name)
                .collect();
            panic!("still waiting after {limit:?} (hang): {waiting:?}");
        }
        slots
            .into_iter()
            .map(|(name, slot)| (name, slot.into_inner().expect("slot").expect("done")))
            .collect()
    }
}

// ----- data integrity -----

/// Echoes every stream the peer opens, each in its own task, until the connection ends;
/// resolves to how it ended. An echo that fails shows in the client's checks of its stream.
async fn echo_streams(conn: Connection) -> Error {
    loop {
        match conn.accept().await {
            Ok(stream) => {
                task::spawn(async move {
                    let (mut send, recv) = stream.into_split();
                    futures::io::copy(recv, &mut send).await?;
                    send.close().await
                });
            }
            Err(end) => return end,
        }
    }
}

/// Sends `len` bytes of pattern `seed` through a new stream in writes of varying size, reads the
/// echo, and compares length and checksum.
async fn echo_checked(conn: &Connection, seed: u64, len: usize) {
    let stream = conn.open().await.expect("open");
    let (mut send, mut recv) = stream.into_split();
    let data = pattern(seed, len);
    let write = async {
        for chunk in data.chunks(1 + (seed as usize * 977) % 5000) {
            send.write_all(chunk).await.expect("write");
        }
        send.close().await.expect("FIN");
    };
    let read = async {
        let mut got = Vec::with_capacity(len);
        recv.read_to_end(&mut got).await.expect("read the echo");
        got
    };
    let ((), got) = futures::join!(write, read);
    assert_eq!(got.len(), len, "stream {seed}: length of the echo");
    assert_eq!(checksum(&got), checksum(&data), "stream {seed}: checksum");
}

/// `streams` streams at once, each echoing its own pattern of 1 to `max_len` bytes, through a
/// link shaped by `plan`; then a clean close.
async fn many_streams_through(mut plan: Plan, streams: u64, max_len: usize) {
    let mut rig = Rig::new().await;
    // tungstenite's client refuses an HTTP response read a byte at a time ("Attack attempt
    // detected": over 64 reads averaging under 128 bytes), so single-byte segments towards the
    // client start once the handshake is done. Our own server handshake reads the request so.
    let down = std::mem::take(&mut plan.down.shape);
    rig.proxy.set_plan(plan);
    let (client, server, link) = rig.conn_pair(Config::default(), Config::default()).await;
    link.set_shape(Dir::Down, down);
    drive(&client, &server);
    let echo = task::spawn(echo_streams(server));
    let lengths = (1..=streams).map(|seed| (seed, 1 + (seed as usize * 7919) % max_len));
    futures::future::join_all(lengths.map(|(seed, len)| echo_checked(&client, seed, len))).await;
    client
        .close(CloseCode::NORMAL, "done")
        .await
        .expect("close");
    assert_closed_with("the server's end", Err(echo.await), CloseCode::NORMAL);
}

#[async_std::test]
async fn many_streams_arrive_intact_through_one_byte_segments() {
    within(
        "1-byte segments",
        many_streams_through(Plan::shaped(Shape::Bytes), 16, 16 * 1024),
    )
    .await;
}

#[async_std::test]
async fn many_streams_arrive_intact_through_random_chunks_and_delays() {
    within("random chunks", async {
        for seed in 1..=3 {
            let mut plan = Plan::shaped(Shape::Random {
                seed,
                max_piece: 3000,
                max_pause: Duration::from_micros(500),
            });
            // And a slow link one way: every write waits.
            plan.down.delay = Duration::from_micros(200);
            many_streams_through(plan, 32, 64 * 1024).await;
        }
    })
    .await;
}

#[async_std::test]
async fn wsio_bytes_arrive_intact_through_one_byte_segments_and_random_chunks() {
    within("WsIo through shaped links", async {
        let shapes = [
            Shape::Bytes,
            Shape::Random {
                seed: 7,
                max_piece: 3000,
                max_pause: Duration::from_micros(500),
            },
        ];
        for shape in shapes {
            let mut rig = Rig::new().await;
            let mut plan = Plan::shaped(shape);
            // Towards the client only after the handshake, as in `many_streams_through`.
            plan.down.shape = Shape::AsRead;
            rig.proxy.set_plan(plan);
            let (mut client, mut server, link) = rig
                .io_pair(WsIoConfig::default(), WsIoConfig::default())
                .await;
            link.set_shape(Dir::Down, shape);
            let data = pattern(11, 48 * 1024);
            let echo = async {
                let mut got = vec![0u8; data.len()];
                server.read_exact(&mut got).await.expect("server read");
                server.write_all(&got).await.expect("server write");
                server.flush().await.expect("server flush");
                let mut rest = Vec::new();
                server
                    .read_to_end(&mut rest)
                    .await
                    .expect("the client's close")
            };
            let talk = async {
                for chunk in data.chunks(1000) {
                    client.write_all(chunk).await.expect("client write");
                }
                client.flush().await.expect("client flush");
                let mut back = vec![0u8; data.len()];
                client.read_exact(&mut back).await.expect("client read");
                client.close().await.expect("client close");
                back
            };
            let (rest, back) = futures::join!(echo, talk);
            assert_eq!(rest, 0, "nothing after the echo");
            assert_eq!(checksum(&back), checksum(&data), "{shape:?}: checksum");
        }
    })
    .await;
}

// ----- a stalled link -----

/// Keep-alive every `KEEP_ALIVE`, idle after `IDLE` of silence: long enough that a live peer on a
/// loaded machine is never taken for a dead one before the stall, short enough for a test.
const KEEP_ALIVE: Duration = Duration::from_millis(200);
const IDLE: Duration = Duration::from_secs(2);

/// The client watches for silence (the server does not): the server learns of the stall from
/// the client's Close frame, 1001.
fn watchful() -> Config {
    Config::default()
        .keep_alive_interval(Some(KEEP_ALIVE))
        .idle_timeout(Some(IDLE))
        .close_timeout(Some(Duration::from_secs(1)))
}

fn assert_idle(name: &str, outcome: Result<(), Error>) {
    match outcome {
        Err(Error::TimedOut(Timeout::Idle)) => {}
        other => panic!("{name}: expected the idle timeout, got {other:?}"),
    }
}

#[async_std::test]
async fn a_stalled_link_is_detected_by_keep_alive_and_the_idle_timeout() {
    within("stall", async {
        let mut rig = Rig::new().await;
        rig.proxy.set_plan(Plan::record());
        let client_config = watchful().max_streams(2);
        let (client, server, link) = rig.conn_pair(client_config, Config::default()).await;
        // Two streams the server accepted: one the client reads, one it writes past the server's
        // credit (the server does not read it). The drivers start once that write is blocked for
        // good.
        let (mut read_end, mut server_read_end) = announced_stream(&client, &server).await;
        let (mut blocked, _unread) = announced_stream(&client, &server).await;
        write_until_blocked(&mut blocked, &[1u8; 16 * 1024]).await;
        drive(&client, &server);

        // From now on the client hears nothing.
        let pings_before = count_frames(&link.transcript(Dir::Up), wire::PING);
        link.stall(Dir::Down);
        let (mut buf, mut server_buf) = ([0u8; 16], [0u8; 16]);
        let mut pending = Pending::new();
        pending.add("read", read_end.read(&mut buf).map(in_band));
        pending.add("write", blocked.write(&[3u8; 16]).map(in_band));
        pending.add("open", client.open().map(|r| r.map(drop)));
        pending.add("accept", client.accept().map(|r| r.map(drop)));
        pending.add("ping", client.ping().map(|r| r.map(drop)));
        pending.assert_waiting().await;
        for (name, outcome) in pending.outcomes().await {
            assert_idle(name, outcome);
        }
        assert_idle("the client's end", Err(client.closed().await));

        // The server heard the client's Close frame: 1001, going away.
        let server_read = server_read_end.read(&mut server_buf).await;
        assert_closed_with(
            "the server's read",
            in_band(server_read),
            CloseCode::GOING_AWAY,
        );
        assert_closed_with(
            "the server's end",
            Err(server.closed().await),
            CloseCode::GOING_AWAY,
        );
        // Keep-alive probed the silence before giving up: pings went up, none was answered.
        let pings_after = count_frames(&link.transcript(Dir::Up), wire::PING);
        assert!(
            pings_after > pings_before,
            "no keep-alive ping during the stall"
        );
        link.release(Dir::Down);
    })
    .await;
}

#[async_std::test]
async fn a_flush_on_a_link_stalled_both_ways_ends_with_the_idle_timeout() {
    within("stall both ways", async {
        let mut rig = Rig::new().await;
        let client_config = watchful().send_buffer(BIG as usize);
        let (client, server, link) = rig.conn_pair(client_config, generous()).await;
        let (mut bulk, _bulk_unread) = announced_stream(&client, &server).await;
        let (mut flushing, _flushing_unread) = announced_stream(&client, &server).await;
        let (mut finishing, _finishing_unread) = announced_stream(&client, &server).await;
        link.stall(Dir::Up);
        write_until_blocked(&mut bulk, &[5u8; 64 * 1024]).await;
        for stream in [&mut flushing, &mut finishing] {
            let queued = stream.write_all(b"queued").await;
            queued.expect("into the send buffer");
        }
        drive(&client, &server);
        link.stall(Dir::Down);

        let mut pending = Pending::new();
        pending.add("write", bulk.write(&[6u8; 1024]).map(in_band));
        pending.add("flush", flushing.flush().map(in_band));
        pending.add("close", finishing.close().map(in_band));
        pending.assert_waiting().await;
        for (name, outcome) in pending.outcomes().await {
            assert_idle(name, outcome);
        }
        link.cut(Cut::Close);
        // The server never heard a Close frame.
        assert_abnormal("the server's end", Err(server.closed().await));
    })
    .await;
}

#[async_std::test]
async fn wsio_detects_a_stalled_link_with_its_idle_timeout() {
    within("WsIo stall", async {
        let mut rig = Rig::new().await;
        let client_config = WsIoConfig::default()
            .keep_alive_interval(Some(KEEP_ALIVE))
            .idle_timeout(Some(IDLE))
            .close_timeout(Some(Duration::from_secs(1)));
        let (mut client, mut server, link) =
            rig.io_pair(client_config, WsIoConfig::default()).await;
        // Traffic both ways first: the link works.
        client.write_all(b"ping?").await.expect("write");
        client.flush().await.expect("flush");
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.expect("server read");
        server.write_all(b"pong!").await.expect("server write");
        server.flush().await.expect("server flush");
        client.read_exact(&mut got).await.expect("client read");

        link.stall(Dir::Down);
        let mut buf = [0u8; 8];
        let read = client.read(&mut buf).await;
        let err = read.expect_err("a read on a stalled link fails");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err:?}");
        assert!(
            matches!(Error::from_io(&err), Some(Error::TimedOut(Timeout::Idle))),
            "{err:?}"
        );
        // Writes fail the same way (as NotConnected, the kind WsIo documents for writes after
        // closing began).
        let write = client
            .write(b"more")
            .await
            .expect_err("writing after the idle timeout");
        assert_eq!(write.kind(), io::ErrorKind::NotConnected, "{write:?}");
        assert!(
            matches!(Error::from_io(&write), Some(Error::TimedOut(Timeout::Idle))),
            "{write:?}"
        );
        // The server read the client's Close frame: a clean end with 1001.
        let mut rest = Vec::new();
        assert_eq!(
            server.read_to_end(&mut rest).await.expect("end of stream"),
            0
        );
        assert_closed_with(
            "the server's end",
            Err(server.ended().expect("over")),
            CloseCode::GOING_AWAY,
        );
        link.release(Dir::Down);
    })
    .await;
}

fn count_frames(transcript: &[u8], opcode: u8) -> usize {
    Transcript::parse(transcript)
        .frames
        .iter()
        .filter(|frame| frame.opcode == opcode)
        .count()
}

// ----- a cut during the HTTP handshake -----

/// What a client's handshake must fail with when the connection ends before the handshake did:
/// `HandshakeError::Io`, which "includes the peer closing the connection before the handshake
/// ended".
fn assert_handshake_io(what: &str, outcome: Result<Ws, HandshakeError>) {
    match outcome {
        Err(HandshakeError::Io(_)) => {}
        Err(other) => panic!("{what}: expected HandshakeError::Io, got {other:?}"),
        Ok(_) => panic!("{what}: the handshake succeeded over a cut link"),
    }
}

#[async_std::test]
async fn a_cut_during_the_http_request_fails_both_handshakes_with_typed_errors() {
    within("cut in the request", async {
        for how in [Cut::Close, Cut::Reset] {
            let rig = Rig::new().await;
            // 20 bytes: "GET / HTTP/1.1\r\nHost" — part of a head.
            rig.proxy.set_plan(Plan::cut_after(Dir::Up, 20, how));
            let ws_config = websocket_config(&Config::default());
            let (client, server) =
                futures::join!(rig.connect_ws(ws_config), rig.accept_ws(ws_config));
            assert_handshake_io(&format!("{how:?}: client"), client);
            match (how, server) {
                // The head ended early: "the connection ended in the middle of the head".
                (Cut::Close, Err(HandshakeError::Rejected(Rejection::Incomplete))) => {}
                // The socket failed.
                (Cut::Reset, Err(HandshakeError::Io(err)))
                    if err.kind() == io::ErrorKind::ConnectionReset => {}
                (_, other) => panic!("{how:?}: server: {other:?}"),
            }
        }
    })
    .await;
}

#[async_std::test]
async fn a_cut_during_the_http_response_fails_the_client_and_ends_the_server_with_1006() {
    within("cut in the response", async {
        for how in [Cut::Close, Cut::Reset] {
            let rig = Rig::new().await;
            // 20 bytes: "HTTP/1.1 101 Switchi" — the server upgraded, the client never learns.
            rig.proxy.set_plan(Plan::cut_after(Dir::Down, 20, how));
            let ws_config = websocket_config(&Config::default());
            let (client, server) =
                futures::join!(rig.connect_ws(ws_config), rig.accept_ws(ws_config));
            assert_handshake_io(&format!("{how:?}: client"), client);
            let server =
                Connection::server(server.expect("the server upgraded"), Config::default())
                    .expect("config");
            assert_abnormal("the server's accept", server.accept().await.map(drop));
            assert_abnormal("the server's open", server.open().await.map(drop));
        }
    })
    .await;
}

// ----- a cut during transfer -----

/// Credit the server grants, and the client's send buffer: far more than a stalled link absorbs
/// (the proxy's receive buffer plus the client's kernel send buffer, a few MiB at most). A
/// client that writes this much to a stalled link has its writes wait for credit that never
/// comes, and its socket never flushes: the bytes beyond what TCP absorbed wait in the mux.
const BIG: u32 = 16 << 20;

/// A server that grants [`BIG`] credit per stream.
fn generous() -> Config {
    Config::default()
        .initial_window(BIG)
        .window(BIG)
        .receive_budget(4 * BIG as u64)
}

/// Every kind of operation waits when the link is cut; each ends with 1006.
async fn cut_mid_transfer(how: Cut, driven: bool) {
    let mut rig = Rig::new().await;
    let client_config = Config::default().max_streams(3).send_buffer(BIG as usize);
    let (client, server, link) = rig.conn_pair(client_config, generous()).await;
    let (mut read_end, mut server_read_end) = announced_stream(&client, &server).await;
    let (mut bulk, _bulk_unread) = announced_stream(&client, &server).await;
    let (mut flushing, _flushing_unread) = announced_stream(&client, &server).await;
    // A stream the server opens and writes past the client's credit: the client never reads it.
    let (mut push, _pushed) = announced_stream(&server, &client).await;
    write_until_blocked(&mut push, &[4u8; 16 * 1024]).await;
    // Up stalled: the client's writes fill TCP, then its send buffer, then wait for credit.
    link.stall(Dir::Up);
    write_until_blocked(&mut bulk, &[5u8; 64 * 1024]).await;
    flushing
        .write_all(b"queued")
        .await
        .expect("into the send buffer");
    if driven {
        drive(&client, &server);
    }

    let (mut buf, mut server_buf) = ([0u8; 16], [0u8; 16]);
    let mut pending = Pending::new();
    pending.add("client read", read_end.read(&mut buf).map(in_band));
    pending.add("client write", bulk.write(&[6u8; 1024]).map(in_band));
    pending.add("client flush", flushing.flush().map(in_band));
    pending.add("client open", client.open().map(|r| r.map(drop)));
    pending.add("client accept", client.accept().map(|r| r.map(drop)));
    pending.add("client ping", client.ping().map(|r| r.map(drop)));
    pending.add(
        "server read",
        server_read_end.read(&mut server_buf).map(in_band),
    );
    pending.add("server write", push.write(&[7u8; 1024]).map(in_band));
    pending.add("server accept", server.accept().map(|r| r.map(drop)));
    pending.add("server ping", server.ping().map(|r| r.map(drop)));
    pending.assert_waiting().await;
    link.cut(how);
    for (name, outcome) in pending.outcomes().await {
        assert_abnormal(&format!("{how:?}, driven {driven}: {name}"), outcome);
    }
    // What comes after fails the same way, at once.
    assert_abnormal("client end", Err(client.closed().await));
    assert_abnormal("server end", Err(server.closed().await));
    assert_abnormal("open afterwards", client.open().await.map(drop));
    assert_abnormal("read afterwards", in_band(bulk.read(&mut buf).await));
    assert_abnormal("write afterwards", in_band(read_end.write(b"late").await));
}

#[async_std::test]
async fn a_cut_mid_transfer_ends_every_pending_operation_with_1006() {
    within("cut mid-transfer", async {
        for how in [Cut::Close, Cut::Reset] {
            for driven in [true, false] {
                cut_mid_transfer(how, driven).await;
            }
        }
    })
    .await;
}

#[async_std::test]
async fn wsio_a_cut_mid_transfer_ends_reads_and_flush_with_1006() {
    within("WsIo cut mid-transfer", async {
        for how in [Cut::Close, Cut::Reset] {
            let mut rig = Rig::new().await;
            let (client, mut server, link) = rig
                .io_pair(WsIoConfig::default(), WsIoConfig::default())
                .await;
            let (mut reader, mut writer) = client.split();
            link.stall(Dir::Up);
            write_until_blocked(&mut writer, &[8u8; 64 * 1024]).await;

            let (mut buf, mut server_buf) = ([0u8; 16], [0u8; 16]);
            let mut pending = Pending::new();
            pending.add("client read", reader.read(&mut buf).map(in_band));
            pending.add("client flush", writer.flush().map(in_band));
            pending.add("server read", server.read(&mut server_buf).map(in_band));
            pending.assert_waiting().await;

            link.cut(how);
            for (name, outcome) in pending.outcomes().await {
                assert_abnormal(&format!("{how:?}: {name}"), outcome);
            }
            assert_abnormal("read afterwards", in_band(reader.read(&mut buf).await));
            assert_abnormal("close afterwards", writer.close().await.map_err(typed));
        }
    })
    .await;
}

// ----- a cut during the closing handshake -----

#[async_std::test]
async fn a_cut_during_the_closing_handshake_fails_the_waiting_close_with_1006() {
    within("cut while closing", async {
        for how in [Cut::Close, Cut::Reset] {
            let mut rig = Rig::new().await;

            // Our Close frame reached the peer; its answer is lost.
            let (client, server, link) = rig.conn_pair(Config::default(), Config::default()).await;
            drive(&client, &server);
            let (mut stream, _accepted) = announced_stream(&client, &server).await;
            link.stall(Dir::Down);
            let mut close = pin!(client.close(CloseCode::NORMAL, "bye"));
            assert!(
                futures::poll!(&mut close).is_pending(),
                "close waits for the answer"
            );
            // The server had the frame: it ended with our code.
            assert_closed_with(
                "the server's end",
                Err(server.closed().await),
                CloseCode::NORMAL,
            );
            // Our streams fail with our close from the moment it started.
            let mut buf = [0u8; 8];
            assert_closed_with(
                "a read while closing",
                in_band(stream.read(&mut buf).await),
                CloseCode::NORMAL,
            );
            link.cut(how);
            assert_abnormal(
                &format!("{how:?}: close, answer lost"),
                within("close", close).await,
            );
            assert_abnormal("the client's end", Err(client.closed().await));

            // Our Close frame never reached the peer.
            let (client, server, link) = rig.conn_pair(Config::default(), Config::default()).await;
            drive(&client, &server);
            link.stall(Dir::Up);
            let mut pending = Pending::new();
            pending.add("client close", client.close(CloseCode::NORMAL, "bye"));
            pending.add("server accept", server.accept().map(|r| r.map(drop)));
            pending.assert_waiting().await;
            link.cut(how);
            for (name, outcome) in pending.outcomes().await {
                assert_abnormal(&format!("{how:?}: {name}, frame lost"), outcome);
            }

            // The peer closed first; our answer is lost: its close fails, we ended with its code.
            let (client, server, link) = rig.conn_pair(Config::default(), Config::default()).await;
            drive(&client, &server);
            link.stall(Dir::Up);
            let mut close = pin!(server.close(CloseCode(4000), "server done"));
            assert!(
                futures::poll!(&mut close).is_pending(),
                "close waits for the answer"
            );
            assert_closed_with(
                "the client's end",
                Err(client.closed().await),
                CloseCode(4000),
            );
            link.cut(how);
            assert_abnormal(
                &format!("{how:?}: the server's close"),
                within("close", close).await,
            );
        }
    })
    .await;
}

#[async_std::test]
async fn wsio_a_cut_during_the_closing_handshake_fails_the_waiting_close_with_1006() {
    within("WsIo cut while closing", async {
        for how in [Cut::Close, Cut::Reset] {
            let mut rig = Rig::new().await;
            let (mut client, mut server, link) = rig
                .io_pair(WsIoConfig::default(), WsIoConfig::default())
                .await;
            link.stall(Dir::Down);
            let mut close = pin!(client.close_with(CloseCode::NORMAL, "bye"));
            assert!(
                futures::poll!(&mut close).is_pending(),
                "close waits for the answer"
            );
            // The server read our Close frame: a clean end of stream, with our code.
            let mut rest = Vec::new();
            assert_eq!(
                server.read_to_end(&mut rest).await.expect("end of stream"),
                0
            );
            assert_closed_with(
                "the server's end",
                Err(server.ended().expect("over")),
                CloseCode::NORMAL,
            );
            link.cut(how);
            assert_abnormal(&format!("{how:?}: close"), within("close", close).await);
        }
    })
    .await;
}

/// `flush` is `Ok` "once everything written was written out to the socket, an error if some of
/// it never will be", and a stream's `close` waits until its FIN was written out. Here the bytes
/// (a stream's data, then another stream's FIN) are handed to a socket whose peer is already
/// gone: the socket's write fails, the connection ends with 1006, and the bytes will never be
/// written out. No driver runs, so that the operation itself is what finds the socket dead.
#[async_std::test]
async fn flush_and_close_whose_bytes_never_leave_fail_with_1006() {
    within("flush and close after a reset", async {
        let mut rig = Rig::new().await;
        let (client, server, link) = rig.conn_pair(Config::default(), Config::default()).await;
        let (mut flushing, _flushed) = announced_stream(&client, &server).await;
        let (mut closing, _closed) = announced_stream(&client, &server).await;
        // The proxy's threads close their handles one after the other, so the server may see
        // its RST before the client's socket got one: wait until both did. Nothing of the
        // client has read it yet.
        link.cut(Cut::Reset);
        link.released().await;
        assert_abnormal("the server's end", Err(server.closed().await));

        flushing.write_all(b"late").await.expect("queued");
        assert_abnormal("flush", in_band(flushing.flush().await));
        assert_abnormal("close", in_band(closing.close().await));
    })
    .await;
}

/// `Connection::close` documents `AlreadyClosed` for "a Close frame was already sent or
/// received" and 1006 for "the connection ended without the peer's answer"; every other
/// operation of a connection whose TCP was cut fails with 1006, and so does `WsIo::close_with`.
#[async_std::test]
async fn close_after_the_link_was_cut_fails_with_1006_like_every_other_operation() {
    within("close after a cut", async {
        let mut rig = Rig::new().await;
        let (client, server, link) = rig.conn_pair(Config::default(), Config::default()).await;
        drive(&client, &server);
        link.cut(Cut::Close);
        assert_abnormal("the client's end", Err(client.closed().await));
        assert_abnormal(
            "close after the end",
            client.close(CloseCode::NORMAL, "").await,
        );
        assert_abnormal(
            "shutdown after the end",
            client.shutdown(CloseCode::NORMAL, "", None).await,
        );

        let (mut io, _server, link) = rig
            .io_pair(WsIoConfig::default(), WsIoConfig::default())
            .await;
        link.cut(Cut::Close);
        let mut buf = [0u8; 8];
        assert_abnormal("WsIo read", in_band(io.read(&mut buf).await));
        assert_abnormal(
            "WsIo close after the end",
            io.close_with(CloseCode::NORMAL, "").await,
        );
    })
    .await;
}

// ----- a cut at every byte offset of a scripted session -----

/// The scripted sessions: the client sends a request and reads a reply, then closes.
const REQUEST: &[u8] = b"request";
const REPLY: &[u8] = b"reply!";

/// One step of a session and what it returned (the bytes, for reads).
type Step = (&'static str, Result<Vec<u8>, Error>);

/// The multiplexed session, client side: handshake, open a stream, write the request and finish,
/// read the reply to its end, close the connection with 1000.
async fn mux_client(rig: &Rig) -> Vec<Step> {
    let config = Config::default();
    let ws = match rig.connect_ws(websocket_config(&config)).await {
        Ok(ws) => ws,
        Err(err) => return vec![("handshake", Err(err.into()))],
    };
    let conn = Connection::client(ws, config).expect("config");
    task::spawn(conn.run());
    let mut steps = vec![("handshake", Ok(Vec::new()))];
    let mut stream = match conn.open().await {
        Ok(stream) => stream,
        Err(err) => return [steps, vec![("open", Err(err))]].concat(),
    };
    let write = async {
        stream.write_all(REQUEST).await?;
        stream.close().await
    };
    steps.push(("write", write.await.map(|()| Vec::new()).map_err(typed)));
    let mut reply = Vec::new();
    let read = stream.read_to_end(&mut reply).await;
    steps.push(("read", read.map(|_| reply).map_err(typed)));
    drop(stream);
    let close = conn.close(CloseCode::NORMAL, "bye").await;
    steps.push(("close", close.map(|()| Vec::new())));
    steps
}

/// The multiplexed session, server side: handshake, accept the stream, read the request to its
/// end, write the reply and finish; then wait in `accept` until the connection ends — `Ok` for
/// the client's close with 1000, the error otherwise.
async fn mux_server(rig: &Rig) -> Vec<Step> {
    let config = Config::default();
    let ws = match rig.accept_ws(websocket_config(&config)).await {
        Ok(ws) => ws,
        Err(err) => return vec![("handshake", Err(err.into()))],
    };
    let conn = Connection::server(ws, config).expect("config");
    task::spawn(conn.run());
    let mut steps = vec![("handshake", Ok(Vec::new()))];
    match conn.accept().await {
        Ok(mut stream) => {
            steps.push(("accept", Ok(Vec::new())));
            let mut request = Vec::new();
            let read = stream.read_to_end(&mut request).await;
            steps.push(("read", read.map(|_| request).map_err(typed)));
            let write = async {
                stream.write_all(REPLY).await?;
                stream.close().await
            };
            steps.push(("write", write.await.map(|()| Vec::new()).map_err(typed)));
        }
        Err(err) => steps.push(("accept", Err(err))),
    }
    let end = match conn.accept().await {
        Ok(_) => panic!("the client opens one stream only"),
        Err(Error::ConnectionClosed { code, reason })
            if code == CloseCode::NORMAL && reason == "bye" =>
        {
            Ok(Vec::new())
        }
        Err(err) => Err(err),
    };
    steps.push(("end", end));
    steps
}

/// The `WsIo` session, client side: handshake, write the request and flush, read the reply,
/// close with 1000.
async fn io_client(rig: &Rig) -> Vec<Step> {
    let config = WsIoConfig::default();
    let mut io = match rig.connect_ws(io_websocket_config(&config)).await {
        Ok(ws) => WsIo::with_config(ws, config).expect("config"),
        Err(err) => return vec![("handshake", Err(err.into()))],
    };
    let mut steps = vec![("handshake", Ok(Vec::new()))];
    let write = async {
        io.write_all(REQUEST).await?;
        io.flush().await
    };
    steps.push(("write", write.await.map(|()| Vec::new()).map_err(typed)));
    let mut reply = vec![0u8; REPLY.len()];
    let read = io.read_exact(&mut reply).await;
    steps.push(("read", read.map(|()| reply).map_err(typed)));
    let close = io.close_with(CloseCode::NORMAL, "bye").await;
    steps.push(("close", close.map(|()| Vec::new())));
    steps
}

/// The `WsIo` session, server side: handshake, read the request, write the reply and flush,
/// then read on — `Ok` for the clean end of stream the client's close brings.
async fn io_server(rig: &Rig) -> Vec<Step> {
    let config = WsIoConfig::default();
    let mut io = match rig.accept_ws(io_websocket_config(&config)).await {
        Ok(ws) => WsIo::with_config(ws, config).expect("config"),
        Err(err) => return vec![("handshake", Err(err.into()))],
    };
    let mut steps = vec![("handshake", Ok(Vec::new()))];
    let mut request = vec![0u8; REQUEST.len()];
    let read = io.read_exact(&mut request).await;
    steps.push(("read", read.map(|()| request).map_err(typed)));
    let write = async {
        io.write_all(REPLY).await?;
        io.flush().await
    };
    steps.push(("write", write.await.map(|()| Vec::new()).map_err(typed)));
    let mut buf = [0u8; 16];
    let end = match io.read(&mut buf).await {
        Ok(0) => Ok(Vec::new()),
        Ok(n) => panic!("the client sent {n} bytes more than its request"),
        Err(err) => Err(typed(err)),
    };
    steps.push(("end", end));
    steps
}

/// What a step must do when the link is cut after `n` bytes went one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Ok,
    Fail,
    /// The cut fell right where the step's outcome is decided (a reply races the cut), or the
    /// step's success says only that the bytes left (a write).
    Either,
}

/// A step that needs the bytes up to offset `at` to have arrived.
fn reached(n: u64, at: u64) -> Expect {
    if n >= at {
        Expect::Ok
    } else {
        Expect::Fail
    }
}

/// A step that needs what the peer sends in reply to the bytes up to `at`: with the cut right
/// after them, the reply races the cut.
fn after(n: u64, at: u64) -> Expect {
    match n.cmp(&at) {
        std::cmp::Ordering::Greater => Expect::Ok,
        std::cmp::Ordering::Equal => Expect::Either,
        std::cmp::Ordering::Less => Expect::Fail,
    }
}

/// Where a recorded session's messages end, each way: the milestones a cut falls before or
/// after.
struct Milestones {
    /// The HTTP request, the client's first and last binary messages, its Close frame.
    request: u64,
    first_up: u64,
    last_up: u64,
    total_up: u64,
    /// The HTTP response, the server's first and last binary messages, its Close frame.
    response: u64,
    first_down: u64,
    last_down: u64,
    total_down: u64,
}

impl Milestones {
    fn of(up: &Transcript, down: &Transcript) -> Self {
        Milestones {
            request: up.head_len,
            first_up: up.first_end(wire::BINARY),
            last_up: up.last_end(wire::BINARY),
            total_up: up.total(),
            response: down.head_len,
            first_down: down.first_end(wire::BINARY),
            last_down: down.last_end(wire::BINARY),
            total_down: down.total(),
        }
    }

    fn total(&self, dir: Dir) -> u64 {
        match dir {
            Dir::Up => self.total_up,
            Dir::Down => self.total_down,
        }
    }
}

/// The multiplexed session's expectations for a cut after `n` bytes went `dir`, per (side,
/// step). The causal chain: request → response → the client's ACK opening the stream → the
/// server's ACK (credit) → the client's data and FIN → the server's reply and FIN → the client's
/// Close frame → the server's answer.
fn mux_expect(m: &Milestones, dir: Dir, n: u64, side: &str, step: &str) -> Expect {
    if n == 0 {
        return Expect::Fail; // cut before the first byte
    }
    match (dir, side, step) {
        (_, _, "open" | "write") => Expect::Either,
        (Dir::Up, _, "handshake") => after(n, m.request),
        (Dir::Up, "client", "read") => after(n, m.last_up),
        (Dir::Up, "client", "close") => after(n, m.total_up),
        (Dir::Up, "server", "accept") => reached(n, m.first_up),
        (Dir::Up, "server", "read") => reached(n, m.last_up),
        (Dir::Up, "server", "end") => reached(n, m.total_up),
        (Dir::Down, "client", "handshake") => reached(n, m.response),
        (Dir::Down, "client", "read") => reached(n, m.last_down),
        (Dir::Down, "client", "close") => reached(n, m.total_down),
        (Dir::Down, "server", "handshake") => Expect::Ok,
        (Dir::Down, "server", "accept") => after(n, m.response),
        (Dir::Down, "server", "read") => after(n, m.first_down),
        (Dir::Down, "server", "end") => after(n, m.last_down),
        other => panic!("no expectation for {other:?}"),
    }
}

/// The same for the `WsIo` session: request → response → the client's data → the server's
/// reply → the client's Close frame → the server's answer.
fn io_expect(m: &Milestones, dir: Dir, n: u64, side: &str, step: &str) -> Expect {
    if n == 0 {
        return Expect::Fail;
    }
    match (dir, side, step) {
        (_, _, "write") => Expect::Either,
        (Dir::Up, _, "handshake") => after(n, m.request),
        (Dir::Up, "client", "read") => after(n, m.last_up),
        (Dir::Up, "client", "close") => after(n, m.total_up),
        (Dir::Up, "server", "read") => reached(n, m.last_up),
        (Dir::Up, "server", "end") => reached(n, m.total_up),
        (Dir::Down, "client", "handshake") => reached(n, m.response),
        (Dir::Down, "client", "read") => reached(n, m.last_down),
        (Dir::Down, "client", "close") => reached(n, m.total_down),
        (Dir::Down, "server", "handshake") => Expect::Ok,
        (Dir::Down, "server", "read") => after(n, m.response),
        (Dir::Down, "server", "end") => after(n, m.last_down),
        other => panic!("no expectation for {other:?}"),
    }
}

/// Whether `err` is the error the docs give for a failed step: a typed handshake error before the
/// upgrade (the client's: `HandshakeError::Io`; the server's: the head cut short, or the socket
/// failing), 1006 for everything after it.
fn documented_failure(side: &str, step: &str, err: &Error) -> bool {
    match (side, step, err) {
        ("client", "handshake", Error::Handshake(HandshakeError::Io(_))) => true,
        (
            "server",
            "handshake",
            Error::Handshake(
                HandshakeError::Rejected(Rejection::Incomplete) | HandshakeError::Io(_),
            ),
        ) => true,
        (_, "handshake", _) => false,
        _ => is_abnormal(err),
    }
}

/// Checks one side's steps against the expectations; returns what is wrong.
fn check_steps(
    side: &str,
    steps: &[Step],
    expect: impl Fn(&str) -> Expect,
    read_data: &[u8],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (step, outcome) in steps {
        let expected = expect(step);
        match (expected, outcome) {
            (Expect::Ok | Expect::Either, Ok(data)) => {
                if *step == "read" && data != read_data {
                    wrong.push(format!("{side} {step}: read {data:?}, not {read_data:?}"));
                }
            }
            (Expect::Fail | Expect::Either, Err(err)) => {
                if !documented_failure(side, step, err) {
                    wrong.push(format!("{side} {step}: failed with {err:?}"));
                }
            }
            (Expect::Ok, Err(err)) => wrong.push(format!(
                "{side} {step}: should succeed, failed with {err:?}"
            )),
            (Expect::Fail, Ok(_)) => wrong.push(format!("{side} {step}: should fail, succeeded")),
        }
    }
    // A step that must succeed must have been reached.
    let reached_handshake = steps.first().is_some_and(|(_, outcome)| outcome.is_ok());
    if reached_handshake && expect("handshake") == Expect::Ok {
        for step in ["read", "end", "close"] {
            let ran = steps.iter().any(|(name, _)| *name == step);
            let known = side == "client" && step != "end" || side == "server" && step != "close";
            if known && !ran && expect(step) == Expect::Ok {
                wrong.push(format!("{side} {step}: never ran"));
            }
        }
    }
    wrong
}

/// Which session a sweep runs.
#[derive(Debug, Clone, Copy)]
enum Session {
    Mux,
    Io,
}

impl Session {
    async fn run(self, rig: &Rig) -> (Vec<Step>, Vec<Step>) {
        let both = async {
            match self {
                Session::Mux => futures::join!(mux_client(rig), mux_server(rig)),
                Session::Io => futures::join!(io_client(rig), io_server(rig)),
            }
        };
        within("a scripted session", both).await
    }

    fn expect(self, m: &Milestones, dir: Dir, n: u64, side: &str, step: &str) -> Expect {
        match self {
            Session::Mux => mux_expect(m, dir, n, side, step),
            Session::Io => io_expect(m, dir, n, side, step),
        }
    }
}

/// Records the session twice (it must go the same way both times, or its milestones mean
/// nothing), then cuts it after every byte offset of each direction, alternating FIN and RST,
/// and checks every step against the expectations. Reports every violation at once.
async fn sweep(session: Session) {
    let mut rig = Rig::new().await;
    let mut recorded = Vec::new();
    for _ in 0..2 {
        rig.proxy.set_plan(Plan::record());
        let (client, server) = session.run(&rig).await;
        assert!(
            client
                .iter()
                .chain(&server)
                .all(|(_, outcome)| outcome.is_ok()),
            "{client:?} {server:?}"
        );
        let link = rig.proxy.next_link().await;
        assert_eq!(
            link.was_cut().await,
            None,
            "the recording ended without a cut"
        );
        let up = Transcript::parse(&link.transcript(Dir::Up));
        let down = Transcript::parse(&link.transcript(Dir::Down));
        recorded.push((up, down));
    }
    let ((up, down), (up_again, down_again)) = (&recorded[0], &recorded[1]);
    for (first, again) in [(up, up_again), (down, down_again)] {
        assert_eq!(
            first.messages(),
            again.messages(),
            "the session is not deterministic"
        );
        let ends = |t: &Transcript| t.frames.iter().map(|f| f.end).collect::<Vec<_>>();
        assert_eq!(ends(first), ends(again), "the session is not deterministic");
    }
    let milestones = Milestones::of(up, down);

    let mut wrong = Vec::new();
    for dir in Dir::BOTH {
        // One offset past the end: no cut at all, everything succeeds.
        for n in 0..=milestones.total(dir) + 1 {
            let how = if n % 2 == 0 { Cut::Close } else { Cut::Reset };
            rig.proxy.set_plan(Plan::cut_after(dir, n, how));

            let (client, server) = session.run(&rig).await;
            let _link = rig.proxy.next_link().await;
            let milestones = &milestones;
            let expect = |side: &'static str| {
                move |step: &str| session.expect(milestones, dir, n, side, step)
            };
            let problems = [
                check_steps("client", &client, expect("client"), REPLY),
                check_steps("server", &server, expect("server"), REQUEST),
            ]
            .concat();
            wrong.extend(
                problems
                    .into_iter()
                    .map(|p| format!("{dir:?} cut ({how:?}) after {n} bytes: {p}")),
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "{} violation(s):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[async_std::test]
async fn a_cut_at_every_byte_offset_of_a_multiplexed_session_ends_it_truthfully() {
    sweep(Session::Mux).await;
}

#[async_std::test]
async fn a_cut_at_every_byte_offset_of_a_wsio_session_ends_it_truthfully() {
    sweep(Session::Io).await;
}
