//! The streams of a [`Connection`](crate::Connection): [`WsStream`] (both directions) and its
//! owned halves, [`SendStream`] and [`RecvStream`], in quinn's model.

use std::{
    future::poll_fn,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use futures::{AsyncRead, AsyncWrite};

use super::handle::Handle;
use crate::{
    engine::{shared::Shared, span::Span, wakers::Slot},
    error::Error,
    proto::{ErrorCode, Mux, ReadOutcome, StreamError, StreamId, StreamKey},
};

/// What a half holds: the connection and the stream's key.
#[derive(Debug)]
struct Half {
    handle: Handle,
    key: StreamKey,
    /// Already released.
    released: bool,
    /// The stream's tracing span (a no-op without the `tracing` feature).
    span: Span,
}

impl Half {
    fn new(handle: Handle, key: StreamKey) -> Self {
        let span = crate::engine::span::stream(&handle.engine().span, key.id());
        Self {
            handle,
            key,
            released: false,
            span,
        }
    }

    fn engine(&self) -> &Shared<Mux> {
        self.handle.engine()
    }

    fn id(&self) -> StreamId {
        self.key.id()
    }

    fn io_error(&self, err: StreamError) -> io::Error {
        Error::from_stream(err, self.id()).into()
    }

    /// A one-shot command on the stream, then whatever it queued is sent.
    fn act<T>(&self, f: impl FnOnce(&mut Mux) -> Result<T, StreamError>) -> Result<T, Error> {
        let _entered = self.span.enter();
        let result = self.engine().with_state(|state| f(&mut state.session));
        self.engine().drive(false);
        result.map_err(|err| Error::from_stream(err, self.id()))
    }

    /// Once the stream's bytes were handed out: `Ok` when the socket wrote them out, the
    /// connection's error if it ended first (they never will be), otherwise wait for the flush.
    fn socket_flushed(&self, mux: &mut Mux, key: StreamKey) -> Poll<io::Result<()>> {
        match mux.flush_outcome() {
            Some(Ok(())) => Poll::Ready(Ok(())),
            Some(Err(end)) => Poll::Ready(Err(self.io_error(StreamError::ConnectionLost(end)))),
            None => {
                mux.await_flush(key);
                Poll::Pending
            }
        }
    }

    /// The drop of one or both halves: what it means to the protocol is the core's `release`.
    fn release(&mut self, send: bool, recv: bool) {
        if self.released {
            return;
        }
        self.released = true;
        let _entered = self.span.enter();
        let key = self.key;
        let panicking = std::thread::panicking();
        self.engine().with_state(|state| {
            state
                .session
                .release(key, Instant::now(), send, recv, panicking);
            if send {
                state.wakers.forget(Slot::Write(key));
            }
            if recv {
                state.wakers.forget(Slot::Read(key));
            }
        });
        // Send the FIN, stop or reset now if the socket takes it; otherwise the next drive does.
        self.engine().drive(false);
    }

    fn set_drop_code(&self, code: ErrorCode) -> Result<(), Error> {
        let code = code.validate()?;
        let key = self.key;
        self.engine()
            .with_state(|state| state.session.set_drop_code(key, code));
        Ok(())
    }
}

/// The sending half of a stream: futures-io [`AsyncWrite`] (and tokio's with the `tokio`
/// feature), with QUIC-style finish, reset and priorities.
///
/// - **Writing** goes out promptly, as with a TCP socket with `TCP_NODELAY`: no `flush` is needed
///   for the peer to receive it. A write waits while the peer has granted no credit (flow control)
///   or [`Config::send_buffer`](crate::Config::send_buffer) bytes are queued.
/// - **`flush`** returns `Ok` once everything written has been written out to the socket, and an
///   error if some of it never will be (the peer stopped reading first, the connection closed).
/// - **`close`** (`AsyncWriteExt::close`, tokio's `shutdown`) finishes the half — after the data,
///   the peer's reads reach the end of stream — and waits until that FIN has been written out. A
///   stop from the peer that arrives once every byte has left does not make it fail: the data was
///   delivered; [`stopped`](Self::stopped) tells the stop apart.
/// - **Dropping** it finishes it like `close` (without waiting) — unless its thread is panicking:
///   then it is reset with its drop code, so the peer never reads a crash as a clean end.
#[derive(Debug)]
pub struct SendStream {
    half: Half,
}

impl SendStream {
    pub(crate) fn new(handle: Handle, key: StreamKey) -> Self {
        Self {
            half: Half::new(handle, key),
        }
    }

    /// The stream's id on the wire.
    pub fn id(&self) -> StreamId {
        self.half.id()
    }

    /// Finishes writing: after the data already written, the peer's reads reach the end of
    /// stream. Does not wait (`close` waits until the FIN has left). Calling it again is harmless.
    ///
    /// # Errors
    /// The half's error if it already ended otherwise: [`Error::LocallyEnded`] after a
    /// [`reset`](Self::reset), [`Error::Stopped`] if the peer stopped reading before the data
    /// left, the connection's error.
    pub fn finish(&mut self) -> Result<(), Error> {
        let key = self.half.key;
        self.half.act(|mux| mux.finish(key).map(drop))
    }

    /// Aborts writing with `code`: data not yet sent is dropped and the peer's reads fail with the
    /// code (the @matrixai/ws protocol's ERROR Read, QMux's RESET_STREAM). Once the FIN has left,
    /// or after a first reset, it does nothing.
    ///
    /// # Errors
    /// [`Error::InvalidErrorCode`] above 2^62−1; [`Error::Stopped`] if the peer stopped reading
    /// first; the connection's error once it is closing.
    pub fn reset(&mut self, code: ErrorCode) -> Result<(), Error> {
        let code = code.validate()?;
        let key = self.half.key;
        self.half.act(|mux| mux.reset(key, code))
    }

    /// Waits until the peer stopped reading (`Ok(Some(code))`) or everything written, FIN
    /// included, has been written out to the socket (`Ok(None)`).
    ///
    /// # Errors
    /// [`Error::LocallyEnded`] after our own reset; the connection's error if it closed first.
    pub async fn stopped(&self) -> Result<Option<ErrorCode>, Error> {
        let key = self.half.key;
        let id = self.id();
        poll_fn(|cx| {
            self.half
                .engine()
                .poll_op(cx, Slot::Write(key), |mux, _| match mux.poll_stopped(key) {
                    Some(Ok(None)) => match mux.flush_outcome() {
                        Some(Ok(())) => Poll::Ready(Ok(None)),
                        Some(Err(end)) => Poll::Ready(Err(end.into())),
                        None => {
                            mux.await_flush(key);
                            Poll::Pending
                        }
                    },
                    Some(outcome) => {
                        Poll::Ready(outcome.map_err(|err| Error::from_stream(err, id)))
                    }
                    None => Poll::Pending,
                })
        })
        .await
    }

    /// Sets the half's priority: streams with a higher priority send first; equal priorities take
    /// turns, one message each. Default 0.
    pub fn set_priority(&self, priority: i32) {
        let key = self.half.key;
        self.half
            .engine()
            .with_state(|state| state.session.set_priority(key, priority));
    }

    /// The half's priority.
    pub fn priority(&self) -> i32 {
        let key = self.half.key;
        self.half
            .engine()
            .with_state(|state| state.session.priority(key))
    }

    /// Sets the code this stream's drop stops or resets with (default
    /// [`Config::drop_code`](crate::Config::drop_code)): for example the application's "cancelled"
    /// code, so that a stream dropped by a timeout says so. The code belongs to the stream: set
    /// on either half, it applies to both.
    ///
    /// A send half dropped unfinished sends a FIN (as quinn's does), unless its thread is
    /// panicking: then it resets with this code. That needs the drop to happen during the unwind
    /// — true when the runtime drops a panicking task's future while unwinding (tokio does), not
    /// when the panic is caught first (`catch_unwind`) and the future dropped later. To make an
    /// abandoned write look abandoned whatever happens, call [`reset`](Self::reset) yourself
    /// (for example from a drop guard) unless the write completed.
    ///
    /// # Errors
    /// [`Error::InvalidErrorCode`] above 2^62−1.
    pub fn set_drop_code(&self, code: ErrorCode) -> Result<(), Error> {
        self.half.set_drop_code(code)
    }

    fn poll_write_inner(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let _entered = self.half.span.enter();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let key = self.half.key;
        let half = &self.half;
        half.engine().poll_op(cx, Slot::Write(key), |mux, now| {
            match mux.write(key, now, buf) {
                Ok(0) => Poll::Pending,
                Ok(n) => Poll::Ready(Ok(n)),
                Err(err) => Poll::Ready(Err(half.io_error(err))),
            }
        })
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _entered = self.half.span.enter();
        let key = self.half.key;
        let half = &self.half;
        half.engine()
            .poll_op(cx, Slot::Write(key), |mux, _| match mux.flush(key) {
                Ok(true) => half.socket_flushed(mux, key),
                Ok(false) => Poll::Pending,
                Err(err) => Poll::Ready(Err(half.io_error(err))),
            })
    }

    fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _entered = self.half.span.enter();
        let key = self.half.key;
        let half = &self.half;
        half.engine()
            .poll_op(cx, Slot::Write(key), |mux, _| match mux.finish(key) {
                Ok(true) => half.socket_flushed(mux, key),
                Ok(false) => Poll::Pending,
                Err(err) => Poll::Ready(Err(half.io_error(err))),
            })
    }
}

