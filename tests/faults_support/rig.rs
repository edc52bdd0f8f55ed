//! A server behind the proxy, and the moves the fault tests share: multiplexed and `WsIo`
//! pairs through a [`Proxy`], streams opened and accepted, writers filled until they wait.

use std::task::Poll;

use async_std::{
    net::{TcpListener, TcpStream},
    task,
};
use async_tungstenite::{tungstenite::protocol::WebSocketConfig, WebSocketStream};
use futures::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ws_stream_mux::{
    connect::Connector,
    handshake::{self, AcceptConfig, HandshakeError},
    io_websocket_config, websocket_config, Config, Connection, WsIo, WsIoConfig, WsStream,
};

use super::{Link, Proxy};

/// A WebSocket over async-std TCP, as both ends of the rig have.
pub type Ws = WebSocketStream<TcpStream>;

/// A server's listener behind a fault-injecting proxy: clients connect to the proxy.
pub struct Rig {
    listener: TcpListener,
    pub proxy: Proxy,
    url: String,
}

impl Rig {
    pub async fn new() -> Rig {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy = Proxy::start(listener.local_addr().expect("address"));
        let url = format!("ws://{}/", proxy.addr());
        Rig {
            listener,
            proxy,
            url,
        }
    }

    /// The server's side of the next connection: the crate's checked handshake.
    pub async fn accept_ws(&self, ws_config: WebSocketConfig) -> Result<Ws, HandshakeError> {
        let (tcp, _) = self.listener.accept().await.expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        let config = AcceptConfig::default().websocket(ws_config);
        handshake::accept(tcp, &config).await.map(|(ws, _)| ws)
    }

    /// The client's side, through the proxy, with the crate's connector.
    pub async fn connect_ws(&self, ws_config: WebSocketConfig) -> Result<Ws, HandshakeError> {
        let dial = |address: String| async move {
            let tcp = TcpStream::connect(address).await?;
            tcp.set_nodelay(true)?;
            Ok(tcp)
        };
        Connector::default()
            .connect_with_websocket(self.url.as_str(), dial, ws_config)
            .await
            .map(|(ws, _)| ws)
    }

    /// A multiplexed client and server through the proxy, and the link between them.
    pub async fn conn_pair(
        &mut self,
        client: Config,
        server: Config,
    ) -> (Connection, Connection, Link) {
        let (client_ws, server_ws) = futures::join!(
            self.connect_ws(websocket_config(&client)),
            self.accept_ws(websocket_config(&server))
        );
        let link = self.proxy.next_link().await;
        let client = Connection::client(client_ws.expect("client handshake"), client);
        let server = Connection::server(server_ws.expect("server handshake"), server);
        (client.expect("config"), server.expect("config"), link)
    }

    /// A `WsIo` client and server through the proxy, and the link between them.
    pub async fn io_pair(
        &mut self,
        client: WsIoConfig,
        server: WsIoConfig,
    ) -> (WsIo<TcpStream>, WsIo<TcpStream>, Link) {
        let (client_ws, server_ws) = futures::join!(
            self.connect_ws(io_websocket_config(&client)),
            self.accept_ws(io_websocket_config(&server))
        );
        let link = self.proxy.next_link().await;
        let client = WsIo::with_config(client_ws.expect("client handshake"), client);
        let server = WsIo::with_config(server_ws.expect("server handshake"), server);
        (client.expect("config"), server.expect("config"), link)
    }
}

/// Spawns both connections' drivers (the mode the README recommends).
pub fn drive(client: &Connection, server: &Connection) {
    task::spawn(client.run());
    task::spawn(server.run());
}

/// A stream `opener` opened and `acceptor` accepted, announced with one byte. Both sides run at
/// once: without a driver, the opener's byte leaves only while a task of its own waits (here its
/// flush), once the acceptor's credit came.
pub async fn announced_stream(opener: &Connection, acceptor: &Connection) -> (WsStream, WsStream) {
    let open = async {
        let mut stream = opener.open().await.expect("open");
        stream.write_all(b"!").await.expect("announce");
        stream.flush().await.expect("the announcement left");
        stream
    };
    let accept = async {
        let mut accepted = acceptor.accept().await.expect("accept");
        let mut byte = [0u8];
        accepted.read_exact(&mut byte).await.expect("announcement");
        accepted
    };
    futures::join!(open, accept)
}

/// Writes `chunk` until a write has to wait: the peer's credit is spent, or TCP takes no more.
/// The waiting write is dropped unfinished, which writes nothing: the caller starts the write it
/// means to keep.
///
/// Call it while no driver runs: each write then hands what it can to the socket itself, so a
/// write waits only once nothing more can leave. With a driver, a write also waits for the
/// moment it takes the driver to move the send buffer, which would end the loop early.
pub async fn write_until_blocked(writer: &mut (impl AsyncWrite + Unpin), chunk: &[u8]) {
    loop {
        let mut write = writer.write(chunk);
        match futures::poll!(&mut write) {
            Poll::Ready(outcome) => {
                outcome.expect("write before the fault");
            }
            Poll::Pending => return,
        }
    }
}
