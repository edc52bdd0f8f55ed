//! A multiplexed server and client in one process over real TCP on 127.0.0.1, with tokio — the
//! `demo` example ported to tokio and the `ws_stream_mux::tokio` helpers.
//!
//! ```text
//! cargo run --example tokio_demo --features tokio
//! ```
//!
//! The client opens several streams over one WebSocket, frames them as lines with tokio-util's
//! `LinesCodec`, resets one with an error code, and closes the connection with 1000 and a reason.
//! Both sides print the events they observe.
//!
//! What the helpers do for you: `ws_stream_mux::tokio::accept` and `connect` take tokio TCP
//! directly (no compat wrappers), set `TCP_NODELAY`, run the checked handshake with the
//! library's limits, and spawn the connection's driver on the runtime. The streams implement
//! tokio's `AsyncRead`/`AsyncWrite`; `shutdown()` on a stream is its FIN.

#[cfg(feature = "tokio")]
#[tokio::main]
async fn main() -> Result<(), demo::BoxError> {
    demo::run().await
}

#[cfg(not(feature = "tokio"))]
fn main() {
    eprintln!(
        "this example needs the tokio feature: cargo run --example tokio_demo --features tokio"
    );
    std::process::exit(2);
}

#[cfg(feature = "tokio")]
mod demo {
    use futures::{SinkExt, StreamExt};
    // tokio's extension traits only: the streams implement futures-io too, and with both
    // families in scope `write_all` would be ambiguous.
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
        task::JoinHandle,
    };
    use tokio_util::codec::{Framed, LinesCodec, LinesCodecError};
    use ws_stream_mux::{
        handshake::AcceptConfig, CloseCode, Config, Connection, Error, ErrorCode, WsEvent, WsStream,
    };

    pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

    /// The longest line either side accepts: a peer cannot make us buffer more.
    const MAX_LINE: usize = 64 * 1024;

    pub async fn run() -> Result<(), BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        println!("server listening on ws://{addr}/");

        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            // The checked handshake, our limits, TCP_NODELAY, and the driver spawned.
            let (conn, request) =
                ws_stream_mux::tokio::accept(tcp, &AcceptConfig::default(), Config::default())
                    .await?;
            println!("[server] {} from {:?}", request.path(), conn.peer_addr());
            serve(conn).await
        });

        let conn =
            ws_stream_mux::tokio::connect(&format!("ws://{addr}/"), Config::default()).await?;
        client(conn).await?;
        server.await??;
        println!("demo finished");
        Ok(())
    }

    /// Answers every line on every stream until the client closes the connection.
    async fn serve(conn: Connection) -> Result<(), BoxError> {
        let events = print_events("server", &conn);
        let mut handlers = Vec::new();
        loop {
            match conn.accept().await {
                Ok(stream) => handlers.push(tokio::spawn(answer_lines(stream))),
                Err(Error::ConnectionClosed { code, reason }) => {
                    println!("[server] connection closed by the client: {code} {reason:?}");
                    break;
                }
                Err(other) => return Err(other.into()),
            }
        }
        for handler in handlers {
            handler.await?;
        }
        events.await?;
        Ok(())
    }

    async fn answer_lines(stream: WsStream) {
        let id = stream.id();
        let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
        while let Some(line) = lines.next().await {
            match line {
                Ok(line) => {
                    // The codec adds the newline.
                    if lines
                        .send(format!("stream {id} heard: {line}"))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                // The client reset this stream: the read fails in band, carrying its code.
                Err(LinesCodecError::Io(err)) => {
                    match Error::from_io(&err) {
                        Some(Error::Reset(code)) => {
                            println!(
                                "[server] stream {id} was reset by the client with code {code}"
                            )
                        }
                        _ => println!("[server] stream {id} failed: {err}"),
                    }
                    return;
                }
                Err(err) => {
                    println!("[server] stream {id}: {err}");
                    return;
                }
            }
        }
        // The client finished writing: finish ours too (closing the sink is the stream's FIN).
        let _ = SinkExt::<String>::close(&mut lines).await;
    }

    async fn client(conn: Connection) -> Result<(), BoxError> {
        let events = print_events("client", &conn);

        // Three streams at once, each framed as lines.
        let mut talks = Vec::new();
        for (name, count) in [("alice", 3), ("bob", 2), ("carol", 4)] {
            let stream = conn.open().await?;
            talks.push(tokio::spawn(async move {
                let id = stream.id();
                let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
                for i in 1..=count {
                    lines.send(format!("{name} says hello #{i}")).await?;
                    let reply = lines.next().await.ok_or("stream ended early")??;
                    println!("[client] stream {id}: {reply}");
                }
                // FIN: the server's read side reaches the end.
                SinkExt::<String>::close(&mut lines).await?;
                // The server finishes in turn; reading to its end lets the stream end gracefully
                // (dropping it unread would stop the read side with code 0).
                if lines.next().await.transpose()?.is_some() {
                    return Err("unexpected line after the last reply".into());
                }
                Ok::<_, BoxError>(())
            }));
        }
        for talk in talks {
            talk.await??;
        }

        // A stream we abandon half-way: reset it with an application error code.
        let mut doomed = conn.open().await?;
        doomed.write_all(b"this line never ends").await?;
        doomed.reset(ErrorCode(4001))?;
        let mut rest = Vec::new();
        // Our read side is unaffected by our own reset: the server simply stops answering and,
        // since it drops its stream, finishes its write side.
        doomed.read_to_end(&mut rest).await?;

        conn.close(CloseCode::NORMAL, "demo finished").await?;
        events.await?;
        Ok(())
    }

    /// Prints `conn`'s events until the connection is closed.
    fn print_events(who: &'static str, conn: &Connection) -> JoinHandle<()> {
        let mut events = conn.events();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let line = match &event {
                    WsEvent::StreamShutdown { id, half, code } => {
                        format!("stream {id}: the peer ended our {half:?} half (code {code:?})")
                    }
                    WsEvent::CloseFrame { code, reason } => {
                        format!("close frame received: {code} {reason:?}")
                    }
                    WsEvent::Closed { code, reason } => {
                        format!("connection closed: {code} {reason:?}")
                    }
                    other => format!("{other:?}"),
                };
                println!("[{who} event] {line}");
            }
        })
    }
}