impl AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_inner(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_close_inner(cx)
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        self.half.release(true, false);
    }
}

/// The receiving half of a stream: futures-io [`AsyncRead`] (and tokio's with the `tokio`
/// feature), with [`read_chunk`](Self::read_chunk) and [`stop`](Self::stop).
///
/// Reads return the peer's bytes in order, then `Ok(0)` once the peer finished; they fail with
/// [`Error::Reset`] (kind `ConnectionReset`) if the peer reset its writing, with the connection's
/// error once it closed (data that had already arrived is read first). Credit goes back to the
/// peer as the application reads.
///
/// **Dropping** it before the peer finished stops the stream with its drop code (the peer's writes
/// fail with it), and drops what was buffered.
#[derive(Debug)]
pub struct RecvStream {
    half: Half,
}

impl RecvStream {
    pub(crate) fn new(handle: Handle, key: StreamKey) -> Self {
        Self {
            half: Half::new(handle, key),
        }
    }

    /// The stream's id on the wire.
    pub fn id(&self) -> StreamId {
        self.half.id()
    }

    /// Stops reading with `code`: buffered data is dropped and the peer's writes fail with the
    /// code (the @matrixai/ws protocol's ERROR Write, QMux's STOP_SENDING). After the peer
    /// finished, it only drops what is buffered.
    ///
    /// # Errors
    /// [`Error::InvalidErrorCode`] above 2^62−1; the connection's error once it is closing.
    pub fn stop(&mut self, code: ErrorCode) -> Result<(), Error> {
        let code = code.validate()?;
        let key = self.half.key;
        self.half.act(|mux| mux.stop(key, code))
    }

