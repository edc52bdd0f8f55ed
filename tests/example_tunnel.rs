//! The `tunnel` example under load and at its edges, over real TCP on 127.0.0.1: 50 clients at
//! once through one WebSocket, each echoing its own data; a half-close that still reads the
//! reply; resets that stay resets in both directions; a target that refuses the connection.
//!
//! Each test runs its own target, tunnel server and tunnel client (the example's functions) on
//! ephemeral ports. Nothing waits on a clock; every wait has a safety limit that fails loudly.
#![cfg(feature = "tokio")]

#[allow(dead_code)]
#[path = "../examples/tunnel.rs"]
mod tunnel;

use std::{future::Future, io, net::SocketAddr, time::Duration};

use futures::{
    channel::{mpsc, oneshot},
    StreamExt,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
};

use tunnel::forwarder::{echo_target, run_client, run_server, Echoed};

const SAFETY: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(SAFETY, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done after {SAFETY:?} (hang)"))
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    (listener, addr)
}

/// A tunnel server forwarding to `target`, and a tunnel client connected to it. Returns the
/// address TCP clients connect to. The tasks end with the test's runtime.
async fn start_tunnel(target: SocketAddr) -> SocketAddr {
    let (server_listener, server_addr) = bind().await;
    tokio::spawn(run_server(server_listener, target));
    let (entry_listener, entry) = bind().await;
    tokio::spawn(async move {
        let url = format!("ws://{server_addr}/");
        if let Err(err) = run_client(entry_listener, &url).await {
            panic!("tunnel client failed: {err}");
        }
    });
    entry
}

/// The example's echo target, with the channel its connections report their end to.
async fn start_echo_target() -> (SocketAddr, mpsc::UnboundedReceiver<Echoed>) {
    let (listener, addr) = bind().await;
    let (ended, ends) = mpsc::unbounded();
    tokio::spawn(echo_target(listener, ended));
    (addr, ends)
}

