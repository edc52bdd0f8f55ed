//! Loopback connections: TCP with TCP_NODELAY on 127.0.0.1 (ephemeral ports), and WebSocket
//! handshakes over it with both async-tungstenite versions in play (ours is built on 0.35,
//! ws_stream_tungstenite 0.15 on 0.29).

use async_std::net::{TcpListener, TcpStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

pub type Ws = async_tungstenite::WebSocketStream<TcpStream>;
pub type Ws029 = async_tungstenite_029::WebSocketStream<TcpStream>;
pub type TokioWs = async_tungstenite::WebSocketStream<Compat<tokio::net::TcpStream>>;

/// A connected (client, server) TCP pair, both with TCP_NODELAY.
pub async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, accepted) = futures::join!(TcpStream::connect(addr), listener.accept());
    let client = client.expect("connect");
    let (server, _) = accepted.expect("accept");
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    (client, server)
}

/// A (client, server) WebSocket pair on async-tungstenite 0.35, default configuration.
pub async fn ws_pair() -> (Ws, Ws) {
    let (c, s) = tcp_pair().await;
    let (client, server) = futures::join!(
        async_tungstenite::client_async("ws://127.0.0.1/", c),
        async_tungstenite::accept_async(s)
    );
    (
        client.expect("client handshake").0,
        server.expect("server handshake"),
    )
}

/// A (client, server) WebSocket pair on async-tungstenite 0.29 (for ws_stream_tungstenite).
pub async fn ws029_pair() -> (Ws029, Ws029) {
    let (c, s) = tcp_pair().await;
    let (client, server) = futures::join!(
        async_tungstenite_029::client_async("ws://127.0.0.1/", c),
        async_tungstenite_029::accept_async(s)
    );
    (
        client.expect("client handshake").0,
        server.expect("server handshake"),
    )
}

/// A (client, server) WebSocket pair over tokio's TCP (run inside a tokio runtime).
pub async fn tokio_ws_pair() -> (TokioWs, TokioWs) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let client = client.expect("connect");
    let (server, _) = accepted.expect("accept");
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    let (client, server) = tokio::join!(
        async_tungstenite::client_async("ws://127.0.0.1/", client.compat()),
        async_tungstenite::accept_async(server.compat())
    );
    (
        client.expect("client handshake").0,
        server.expect("server handshake"),
    )
}
