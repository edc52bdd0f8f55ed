//! A server and a client that frame a `WsIo` with a codec: newline-delimited lines over one
//! WebSocket, with the connection's events printed as they happen.
//!
//! ```text
//! cargo run --example wsio_codec
//! ```
//!
//! Both ends run in this one process, on an ephemeral port of 127.0.0.1. The server answers each
//! line with its length in characters; the client sends a few lines, prints the answers and
//! closes with 4000 and a reason, which the server sees as the end of its stream.

use async_std::net::{TcpListener, TcpStream};
use asynchronous_codec::{Framed, LinesCodec};
use futures::{SinkExt, StreamExt, TryStreamExt};
use pharos::Observable;
use ws_stream_mux::{async_tungstenite, CloseCode, WsEvent, WsIo};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Accepts one WebSocket and answers each line until the client closes.
async fn server(listener: TcpListener) -> Result<()> {
    let (tcp, peer) = listener.accept().await?;
    let ws = async_tungstenite::accept_async(tcp).await?;
    let mut io = WsIo::new(ws);
    let mut events = io.observe(Default::default()).await?;
    async_std::task::spawn(async move {
        while let Some(event) = events.next().await {
            if let WsEvent::CloseFrame { code, reason } = event {
                println!("server: {peer} closes with {code} \"{reason}\"");
            }
        }
    });

    let mut lines = Framed::new(io, LinesCodec);
    // `None` is the end of the stream: the client closed cleanly.
    while let Some(line) = lines.try_next().await? {
        let answer = format!("{} characters\n", line.trim_end().chars().count());
        lines.send(answer).await?;
    }
    println!(
        "server: end of stream; the connection ended with {:?}",
        lines.ended()
    );
    Ok(())
}

async fn client(url: String, addr: std::net::SocketAddr) -> Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    let (ws, _) = async_tungstenite::client_async(url, tcp).await?;
    let mut lines = Framed::new(WsIo::new(ws), LinesCodec);
    for text in ["hello", "WebSocket as a byte stream", "ünïcödé"] {
        lines.send(format!("{text}\n")).await?; // one message per line: `send` flushes
        let answer = lines.try_next().await?.ok_or("server went away")?;
        println!("client: {text:?} -> {}", answer.trim_end());
    }
    // A close code and reason of our choice (ws_stream_tungstenite peers always saw 1005).
    let mut io = lines.into_inner();
    io.close_with(CloseCode(4000), "all lines sent").await?;
    Ok(())
}

#[async_std::main]
async fn main() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = async_std::task::spawn(server(listener));
    client(format!("ws://{addr}/"), addr).await?;
    server.await
}