/// `len` bytes of a pattern of its own for each `seed` (xorshift).
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// FNV-1a, to name data in failure messages.
fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_clients_at_once_each_get_their_own_bytes_back() {
    let (target, mut target_ends) = start_echo_target().await;
    let entry = start_tunnel(target).await;

    let clients: Vec<_> = (0..50u64)
        .map(|client| {
            tokio::spawn(async move {
                // A few hundred KiB each, every client a different length and pattern.
                let len = 200 * 1024 + client as usize * 4099;
                let sent = pattern(client + 1, len);
                let tcp = TcpStream::connect(entry).await.expect("connect");
                let (mut from_tunnel, mut to_tunnel) = tcp.into_split();
                // Write and read at once: the echo comes back while we still send.
                let writer = tokio::spawn({
                    let sent = sent.clone();
                    async move {
                        to_tunnel.write_all(&sent).await.expect("write");
                        to_tunnel.shutdown().await.expect("FIN");
                    }
                });
                let mut echoed = Vec::with_capacity(len);
                from_tunnel
                    .read_to_end(&mut echoed)
                    .await
                    .unwrap_or_else(|err| panic!("client {client}: read failed: {err}"));
                writer.await.expect("writer");
                assert_eq!(
                    (echoed.len(), checksum(&echoed)),
                    (sent.len(), checksum(&sent)),
                    "client {client}: the echo differs (length, checksum)"
                );
                assert!(echoed == sent, "client {client}: the echo differs");
                len as u64
            })
        })
        .collect();
    let mut expected = Vec::new();
    for client in clients {
        expected.push(within("client", client).await.expect("client task"));
    }

    // The target saw 50 connections, each ending cleanly with all of its bytes.
    let mut echoed = Vec::new();
    for _ in 0..50 {
        let (peer, result) = within("target report", target_ends.next())
            .await
            .expect("target running");
        let n = result.unwrap_or_else(|err| panic!("target connection from {peer}: {err}"));
        echoed.push(n);
    }
    echoed.sort_unstable();
    expected.sort_unstable();
    assert_eq!(echoed, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_half_closed_client_still_reads_the_reply_and_both_directions_end_cleanly() {
    // A target that reads the whole request to its end (our FIN must arrive) and only then
    // answers and finishes: the reply can only come after our write side is shut.
    let (listener, target) = bind().await;
    let (target_saw, saw) = oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let read = tcp.read_to_end(&mut request).await;
        let reply = format!(
            "got {} bytes, checksum {:x}",
            request.len(),
            checksum(&request)
        );
        tcp.write_all(reply.as_bytes()).await.expect("reply");
        tcp.shutdown().await.expect("target FIN");
        let _ = target_saw.send((read.map(|_| request), reply));
    });
    let entry = start_tunnel(target).await;

    let request = pattern(7, 100_000);
    let mut tcp = within("connect", TcpStream::connect(entry))
        .await
        .expect("connect");
    tcp.write_all(&request).await.expect("write");
    tcp.shutdown().await.expect("our FIN");
    let mut reply = Vec::new();
    within("reply", tcp.read_to_end(&mut reply))
        .await
        .expect("the reply, then a clean end");

    let (target_read, expected_reply) = within("target", saw).await.expect("target report");
    let target_read = target_read.expect("the target's read ended with our FIN, not an error");
    assert!(target_read == request, "the target got the whole request");
    assert_eq!(String::from_utf8(reply).expect("text"), expected_reply);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_reset_reaches_the_client_as_a_reset() {
    // A target that reads the request, then aborts the connection (RST).
    let (listener, target) = bind().await;
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut request = [0; 5];
        tcp.read_exact(&mut request).await.expect("request");
        tcp.set_zero_linger().expect("SO_LINGER 0");
        drop(tcp);
    });
    let entry = start_tunnel(target).await;

    let mut tcp = within("connect", TcpStream::connect(entry))
        .await
        .expect("connect");
    tcp.write_all(b"hello").await.expect("write");
    let mut reply = Vec::new();
    let read = within("read", tcp.read_to_end(&mut reply)).await;
    match read {
        Err(err) => assert_eq!(
            err.kind(),
            io::ErrorKind::ConnectionReset,
            "expected a reset, got {err}"
        ),
        Ok(n) => panic!("the reset arrived as a clean end of stream after {n} bytes"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_reset_reaches_the_target_as_a_reset() {
    let (target, mut target_ends) = start_echo_target().await;
    let entry = start_tunnel(target).await;

    let tcp = within("connect", TcpStream::connect(entry))
        .await
        .expect("connect");
    let (mut from_tunnel, mut to_tunnel) = tcp.into_split();
    to_tunnel.write_all(b"ping").await.expect("write");
    let mut pong = [0; 4];
    within("echo", from_tunnel.read_exact(&mut pong))
        .await
        .expect("the whole path is up");
    let tcp = from_tunnel.reunite(to_tunnel).expect("reunite");
    tcp.set_zero_linger().expect("SO_LINGER 0");
    drop(tcp);

    let (_, ended) = within("target report", target_ends.next())
        .await
        .expect("target running");
    match ended {
        Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}"),
        Ok(n) => panic!("the target saw a clean end after {n} bytes, not a reset"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_that_refuses_resets_the_client() {
    // An address where nothing listens: a socket bound to it, not listening, keeps the port
    // ours (no other test can get it) while connections to it are refused.
    let refusing = TcpSocket::new_v4().expect("socket");
    refusing
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let target = refusing.local_addr().expect("local address");
    let entry = start_tunnel(target).await;

    // The reset can be so quick that it arrives before `connect` returns (loopback): then
    // connect itself fails with it. Either way the client must see a reset, never a clean end.
    let outcome = within("connect and read", async {
        let mut tcp = TcpStream::connect(entry).await?;
        let mut reply = Vec::new();
        tcp.read_to_end(&mut reply).await
    })
    .await;
    match outcome {
        Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}"),
        Ok(n) => panic!("a refused target looked like a clean end after {n} bytes"),
    }
    drop(refusing); // held until here
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_examples_demo_runs() {
    within("demo", tunnel::forwarder::demo())
        .await
        .expect("demo");
}
