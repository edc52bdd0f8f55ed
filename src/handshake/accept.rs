//! The server side of the opening handshake over any byte stream.

use std::{io, pin::pin};

use async_tungstenite::{tungstenite::protocol::Role, WebSocketStream};
use futures::{
    future::{select, Either},
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};
use futures_timer::Delay;

use super::{
    config::AcceptConfig,
    error::{HandshakeError, Rejection},
    request::{check_request, UpgradeRequest},
    response,
};

/// Reads an upgrade request from `stream`, checks it and answers it: `101 Switching Protocols` and
/// a WebSocket ready for [`WsIo::new`](crate::WsIo::new) or
/// [`Connection::server`](crate::Connection::server), or the HTTP error that says what was wrong
/// (see [`Rejection`]) after which the connection is closed.
///
/// Unlike `async_tungstenite::accept_hdr_async`, a bad request gets an HTTP answer (400, 403, 404
/// or 426) rather than a silently closed connection, so a client or a person with `curl` learns
/// why. The head is read into a buffer of at most
/// [`max_head_size`](AcceptConfig::max_head_size) bytes, and the whole handshake must finish within
/// [`timeout`](AcceptConfig::timeout). No runtime is assumed: `stream` is any `futures-io` stream
/// (wrap a tokio `TcpStream` with `tokio-util`'s `compat`).
///
/// # Errors
/// - [`HandshakeError::Rejected`] when the request was refused (the answer has been sent).
/// - [`HandshakeError::TimedOut`] when the client was too slow (no answer is sent).
/// - [`HandshakeError::Io`] when the socket failed or closed before a single byte of the head.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use ws_stream_mux::handshake::{accept, AcceptConfig, PathPolicy};
///
/// let config = AcceptConfig::default().paths(PathPolicy::only(["/ws"]));
/// let listener = async_std::net::TcpListener::bind("127.0.0.1:0").await?;
/// let (tcp, _) = listener.accept().await?;
/// let (ws, request) = accept(tcp, &config).await?;
/// println!("WebSocket on {} from origin {:?}", request.path(), request.origin);
/// # drop(ws); Ok(()) }
/// ```
pub async fn accept<S>(
    stream: S,
    config: &AcceptConfig,
) -> Result<(WebSocketStream<S>, UpgradeRequest), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = pin!(handshake(stream, config));
    match select(handshake, Delay::new(config.timeout)).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => Err(HandshakeError::TimedOut),
    }
}

async fn handshake<S>(
    mut stream: S,
    config: &AcceptConfig,
) -> Result<(WebSocketStream<S>, UpgradeRequest), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = match read_request(&mut stream, config).await? {
        Ok(request) => request,
        Err(rejection) => {
            // Best effort: the client may already be gone, and the rejection is the error that
            // matters to the caller either way.
            let _ = answer(&mut stream, &response::rejection(&rejection)).await;
            let _ = stream.close().await;
            return Err(HandshakeError::Rejected(rejection));
        }
    };
    answer(&mut stream, &response::switching_protocols(&request)).await?;
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config.websocket)).await;
    Ok((ws, request))
}

/// Reads until the head is complete or rejected. The outer `Err` is an I/O failure (no answer
/// can be sent), the inner one a request to answer with an HTTP error.
async fn read_request<S>(
    stream: &mut S,
    config: &AcceptConfig,
) -> Result<Result<UpgradeRequest, Rejection>, HandshakeError>
where
    S: AsyncRead + Unpin,
{
    // One byte more than the limit is enough to tell that a head is too large.
    let cap = config.max_head_size.saturating_add(1);
    let mut received = Vec::with_capacity(cap.min(1024));
    let mut chunk = [0u8; 2048];
    loop {
        let room = (cap - received.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            if received.is_empty() {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
            return Ok(Err(Rejection::Incomplete));
        }
        received.extend_from_slice(&chunk[..n]);
        match check_request(&received, config) {
            Ok(None) => continue,
            Ok(Some(request)) => return Ok(Ok(request)),
            Err(rejection) => return Ok(Err(rejection)),
        }
    }
}

async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}
