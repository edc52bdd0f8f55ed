//! An in-memory socket whose peer is the fuzz input: reads return the input's bytes in the chunk
//! sizes a script chooses, or `Pending`, or an error; writes are taken whole, in part, refused
//! with `Pending`, or failed, as another script chooses.
//!
//! The scripts are finite: once the read script is used up, reads return everything that is
//! left; once the input is used up, reads end (EOF) or wait for ever, as the input chose. Once the
//! write script is used up, writes are taken whole. A `Pending` from a script wakes the task at
//! once (the socket "becomes ready" immediately), so it never strands anyone; the waits that are
//! left are the real ones, on a peer that says nothing more.
//!
//! [`Progress`] counts what moved (bytes either way, script steps), for the harness to tell a
//! task that waits from one that spins.

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use futures::{AsyncRead, AsyncWrite};

/// One step of the read script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStep {
    /// Nothing yet (woken at once).
    Pending,
    /// The connection was reset.
    Error,
    /// At most this many bytes.
    Chunk(usize),
}

/// One step of the write script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// No room yet (woken at once).
    Pending,
    /// The connection broke.
    Error,
    /// Room for at most this many bytes.
    Partial(usize),
}

/// What happens once the input is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The peer closes TCP: reads return 0.
    Eof,
    /// The peer says nothing more and keeps the connection open: reads wait for ever.
    Silence,
}

/// Counts what moved through the socket.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicUsize>);

impl Progress {
    fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// See the [module docs](self).
#[derive(Debug)]
pub struct FuzzSocket {
    input: Vec<u8>,
    position: usize,
    reads: VecDeque<ReadStep>,
    writes: VecDeque<WriteStep>,
    end: End,
    progress: Progress,
    /// The bytes our side wrote, until the first write error.
    written: Arc<std::sync::Mutex<Vec<u8>>>,
    write_failed: bool,
}

impl FuzzSocket {
    /// A socket that delivers `input` as the `reads` script says, takes writes as the `writes`
    /// script says, and then behaves as `end` says.
    pub fn new(
        input: Vec<u8>,
        reads: Vec<ReadStep>,
        writes: Vec<WriteStep>,
        end: End,
        progress: Progress,
        written: Arc<std::sync::Mutex<Vec<u8>>>,
    ) -> Self {
        Self {
            input,
            position: 0,
            reads: reads.into(),
            writes: writes.into(),
            end,
            progress,
            written,
            write_failed: false,
        }
    }
}

impl AsyncRead for FuzzSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let left = this.input.len() - this.position;
        if left == 0 {
            return match this.end {
                End::Eof => Poll::Ready(Ok(0)),
                End::Silence => Poll::Pending,
            };
        }
        let step = this.reads.pop_front();
        if step.is_some() {
            this.progress.add(1);
        }
        match step.unwrap_or(ReadStep::Chunk(left)) {
            ReadStep::Pending => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            ReadStep::Error => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
            ReadStep::Chunk(n) => {
                let n = n.min(left).min(buf.len());
                buf[..n].copy_from_slice(&this.input[this.position..this.position + n]);
                this.position += n;
                this.progress.add(n);
                Poll::Ready(Ok(n))
            }
        }
    }
}

impl AsyncWrite for FuzzSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let step = this.writes.pop_front();
        if step.is_some() {
            this.progress.add(1);
        }
        match step.unwrap_or(WriteStep::Partial(buf.len())) {
            WriteStep::Pending => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            WriteStep::Error => {
                this.write_failed = true;
                Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
            }
            WriteStep::Partial(n) => {
                let n = n.min(buf.len());
                if !this.write_failed {
                    let mut written = this.written.lock().unwrap_or_else(|p| p.into_inner());
                    written.extend_from_slice(&buf[..n]);
                }
                this.progress.add(n);
                Poll::Ready(Ok(n))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
