//! The state behind a [`MessageSocket`](super::MessageSocket): the WebSocket, messages read ahead
//! by a ping, outstanding pings and where the closing handshake stands. Every method runs under
//! the socket's lock with the shared waker's context (see [`wake`](super::wake)).

use std::{
    collections::{HashMap, VecDeque},
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use async_tungstenite::{
    tungstenite::{self, protocol::CloseFrame, Message},
    WebSocketStream,
};
use futures::{AsyncRead, AsyncWrite, Sink, Stream};

use super::data::DataMessage;
use crate::{code::CloseCode, error::Error, proto::ProtoError};

/// The WebSocket, type-erased so that the handle needs no type parameter.
trait Socket:
    Stream<Item = Result<Message, tungstenite::Error>>
    + Sink<Message, Error = tungstenite::Error>
    + Send
    + Unpin
{
}

impl<S> Socket for WebSocketStream<S> where S: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

/// What is left of the socket once the connection is over: ends every read and refuses every send.
struct Gone;

impl Stream for Gone {
    type Item = Result<Message, tungstenite::Error>;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(None)
    }
}

impl Sink<Message> for Gone {
    type Error = tungstenite::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Err(tungstenite::Error::AlreadyClosed))
    }
    fn start_send(self: Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
        Err(tungstenite::Error::AlreadyClosed)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

impl Socket for Gone {}

/// Where the closing handshake stands.
#[derive(Debug)]
enum State {
    /// Messages flow both ways.
    Open,
    /// `close` was called: no more sending; data still arrives until the peer's Close reply.
    ClosingByUs,
    /// The peer's Close frame arrived; tungstenite queued the echo, which must be flushed.
    ClosedByPeer { code: CloseCode, reason: String },
    /// The peer broke the protocol; our Close frame with the matching code must be flushed.
    Failing(ProtoError),
    /// Over. Reads return this error for ever.
    Done(Error),
}

pub(crate) struct Driver {
    ws: Box<dyn Socket>,
    state: State,
    /// Data messages read by a ping while nobody was reading.
    inbox: VecDeque<DataMessage>,
    max_buffered: usize,
    /// Outstanding pings by id (the Ping payload), with the time their Pong arrived.
    pongs: HashMap<u64, Option<Instant>>,
    next_ping: u64,
    /// Our Close frame, until the sink takes it.
    pending_close: Option<CloseFrame>,
    /// The stream returned its last item; only writing (our Close frame) may still happen.
    stream_ended: bool,
    /// Something other tasks may be waiting for happened (a message kept, a Pong, room in the
    /// inbox, a state change). The socket wakes its waiters only when *it* has news; a task that
    /// found news by polling must wake the others itself.
    news: bool,
    max_message_size: usize,
}

impl Driver {
    pub(crate) fn new<S>(ws: WebSocketStream<S>, max_buffered: usize) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let max_message_size = ws.get_config().max_message_size.unwrap_or(usize::MAX);
        Self {
            ws: Box::new(ws),
            state: State::Open,
            inbox: VecDeque::new(),
            max_buffered: max_buffered.max(1),
            pongs: HashMap::new(),
            next_ping: 0,
            pending_close: None,
            stream_ended: false,
            news: false,
            max_message_size,
        }
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
            if let Some(err) = std::task::ready!(self.poll_settle(cx)) {
                return Poll::Ready(Err(err));
            }
            if self.poll_event(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Whether tasks other than the caller should look again (see the `news` field); resets it.
    pub(crate) fn take_news(&mut self) -> bool {
        std::mem::take(&mut self.news)
    }

    /// Whether a ping that read ahead filled the inbox.
    fn inbox_full(&self) -> bool {
        self.inbox.len() >= self.max_buffered
    }

    /// Finishes the closing steps that only need a flush, and returns the terminal error once the
    /// connection is over. `Pending` while the flush is; `Ready(None)` while the connection is
    /// still readable.
    fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Error>> {
        match &self.state {
            State::Done(err) => return Poll::Ready(Some(err.clone())),
            State::Open | State::ClosingByUs => return Poll::Ready(None),
            State::Failing(_) | State::ClosedByPeer { .. } => {}
        }
        // A failed flush ends the connection too; the error that matters is the close itself.
        let _ = std::task::ready!(self.poll_flush(cx));
        let err = match std::mem::replace(&mut self.state, State::Open) {
            State::Failing(err) => Error::Protocol(err),
            State::ClosedByPeer { code, reason } => Error::ConnectionClosed { code, reason },
            State::Done(err) => err,
            State::Open | State::ClosingByUs => unreachable!("checked above"),
        };
        self.finish(err.clone());
        Poll::Ready(Some(err))
    }

    /// Reads one item from the WebSocket and handles it. `Ready` when something changed.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.stream_ended {
            // Nothing more will arrive; whatever waits now waits for a flush in poll_settle.
            return Poll::Ready(());
        }
        let next = Pin::new(&mut self.ws).poll_next(cx);
        self.news |= next.is_ready();
        match next {
            Poll::Pending => {
                // Pongs and the echo of a Close frame are queued inside tungstenite; make sure they
                // leave before we sleep.
                let _ = self.poll_flush(cx);
                Poll::Pending
            }
            Poll::Ready(Some(Ok(message))) => {
                self.on_message(message);
                Poll::Ready(())
            }
            Poll::Ready(Some(Err(err))) => {
                self.stream_ended = true;
                self.on_error(err);
                Poll::Ready(())
            }
            Poll::Ready(None) => {
                self.stream_ended = true;
                self.on_end(None);
                Poll::Ready(())
            }
        }
    }

    fn on_message(&mut self, message: Message) {
        match message {
            Message::Text(text) => self.deliver(DataMessage::Text(text)),
            Message::Binary(data) => self.deliver(DataMessage::Binary(data)),
            // tungstenite queued the Pong; poll_event flushes it.
            Message::Ping(_) => {}
            Message::Pong(payload) => {
                let id = <[u8; 8]>::try_from(payload.as_ref()).map(u64::from_be_bytes);
                if let Some(arrived @ None) = id.ok().and_then(|id| self.pongs.get_mut(&id)) {
                    *arrived = Some(Instant::now());
                }
            }
            Message::Close(frame) => {
                let (code, reason) = match frame {
                    Some(frame) => (
                        CloseCode::from(frame.code),
                        frame.reason.as_str().to_owned(),
                    ),
                    None => (CloseCode::NO_STATUS, String::new()),
                };
                match self.state {
                    State::Open => self.state = State::ClosedByPeer { code, reason },
                    State::ClosingByUs => self.finish(Error::ConnectionClosed { code, reason }),
                    _ => {}
                }
            }
            Message::Frame(_) => {}
        }
    }

    fn deliver(&mut self, message: DataMessage) {
        if matches!(self.state, State::Open | State::ClosingByUs) {
            self.inbox.push_back(message);
        }
    }

    fn on_error(&mut self, err: tungstenite::Error) {
        use tungstenite::{error::ProtocolError as P, Error as E};
        match err {
            E::Utf8(_) => self.fail(ProtoError::InvalidUtf8),
            E::Capacity(_) => self.fail(ProtoError::MessageTooBig {
                max: self.max_message_size,
            }),
            E::Protocol(P::ResetWithoutClosingHandshake) => self.on_end(None),
            E::Protocol(p) => self.fail(ProtoError::WebSocket(p.to_string())),
            E::ConnectionClosed | E::AlreadyClosed => self.on_end(None),
            E::Io(io) => self.on_end(Some(io.to_string())),
            other => self.on_end(Some(other.to_string())),
        }
    }

    /// The peer broke the protocol: answer with a Close frame carrying the matching code.
    fn fail(&mut self, err: ProtoError) {
        match self.state {
            State::Open => {
                self.pending_close = err.close_code().frame(err.close_reason()).ok();
                self.state = State::Failing(err);
            }
            State::Done(_) | State::Failing(_) => {}
            // A Close frame already went out; nothing more may be sent.
            State::ClosingByUs | State::ClosedByPeer { .. } => self.finish(Error::Protocol(err)),
        }
    }

    /// The stream is over. A Close frame received before is what ended it; otherwise it is 1006.
    fn on_end(&mut self, detail: Option<String>) {
        let err = match std::mem::replace(&mut self.state, State::Open) {
            // Still owes a flush: poll_settle finishes these.
            state @ (State::Failing(_) | State::ClosedByPeer { .. }) => {
                self.state = state;
                return;
            }
            State::Done(err) => err,
            State::Open | State::ClosingByUs => Error::abnormal(
                detail.unwrap_or_else(|| "connection ended without a close frame".to_owned()),
            ),
        };
        self.finish(err);
    }

    /// The connection is over: record why and let go of the socket, which closes the TCP
    /// connection now rather than when the last handle is dropped (a server closes first, RFC
    /// 6455 §7.1.1).
    fn finish(&mut self, err: Error) {
        self.news = true;
        self.state = State::Done(err);
        self.ws = Box::new(Gone);
    }

    // ---- writing ----

    /// The error for an attempt to send now, if sending is no longer possible.
    fn send_error(&self) -> Option<Error> {
        match &self.state {
            State::Open => None,
            State::ClosingByUs => Some(Error::AlreadyClosed),
            State::ClosedByPeer { code, reason } => Some(Error::ConnectionClosed {
                code: *code,
                reason: reason.clone(),
            }),
            State::Failing(err) => Some(Error::Protocol(err.clone())),
            State::Done(err) => Some(err.clone()),
        }
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
        std::task::ready!(self.poll_ready(cx))?;
        let Some(message) = message.take() else {
            return Poll::Ready(Ok(()));
        };
        if let Err(err) = Pin::new(&mut self.ws).start_send(message) {
            return Poll::Ready(Err(self.on_send_error(err)));
        }
        Poll::Ready(Ok(()))
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match std::task::ready!(Pin::new(&mut self.ws).poll_ready(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(err) => Poll::Ready(Err(self.on_send_error(err))),
        }
    }

    /// Flushes everything queued, our Close frame first if it still waits.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(frame) = self.pending_close.take() {
            match self.poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    self.pending_close = Some(frame);
                    return Poll::Pending;
                }
            }
            if let Err(err) = Pin::new(&mut self.ws).start_send(Message::Close(Some(frame))) {
                return Poll::Ready(Err(self.on_send_error(err)));
            }
        }
        match std::task::ready!(Pin::new(&mut self.ws).poll_flush(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(err) => Poll::Ready(Err(self.on_send_error(err))),
        }
    }

    /// A failed send or flush ends the connection; returns the error to report.
    fn on_send_error(&mut self, err: tungstenite::Error) -> Error {
        use tungstenite::Error as E;
        if let State::Done(done) = &self.state {
            return done.clone();
        }
        let detail = match err {
            E::ConnectionClosed | E::AlreadyClosed => None,
            other => Some(other.to_string()),
        };
        // Without a working sink nothing more can be flushed: end now, keeping what a received
        // Close frame or a protocol error said.
        let err = match std::mem::replace(&mut self.state, State::Open) {
            State::ClosedByPeer { code, reason } => Error::ConnectionClosed { code, reason },
            State::Failing(err) => Error::Protocol(err),
            _ => Error::abnormal(detail.unwrap_or_else(|| "connection closed".to_owned())),
        };
        self.finish(err.clone());
        err
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
            if let Some(err) = std::task::ready!(self.poll_settle(cx)) {
                return Poll::Ready(Err(err));
            }
            if let Some(err) = self.send_error() {
                // We closed: the peer owes us its Close frame, not Pongs.
                return Poll::Ready(Err(err));
            }
            if self.inbox_full() {
                // A read that takes a message wakes us (see MessageSocket::read).
                return Poll::Pending;
            }
            std::task::ready!(self.poll_event(cx));
        }
    }

    // ---- close ----

    /// Starts the closing handshake. `AlreadyClosed` if a Close frame was sent or received before,
    /// or the connection is over.
    pub(crate) fn start_close(&mut self, frame: CloseFrame) -> Result<(), Error> {
        if !matches!(self.state, State::Open) {
            return Err(Error::AlreadyClosed);
        }
        self.state = State::ClosingByUs;
        self.pending_close = Some(frame);
        self.news = true;
        Ok(())
    }

    /// Waits until our Close frame (queued by [`Driver::start_close`]) has been sent.
    pub(crate) fn poll_close_sent(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.pending_close.is_none() {
            if let State::Done(_) = self.state {
                // The peer's reply already arrived, so ours was sent.
                return Poll::Ready(Ok(()));
            }
        }
        self.poll_flush(cx)
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSocket")
            .field("state", &self.state)
            .field("buffered", &self.inbox.len())
            .field("pings", &self.pongs.len())
            .finish_non_exhaustive()
    }
}
