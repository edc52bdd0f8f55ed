//! Our side of each case of `tests/interop/peer.js`, written against the public API only. The
//! names follow the JS parts: our `open` plays against the JS `accept` and so on.

use std::io;

use futures::{AsyncReadExt, AsyncWriteExt};
use ws_stream_mux::{CloseCode, Connection, Error, ErrorCode, WsStream};

use super::within;

pub const RESET: ErrorCode = ErrorCode(4001);
pub const STOP: ErrorCode = ErrorCode(4002);
pub const CLOSE: CloseCode = CloseCode(4000);
pub const CLOSE_REASON: &str = "bye from the closer";
pub const CONCURRENT: usize = 100;
pub const BULK: usize = 1024 * 1024;
pub const SMALL_WINDOW_STREAMS: usize = 4;
pub const SMALL_WINDOW_BYTES: usize = 4096;
pub const LATE_BYTES: usize = 64 * 1024;

/// Deterministic test data: `len` bytes that differ per `seed`. The same 32-bit LCG as
/// `pattern` in tests/interop/lib.js, so either side can check what the other sent.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = (seed.wrapping_mul(2_654_435_761).wrapping_add(1)) as u32;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 24) as u8
        })
        .collect()
}

/// Our typed error inside an `io::Error`, or a panic saying what it was instead.
fn typed(err: &io::Error) -> &Error {
    Error::from_io(err).unwrap_or_else(|| panic!("not a ws_stream_mux error: {err:?}"))
}

async fn read_all(stream: &mut WsStream) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    stream.read_to_end(&mut data).await?;
    Ok(data)
}

async fn expect_text(stream: &mut WsStream, want: &str, what: &str) {
    let got = within(what, read_all(stream))
        .await
        .unwrap_or_else(|e| panic!("{what}: read failed: {e:?}"));
    assert_eq!(String::from_utf8_lossy(&got), want, "{what}");
}

async fn write_all_and_finish(stream: &mut WsStream, data: &[u8], what: &str) {
    within(what, async {
        stream.write_all(data).await?;
        stream.close().await
    })
    .await
    .unwrap_or_else(|e| panic!("{what}: write failed: {e:?}"));
}

/// Writes `data` and finishes while reading the echo, which must equal `data`.
async fn echo_check(stream: WsStream, data: Vec<u8>, what: String) {
    let (mut reader, mut writer) = stream.split();
    let write = async {
        writer.write_all(&data).await?;
        writer.close().await
    };
    let read = async {
        let mut echoed = Vec::new();
        reader.read_to_end(&mut echoed).await.map(|_| echoed)
    };
    let (written, echoed) = within(&what, futures::future::join(write, read)).await;
    written.unwrap_or_else(|e| panic!("{what}: write failed: {e:?}"));
    let echoed = echoed.unwrap_or_else(|e| panic!("{what}: read failed: {e:?}"));
    assert!(
        echoed == data,
        "{what}: echo differs (sent {} bytes, got {}, first difference at {})",
        data.len(),
        echoed.len(),
        data.iter().zip(&echoed).take_while(|(a, b)| a == b).count()
    );
}

/// Sends back everything read, then finishes.
async fn echo(mut stream: WsStream) {
    let mut buf = vec![0; 64 * 1024];
    within("echo", async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            stream.write_all(&buf[..n]).await?;
        }
        stream.close().await
    })
    .await
    .unwrap_or_else(|e| panic!("echo on stream {}: {e:?}", stream.id()));
}

async fn accept(conn: &Connection) -> WsStream {
    within("accept", conn.accept())
        .await
        .expect("accept a stream")
}

async fn open(conn: &Connection) -> WsStream {
    within("open", conn.open()).await.expect("open a stream")
}

/// Accepts `count` streams and runs `handler(stream, index)` on each, concurrently.
async fn accept_each<F, Fut>(conn: &Connection, count: usize, handler: F)
where
    F: Fn(WsStream, usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tasks = Vec::new();
    for i in 0..count {
        let stream = accept(conn).await;
        tasks.push(async_std::task::spawn(handler(stream, i)));
    }
    for task in tasks {
        task.await;
    }
}

/// The end of every case but `close` (see peer.js): the accepting side opens a last stream
/// saying "done" once its checks passed; the opening side reads it and closes with 1000.
async fn finish_opener(conn: &Connection) {
    let mut done = accept(conn).await;
    expect_text(&mut done, "done", "final stream").await;
    drop(done);
    within("close", conn.close(CloseCode::NORMAL, "done"))
        .await
        .expect("close the connection");
}

async fn finish_acceptor(conn: &Connection) {
    let mut done = open(conn).await;
    write_all_and_finish(&mut done, b"done", "final stream").await;
    match within("wait for the peer's close", conn.accept()).await {
        Err(Error::ConnectionClosed { code, reason }) => {
            assert_eq!((code, reason.as_str()), (CloseCode::NORMAL, "done"));
        }
        other => panic!("expected the peer to close with 1000, got {other:?}"),
    }
}

