//! [`WsStream`]: one multiplexed byte stream.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::{AsyncRead, AsyncWrite};

use crate::{
    code::ErrorCode,
    conn::Shared,
    error::Error,
    proto::{ReadOutcome, StreamId},
    waiters::WaitKey,
};

/// One bidirectional byte stream of a [`Connection`](crate::Connection): futures-io
/// [`AsyncRead`] + [`AsyncWrite`], with QUIC-style half-close, reset and stop.
///
/// - **Writing** goes out promptly, as with a TCP socket with `TCP_NODELAY`: no `flush` is needed
///   for the peer to receive it. While the socket is busy, consecutive writes are coalesced into
///   DATA messages of up to [`Config::max_data_per_message`](crate::Config::max_data_per_message)
///   bytes. A write waits while the peer has granted no credit (flow control) or
///   [`Config::send_buffer`](crate::Config::send_buffer) bytes are queued. `flush` waits until
///   everything written has been handed to the socket.
/// - **`close`** (`AsyncWriteExt::close`) finishes the write side: after the data, the peer's
///   read side reaches end of stream. Reading continues.
/// - **[`reset`](Self::reset)** aborts the write side: unsent data is dropped and the peer's
///   reads fail with [`Error::Reset`] carrying your code.
/// - **[`stop`](Self::stop)** stops the read side: buffered data is dropped and the peer's
///   writes fail with [`Error::Stopped`] carrying your code.
/// - **Dropping** the stream finishes the write side gracefully (like `close`) if it was not
///   finished or reset, and stops the read side with code 0 if the peer had not finished writing.
///
/// Errors are [`io::Error`]s wrapping an [`Error`] (get it with [`Error::from_io`]): the peer's
/// reset or stop (`ConnectionReset`), the connection being closed (`NotConnected`, with the close
/// code), or the stream failing because the peer misbehaved on it (`InvalidData`).
///
/// Read and write halves may be used from different tasks (`AsyncReadExt::split`).
pub struct WsStream {
    shared: Arc<Shared>,
    id: StreamId,
}

impl WsStream {
    pub(crate) fn new(shared: Arc<Shared>, id: StreamId) -> Self {
        Self { shared, id }
    }

    /// The stream's id on the wire (even: opened by the client; odd: by the server).
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Aborts writing: data not yet sent is dropped and the peer's reads fail with `code`
    /// (ERROR Read on the wire, like QUIC's RESET_STREAM). Reading is not affected.
    ///
    /// # Errors
    /// [`Error::InvalidErrorCode`] above 2^62−1; the half's own error if it already ended
    /// ([`Error::Finished`] after `close`, [`Error::Stopped`] if the peer stopped reading, ...).
    pub fn reset(&mut self, code: ErrorCode) -> Result<(), Error> {
        self.act(|mux, id| mux.reset(id, code))
    }

    /// Stops reading: buffered data is dropped and the peer's writes fail with `code`
    /// (ERROR Write on the wire, like QUIC's STOP_SENDING). Writing is not affected.
    ///
    /// # Errors
    /// [`Error::InvalidErrorCode`] above 2^62−1.
    pub fn stop(&mut self, code: ErrorCode) -> Result<(), Error> {
        self.act(|mux, id| mux.stop(id, code))
    }

    fn act(
        &self,
        action: impl FnOnce(&mut crate::proto::Mux, StreamId) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut inner = self.shared.lock();
        let result = action(&mut inner.mux, self.id);
        self.shared.drive_now(&mut inner);
        result
    }
}

impl AsyncRead for WsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let id = self.id;
        self.shared.poll_op(cx, WaitKey::Read(id), |inner| {
            match inner.mux.read(id, buf) {
                Ok(ReadOutcome::Data(n)) => Poll::Ready(Ok(n)),
                Ok(ReadOutcome::End) => Poll::Ready(Ok(0)),
                Ok(ReadOutcome::Blocked) => Poll::Pending,
                Err(err) => Poll::Ready(Err(err.into())),
            }
        })
    }
}

impl AsyncWrite for WsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let id = self.id;
        self.shared.poll_op(cx, WaitKey::Write(id), |inner| {
            match inner.mux.write(id, buf) {
                Ok(0) => Poll::Pending,
                Ok(n) => Poll::Ready(Ok(n)),
                Err(err) => Poll::Ready(Err(err.into())),
            }
        })
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let id = self.id;
        self.shared.poll_op(cx, WaitKey::Write(id), |inner| {
            if let Some(err) = inner.mux.send_error(id) {
                return Poll::Ready(Err(err.into()));
            }
            if inner.mux.is_flushed(id) && !inner.transport_needs_flush() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let id = self.id;
        self.shared.poll_op(cx, WaitKey::Write(id), |inner| {
            if let Err(err) = inner.mux.finish(id) {
                return Poll::Ready(Err(err.into()));
            }
            if inner.mux.is_send_done(id) && !inner.transport_needs_flush() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
    }
}

impl Drop for WsStream {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.mux.release(self.id);
        self.shared.waiters().unregister(WaitKey::Read(self.id));
        self.shared.waiters().unregister(WaitKey::Write(self.id));
        // Send the FIN / stop now if the socket takes it; otherwise the next poll of any handle
        // does.
        self.shared.drive_now(&mut inner);
    }
}

impl std::fmt::Debug for WsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsStream").field("id", &self.id).finish()
    }
}
