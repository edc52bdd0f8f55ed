//! `Ok` means it happened: close returns `Ok` only once the peer's Close frame arrived, flush only
//! once the bytes left, and both finish within the close timeout from the call whatever the peer
//! does — a peer that does not read, that never answers, that drops TCP. Over real TCP with raw
//! peers; the durations are generous safety nets, never assertions.

use std::time::Duration;

use async_std::net::{TcpListener, TcpStream};
use async_tungstenite::{
    tungstenite::{protocol::WebSocketConfig, Message},
    WebSocketStream,
};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use ws_stream_mux::{
    websocket_config, CloseCode, Config, Connection, Error, Timeout, WsIo, WsIoConfig,
};

const SAFETY: Duration = Duration::from_secs(60);
const CLOSE_TIMEOUT: Duration = Duration::from_millis(300);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match async_std::future::timeout(SAFETY, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not done after {SAFETY:?} (hang)"),
    }
}

/// A server WebSocket of ours (built with `ws_config`) and the raw client TCP stream after the
/// upgrade: the client side speaks WebSocket only if the test makes it.
async fn raw_pair(ws_config: WebSocketConfig) -> (WebSocketStream<TcpStream>, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = async_std::task::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        async_tungstenite::accept_async_with_config(tcp, Some(ws_config))
            .await
            .expect("server handshake")
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, _) = async_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .expect("client handshake");
    (server.await, client.into_inner())
}

