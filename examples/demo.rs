//! A multiplexed server and client in one process, over real TCP on 127.0.0.1.
//!
//! The client opens several streams over one WebSocket, frames them as lines with
//! asynchronous-codec, resets one with an error code, and closes the connection with 1000 and a
//! reason. Both sides spawn the connection's driver (`run()`, the mode for many streams) and print
//! the events they observe. A tokio version is `examples/tokio_demo.rs`.
//!
//! Run with `cargo run --example demo`.

use async_std::net::{TcpListener, TcpStream};
use asynchronous_codec::{Framed, LinesCodec};
use futures::{AsyncReadExt, AsyncWriteExt, SinkExt, StreamExt};
use ws_stream_mux::{CloseCode, Config, Connection, Error, ErrorCode, WsEvent, WsStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[async_std::main]
async fn main() -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("server listening on ws://{addr}/");

    let server = async_std::task::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let config = Config::default();
        // The socket refuses messages over the connection's limit while they still arrive.
        let ws = async_tungstenite::accept_async_with_config(
            tcp,
            Some(ws_stream_mux::websocket_config(&config)),
        )
        .await?;
        let conn = Connection::server(ws, config)?;
        async_std::task::spawn(conn.run());
        serve(conn).await
    });

    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let config = Config::default();
    let (ws, _) = async_tungstenite::client_async_with_config(
        format!("ws://{addr}/"),
        tcp,
        Some(ws_stream_mux::websocket_config(&config)),
    )
    .await?;
    let conn = Connection::client(ws, config)?;
    async_std::task::spawn(conn.run());
    client(conn).await?;
    server.await?;
    println!("demo finished");
    Ok(())
}

/// Answers every line on every stream until the client closes the connection.
async fn serve(conn: Connection) -> Result<(), BoxError> {
    let events = print_events("server", &conn);
    let mut handlers = Vec::new();
    loop {
        match conn.accept().await {
            Ok(stream) => handlers.push(async_std::task::spawn(answer_lines(stream))),
            Err(Error::ConnectionClosed { code, reason }) => {
                println!("[server] connection closed by the client: {code} {reason:?}");
                break;
            }
            Err(other) => return Err(other.into()),
        }
    }
    for handler in handlers {
        handler.await;
    }
    events.await;
    Ok(())
}

async fn answer_lines(stream: WsStream) {
    let id = stream.id();
    let mut lines = Framed::new(stream, LinesCodec);
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => {
                let reply = format!("stream {id} heard: {}\n", line.trim_end());
                if lines.send(reply).await.is_err() {
                    break;
                }
            }
            Err(err) => {
                // The client reset this stream: the read fails in band, carrying its code.
                match Error::from_io(&err) {
                    Some(Error::Reset(code)) => {
                        println!("[server] stream {id} was reset by the client with code {code}")
                    }
                    _ => println!("[server] stream {id} failed: {err}"),
                }
                return;
            }
        }
    }
    // The client finished writing: finish ours too.
    let _ = lines.close().await;
}

async fn client(conn: Connection) -> Result<(), BoxError> {
    let events = print_events("client", &conn);

    // Three streams at once, each framed as lines.
    let mut talks = Vec::new();
    for (name, count) in [("alice", 3), ("bob", 2), ("carol", 4)] {
        let stream = conn.open().await?;
        talks.push(async_std::task::spawn(async move {
            let id = stream.id();
            let mut lines = Framed::new(stream, LinesCodec);
            for i in 1..=count {
                lines.send(format!("{name} says hello #{i}\n")).await?;
                let reply = lines.next().await.ok_or("stream ended early")??;
                println!("[client] stream {id}: {}", reply.trim_end());
            }
            // FIN: the server's read side reaches the end. The server finishes in turn; reading
            // to its end lets the stream end gracefully (dropping it unread would stop the read
            // side with the drop code, 0 by default).
            lines.close().await?;
            if lines.next().await.transpose()?.is_some() {
                return Err("unexpected line after the last reply".into());
            }
            Ok::<_, BoxError>(())
        }));
    }
    for talk in talks {
        talk.await?;
    }

    // A stream we abandon half-way: reset it with an application error code.
    let mut doomed = conn.open().await?;
    doomed.write_all(b"this line never ends").await?;
    doomed.reset(ErrorCode(4001))?;
    let mut rest = Vec::new();
    // Our read side is unaffected by our own reset: the server simply stops answering and, since
    // it drops its stream, finishes its write side.
    doomed.read_to_end(&mut rest).await?;

    conn.close(CloseCode::NORMAL, "demo finished").await?;
    events.await;
    Ok(())
}

/// Subscribes to `conn`'s events and prints them until the connection is closed (the stream
/// ends after the `Closed` event).
fn print_events(who: &'static str, conn: &Connection) -> async_std::task::JoinHandle<()> {
    let mut events = conn.events();
    async_std::task::spawn(async move {
        while let Some(event) = events.next().await {
            let line = match &event {
                WsEvent::StreamShutdown { id, half, code } => {
                    format!("stream {id}: the peer ended our {half:?} half (code {code:?})")
                }
                WsEvent::CloseFrame { code, reason } => {
                    format!("close frame received: {code} {reason:?}")
                }
                WsEvent::Closed { code, reason } => format!("connection closed: {code} {reason:?}"),
                other => format!("{other:?}"),
            };
            println!("[{who} event] {line}");
        }
    })
}
