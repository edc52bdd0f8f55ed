//! One pass of the engine over the socket: what the core wants sent goes out, what arrived goes
//! in, deadlines are acted on, and the socket is released when the connection is over.
//!
//! The same pass serves every adapter. Access to the core goes through [`Access`]: `WsIo` owns
//! its core and touches it directly; the shared handles take a short lock for each step and never
//! hold it while the socket is polled. Work comes in batches — several messages taken or handed
//! over per lock — bounded in count and bytes, so a pass holds a bounded amount of memory and a
//! peer that never stops sending cannot keep one pass going for ever.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use async_tungstenite::tungstenite::Message;

use super::{
    timer::Timer,
    transport::{Socket, Transport},
    Input, Session,
};

/// Messages taken from the core per lock.
const OUTPUT_BATCH: usize = 16;
/// Bytes taken from the core per lock.
const OUTPUT_BATCH_BYTES: usize = 256 * 1024;
/// Messages read per lock.
const INPUT_BATCH: usize = 32;
/// Bytes read per lock.
const INPUT_BATCH_BYTES: usize = 256 * 1024;
/// Messages read by one pump before it yields (fairness to other tasks).
const INPUT_BUDGET: usize = 256;
/// Rounds of output, input and time in one pump before it yields.
const MAX_ROUNDS: usize = 16;

/// How the pump reaches the core it drives.
pub(crate) trait Access {
    /// The core.
    type Session: Session;

    /// Runs `f` on the core; whatever wakes and events it produced are handed on afterwards.
    fn with<R>(&mut self, f: impl FnOnce(&mut Self::Session) -> R) -> R;
}

/// The socket side of an engine: the transport and the timer.
pub(crate) struct Io<W> {
    pub(crate) transport: Transport<W>,
    timer: Timer,
    /// The socket epoch at which the read side last had nothing (see [`pump`]).
    read_parked_at: Option<u64>,
}

impl<W: Socket> Io<W> {
    pub(crate) fn new(transport: Transport<W>) -> Self {
        Self {
            transport,
            timer: Timer::default(),
            read_parked_at: None,
        }
    }
}

fn message_len(message: &Message) -> usize {
    match message {
        Message::Binary(data) | Message::Ping(data) | Message::Pong(data) => data.len(),
        Message::Text(text) => text.len(),
        _ => 0,
    }
}

fn input_len(input: &Input) -> usize {
    match input {
        Input::Binary(data) | Input::Ping(data) | Input::Pong(data) => data.len(),
        Input::Text(text) => text.len(),
        _ => 0,
    }
}

/// Drives the socket until nothing moves: sends, flushes, reads, handles deadlines. Returns
/// `true` if it stopped with work left (it then woke `cx` to come back). `flush_partial`: a task
/// waits on the connection (see [`Session::poll_output`]). `read`: whether to read the socket at
/// all (a `WsIo` writer in one task leaves reading to the reader in another, whose waker the
/// socket's read side must keep).
///
/// `socket_epoch` counts the socket's wake-ups (for the shared engine): while it has not moved
/// since the read side last had nothing, the read side is not polled again, because the waker that
/// poll registered is still armed and the poll is not free (tungstenite zeroes a 128 KiB read
/// buffer before a read that fails with `EWOULDBLOCK`).
pub(crate) fn pump<W: Socket, A: Access>(
    io: &mut Io<W>,
    access: &mut A,
    cx: &mut Context<'_>,
    socket_epoch: Option<u64>,
    flush_partial: bool,
    read: bool,
) -> bool {
    let mut budget = INPUT_BUDGET;
    for _ in 0..MAX_ROUNDS {
        let now = Instant::now();
        let mut progress = false;
        if io.transport.is_released() {
            return false;
        }

        // Out: what the core wants sent, as long as the socket takes it.
        loop {
            match io.transport.poll_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(detail)) => {
                    access.with(|s| s.handle_input(now, Input::Ended(detail)));
                    progress = true;
                    break;
                }
                Poll::Ready(Ok(())) => {}
            }
            let batch = access.with(|session| {
                let mut batch = Vec::new();
                let mut bytes = 0;
                while batch.len() < OUTPUT_BATCH && bytes < OUTPUT_BATCH_BYTES {
                    let Some(message) = session.poll_output(now, flush_partial) else {
                        break;
                    };
                    bytes += message_len(&message);
                    batch.push(message);
                }
                batch
            });
            if batch.is_empty() {
                break;
            }
            progress = true;
            for message in batch {
                if let Err(detail) = io.transport.send(message) {
                    access.with(|s| s.handle_input(now, Input::Ended(detail)));
                    break;
                }
            }
            if io.transport.is_backed_up() {
                break;
            }
        }
        if io.transport.needs_flush() {
            match io.transport.poll_flush(cx) {
                Poll::Ready(Ok(())) => access.with(|s| s.handle_flushed(now)),
                Poll::Ready(Err(detail)) => {
                    access.with(|s| s.handle_input(now, Input::Ended(detail)));
                    progress = true;
                }
                Poll::Pending => {}
            }
        }

        // In: what arrived, while the core wants it.
        let parked = socket_epoch.is_some() && io.read_parked_at == socket_epoch;
        let allowance = if !read || parked || budget == 0 {
            0
        } else {
            access.with(|s| s.input_allowance()).min(INPUT_BATCH)
        };
        if allowance > 0 {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while batch.len() < allowance && bytes < INPUT_BATCH_BYTES && budget > 0 {
                match io.transport.poll_recv(cx) {
                    Poll::Ready(input) => {
                        let ended = matches!(input, Input::Ended(_) | Input::Violation(_));
                        bytes += input_len(&input);
                        budget -= 1;
                        batch.push(input);
                        if ended {
                            break;
                        }
                    }
                    Poll::Pending => {
                        io.read_parked_at = socket_epoch;
                        break;
                    }
                }
            }
            if !batch.is_empty() {
                progress = true;
                access.with(|session| {
                    for input in batch {
                        session.handle_input(now, input);
                    }
                });
            }
        }

        // Time, then the end: whatever ended the connection in this round (an input, a failed
        // write, a deadline), the socket is released in this same pass. Left to a later pass, it
        // could outlive the connection: the driver finishes as soon as the core is over and may
        // never pump again, and the peer would see TCP open after `closed()` returned.
        let (deadline, mut done) = access.with(|s| (s.poll_timeout(), s.is_done()));
        if !done && io.timer.poll(cx, deadline).is_ready() {
            done = access.with(|s| {
                s.handle_timeout(Instant::now());
                s.is_done()
            });
            progress = true;
        }
        if done {
            io.transport.release();
            return false;
        }

        if !progress {
            return false;
        }
        if budget == 0 {
            break;
        }
    }
    // More may be waiting; let other tasks run, then come back.
    cx.waker().wake_by_ref();
    true
}

