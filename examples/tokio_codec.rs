//! A server and a client that frame a `WsIo` with a tokio-util codec: newline-delimited lines
//! over one WebSocket, with the connection's events printed as they happen — the `wsio_codec`
//! example ported to tokio.
//!
//! ```text
//! cargo run --example tokio_codec --features tokio
//! ```
//!
//! Both ends run in this one process, on an ephemeral port of 127.0.0.1. The server answers each
//! line with its length in characters; the client sends a few lines, prints the answers and
//! closes with 4000 and a reason, which the server sees as the end of its stream.
//!
//! `ws_stream_mux::tokio::accept_io` and `connect_io` take tokio TCP directly (no compat
//! wrappers) and run the checked handshake; the `WsIo` they return implements tokio's
//! `AsyncRead`/`AsyncWrite`, so tokio-util's `Framed` takes it as it is.

#[cfg(feature = "tokio")]
#[tokio::main]
async fn main() -> codec::Result<()> {
    codec::run().await
}

#[cfg(not(feature = "tokio"))]
fn main() {
    eprintln!(
        "this example needs the tokio feature: cargo run --example tokio_codec --features tokio"
    );
    std::process::exit(2);
}

#[cfg(feature = "tokio")]
mod codec {
    use futures::{SinkExt, StreamExt, TryStreamExt};
    use tokio::net::TcpListener;
    use tokio_util::codec::{Framed, LinesCodec};
    use ws_stream_mux::{handshake::AcceptConfig, CloseCode, WsEvent, WsIoConfig};

    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

    /// The longest line either side accepts: a peer cannot make us buffer more.
    const MAX_LINE: usize = 64 * 1024;

    /// Accepts one WebSocket and answers each line until the client closes.
    async fn server(listener: TcpListener) -> Result<()> {
        let (tcp, _) = listener.accept().await?;
        let (mut io, _request, peer) =
            ws_stream_mux::tokio::accept_io(tcp, &AcceptConfig::default(), WsIoConfig::default())
                .await?;
        let peer = peer.map_or_else(|| "the client".to_owned(), |addr| addr.to_string());
        let mut events = io.events();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let WsEvent::CloseFrame { code, reason } = event {
                    println!("server: {peer} closes with {code} \"{reason}\"");
                }
            }
        });

        let mut lines = Framed::new(io, LinesCodec::new_with_max_length(MAX_LINE));
        // `None` is the end of the stream: the client closed cleanly.
        while let Some(line) = lines.try_next().await? {
            // The codec strips the newline on reading and adds it on writing.
            let answer = format!("{} characters", line.chars().count());
            lines.send(answer).await?;
        }
        println!(
            "server: end of stream; the connection ended with {:?}",
            lines.get_ref().ended()
        );
        Ok(())
    }

    async fn client(url: String) -> Result<()> {
        let io = ws_stream_mux::tokio::connect_io(&url, WsIoConfig::default()).await?;
        let mut lines = Framed::new(io, LinesCodec::new_with_max_length(MAX_LINE));
        for text in ["hello", "WebSocket as a byte stream", "ünïcödé"] {
            lines.send(text).await?; // one message per line: `send` flushes
            let answer = lines.try_next().await?.ok_or("server went away")?;
            println!("client: {text:?} -> {answer}");
        }
        // A close code and reason of our choice (ws_stream_tungstenite peers always saw 1005).
        let mut io = lines.into_inner();
        io.close_with(CloseCode(4000), "all lines sent").await?;
        Ok(())
    }

    pub async fn run() -> Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(server(listener));
        client(format!("ws://{addr}/")).await?;
        server.await?
    }
}
