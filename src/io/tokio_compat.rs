//! tokio's `AsyncRead`, `AsyncWrite` and `AsyncBufRead` (the `tokio` feature), forwarded to the
//! futures-io implementations so that both families behave the same. tokio's `poll_shutdown` is
//! futures-io's `poll_close`: on a stream it finishes the write side (FIN) and waits until it
//! left; on a `WsIo` it closes the connection (1000) and waits for the peer's Close frame.

/// Implements tokio's I/O traits for a type by forwarding to its futures-io implementations:
/// `impl_tokio_io!(Type)` adds `AsyncRead` + `AsyncWrite`; `read_only` / `write_only` add one.
macro_rules! impl_tokio_io {
    ($ty:ty, read_only) => {
        impl ::tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut ::tokio::io::ReadBuf<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                // Zeroes only the part of the buffer that was never initialised, once.
                let unfilled = buf.initialize_unfilled();
                let n = ::std::task::ready!(::futures::AsyncRead::poll_read(self, cx, unfilled))?;
                buf.advance(n);
                ::std::task::Poll::Ready(Ok(()))
            }
        }
    };
    ($ty:ty, write_only) => {
        impl ::tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::futures::AsyncWrite::poll_write(self, cx, buf)
            }

            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::futures::AsyncWrite::poll_flush(self, cx)
            }

            fn poll_shutdown(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::futures::AsyncWrite::poll_close(self, cx)
            }
        }
    };
    ($ty:ty) => {
        $crate::io::tokio_compat::impl_tokio_io!($ty, read_only);
        $crate::io::tokio_compat::impl_tokio_io!($ty, write_only);
    };
}

pub(crate) use impl_tokio_io;

use std::{
    io,
    pin::Pin,
    task::{ready, Context, Poll},
};

use super::WsIo;

impl<S> tokio::io::AsyncRead for WsIo<S>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        let n = ready!(futures::AsyncRead::poll_read(self, cx, unfilled))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S> tokio::io::AsyncWrite for WsIo<S>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures::AsyncWrite::poll_write(self, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::AsyncWrite::poll_flush(self, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::AsyncWrite::poll_close(self, cx)
    }
}

impl<S> tokio::io::AsyncBufRead for WsIo<S>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        futures::AsyncBufRead::poll_fill_buf(self, cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        futures::AsyncBufRead::consume(self, amt)
    }
}