/// The same, with a WebSocket client peer.
async fn ws_pair(
    ws_config: WebSocketConfig,
) -> (WebSocketStream<TcpStream>, WebSocketStream<TcpStream>) {
    let (server, tcp) = raw_pair(ws_config).await;
    let client = WebSocketStream::from_raw_socket(
        tcp,
        async_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    (server, client)
}

fn config() -> Config {
    Config::default().close_timeout(Some(CLOSE_TIMEOUT))
}

/// A raw peer opens a stream with a huge credit; we accept it.
async fn accepted_stream(
    peer: &mut WebSocketStream<TcpStream>,
    conn: &Connection,
) -> ws_stream_mux::WsStream {
    peer.send(Message::binary(vec![0, 0, 1, 0xff, 0xff, 0xff, 0xff]))
        .await
        .unwrap();
    within("accept", conn.accept()).await.expect("accept")
}

#[async_std::test]
async fn close_behind_data_a_peer_does_not_read_times_out_within_the_close_timeout() {
    let (server, client) = ws_pair(websocket_config(&config())).await;
    let conn = Connection::server(server, config()).expect("valid config");
    let mut peer = client;
    let mut stream = accepted_stream(&mut peer, &conn).await;
    // Write until a write has to wait: with 4 GiB of credit that means the socket takes no more
    // (the peer never reads). Each poll of a write drives the connection.
    let chunk = vec![1u8; 64 * 1024];
    loop {
        let write = stream.write(&chunk);
        futures::pin_mut!(write);
        match futures::poll!(write) {
            std::task::Poll::Ready(written) => {
                written.expect("write");
            }
            std::task::Poll::Pending => break,
        }
    }
    let closed = within("close", conn.close(CloseCode::NORMAL, "bye")).await;
    assert!(
        matches!(closed, Err(Error::TimedOut(Timeout::Close))),
        "{closed:?}"
    );
    let after = stream
        .write(&chunk)
        .await
        .expect_err("the connection is over");
    assert!(Error::from_io(&after).is_some(), "{after:?}");
    drop(peer);
}

#[async_std::test]
async fn close_to_a_peer_that_never_answers_times_out() {
    let (server, mut tcp) = raw_pair(websocket_config(&config())).await;
    let conn = Connection::server(server, config()).expect("valid config");
    // The peer reads the bytes (our Close frame among them) but never answers.
    let reader = async_std::task::spawn(async move {
        let mut sink = vec![0u8; 4096];
        while tcp.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    });
    let closed = within("close", conn.close(CloseCode::NORMAL, "bye")).await;
    assert!(
        matches!(closed, Err(Error::TimedOut(Timeout::Close))),
        "{closed:?}"
    );
    within("TCP closed by us", reader).await;
}

#[async_std::test]
async fn close_to_a_peer_that_drops_tcp_is_1006() {
    let (server, mut tcp) = raw_pair(websocket_config(&config())).await;
    let conn = Connection::server(server, config()).expect("valid config");
    let peer = async_std::task::spawn(async move {
        let mut first = [0u8; 1];
        tcp.read_exact(&mut first).await.expect("our Close frame");
        assert_eq!(first[0], 0x88, "a Close frame");
        drop(tcp);
    });
    let closed = within("close", conn.close(CloseCode::NORMAL, "bye")).await;
    assert!(
        matches!(
            closed,
            Err(Error::ConnectionClosed {
                code: CloseCode::ABNORMAL,
                ..
            })
        ),
        "{closed:?}"
    );
    within("peer", peer).await;
}

#[async_std::test]
async fn dropping_every_handle_with_a_driver_closes_within_the_close_timeout() {
    let (server, mut tcp) = raw_pair(websocket_config(&config())).await;
    let conn = Connection::server(server, config()).expect("valid config");
    let driver = async_std::task::spawn(conn.run());
    drop(conn);
    // A silent peer: the driver gives up after the close timeout.
    let reader = async_std::task::spawn(async move {
        let mut sink = vec![0u8; 4096];
        while tcp.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    });
    let _ = within("the driver ends", driver).await;
    within("TCP closed", reader).await;
}

#[async_std::test]
async fn wsio_honours_a_bounded_write_buffer_by_waiting() {
    let mut ws_config = WebSocketConfig::default();
    ws_config.write_buffer_size = 8 * 1024;
    ws_config.max_write_buffer_size = 32 * 1024;
    let (server, mut client) = ws_pair(ws_config).await;
    let mut io = WsIo::new(server);
    let reader = async_std::task::spawn(async move {
        let mut got = Vec::new();
        // Reading on after the Close frame lets tungstenite send its answer.
        while let Some(Ok(message)) = client.next().await {
            if let Message::Binary(data) = message {
                got.extend_from_slice(&data);
            }
        }
        got
    });
    for i in 0..40u8 {
        io.write_all(&[i; 1024]).await.expect("write");
    }
    io.flush().await.expect("flush");
    within("close", io.close()).await.expect("close");
    let got = within("reader", reader).await;
    let want: Vec<u8> = (0..40u8).flat_map(|i| [i; 1024]).collect();
    assert!(got == want, "{} of {} bytes arrived", got.len(), want.len());
}

#[async_std::test]
async fn wsio_close_waits_for_room_behind_its_data_and_for_the_answer() {
    let mut ws_config = WebSocketConfig::default();
    ws_config.write_buffer_size = 16 * 1024;
    ws_config.max_write_buffer_size = 64 * 1024;
    let (server, client) = ws_pair(ws_config).await;
    let mut io = WsIo::with_config(server, WsIoConfig::default()).unwrap();
    const LEN: usize = 4 << 20;
    let writer = async {
        io.write_all(&vec![5u8; LEN]).await.expect("write");
        io.close_with(CloseCode(4000), "done").await
    };
    let reader = async move {
        let mut client = client;
        let mut got = 0;
        let mut close = None;
        while let Some(Ok(message)) = client.next().await {
            match message {
                Message::Binary(data) => got += data.len(),
                Message::Close(frame) => close = frame.map(|f| u16::from(f.code)),
                _ => {}
            }
        }
        (got, close)
    };
    let (closed, (got, close)) = within("both", futures::future::join(writer, reader)).await;
    closed.expect("the peer answered");
    assert_eq!(got, LEN, "every byte before the Close frame");
    assert_eq!(close, Some(4000));
}

#[async_std::test]
async fn wsio_flush_fails_when_the_bytes_never_left() {
    let (server, tcp) = raw_pair(WebSocketConfig::default()).await;
    let mut io = WsIo::new(server);
    // The peer does not read: write until a write has to wait (the socket takes no more).
    let chunk = vec![1u8; 64 * 1024];
    loop {
        let write = io.write(&chunk);
        futures::pin_mut!(write);
        match futures::poll!(write) {
            std::task::Poll::Ready(written) => {
                written.expect("write");
            }
            std::task::Poll::Pending => break,
        }
    }
    // Then it goes away with our bytes unread: they never leave.
    drop(tcp);
    let flushed = within("flush", io.flush()).await;
    assert!(flushed.is_err(), "flush said Ok for bytes that never left");
}

#[async_std::test]
async fn wsio_close_is_not_ok_when_the_peer_drops_tcp_instead_of_answering() {
    let (server, mut tcp) = raw_pair(WebSocketConfig::default()).await;
    let mut io = WsIo::new(server);
    let peer = async_std::task::spawn(async move {
        let mut first = [0u8; 1];
        tcp.read_exact(&mut first).await.expect("our Close frame");
        drop(tcp);
    });
    let closed = within("close", io.close_with(CloseCode::NORMAL, "")).await;
    assert!(
        matches!(
            closed,
            Err(Error::ConnectionClosed {
                code: CloseCode::ABNORMAL,
                ..
            })
        ),
        "{closed:?}"
    );
    within("peer", peer).await;
}

#[async_std::test]
async fn wsio_wraps_a_borrowed_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = async_std::task::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut ws = async_tungstenite::accept_async(tcp)
            .await
            .expect("handshake");
        while let Some(Ok(message)) = ws.next().await {
            if message.is_binary() {
                ws.send(message).await.expect("echo");
            }
        }
    });
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    {
        // Borrowed, not owned: the TCP stream outlives the WsIo.
        let (ws, _) = async_tungstenite::client_async(format!("ws://{addr}/"), &mut tcp)
            .await
            .expect("client handshake");
        let mut io = WsIo::new(ws);
        io.write_all(b"borrowed").await.unwrap();
        let mut echo = [0u8; 8];
        within("echo", io.read_exact(&mut echo)).await.unwrap();
        assert_eq!(&echo, b"borrowed");
        within("close", io.close()).await.expect("close");
    }
    drop(tcp);
    within("server ends", server).await;
}