    /// The next buffered bytes, up to `max`, without copying them (zero-copy when they arrived in
    /// large messages). `Ok(None)` at the end of stream.
    ///
    /// # Errors
    /// As reads: the peer's reset, our own stop, the connection's error.
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Error> {
        let key = self.half.key;
        let id = self.id();
        poll_fn(|cx| {
            self.half.engine().poll_op(cx, Slot::Read(key), |mux, _| {
                match mux.read_chunk(key, max) {
                    Ok(Ok(bytes)) => Poll::Ready(Ok(Some(bytes))),
                    Ok(Err(ReadOutcome::End)) => Poll::Ready(Ok(None)),
                    Ok(Err(_)) => Poll::Pending,
                    Err(err) => Poll::Ready(Err(Error::from_stream(err, id))),
                }
            })
        })
        .await
    }

    /// Sets the code this stream's drop stops it with (see [`SendStream::set_drop_code`]).
    ///
    /// # Errors
    /// [`Error::InvalidErrorCode`] above 2^62−1.
    pub fn set_drop_code(&self, code: ErrorCode) -> Result<(), Error> {
        self.half.set_drop_code(code)
    }

    fn poll_read_inner(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let _entered = self.half.span.enter();
        let key = self.half.key;
        let half = &self.half;
        half.engine()
            .poll_op(cx, Slot::Read(key), |mux, _| match mux.read(key, buf) {
                Ok(ReadOutcome::Data(n)) => Poll::Ready(Ok(n)),
                Ok(ReadOutcome::End) => Poll::Ready(Ok(0)),
                Ok(ReadOutcome::Blocked) => Poll::Pending,
                Err(err) => Poll::Ready(Err(half.io_error(err))),
            })
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_read_inner(cx, buf)
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        self.half.release(false, true);
    }
}

