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
    mut stream: S,
    config: &AcceptConfig,
) -> Result<(WebSocketStream<S>, UpgradeRequest), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let outcome = {
        let exchange = pin!(read_and_answer(&mut stream, config));
        match select(exchange, Delay::new(config.timeout)).await {
            Either::Left((outcome, _)) => outcome?,
            Either::Right(((), _)) => return Err(HandshakeError::TimedOut),
        }
    };
    match outcome {
        Ok(request) => {
            let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config.websocket))
                .await;
            Ok((ws, request))
        }
        Err(rejection) => {
            // When we stopped reading early, the client may still be sending.
            if matches!(
                rejection,
                Rejection::HeadTooLarge | Rejection::TrailingBytes | Rejection::Malformed(_)
            ) {
                linger(&mut stream, config).await;
            }
            Err(HandshakeError::Rejected(rejection))
        }
    }
}

/// Reads the head and sends the answer: 101 for an acceptable request (returned), an error
/// answer for a rejected one (returned as the inner `Err`, with our side of the connection shut).
async fn read_and_answer<S>(
    stream: &mut S,
    config: &AcceptConfig,
) -> Result<Result<UpgradeRequest, Rejection>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match read_request(stream, config).await? {
        Ok(request) => {
            answer(stream, &response::switching_protocols(&request)).await?;
            Ok(Ok(request))
        }
        Err(rejection) => {
            // Best effort: the client may already be gone, and the rejection is what matters to
            // the caller either way.
            if answer(stream, &response::rejection(&rejection))
                .await
                .is_ok()
            {
                let _ = stream.close().await;
            }
            Ok(Err(rejection))
        }
    }
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

/// Reads and discards what the client still sends after our error answer, until it closes, for at
/// most [`AcceptConfig::linger`]. Closing a socket with unread input makes the kernel send a reset,
/// which can destroy the answer before the client reads it (the case of a head too large). HTTP
/// clients read the answer by its `Content-Length` and then close, which ends the wait.
async fn linger<S: AsyncRead + Unpin>(stream: &mut S, config: &AcceptConfig) {
    let drain = async {
        let mut scratch = [0u8; 2048];
        // Bounded in bytes as well as time, so a fast sender cannot keep us busy.
        let mut budget = config.max_head_size.saturating_mul(4).max(64 * 1024);
        while budget > 0 {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => budget = budget.saturating_sub(n),
            }
        }
    };
    let _ = select(pin!(drain), Delay::new(config.linger)).await;
}

async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}
