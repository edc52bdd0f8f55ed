//! The tokio helpers over real TCP under a multi-threaded tokio runtime: one call from a tokio
//! TCP stream to a ready `Connection` or `WsIo` (checked handshake, our limits, the driver
//! spawned, the peer address), tokio's I/O traits on every stream, and `shutdown()` meaning FIN
//! on a stream and Close 1000 on a `WsIo`.
#![cfg(feature = "tokio")]

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use ws_stream_mux::{
    handshake::{AcceptConfig, HandshakeError, PathPolicy, Rejection},
    CloseCode, Config, Error, WsIoConfig,
};

const SAFETY: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(SAFETY, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done after {SAFETY:?} (hang)"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_accept_give_ready_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (conn, request) =
            ws_stream_mux::tokio::accept(tcp, &AcceptConfig::default(), Config::default())
                .await
                .expect("accept");
        assert_eq!(request.path(), "/mux");
        assert!(conn.peer_addr().is_some());
        let mut stream = conn.accept().await.expect("accept a stream");
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        stream.write_all(&request).await.unwrap();
        // tokio's shutdown is a FIN on a stream.
        stream.shutdown().await.unwrap();
        conn.closed().await
    });
    let conn = within(
        "connect",
        ws_stream_mux::tokio::connect(&format!("ws://{addr}/mux"), Config::default()),
    )
    .await
    .expect("connect");
    assert_eq!(conn.peer_addr(), Some(addr));
    let mut stream = conn.open().await.unwrap();
    stream.write_all(b"over tokio").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut echo = Vec::new();
    within("echo", stream.read_to_end(&mut echo)).await.unwrap();
    assert_eq!(echo, b"over tokio");
    within("close", conn.close(CloseCode::NORMAL, "bye"))
        .await
        .unwrap();
    match within("server", server).await.unwrap() {
        Error::ConnectionClosed { code, .. } => assert_eq!(code, CloseCode::NORMAL),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_is_a_typed_handshake_error_on_both_sides() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let config = AcceptConfig::default().paths(PathPolicy::only(["/ws"]));
        ws_stream_mux::tokio::accept(tcp, &config, Config::default())
            .await
            .map(|_| ())
    });
    let client =
        ws_stream_mux::tokio::connect(&format!("ws://{addr}/elsewhere"), Config::default())
            .await
            .map(|_| ());
    assert!(
        matches!(client, Err(Error::Handshake(HandshakeError::Refused(404)))),
        "{client:?}"
    );
    let server = within("server", server).await.unwrap();
    assert!(
        matches!(
            server,
            Err(Error::Handshake(HandshakeError::Rejected(
                Rejection::PathNotFound
            )))
        ),
        "{server:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsio_helpers_and_shutdown_as_close_1000() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (mut io, _request, peer) =
            ws_stream_mux::tokio::accept_io(tcp, &AcceptConfig::default(), WsIoConfig::default())
                .await
                .expect("accept");
        assert!(peer.is_some());
        let mut got = Vec::new();
        io.read_to_end(&mut got).await.expect("clean end");
        (got, io.ended())
    });
    let mut io = ws_stream_mux::tokio::connect_io(&format!("ws://{addr}/"), WsIoConfig::default())
        .await
        .expect("connect");
    io.write_all(b"one byte stream").await.unwrap();
    // tokio's shutdown on a WsIo closes the connection with 1000 and waits for the answer.
    within("shutdown", io.shutdown()).await.unwrap();
    let (got, ended) = within("server", server).await.unwrap();
    assert_eq!(got, b"one byte stream");
    assert!(matches!(
        ended,
        Some(Error::ConnectionClosed {
            code: CloseCode::NORMAL,
            ..
        })
    ));
}
