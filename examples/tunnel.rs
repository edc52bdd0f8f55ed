//! A TCP port forwarder over one WebSocket: every TCP connection becomes one multiplexed stream.
//!
//! ```text
//!  TCP clients ──► tunnel client ═══ one WebSocket, one stream per TCP connection ═══► tunnel server ──► target
//!                  (listens on a port)                                               (connects per stream)
//! ```
//!
//! ```text
//! cargo run --example tunnel --features tokio
//! ```
//!
//! The demo runs an echo target, the tunnel server and the tunnel client on ephemeral ports of
//! 127.0.0.1 in this one process, and sends a few TCP clients through. `tests/example_tunnel.rs`
//! drives the same functions with 50 clients at once, half-closes and resets.
//!
//! # Ends cross the tunnel too
//!
//! Bytes are the easy part. A forwarder must also carry *how* each direction ended, because TCP
//! has two ways to end and they mean different things:
//!
//! | on one side                           | on the stream                    | on the other side                       |
//! |---------------------------------------|----------------------------------|-----------------------------------------|
//! | FIN: a read returns 0                 | `finish` (FIN after the data)    | `shutdown(Write)`: FIN                  |
//! | RST: a read or write fails            | reset + stop with [`TCP_RESET`]  | RST: `SO_LINGER` 0, then close          |
//! | the target refuses the connection     | reset + stop with [`CONNECT_FAILED`] | RST                                 |
//! | the WebSocket goes away               | every stream fails               | RST                                     |
//!
//! - **Half-close**: each direction ends on its own. A client may send its request, shut down its
//!   write side and still read the whole reply — the tunnel forwards the FIN and keeps the other
//!   direction open until it ends too.
//! - **A reset stays a reset**: a forwarder that turned an aborted connection into a clean FIN
//!   would make a truncated reply look complete. Anything abnormal on one side becomes a stream
//!   reset, and a stream that ends abnormally becomes a TCP reset.

#[cfg(feature = "tokio")]
#[tokio::main]
async fn main() -> Result<(), forwarder::BoxError> {
    forwarder::demo().await
}

#[cfg(not(feature = "tokio"))]
fn main() {
    eprintln!("this example needs the tokio feature: cargo run --example tunnel --features tokio");
    std::process::exit(2);
}

/// The forwarder (client and server sides), an echo target, and the demo.
#[cfg(feature = "tokio")]
pub mod forwarder {
    use std::{fmt, io, net::SocketAddr};

