//! tokio's `AsyncRead`, `AsyncWrite` and `AsyncBufRead` (the `tokio` feature), forwarded to the
//! futures-io implementations so that both families behave the same.
//!
//! [`impl_tokio_io!`] works for any type in this crate that implements the futures-io traits and
//! is `Unpin`: `impl_tokio_io!(Type)` adds `AsyncRead` + `AsyncWrite`, and
//! `impl_tokio_io!(Type, buf_read)` adds `AsyncBufRead` too.

/// Implements tokio's I/O traits for a type by forwarding to its futures-io implementations.
/// `poll_shutdown` is `poll_close`.
macro_rules! impl_tokio_io {
    ($ty:ty) => {
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
    ($ty:ty, buf_read) => {
        impl_tokio_io!($ty);

        impl ::tokio::io::AsyncBufRead for $ty {
            fn poll_fill_buf(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<&[u8]>> {
                ::futures::AsyncBufRead::poll_fill_buf(self, cx)
            }

            fn consume(self: ::std::pin::Pin<&mut Self>, amt: usize) {
                ::futures::AsyncBufRead::consume(self, amt)
            }
        }
    };
}

// For the other byte streams of the crate (the multiplexed `WsStream`).
#[allow(unused_imports)]
pub(crate) use impl_tokio_io;

impl_tokio_io!(super::WsIo, buf_read);
