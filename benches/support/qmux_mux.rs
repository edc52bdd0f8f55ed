//! qmux 0.6 (the IETF QMux draft over WebSocket, QMux-02 wire format) with its own client and
//! server sessions over tokio-tungstenite 0.30, on loopback TCP with TCP_NODELAY, each with
//! qmux's default `Config` (256 KiB stream windows, a 1 MiB connection window, 100 streams).
//! Run inside a tokio runtime: qmux spawns its reader and writer tasks there.
//!
//! The server is `qmux::ws::Server::accept` on an accepted socket. The client side is qmux's
//! `Upgraded::connect` over a WebSocket this module connects: `qmux::ws::Client::connect` opens
//! its own socket with Nagle's algorithm left on (tokio-tungstenite's `disable_nagle: false`),
//! which would measure Nagle's delays instead of qmux; every other contender runs with
//! TCP_NODELAY.

use std::time::{Duration, Instant};

use bytes::Bytes;
use qmux::{
    ws::{
        tokio_tungstenite,
        tungstenite::{client::IntoClientRequest, http},
    },
    RecvStream, SendStream, Session,
};
use web_transport_trait::{RecvStream as _, SendStream as _, Session as _};

use super::{
    bulk::pattern,
    measure::{Sample, Stopwatch},
};

/// The wire format both ends speak (the bare subprotocol, no application protocol).
const SUBPROTOCOL: &str = "qmux-02";
const SIZE: usize = 64;
const WARM_UP: usize = 200;

/// A connected (client, server) pair of qmux sessions.
pub async fn pair() -> (Session, Session) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        qmux::ws::Server::new()
            .accept(tcp)
            .await
            .expect("qmux server handshake")
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let mut request = format!("ws://{addr}/")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static(SUBPROTOCOL),
    );
    let (ws, response) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("qmux client handshake");
    let negotiated = response
        .headers()
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .expect("the server chose a subprotocol")
        .to_owned();
    assert_eq!(negotiated, SUBPROTOCOL, "qmux negotiated another version");
    let client = qmux::ws::Upgraded::new(ws).with_alpn(&negotiated).connect();
    let server = server.await.expect("server task");
    (client, server)
}

/// Ends both sessions: the client closes, the server sees it.
async fn close(client: Session, server: Session) {
    client.close(0, "");
    let _ = tokio::time::timeout(Duration::from_secs(10), server.closed())
        .await
        .expect("qmux close: the server did not see it");
}

async fn write_total(send: &mut SendStream, total: u64, write_size: usize) {
    let chunk = pattern(write_size);
    let mut left = total;
    while left > 0 {
        let n = left.min(write_size as u64) as usize;
        send.write_all(&chunk[..n]).await.expect("qmux write");
        left -= n as u64;
    }
}

async fn read_total(recv: &mut RecvStream, total: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < total {
        match recv.read(&mut buf).await.expect("qmux read") {
            Some(n) => got += n as u64,
            None => panic!("qmux: end of stream after {got} of {total} bytes"),
        }
    }
    assert_eq!(got, total, "qmux: read more than was written");
}

/// Bulk in one direction on one stream: `total` bytes in `write_size` writes.
pub async fn bulk(total: u64, write_size: usize) -> Sample {
    let (client, server) = pair().await;
    let accepting = server.clone();
    let reader = tokio::spawn(async move {
        let (send, mut recv) = accepting.accept_bi().await.expect("accept_bi");
        read_total(&mut recv, total).await;
        (send, recv)
    });
    let (mut send, recv) = client.open_bi().await.expect("open_bi");
    let clock = Stopwatch::start();
    write_total(&mut send, total, write_size).await;
    let halves = reader.await.expect("reader task");
    let sample = clock.stop();
    send.finish().expect("finish");
    drop((send, recv, halves));
    close(client, server).await;
    sample
}

