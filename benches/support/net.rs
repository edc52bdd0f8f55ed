//! Loopback connections: TCP with TCP_NODELAY on 127.0.0.1 (ephemeral ports), and WebSocket
//! handshakes over it with both async-tungstenite versions in play (ours is built on 0.35,
//! ws_stream_tungstenite 0.15 on 0.29).

use async_std::net::{TcpListener, TcpStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};
use ws_stream_mux::{
    async_tungstenite::tungstenite::protocol::WebSocketConfig,
    connect::{request_with_protocols, selected_protocol},
    handshake::{self, AcceptConfig},
    Protocol, QmuxProtocols, QmuxVersion,
};

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

/// A connected (client, server) tokio TCP pair, both with TCP_NODELAY (run inside a tokio
/// runtime).
pub async fn tokio_tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let client = client.expect("connect");
    let (server, _) = accepted.expect("accept");
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    (client, server)
}

/// A (client, server) WebSocket pair over tokio's TCP (run inside a tokio runtime).
pub async fn tokio_ws_pair() -> (TokioWs, TokioWs) {
    let (client, server) = tokio_tcp_pair().await;
    let (client, server) = tokio::join!(
        async_tungstenite::client_async("ws://127.0.0.1/", client.compat()),
        async_tungstenite::accept_async(server.compat())
    );
    (
        client.expect("client handshake").0,
        server.expect("server handshake"),
    )
}

/// A (client, server) WebSocket pair over tokio's TCP whose handshake negotiated QMux-02 the way
/// `ws_stream_mux::tokio::{connect_qmux, accept}` do: the client offers
/// `QmuxProtocols::default()`, the server (our checked handshake) selects `qmux-02`; both sockets
/// built with `websocket` (`websocket_config(&config)`, as those helpers build them). Returns the
/// protocol to hand `Connection::new` (asserted to be QMux-02 on both ends).
pub async fn tokio_qmux_ws_pair(websocket: WebSocketConfig) -> (TokioWs, TokioWs, Protocol) {
    let (client, server) = tokio_tcp_pair().await;
    let offer = QmuxProtocols::default().subprotocols();
    let request = request_with_protocols("ws://127.0.0.1/", &offer).expect("request");
    let accept_config = AcceptConfig::default()
        .protocols(offer.clone())
        .websocket(websocket);
    let (client, server) = tokio::join!(
        ws_stream_mux::async_tungstenite::client_async_with_config(
            request,
            client.compat(),
            Some(websocket)
        ),
        handshake::accept(server.compat(), &accept_config)
    );
    let (client, response) = client.expect("client handshake");
    let (server, request) = server.expect("server handshake");
    let chosen = Protocol::from_subprotocol(selected_protocol(&response));
    assert_eq!(
        Protocol::from_subprotocol(request.protocol.as_deref()),
        chosen,
        "both ends speak what was negotiated"
    );
    assert_eq!(
        chosen,
        Protocol::Qmux(QmuxVersion::V02),
        "QMux-02 negotiated"
    );
    (client, server, chosen)
}