// ----- echo -----

pub async fn echo_open(conn: &Connection) {
    echo_check(
        open(conn).await,
        b"hello interop".to_vec(),
        "first echo".into(),
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..CONCURRENT {
        let stream = open(conn).await;
        let what = format!("bulk stream {i}");
        tasks.push(async_std::task::spawn(echo_check(
            stream,
            pattern(i as u64, BULK),
            what,
        )));
    }
    for task in tasks {
        task.await;
    }
    finish_opener(conn).await;
}

pub async fn echo_accept(conn: &Connection) {
    accept_each(conn, 1 + CONCURRENT, |s, _| echo(s)).await;
    finish_acceptor(conn).await;
}

// ----- window -----

pub async fn window_open(conn: &Connection) {
    let mut tasks = Vec::new();
    for i in 0..SMALL_WINDOW_STREAMS {
        let stream = open(conn).await;
        let data = pattern(100 + i as u64, SMALL_WINDOW_BYTES);
        tasks.push(async_std::task::spawn(echo_check(
            stream,
            data,
            format!("window stream {i}"),
        )));
    }
    for task in tasks {
        task.await;
    }
    finish_opener(conn).await;
}

pub async fn window_accept(conn: &Connection) {
    accept_each(conn, SMALL_WINDOW_STREAMS, |s, _| echo(s)).await;
    finish_acceptor(conn).await;
}

// ----- halfclose -----

pub async fn halfclose_open(conn: &Connection) {
    let mut a = open(conn).await;
    write_all_and_finish(&mut a, b"opener writes, then finishes", "stream 0").await;
    expect_text(&mut a, "acceptor answers after the end", "stream 0").await;
    let mut b = open(conn).await;
    expect_text(&mut b, "acceptor writes, then finishes", "stream 1").await;
    write_all_and_finish(&mut b, b"opener answers after the end", "stream 1").await;
    drop((a, b));
    finish_opener(conn).await;
}

pub async fn halfclose_accept(conn: &Connection) {
    accept_each(conn, 2, |mut s, i| async move {
        if i == 0 {
            expect_text(&mut s, "opener writes, then finishes", "stream 0").await;
            write_all_and_finish(&mut s, b"acceptor answers after the end", "stream 0").await;
        } else {
            write_all_and_finish(&mut s, b"acceptor writes, then finishes", "stream 1").await;
            expect_text(&mut s, "opener answers after the end", "stream 1").await;
        }
    })
    .await;
    finish_acceptor(conn).await;
}

// ----- reset -----

async fn reset_after(stream: &mut WsStream, data: &[u8]) {
    within("write before reset", stream.write_all(data))
        .await
        .expect("write before the reset");
    stream.reset(RESET).expect("reset");
}

async fn expect_reset(stream: &mut WsStream, what: &str) {
    match within(what, read_all(stream)).await {
        Err(e) => assert!(
            matches!(typed(&e), Error::Reset(code) if *code == RESET),
            "{what}: expected Reset({RESET}), got {e:?}"
        ),
        Ok(data) => panic!("{what}: read {} bytes and the end, no reset", data.len()),
    }
}

async fn expect_stopped(stream: &mut WsStream, what: &str) {
    match within(what, stream.write_all(b"must not be sent")).await {
        Err(e) => assert!(
            matches!(typed(&e), Error::Stopped(code) if *code == STOP),
            "{what}: expected Stopped({STOP}), got {e:?}"
        ),
        Ok(()) => panic!("{what}: the write after the peer's stop succeeded"),
    }
}

pub async fn reset_open(conn: &Connection) {
    let mut s0 = open(conn).await;
    reset_after(&mut s0, b"opener data before reset").await;
    expect_text(&mut s0, "acceptor saw the reset", "stream 0").await;

    let mut s1 = open(conn).await;
    expect_reset(&mut s1, "stream 1 read after the acceptor reset").await;
    write_all_and_finish(&mut s1, b"opener saw the reset", "stream 1").await;

    let mut s2 = open(conn).await;
    s2.stop(STOP).expect("stop");
    write_all_and_finish(&mut s2, b"opener stopped reading", "stream 2").await;

    let mut s3 = open(conn).await;
    expect_text(&mut s3, "acceptor stopped reading", "stream 3").await;
    expect_stopped(&mut s3, "stream 3 write after the acceptor stopped").await;
    drop((s0, s1, s2, s3));
    finish_opener(conn).await;
}

pub async fn reset_accept(conn: &Connection) {
    accept_each(conn, 4, |mut s, i| async move {
        match i {
            0 => {
                expect_reset(&mut s, "stream 0 read after the opener reset").await;
                write_all_and_finish(&mut s, b"acceptor saw the reset", "stream 0").await;
            }
            1 => {
                reset_after(&mut s, b"acceptor data before reset").await;
                expect_text(&mut s, "opener saw the reset", "stream 1").await;
            }
            2 => {
                expect_text(&mut s, "opener stopped reading", "stream 2").await;
                expect_stopped(&mut s, "stream 2 write after the opener stopped").await;
            }
            _ => {
                s.stop(STOP).expect("stop");
                write_all_and_finish(&mut s, b"acceptor stopped reading", "stream 3").await;
            }
        }
    })
    .await;
    finish_acceptor(conn).await;
}

// ----- stopwrite: we stop reading while the JS side writes -----

pub async fn stopwrite_stop(conn: &Connection) {
    accept_each(conn, 1, |mut s, _| async move {
        let mut first = [0; 1];
        within("first byte", s.read_exact(&mut first))
            .await
            .expect("read the first byte");
        s.stop(STOP).expect("stop");
        write_all_and_finish(&mut s, b"acceptor stopped reading", "stopped stream").await;
    })
    .await;
    finish_acceptor(conn).await;
}

// ----- close -----

/// Echoes once, waits for the other side's byte on a second stream, then closes with 4000.
pub async fn close_open(conn: &Connection) {
    echo_check(
        open(conn).await,
        b"before the close".to_vec(),
        "echo".into(),
    )
    .await;
    let mut s = open(conn).await;
    let mut ready = [0; 1];
    within("ready byte", s.read_exact(&mut ready))
        .await
        .expect("read the ready byte");
    assert_eq!(&ready, b"r");
    within("close", conn.close(CLOSE, CLOSE_REASON))
        .await
        .expect("close with 4000");
    // Our own stream now fails with our close code.
    let err = within("read after close", read_all(&mut s))
        .await
        .expect_err("a read after the close must fail");
    assert!(
        matches!(typed(&err), Error::ConnectionClosed { code, .. } if *code == CLOSE),
        "read after our close: {err:?}"
    );
}

/// The other side of [`close_open`]: sees the code and reason on a pending read and on the
/// connection.
pub async fn close_accept(conn: &Connection) {
    echo(accept(conn).await).await;
    let mut s = accept(conn).await;
    within("ready byte", s.write_all(b"r"))
        .await
        .expect("write the ready byte");
    let err = within("pending read", read_all(&mut s))
        .await
        .expect_err("the pending read must fail when the peer closes");
    match typed(&err) {
        Error::ConnectionClosed { code, reason } => {
            assert_eq!((*code, reason.as_str()), (CLOSE, CLOSE_REASON));
        }
        other => panic!("pending read: expected ConnectionClosed, got {other:?}"),
    }
    match within("accept after close", conn.accept()).await {
        Err(Error::ConnectionClosed { code, reason }) => {
            assert_eq!((code, reason.as_str()), (CLOSE, CLOSE_REASON));
        }
        other => panic!("accept after the close: {other:?}"),
    }
}

// ----- keepalive: the JS side pings; we only wait in accept -----

pub async fn keepalive_accept(conn: &Connection) {
    accept_each(conn, 1, |s, _| echo(s)).await;
    finish_acceptor(conn).await;
}

// ----- lateerror: ERROR Read and CLOSE Write after the peer's FIN -----

/// Reads the JS side's stream only once its late ERROR Read / CLOSE Write (sent after its data
/// and FIN) have arrived: every byte must still be readable, then the end.
pub async fn lateerror_accept(conn: &Connection) {
    let mut s = accept(conn).await;
    let mut signal = accept(conn).await;
    expect_text(&mut signal, "late messages sent", "signal stream").await;
    let data = within("read", read_all(&mut s))
        .await
        .unwrap_or_else(|e| panic!("stream {}: read failed: {e:?}", s.id()));
    let want = pattern(9, LATE_BYTES);
    assert!(
        data == want,
        "stream {}: a late ERROR Read after the FIN lost data: read {} of {LATE_BYTES} bytes, \
         then the end",
        s.id(),
        data.len(),
    );
    drop((s, signal));
    finish_acceptor(conn).await;
}

// ----- quirks -----

/// Talks to the JS `inject-accept`, which sends ACK 0, an empty DATA and late messages on our
/// streams.
pub async fn quirks_open(conn: &Connection) {
    echo_check(
        open(conn).await,
        b"hello quirks".to_vec(),
        "first echo".into(),
    )
    .await;
    echo_check(
        open(conn).await,
        b"still alive".to_vec(),
        "second echo".into(),
    )
    .await;
    finish_opener(conn).await;
}

/// Talks to the JS `inject-open`, which does the same on its own streams.
pub async fn quirks_accept(conn: &Connection) {
    accept_each(conn, 2, |s, _| echo(s)).await;
    finish_acceptor(conn).await;
}