#[cfg(test)]
mod tests {
    use std::{
        pin::Pin,
        task::{Context, Poll, Waker},
        time::{Duration, Instant},
    };

    use async_tungstenite::tungstenite::{self, Message};
    use futures::{Sink, Stream};

    use super::{pump, Access, Io, MAX_ROUNDS};
    use crate::{
        engine::{transport::Transport, Input, Session},
        event::WsEvent,
        proto::Wake,
    };

    /// A socket that takes every write at once and never has anything to read.
    struct QuietSocket;

    impl Stream for QuietSocket {
        type Item = Result<Message, tungstenite::Error>;

        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Pending
        }
    }

    impl Sink<Message> for QuietSocket {
        type Error = tungstenite::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    impl super::Socket for QuietSocket {}

    /// A session whose deadline has always passed, and that is over after `lives` timeouts.
    struct EndsByTimeout {
        lives: usize,
    }

    impl Session for EndsByTimeout {
        fn handle_input(&mut self, _: Instant, _: Input) {}
        fn handle_flushed(&mut self, _: Instant) {}
        fn handle_timeout(&mut self, _: Instant) {
            self.lives = self.lives.saturating_sub(1);
        }
        fn poll_output(&mut self, _: Instant, _: bool) -> Option<Message> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            (self.lives > 0).then(|| Instant::now() - Duration::from_millis(1))
        }
        fn poll_wake(&mut self) -> Option<Wake> {
            None
        }
        fn poll_event(&mut self) -> Option<WsEvent> {
            None
        }
        fn input_allowance(&self) -> usize {
            0
        }
        fn is_done(&self) -> bool {
            self.lives == 0
        }
        fn has_output(&self) -> bool {
            false
        }
        fn abandon(&mut self, _: Instant) {}
    }

    struct Direct<'a>(&'a mut EndsByTimeout);

    impl Access for Direct<'_> {
        type Session = EndsByTimeout;

        fn with<R>(&mut self, f: impl FnOnce(&mut EndsByTimeout) -> R) -> R {
            f(self.0)
        }
    }

    /// Whatever round the connection ends in, the pass that saw it end drops the socket: a driver
    /// that finishes with the core may never pump again.
    #[test]
    fn the_pass_in_which_the_session_ends_releases_the_socket() {
        for lives in 1..=2 * MAX_ROUNDS {
            let mut session = EndsByTimeout { lives };
            let mut io = Io::new(Transport::new(QuietSocket, 1024));
            let mut cx = Context::from_waker(Waker::noop());
            let mut passes = 0;
            while !session.is_done() {
                passes += 1;
                assert!(passes <= lives, "no progress");
                pump(
                    &mut io,
                    &mut Direct(&mut session),
                    &mut cx,
                    None,
                    true,
                    true,
                );
            }
            assert!(
                io.transport.is_released(),
                "ended after {lives} timeouts, socket still held"
            );
        }
    }
}
