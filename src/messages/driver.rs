//! The state behind a [`MessageSocket`](super::MessageSocket): the shared [`Transport`] in message
//! mode, which does the WebSocket work (control frames, closing handshake, close codes, 1006), plus
//! what only the adapter has: data messages read ahead by a ping, and the outstanding pings. Every
//! method runs under the socket's lock with the connection-wide waker's context (see `socket.rs`).

use std::{
    collections::{HashMap, VecDeque},
    task::{Context, Poll},
    time::Instant,
};

use async_tungstenite::{
    tungstenite::{protocol::CloseFrame, Message},
    WebSocketStream,
};
use bytes::Bytes;
use futures::{AsyncRead, AsyncWrite};

use super::data::DataMessage;
use crate::{
    error::Error,
    transport::{Incoming, Transport},
};

/// `MessageSocket` publishes no events; the transport's event queue keeps only the latest one.
const EVENT_QUEUE: usize = 1;

pub(crate) struct Driver {
    transport: Transport,
    /// Data messages read by a ping while nobody was reading.
    inbox: VecDeque<DataMessage>,
    max_buffered: usize,
    /// Outstanding pings by id (the Ping payload), with the time their Pong arrived.
    pongs: HashMap<u64, Option<Instant>>,
    next_ping: u64,
    /// Something other tasks may be waiting for happened (a message kept, a Pong, room in the
    /// inbox). The socket wakes its waiters only when *it* has news; a task that found news by
    /// polling must wake the others itself.
    news: bool,
    /// The transport's phase (open, over) when news was last taken: a change is news too.
    phase: (bool, bool),
}

impl Driver {
    pub(crate) fn new<S>(ws: WebSocketStream<S>, max_buffered: usize) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let max_message_size = ws.get_config().max_message_size.unwrap_or(usize::MAX);
        let mut transport = Transport::new(ws, max_message_size, EVENT_QUEUE);
        transport.set_message_mode(true);
        Self {
            transport,
            inbox: VecDeque::new(),
            max_buffered: max_buffered.max(1),
            pongs: HashMap::new(),
            next_ping: 0,
            news: false,
            phase: (true, false),
        }
    }

    /// Whether tasks other than the caller should look again; resets it.
    pub(crate) fn take_news(&mut self) -> bool {
        let phase = (
            self.transport.is_open(),
            self.transport.terminal().is_some(),
        );
        let changed = std::mem::replace(&mut self.phase, phase) != phase;
        std::mem::take(&mut self.news) || changed
    }

    // ---- reading ----

    /// The next data message, or the error that ended the connection.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<DataMessage, Error>> {
        loop {
            let was_full = self.inbox_full();
            if let Some(message) = self.inbox.pop_front() {
                // A ping that stopped reading because the inbox was full may go on.
                self.news |= was_full;
                return Poll::Ready(Ok(message));
            }
            std::task::ready!(self.poll_incoming(cx))?;
        }
    }

    /// Whether a ping that read ahead filled the inbox.
    fn inbox_full(&self) -> bool {
        self.inbox.len() >= self.max_buffered
    }

    /// Reads one message from the transport and keeps it: data for `read`, a Pong for its ping.
    /// `Ready(Err)` once the connection is over.
    fn poll_incoming(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let incoming = std::task::ready!(self.transport.poll_recv_message(cx))?;
        self.news = true;
        match incoming {
            Incoming::Binary(data) => self.inbox.push_back(DataMessage::Binary(data)),
            Incoming::Text(text) => self.inbox.push_back(DataMessage::Text(text)),
            Incoming::Pong(payload) => self.on_pong(&payload),
        }
        Poll::Ready(Ok(()))
    }

    fn on_pong(&mut self, payload: &Bytes) {
        let id = <[u8; 8]>::try_from(payload.as_ref()).map(u64::from_be_bytes);
        if let Some(arrived @ None) = id.ok().and_then(|id| self.pongs.get_mut(&id)) {
            *arrived = Some(Instant::now());
        }
    }

    // ---- writing ----

    /// The error for an attempt to send now, if sending is no longer possible.
    fn send_error(&self) -> Option<Error> {
        if self.transport.is_closing_by_us() {
            return Some(Error::AlreadyClosed);
        }
        self.transport.closing_error()
    }

    /// Hands `message` to the WebSocket once it has room. Call [`Driver::poll_flush`] after.
    pub(crate) fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        message: &mut Option<Message>,
    ) -> Poll<Result<(), Error>> {
        if message.is_none() {
            // Already handed over; a close that started since does not take it back.
            return Poll::Ready(Ok(()));
        }
        if let Some(err) = self.send_error() {
            return Poll::Ready(Err(err));
        }
        std::task::ready!(self.transport.poll_ready_send(cx))?;
        match message.take() {
            Some(message) => Poll::Ready(self.transport.send_message(message)),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Flushes everything queued. `Ok` too once the connection is over, if all of it had left by
    /// then (another task's flush, or the closing handshake, sent it).
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match std::task::ready!(self.transport.poll_flush(cx)) {
            Err(_) if self.transport.flushed_before_end() => Poll::Ready(Ok(())),
            flushed => Poll::Ready(flushed),
        }
    }

    // ---- ping ----

    /// Registers a new outstanding ping and returns its id and payload.
    pub(crate) fn new_ping(&mut self) -> Result<(u64, Message), Error> {
        if let Some(err) = self.send_error() {
            return Err(err);
        }
        let id = self.next_ping;
        self.next_ping = self.next_ping.wrapping_add(1);
        self.pongs.insert(id, None);
        Ok((id, Message::Ping(id.to_be_bytes().to_vec().into())))
    }

    /// Forgets an outstanding ping (answered, timed out or cancelled).
    pub(crate) fn forget_ping(&mut self, id: u64) {
        self.pongs.remove(&id);
    }

    /// Waits for the Pong of ping `id`, reading (and keeping data messages for `read`) as long
    /// as the inbox has room. Returns when the Pong arrived.
    pub(crate) fn poll_pong(
        &mut self,
        cx: &mut Context<'_>,
        id: u64,
    ) -> Poll<Result<Instant, Error>> {
        loop {
            if let Some(Some(arrived)) = self.pongs.get(&id) {
                return Poll::Ready(Ok(*arrived));
            }
            if self.transport.is_closing_by_us() {
                // We closed: the peer owes us its Close frame, not Pongs.
                return Poll::Ready(Err(Error::AlreadyClosed));
            }
            if self.inbox_full() && self.transport.is_open() {
                // A read that takes a message wakes us (see MessageSocket::read).
                return Poll::Pending;
            }
            // Once the peer closed or failed, this finishes the closing and returns its error.
            std::task::ready!(self.poll_incoming(cx))?;
        }
    }

    // ---- close ----

    /// Starts the closing handshake. `AlreadyClosed` if a Close frame was sent or received before,
    /// or the connection is over.
    pub(crate) fn start_close(&mut self, frame: CloseFrame) -> Result<(), Error> {
        self.transport.start_close(frame)
    }

    /// Waits until our Close frame (queued by [`Driver::start_close`]) has been sent.
    pub(crate) fn poll_close_sent(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush(cx)
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSocket")
            .field("transport", &self.transport)
            .field("buffered", &self.inbox.len())
            .field("pings", &self.pongs.len())
            .finish_non_exhaustive()
    }
}
