//! A WebSocket echo server behind the checked handshake, and a client that talks to it.
//!
//! The server accepts only `/echo`, offers the subprotocol `echo.v1`, and answers bad requests
//! with a real HTTP status instead of dropping the connection. Each accepted connection is an
//! ordinary async-tungstenite `WebSocketStream`; here it feeds a `MessageSocket` (it could as well
//! go to `WsIo::new` or `Connection::server`).
//!
//! Run with `cargo run --example handshake_server`; it serves, runs the demo client and exits.

use async_std::{
    io::{ReadExt, WriteExt},
    net::{TcpListener, TcpStream},
};
use ws_stream_mux::{
    connect::Connector,
    handshake::{accept, AcceptConfig, PathPolicy},
    CloseCode, DataMessage, Error, MessageConfig, MessageSocket,
};

#[async_std::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    println!("serving on ws://{address}/echo");
    let config = AcceptConfig::default()
        .paths(PathPolicy::only(["/echo"]))
        .protocols(["echo.v1"]);
    async_std::task::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let config = config.clone();
            async_std::task::spawn(async move {
                match accept(tcp, &config).await {
                    Ok((ws, request)) => {
                        println!("server: {peer} upgraded on {}", request.path());
                        echo(
                            MessageSocket::new(ws, MessageConfig::default()).expect("valid config"),
                        )
                        .await;
                    }
                    Err(err) => println!("server: refused {peer}: {err}"),
                }
            });
        }
    });

    // A WebSocket client, through the connect rule (one CONNECTING per host:port).
    let connector = Connector::default();
    let (ws, response) = connector
        .connect(format!("ws://{address}/echo"), TcpStream::connect)
        .await?;
    println!("client: upgraded, status {}", response.status());
    let socket = MessageSocket::new(ws, MessageConfig::default()).expect("valid config");
    socket.write(DataMessage::text("hello")).await?;
    println!("client: echoed {:?}", socket.read().await?);
    println!("client: round trip {:?}", socket.ping().await?);
    socket.close(CloseCode::NORMAL, "done").await?;
    match socket.read().await {
        Err(Error::ConnectionClosed { code, reason }) => {
            println!("client: closed with {code} {reason:?}")
        }
        other => println!("client: unexpected {other:?}"),
    }

    // A browser-less mistake: a plain HTTP request gets a readable answer.
    let mut tcp = TcpStream::connect(address).await?;
    tcp.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await?;
    println!("plain GET answered:\n{answer}");
    Ok(())
}

/// Sends every message back until the connection ends.
async fn echo(socket: MessageSocket) {
    while let Ok(message) = socket.read().await {
        if socket.write(message).await.is_err() {
            break;
        }
    }
}