/// `streams` streams each moving `per_stream` bytes in 64 KiB writes at once.
pub async fn many(streams: usize, per_stream: u64) -> Sample {
    const WRITE: usize = 64 * 1024;
    let (client, server) = pair().await;
    let accepting = server.clone();
    let clock = Stopwatch::start();
    let readers = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let (send, mut recv) = accepting.accept_bi().await.expect("accept_bi");
            tasks.push(tokio::spawn(async move {
                read_total(&mut recv, per_stream).await;
                (send, recv)
            }));
        }
        let mut halves = Vec::new();
        for task in tasks {
            halves.push(task.await.expect("reader task"));
        }
        halves
    });
    let mut writers = Vec::new();
    for _ in 0..streams {
        let (mut send, recv) = client.open_bi().await.expect("open_bi");
        writers.push(tokio::spawn(async move {
            write_total(&mut send, per_stream, WRITE).await;
            (send, recv)
        }));
    }
    let mut written = Vec::new();
    for task in writers {
        written.push(task.await.expect("writer task"));
    }
    let read = readers.await.expect("readers");
    let sample = clock.stop();
    for (send, _) in &mut written {
        send.finish().expect("finish");
    }
    drop((written, read));
    close(client, server).await;
    sample
}

/// Latencies of `count` 64-byte round trips (after a warm-up) on one stream.
pub async fn round_trips(count: usize) -> Vec<Duration> {
    let (client, server) = pair().await;
    let accepting = server.clone();
    let echo = tokio::spawn(async move {
        let (mut send, mut recv) = accepting.accept_bi().await.expect("accept_bi");
        let mut buf = [0u8; SIZE];
        while let Ok(Some(n)) = recv.read(&mut buf).await {
            if send.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = send.finish();
    });
    let (mut send, mut recv) = client.open_bi().await.expect("open_bi");
    let request = [7u8; SIZE];
    let mut reply = [0u8; SIZE];
    let mut latencies = Vec::with_capacity(count);
    for i in 0..WARM_UP + count {
        let start = Instant::now();
        send.write_all(&request).await.expect("rtt write");
        let mut got = 0;
        while got < SIZE {
            match recv.read(&mut reply[got..]).await.expect("rtt read") {
                Some(n) => got += n,
                None => panic!("qmux rtt: end of stream"),
            }
        }
        if i >= WARM_UP {
            latencies.push(start.elapsed());
        }
    }
    assert_eq!(reply, request, "echo mismatch");
    send.finish().expect("finish");
    let _ = tokio::time::timeout(Duration::from_secs(10), echo).await;
    drop((send, recv));
    close(client, server).await;
    latencies
}

/// The client's side of one stream's life: write a byte, finish, read the echo to the end.
async fn client_cycle(client: &Session) {
    let (mut send, mut recv) = client.open_bi().await.expect("open_bi");
    send.write_all(&[42]).await.expect("open/echo write");
    send.finish().expect("open/echo finish");
    let reply = recv.read_all().await.expect("open/echo read");
    assert_eq!(reply, Bytes::from_static(&[42]), "open/echo: wrong reply");
}

/// The server's side: read to the end, echo, finish.
async fn server_cycle((mut send, mut recv): (SendStream, RecvStream)) {
    let got = recv.read_all().await.expect("echo read");
    send.write_all(&got).await.expect("echo write");
    send.finish().expect("echo finish");
}

/// `count` streams, one after the other: open, 1-byte echo, close (both ways).
pub async fn opens(count: usize) -> Sample {
    let (client, server) = pair().await;
    let accepting = server.clone();
    let echo = tokio::spawn(async move {
        for _ in 0..count {
            server_cycle(accepting.accept_bi().await.expect("accept_bi")).await;
        }
    });
    let clock = Stopwatch::start();
    for _ in 0..count {
        client_cycle(&client).await;
    }
    echo.await.expect("echo task");
    let sample = clock.stop();
    close(client, server).await;
    sample
}

/// The same cycle, `parallel` client tasks at a time; the server spawns a task per stream.
pub async fn opens_parallel(count: usize, parallel: usize) -> Sample {
    let per_task = count / parallel;
    let count = per_task * parallel;
    let (client, server) = pair().await;
    let accepting = server.clone();
    let echo = tokio::spawn(async move {
        let mut handlers = Vec::with_capacity(count);
        for _ in 0..count {
            let stream = accepting.accept_bi().await.expect("accept_bi");
            handlers.push(tokio::spawn(server_cycle(stream)));
        }
        for handler in handlers {
            handler.await.expect("echo task");
        }
    });
    let clock = Stopwatch::start();
    let clients: Vec<_> = (0..parallel)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    client_cycle(&client).await;
                }
            })
        })
        .collect();
    for task in clients {
        task.await.expect("client task");
    }
    echo.await.expect("echo task");
    let sample = clock.stop();
    close(client, server).await;
    sample
}