    use futures::{
        channel::mpsc::{self, UnboundedSender},
        StreamExt,
    };
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{
            tcp::{ReadHalf, WriteHalf},
            TcpListener, TcpStream,
        },
    };
    use ws_stream_mux::{
        handshake::AcceptConfig, CloseCode, Config, Connection, Error, ErrorCode, RecvStream,
        SendStream, WsStream,
    };

    /// The error type of the demo.
    pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

    /// Stream code: the TCP connection on the sender's side was reset (or failed). The other
    /// side resets its TCP connection in turn.
    pub const TCP_RESET: ErrorCode = ErrorCode(0x100);
    /// Stream code: the tunnel server could not connect to the target.
    pub const CONNECT_FAILED: ErrorCode = ErrorCode(0x101);

    /// How much one read moves at most.
    const CHUNK: usize = 64 * 1024;

    // ------------------------------------------------------------------------------------------
    // The server side: streams in, TCP connections to the target out.
    // ------------------------------------------------------------------------------------------

    /// Accepts tunnel clients (WebSocket connections) on `listener` and forwards each of their
    /// streams to a new TCP connection to `target`. Runs until `listener` fails.
    ///
    /// # Errors
    /// The listener's accept error.
    pub async fn run_server(listener: TcpListener, target: SocketAddr) -> io::Result<()> {
        loop {
            let (tcp, peer) = listener.accept().await?;
            // The handshake runs in the connection's own task: a slow client holds up no other.
            tokio::spawn(async move {
                let accepted =
                    ws_stream_mux::tokio::accept(tcp, &AcceptConfig::default(), Config::default())
                        .await;
                match accepted {
                    Ok((conn, _request)) => serve_tunnel(conn, target).await,
                    Err(err) => println!("[tunnel server] {peer}: handshake failed: {err}"),
                }
            });
        }
    }

    /// One tunnel client's connection: a TCP connection to the target per stream.
    async fn serve_tunnel(conn: Connection, target: SocketAddr) {
        loop {
            let stream = match conn.accept().await {
                Ok(stream) => stream,
                Err(err) => {
                    println!("[tunnel server] tunnel client gone: {err}");
                    return;
                }
            };
            tokio::spawn(async move {
                let id = stream.id();
                match TcpStream::connect(target).await {
                    Ok(tcp) => {
                        let _ = tcp.set_nodelay(true);
                        let forwarded = forward(tcp, stream).await;
                        println!("[tunnel server] stream {id} to {target}: {forwarded}");
                    }
                    Err(err) => {
                        // The client's TCP connection gets a reset: the closest TCP has to
                        // "connection refused" once it has been accepted.
                        let mut stream = stream;
                        let _ = stream.abort(CONNECT_FAILED);
                        println!("[tunnel server] stream {id}: cannot connect to {target}: {err}");
                    }
                }
            });
        }
    }

    // ------------------------------------------------------------------------------------------
    // The client side: TCP connections in, streams out.
    // ------------------------------------------------------------------------------------------

    /// Connects to the tunnel server at `url` and forwards every TCP connection accepted on
    /// `listener` over that one WebSocket, until it closes.
    ///
    /// # Errors
    /// The connect error, or the error the connection ended with.
    pub async fn run_client(listener: TcpListener, url: &str) -> Result<(), Error> {
        let conn = ws_stream_mux::tokio::connect(url, Config::default()).await?;
        forward_listener(listener, conn).await
    }

    /// Forwards every TCP connection accepted on `listener` over `conn`, one stream each, until
    /// the connection ends (close it to stop).
    ///
    /// # Errors
    /// The listener's accept error; the connection's error if it ended without a clean close.
    pub async fn forward_listener(listener: TcpListener, conn: Connection) -> Result<(), Error> {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => accepted?,
                ended = conn.closed() => return match ended {
                    Error::ConnectionClosed { code, .. } if code.is_clean() => Ok(()),
                    err => Err(err),
                },
            };
            let conn = conn.clone();
            // Opening may wait (for a free stream slot): do it in the connection's task, so that
            // accepting goes on.
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                match conn.open().await {
                    Ok(stream) => {
                        let id = stream.id();
                        let forwarded = forward(tcp, stream).await;
                        println!("[tunnel client] {peer} on stream {id}: {forwarded}");
                    }
                    Err(err) => {
                        reset(tcp);
                        println!("[tunnel client] {peer}: no stream ({err}), reset");
                    }
                }
            });
        }
    }

    // ------------------------------------------------------------------------------------------
    // Both sides: one TCP connection <-> one stream.
    // ------------------------------------------------------------------------------------------

    /// How a forwarded connection ended.
    #[derive(Debug)]
    pub enum Forwarded {
        /// Both directions ended with a FIN; the counts are the bytes each way.
        Clean {
            /// TCP to stream.
            sent: u64,
            /// Stream to TCP.
            received: u64,
        },
        /// One side ended abnormally; both were torn down (the TCP connection with a reset).
        Aborted(Abort),
    }

    /// What ended a forwarded connection abnormally.
    #[derive(Debug)]
    pub enum Abort {
        /// Our TCP connection failed (reset by its peer): the tunnel peer was told with
        /// [`TCP_RESET`].
        Tcp(io::Error),
        /// The stream ended abnormally — the tunnel peer's reset or stop, the WebSocket closing:
        /// our TCP connection was reset.
        Stream(Error),
    }

    impl Abort {
        fn stream(err: io::Error) -> Self {
            Abort::Stream(Error::from(err))
        }
    }

    impl fmt::Display for Forwarded {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Forwarded::Clean { sent, received } => {
                    write!(f, "clean ({sent} bytes out, {received} bytes back)")
                }
                Forwarded::Aborted(Abort::Tcp(err)) => {
                    write!(f, "TCP failed ({err}): stream reset")
                }
                Forwarded::Aborted(Abort::Stream(err)) => {
                    write!(f, "stream failed ({err}): TCP reset")
                }
            }
        }
    }

    /// Forwards `tcp` over `stream`, both directions at once, each ending on its own.
    pub async fn forward(mut tcp: TcpStream, stream: WsStream) -> Forwarded {
        let (mut send, mut recv) = stream.into_split();
        let (mut tcp_in, mut tcp_out) = tcp.split();
        // `try_join`: a clean end of one direction waits for the other; an abort of either ends
        // both at once (the other's future is dropped mid-read). The halves are borrowed, not
        // moved in, so that we still hold them to reset afterwards: a dropped SendStream would
        // *finish* — the clean end this must not look like.
        let both = futures::future::try_join(
            tcp_to_stream(&mut tcp_in, &mut send),
            stream_to_tcp(&mut recv, &mut tcp_out),
        )
        .await;
        match both {
            Ok((sent, received)) => Forwarded::Clean { sent, received },
            Err(abort) => {
                // Whatever ended first, tear down both: the tunnel peer's reads and writes fail
                // with TCP_RESET (a half that already ended stays as it was), and our TCP peer
                // gets an RST.
                let _ = send.reset(TCP_RESET);
                let _ = recv.stop(TCP_RESET);
                reset(tcp);
                Forwarded::Aborted(abort)
            }
        }
    }

    /// TCP to stream, until the TCP peer's FIN (then we finish the stream) or a failure.
    async fn tcp_to_stream(tcp: &mut ReadHalf<'_>, stream: &mut SendStream) -> Result<u64, Abort> {
        let mut buf = vec![0; CHUNK];
        let mut total = 0;
        loop {
            // An error here is a reset (or worse): ConnectionReset, usually.
            let n = tcp.read(&mut buf).await.map_err(Abort::Tcp)?;
            if n == 0 {
                // The TCP peer's FIN: finish the stream, after the data (tokio's `shutdown` on a
                // stream is a FIN, and waits until it left). The other direction goes on.
                stream.shutdown().await.map_err(Abort::stream)?;
                return Ok(total);
            }
            // Fails if the tunnel peer stopped reading (its TCP side failed) or the WebSocket
            // went away.
            stream.write_all(&buf[..n]).await.map_err(Abort::stream)?;
            total += n as u64;
        }
    }

    /// Stream to TCP, until the stream's end (then we shut down TCP's write side) or a failure.
    async fn stream_to_tcp(stream: &mut RecvStream, tcp: &mut WriteHalf<'_>) -> Result<u64, Abort> {
        let mut total = 0;
        loop {
            // `read_chunk` hands over the received bytes without copying them.
            match stream.read_chunk(CHUNK).await {
                Ok(Some(chunk)) => {
                    tcp.write_all(&chunk).await.map_err(Abort::Tcp)?;
                    total += chunk.len() as u64;
                }
                Ok(None) => {
                    // The stream's FIN: shutdown(Write) sends ours. Reading goes on.
                    tcp.shutdown().await.map_err(Abort::Tcp)?;
                    return Ok(total);
                }
                // A reset (TCP_RESET, CONNECT_FAILED, any code) or the connection closing.
                Err(err) => return Err(Abort::Stream(err)),
            }
        }
    }

    /// Closes `tcp` with an RST instead of a FIN: SO_LINGER with a zero timeout, then close —
    /// the only way TCP has to say "this did not end well". (Zero is the one linger value that
    /// does not block the thread on close.)
    fn reset(tcp: TcpStream) {
        let _ = tcp.set_zero_linger();
        drop(tcp);
    }

    // ------------------------------------------------------------------------------------------
    // A target and the demo.
    // ------------------------------------------------------------------------------------------

    /// How one of the echo target's connections ended: the bytes echoed, or the error.
    pub type Echoed = (SocketAddr, io::Result<u64>);

    /// An echo server: sends back everything it receives, and finishes after the client did.
    /// Reports how each connection ended to `ended` (if anyone listens).
    ///
    /// # Errors
    /// The listener's accept error.
    pub async fn echo_target(
        listener: TcpListener,
        ended: UnboundedSender<Echoed>,
    ) -> io::Result<()> {
        loop {
            let (mut tcp, peer) = listener.accept().await?;
            let ended = ended.clone();
            tokio::spawn(async move {
                let (mut from_client, mut to_client) = tcp.split();
                let echoed = async {
                    let n = tokio::io::copy(&mut from_client, &mut to_client).await?;
                    to_client.shutdown().await?;
                    Ok(n)
                }
                .await;
                let _ = ended.unbounded_send((peer, echoed));
            });
        }
    }

    async fn bind() -> io::Result<(TcpListener, SocketAddr)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        Ok((listener, addr))
    }

    /// Target, tunnel server and tunnel client on 127.0.0.1, and a few TCP clients through them.
    ///
    /// # Errors
    /// Anything that does not go as described.
    pub async fn demo() -> Result<(), BoxError> {
        let (target_listener, target) = bind().await?;
        let (echo_ends, mut echo_log) = mpsc::unbounded();
        tokio::spawn(echo_target(target_listener, echo_ends));

        let (server_listener, server_addr) = bind().await?;
        tokio::spawn(run_server(server_listener, target));

        // The tunnel client: one WebSocket for all TCP connections. We connect it ourselves
        // (rather than `run_client`) to close it at the end.
        let (entry_listener, entry) = bind().await?;
        let conn =
            ws_stream_mux::tokio::connect(&format!("ws://{server_addr}/"), Config::default())
                .await?;
        let tunnel_client = tokio::spawn(forward_listener(entry_listener, conn.clone()));
        println!("target {target}, tunnel server {server_addr}, tunnel entry {entry}");

        // Three clients at once, each writing while it reads.
        let clients = ["alice", "bob", "carol"].map(|name| {
            tokio::spawn(async move {
                let message = format!("hello from {name}, through the tunnel").repeat(1000);
                let tcp = TcpStream::connect(entry).await?;
                let (mut from_tunnel, mut to_tunnel) = tcp.into_split();
                let writer = tokio::spawn(async move {
                    to_tunnel.write_all(message.as_bytes()).await?;
                    to_tunnel.shutdown().await?; // FIN: the echo target finishes in turn
                    io::Result::Ok(message)
                });
                let mut echo = String::new();
                from_tunnel.read_to_string(&mut echo).await?;
                let sent = writer.await??;
                println!(
                    "[{name}] {} bytes echoed intact: {}",
                    echo.len(),
                    echo == sent
                );
                Ok::<_, BoxError>(echo == sent)
            })
        });
        for client in clients {
            if !client.await?? {
                return Err("an echo came back different".into());
            }
        }

        // Half-close: write, shut down our write side, and still read everything back.
        let mut tcp = TcpStream::connect(entry).await?;
        tcp.write_all(b"the last words before our FIN").await?;
        tcp.shutdown().await?;
        let mut echo = Vec::new();
        tcp.read_to_end(&mut echo).await?; // Ok: the target's FIN came back as a clean end
        println!(
            "[half-close] after our FIN we still read {:?}",
            String::from_utf8_lossy(&echo)
        );

        // Reset: a client that aborts its connection. The target must see a reset, not an end.
        let tcp = TcpStream::connect(entry).await?;
        let local = tcp.local_addr()?;
        let (mut from_tunnel, mut to_tunnel) = tcp.into_split();
        to_tunnel.write_all(b"ping").await?;
        let mut pong = [0; 4];
        from_tunnel.read_exact(&mut pong).await?; // the whole path is up
        reset(from_tunnel.reunite(to_tunnel)?);
        println!("[reset] {local}: connection reset by us");
        loop {
            let (_, ended) = echo_log.next().await.ok_or("the echo target stopped")?;
            if let Err(err) = ended {
                println!("[target] a connection ended with: {err} ({:?})", err.kind());
                break;
            }
        }

        conn.close(CloseCode::NORMAL, "demo over").await?;
        tunnel_client.await??;
        println!("demo finished");
        Ok(())
    }
}