/// One bidirectional stream of a [`Connection`](crate::Connection): futures-io [`AsyncRead`] +
/// [`AsyncWrite`] (and tokio's `AsyncRead` + `AsyncWrite` with the `tokio` feature), with
/// QUIC-style half-close, reset and stop. It is a [`SendStream`] and a [`RecvStream`] together;
/// [`into_split`](Self::into_split) separates them so that each can go to its own task and still
/// be reset or stopped with a code.
///
/// - **Writing**: see [`SendStream`] — prompt, credit-bound, `flush` truthful.
/// - **`close`** (`AsyncWriteExt::close`; tokio's `AsyncWriteExt::shutdown` does the same)
///   finishes the write side (FIN) and waits until it left; reading continues.
/// - **[`reset`](Self::reset)** aborts the write side; **[`stop`](Self::stop)** stops the read
///   side; **[`abort`](Self::abort)** does both.
/// - **Dropping** finishes the write side (or resets it with the drop code if the thread is
///   panicking) and stops the read side with the drop code if the peer had not finished —
///   [`Config::drop_code`](crate::Config::drop_code), or [`set_drop_code`](Self::set_drop_code).
///
/// Errors are [`io::Error`]s wrapping an [`Error`] ([`Error::from_io`]): the peer's reset or stop
/// (`ConnectionReset`), the connection being closed (`NotConnected`, with the close code), the
/// stream failing because the peer misbehaved on it (`InvalidData`).
#[derive(Debug)]
pub struct WsStream {
    send: SendStream,
    recv: RecvStream,
}

impl WsStream {
    pub(crate) fn new(handle: &Handle, key: StreamKey) -> Self {
        Self {
            send: SendStream::new(handle.clone(), key),
            recv: RecvStream::new(handle.clone(), key),
        }
    }

    /// The stream's id on the wire.
    pub fn id(&self) -> StreamId {
        self.send.id()
    }

    /// Separates the two halves, each owned: the send half can go to one task and the receive
    /// half to another, and each keeps `reset`/`stop`.
    pub fn into_split(self) -> (SendStream, RecvStream) {
        (self.send, self.recv)
    }

    /// Finishes writing (see [`SendStream::finish`]).
    ///
    /// # Errors
    /// As [`SendStream::finish`].
    pub fn finish(&mut self) -> Result<(), Error> {
        self.send.finish()
    }

    /// Aborts writing with `code` (see [`SendStream::reset`]). Reading is not affected.
    ///
    /// # Errors
    /// As [`SendStream::reset`].
    pub fn reset(&mut self, code: ErrorCode) -> Result<(), Error> {
        self.send.reset(code)
    }

    /// Stops reading with `code` (see [`RecvStream::stop`]). Writing is not affected.
    ///
    /// # Errors
    /// As [`RecvStream::stop`].
    pub fn stop(&mut self, code: ErrorCode) -> Result<(), Error> {
        self.recv.stop(code)
    }

    /// Aborts both directions with `code`: resets writing and stops reading. Parts that already
    /// ended are left as they are.
    ///
    /// # Errors
    /// [`Error::InvalidErrorCode`] above 2^62−1; the connection's error once it is closing.
    pub fn abort(&mut self, code: ErrorCode) -> Result<(), Error> {
        let code = code.validate()?;
        let key = self.send.half.key;
        self.send.half.act(|mux| {
            let reset = mux.reset(key, code);
            let stop = mux.stop(key, code);
            match (reset, stop) {
                (Err(StreamError::ConnectionLost(err)), _) => Err(StreamError::ConnectionLost(err)),
                _ => Ok(()),
            }
        })
    }

    /// Waits until the peer stopped reading or everything written left (see
    /// [`SendStream::stopped`]).
    ///
    /// # Errors
    /// As [`SendStream::stopped`].
    pub async fn stopped(&self) -> Result<Option<ErrorCode>, Error> {
        self.send.stopped().await
    }

    /// Reads buffered bytes without copying (see [`RecvStream::read_chunk`]).
    ///
    /// # Errors
    /// As [`RecvStream::read_chunk`].
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Error> {
        self.recv.read_chunk(max).await
    }

    /// Sets the send priority (see [`SendStream::set_priority`]).
    pub fn set_priority(&self, priority: i32) {
        self.send.set_priority(priority);
    }

    /// The send priority.
    pub fn priority(&self) -> i32 {
        self.send.priority()
    }

    /// Sets the code the stream's drop stops or resets with.
    ///
    /// # Errors
    /// [`Error::InvalidErrorCode`] above 2^62−1.
    pub fn set_drop_code(&self, code: ErrorCode) -> Result<(), Error> {
        self.send.set_drop_code(code)
    }
}

impl AsyncRead for WsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().recv.poll_read_inner(cx, buf)
    }
}

impl AsyncWrite for WsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().send.poll_write_inner(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().send.poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().send.poll_close_inner(cx)
    }
}

#[cfg(feature = "tokio")]
crate::io::tokio_compat::impl_tokio_io!(WsStream);
#[cfg(feature = "tokio")]
crate::io::tokio_compat::impl_tokio_io!(SendStream, write_only);
#[cfg(feature = "tokio")]
crate::io::tokio_compat::impl_tokio_io!(RecvStream, read_only);
