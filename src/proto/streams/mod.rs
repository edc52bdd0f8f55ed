//! All streams of one connection, and what both protocols do with them: buffering, credit,
//! whose turn it is to send, what each stream owes the wire, which handle to wake, and when a
//! stream can be forgotten.
//!
//! The protocols (`wire`, `qmux`) decode messages into calls here and encode what the streams owe
//! into messages; neither keeps stream state of its own. Every operation touches only the streams
//! it names: nothing here walks all streams except the connection ending.
//!
//! Memory a peer can make us hold is bounded by what we granted: each stream buffers at most its
//! credit, and with a receive budget ([`StreamsConfig::budget`]) the credit of all streams together
//! is bounded too; streams that want credit while the budget is spent wait in line for it.

mod recv;
mod schedule;
mod send;
mod store;

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use bytes::Bytes;

pub(crate) use recv::DataError;
pub use recv::ReadOutcome;
pub(crate) use send::{Framing, SendState};
pub use store::StreamKey;

use self::{recv::Recv, schedule::Schedule, send::Send, store::Store};
use super::{
    code::ErrorCode,
    error::StreamError,
    event::Wake,
    id::{Dir, StreamId},
    trace::debug,
};

pub(crate) use recv::SHARE_MIN;

/// The limits and sizes the streams work with.
#[derive(Debug, Clone)]
pub(crate) struct StreamsConfig {
    /// How far ahead of what the application read we grant credit, per stream, at most.
    pub(crate) window: u64,
    /// The window a stream starts with; it grows (doubling) towards `window` while the peer keeps
    /// using all the credit it has, as long as the budget lasts.
    pub(crate) initial_window: u64,
    /// The most credit all streams together may hold beyond their initial windows, when grants are
    /// budgeted per stream (the @matrixai/ws protocol); `None` when the protocol bounds it itself
    /// (QMux's connection window). An idle stream holds only its initial window, so idle streams
    /// cannot starve busy ones.
    pub(crate) budget: Option<u64>,
    /// Bytes one stream may have written and not yet handed out.
    pub(crate) send_buffer: usize,
    /// The largest DATA payload in one message.
    pub(crate) max_payload: usize,
    /// Hold partial DATA messages back until full or flushed.
    pub(crate) coalesce: bool,
    /// The code a stream's dropped handles stop or reset with, unless the stream has its own.
    pub(crate) drop_code: ErrorCode,
    /// What a pinned payload is charged: the size of the buffer it may keep alive.
    pub(crate) pin_unit: usize,
    /// The most pinned payloads may be charged before further ones are copied.
    pub(crate) pin_budget: usize,
    /// Keep a stream whose receiving half we stopped until the peer says where its data ends
    /// (QMux: bytes in flight count against the connection window, so they must be counted).
    pub(crate) await_final_size: bool,
}

/// What a stream owes the wire besides its data.
#[derive(Debug, Default)]
pub(crate) struct Owed {
    /// Credit to grant (a delta for the @matrixai/ws protocol; any non-zero value means "send the
    /// current limit" for QMux).
    pub(crate) credit: u64,
    /// The first message that makes the stream known to the peer.
    pub(crate) announce: bool,
    /// A reset of our sending half, with this code.
    pub(crate) reset: Option<ErrorCode>,
    /// A stop of our receiving half, with this code.
    pub(crate) stop: Option<ErrorCode>,
}

impl Owed {
    fn any(&self) -> bool {
        self.credit > 0 || self.announce || self.reset.is_some() || self.stop.is_some()
    }
}

/// One stream: its halves, who holds it, and its places in the connection's queues.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) id: StreamId,
    pub(crate) dir: Dir,
    /// Opened by us.
    pub(crate) local: bool,
    pub(crate) send: Option<Send>,
    pub(crate) recv: Option<Recv>,
    /// The application holds the send / receive half (an unaccepted stream counts as held).
    pub(crate) send_held: bool,
    pub(crate) recv_held: bool,
    /// Waiting in the accept queue.
    pub(crate) unaccepted: bool,
    /// The code a dropped handle stops or resets with.
    pub(crate) drop_code: ErrorCode,
    /// The peer knows the stream exists.
    pub(crate) announced: bool,
    /// The peer may receive data on it (@matrixai/ws: its ACK arrived).
    pub(crate) peer_ready: bool,
    /// The peer misbehaved on it: everything further for it is ignored.
    pub(crate) failed: bool,
    pub(crate) owe: Owed,
    in_control: bool,
    in_data: bool,
    corked: bool,
    starved: bool,
    /// Its writer waits for connection-level credit (QMux's MAX_DATA).
    conn_blocked: bool,
    wake_read: bool,
    wake_write: bool,
    /// Since when its writer has been waiting for credit (for the statistics).
    pub(crate) credit_blocked_since: Option<Instant>,
}

impl Stream {
    /// Whether the stream will never do anything again.
    fn is_over(&self, await_final_size: bool) -> bool {
        !self.send_held
            && !self.recv_held
            && !self.unaccepted
            && self.send.as_ref().is_none_or(Send::is_done)
            && self.recv.as_ref().is_none_or(|recv| {
                !recv.is_open() && (!await_final_size || recv.final_size.is_some())
            })
            && !self.owe.any()
            && !self.in_control
            && !self.in_data
    }
}

/// What [`Streams::next_data`] found for a stream's turn.
#[derive(Debug)]
pub(crate) enum DataTurn {
    /// A framed DATA message.
    Data(Bytes),
    /// The stream's FIN is due: the protocol encodes it, then calls [`Streams::fin_sent`].
    Fin(StreamKey),
}

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Streams {
    pub(crate) config: StreamsConfig,
    store: Store<Stream>,
    /// Streams owing control messages, in the order they came to owe them.
    control: VecDeque<StreamKey>,
    /// Streams with data or a FIN to send.
    data: Schedule,
    /// Streams holding back a partial message.
    corked: Vec<StreamKey>,
    /// Streams wanting credit while the budget is spent.
    starved: VecDeque<StreamKey>,
    /// Streams whose writers wait for connection-level credit.
    conn_blocked: Vec<StreamKey>,
    /// Peer-opened streams not yet accepted: bidirectional, unidirectional.
    incoming: [VecDeque<StreamKey>; 2],
    /// Streams open per direction, opened by us / by the peer.
    pub(crate) local_open: [usize; 2],
    pub(crate) peer_open: [usize; 2],
    /// Peer-opened streams forgotten so far, per direction (QMux grants the peer as many more).
    pub(crate) peer_retired: [u64; 2],
    /// Credit held by all streams (see `Recv::held_credit`).
    held_credit: u64,
    /// The part of it beyond each stream's initial window: what the budget bounds.
    budget_used: u64,
    /// Pin budget in use.
    pinned: usize,
    /// Bytes written on all streams (QMux counts them against the peer's connection window).
    pub(crate) written_total: u64,
    /// The peer's connection-level limit on `written_total` (`u64::MAX` when there is none).
    pub(crate) conn_send_limit: u64,
    /// Bytes received on all streams, and read by the application (QMux's connection window).
    pub(crate) received_total: u64,
    pub(crate) consumed_total: u64,
    /// The most bytes all streams have held buffered at once.
    pub(crate) peak_buffered: u64,
    buffered_total: u64,
    wakes: VecDeque<Wake>,
    /// New peer streams are refused (a graceful shutdown is under way).
    pub(crate) refusing: bool,
    /// The time of the input or command being handled (the core reads no clock).
    pub(crate) now: Option<Instant>,
    pub(crate) stats: StreamStats,
}

/// What the streams counted.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamStats {
    pub(crate) opened: u64,
    pub(crate) accepted: u64,
    pub(crate) refused: u64,
    pub(crate) resets_sent: u64,
    pub(crate) resets_received: u64,
    pub(crate) credit_blocked: Duration,
}

pub(crate) fn dir_index(dir: Dir) -> usize {
    match dir {
        Dir::Bi => 0,
        Dir::Uni => 1,
    }
}

impl Streams {
    pub(crate) fn new(config: StreamsConfig) -> Self {
        Self {
            config,
            store: Store::default(),
            control: VecDeque::new(),
            data: Schedule::default(),
            corked: Vec::new(),
            starved: VecDeque::new(),
            conn_blocked: Vec::new(),
            incoming: Default::default(),
            local_open: [0; 2],
            peer_open: [0; 2],
            peer_retired: [0; 2],
            held_credit: 0,
            budget_used: 0,
            pinned: 0,
            written_total: 0,
            conn_send_limit: u64::MAX,
            received_total: 0,
            consumed_total: 0,
            peak_buffered: 0,
            buffered_total: 0,
            wakes: VecDeque::new(),
            refusing: false,
            now: None,
            stats: StreamStats::default(),
        }
    }

    // ----- the store -----

    /// Creates a stream. `send_limit` is the credit the peer gave in advance, `recv_granted`
    /// the credit we gave in advance (both 0 for the @matrixai/ws protocol).
    pub(crate) fn create(
        &mut self,
        id: StreamId,
        dir: Dir,
        local: bool,
        send_limit: u64,
        recv_granted: u64,
    ) -> StreamKey {
        let has_send = dir == Dir::Bi || local;
        let has_recv = dir == Dir::Bi || !local;
        let window = match self.config.budget {
            Some(_) => self.config.initial_window.min(self.config.window),
            None => self.config.window,
        };
        let recv = has_recv.then(|| Recv::new(window, recv_granted));
        if let Some(recv) = &recv {
            self.held_credit += recv.held_credit();
            self.budget_used += self.budgeted(recv);
        }
        let stream = Stream {
            id,
            dir,
            local,
            send: has_send.then(|| Send::new(send_limit)),
            recv,
            send_held: has_send,
            recv_held: has_recv,
            unaccepted: !local,
            drop_code: self.config.drop_code,
            announced: !local,
            peer_ready: false,
            failed: false,
            owe: Owed::default(),
            in_control: false,
            in_data: false,
            corked: false,
            starved: false,
            conn_blocked: false,
            wake_read: false,
            wake_write: false,
            credit_blocked_since: None,
        };
        let key = self.store.insert(id, stream);
        let open = if local {
            &mut self.local_open
        } else {
            &mut self.peer_open
        };
        open[dir_index(dir)] += 1;
        if !local {
            self.incoming[dir_index(dir)].push_back(key);
            self.wakes.push_back(Wake::Incoming(dir));
        }
        key
    }

    pub(crate) fn get(&self, key: StreamKey) -> Option<&Stream> {
        self.store.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: StreamKey) -> Option<&mut Stream> {
        self.store.get_mut(key)
    }

    pub(crate) fn find(&self, id: StreamId) -> Option<StreamKey> {
        self.store.find(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.store.len()
    }

    /// The next peer-opened stream of `dir` for the application.
    pub(crate) fn accept(&mut self, dir: Dir) -> Option<StreamKey> {
        while let Some(key) = self.incoming[dir_index(dir)].pop_front() {
            if let Some(stream) = self.store.get_mut(key) {
                stream.unaccepted = false;
                self.stats.accepted += 1;
                return Some(key);
            }
        }
        None
    }

    /// A peer-opened stream that arrives while new streams are refused: it never reaches the
    /// accept queue, and the protocol ends it.
    pub(crate) fn refuse_incoming(&mut self, key: StreamKey) {
        let Some(stream) = self.store.get_mut(key) else {
            return;
        };
        stream.unaccepted = false;
        stream.send_held = false;
        stream.recv_held = false;
        let queue = &mut self.incoming[dir_index(stream.dir)];
        if queue.back() == Some(&key) {
            queue.pop_back();
        }
        self.stats.refused += 1;
    }

    // ----- receiving -----

    /// The part of a half's credit the budget bounds: what it holds beyond the initial window.
    fn budgeted(&self, recv: &Recv) -> u64 {
        recv.held_credit()
            .saturating_sub(self.config.initial_window)
    }

    /// Runs `f` on the stream's receive half, keeping the budget's books.
    fn with_recv<R>(
        &mut self,
        key: StreamKey,
        f: impl FnOnce(&mut Recv, &mut usize) -> R,
    ) -> Option<R> {
        let initial = self.config.initial_window;
        let recv = self.store.get_mut(key)?.recv.as_mut()?;
        let (held, buffered) = (recv.held_credit(), recv.buffered() as u64);
        let (received, consumed) = (recv.received, recv.consumed);
        let mut unpinned = 0;
        let result = f(recv, &mut unpinned);
        self.received_total += recv.received - received;
        self.consumed_total += recv.consumed - consumed;
        self.held_credit = self.held_credit - held + recv.held_credit();
        self.budget_used = self.budget_used - held.saturating_sub(initial)
            + recv.held_credit().saturating_sub(initial);
        self.buffered_total = self.buffered_total - buffered + recv.buffered() as u64;
        self.peak_buffered = self.peak_buffered.max(self.buffered_total);
        self.pinned -= unpinned;
        Some(result)
    }

    /// Data for stream `key` at `offset`. Returns whether something became readable.
    pub(crate) fn on_data(
        &mut self,
        key: StreamKey,
        offset: u64,
        payload: Bytes,
        fin: bool,
    ) -> Result<bool, DataError> {
        let share = self.pin_charge(payload.len());
        let result = self
            .with_recv(key, |recv, _| recv.on_data(offset, payload, fin, share))
            .unwrap_or(Ok(false));
        if let (Ok(true), Some(pin)) = (&result, share) {
            // `Ok(true)` with a payload this large means it was buffered as it came.
            self.pinned += pin;
        }
        if let Ok(true) = result {
            self.wake_read(key);
        }
        result
    }

    /// What keeping a payload of `len` bytes as it came would cost, if the pin budget allows it.
    fn pin_charge(&self, len: usize) -> Option<usize> {
        if len < SHARE_MIN {
            return None;
        }
        let charge = len.max(self.config.pin_unit);
        (self.pinned + charge <= self.config.pin_budget).then_some(charge)
    }

    /// Reads into `out`; grants credit back as the application consumes.
    pub(crate) fn read(
        &mut self,
        key: StreamKey,
        out: &mut [u8],
    ) -> Result<ReadOutcome, StreamError> {
        let outcome = self
            .with_recv(key, |recv, unpinned| recv.read(out, unpinned))
            .unwrap_or(Ok(ReadOutcome::End))?;
        if let ReadOutcome::Data(_) = outcome {
            self.grant_credit(key);
        }
        Ok(outcome)
    }

    /// Takes up to `max` bytes without copying.
    pub(crate) fn read_chunk(
        &mut self,
        key: StreamKey,
        max: usize,
    ) -> Result<Result<Bytes, ReadOutcome>, StreamError> {
        let outcome = self
            .with_recv(key, |recv, unpinned| recv.read_chunk(max, unpinned))
            .unwrap_or(Ok(Err(ReadOutcome::End)))?;
        if outcome.is_ok() {
            self.grant_credit(key);
        }
        Ok(outcome)
    }

    /// A new stream's first grant: its initial window (the @matrixai/ws protocol's opening or
    /// answering ACK). It never waits for the budget.
    pub(crate) fn grant_initial(&mut self, key: StreamKey) {
        self.grant(key);
    }

    /// Grants the stream more credit once it has consumed half a window since the last grant.
    /// A stream whose peer used all the credit it had is window-bound: its window doubles, up to
    /// the configured window, while the budget has room. Credit beyond the initial window comes
    /// from the budget; a stream that finds it spent waits in line for reads to free some.
    pub(crate) fn grant_credit(&mut self, key: StreamKey) {
        self.grant(key);
    }

    fn grant(&mut self, key: StreamKey) {
        let budget_left = self
            .config
            .budget
            .map(|budget| budget.saturating_sub(self.budget_used));
        let (initial, max_window) = (self.config.initial_window, self.config.window);
        let Some(stream) = self.store.get_mut(key) else {
            return;
        };
        let Some(recv) = stream.recv.as_mut() else {
            return;
        };
        if !recv.is_open() {
            return;
        }
        if let Some(left) = budget_left {
            // Window-bound (the peer used every byte of credit): grow, if the budget allows.
            let bound = recv.granted > 0 && recv.received >= recv.granted;
            if bound && recv.window < max_window {
                let growth = recv.window.min(max_window - recv.window).min(left);
                recv.window += growth;
            }
        }
        let wanted = recv.wanted_credit();
        let threshold = if recv.granted == 0 {
            1
        } else {
            (recv.window / 2).max(1)
        };
        if wanted < threshold {
            return;
        }
        // What the stream may hold without touching the budget, then what the budget gives.
        let held = recv.held_credit();
        let free = initial.saturating_sub(held);
        let grant = budget_left.map_or(wanted, |left| wanted.min(free + left));
        if grant == 0 {
            if !stream.starved {
                stream.starved = true;
                self.starved.push_back(key);
            }
            return;
        }
        debug!(
            stream = stream.id.0,
            grant,
            window = recv.window,
            "credit granted"
        );
        recv.granted += grant;
        self.held_credit += grant;
        self.budget_used = self.budget_used - held.saturating_sub(initial)
            + (held + grant).saturating_sub(initial);
        stream.owe.credit += grant;
        self.queue_control(key);
    }

    /// Gives budget freed by reads to the streams waiting for it, in turn.
    pub(crate) fn serve_starved(&mut self) {
        let Some(budget) = self.config.budget else {
            return;
        };
        while self.budget_used < budget {
            let Some(key) = self.starved.pop_front() else {
                return;
            };
            if let Some(stream) = self.store.get_mut(key) {
                stream.starved = false;
                self.grant_credit(key);
            }
        }
    }

    /// The peer finished writing at the current offset.
    pub(crate) fn on_fin(&mut self, key: StreamKey) -> Result<bool, DataError> {
        let offset = match self.store.get(key).and_then(|s| s.recv.as_ref()) {
            Some(recv) => recv.received,
            None => return Ok(false),
        };
        self.on_data(key, offset, Bytes::new(), true)
    }

    /// The peer reset its writing. Returns whether it changed anything.
    pub(crate) fn on_reset(&mut self, key: StreamKey, code: ErrorCode) -> bool {
        let changed = self
            .with_recv(key, |recv, unpinned| recv.on_reset(code, unpinned))
            .unwrap_or(false);
        if changed {
            self.stats.resets_received += 1;
            self.drop_owed_credit(key);
            self.wake_read(key);
        }
        changed
    }

    /// The peer reset its writing at `final_size` (QMux; the caller checked it against the
    /// windows). Bytes that will never arrive count as received and read, so that the
    /// connection's credit comes back. Returns whether the reset ended the half.
    pub(crate) fn on_reset_at(&mut self, key: StreamKey, code: ErrorCode, final_size: u64) -> bool {
        let changed = self
            .with_recv(key, |recv, unpinned| {
                let missing = final_size.saturating_sub(recv.received);
                recv.received += missing;
                recv.consumed += missing;
                recv.final_size.get_or_insert(recv.received);
                recv.on_reset(code, unpinned)
            })
            .unwrap_or(false);
        if changed {
            self.stats.resets_received += 1;
            self.drop_owed_credit(key);
            self.wake_read(key);
        }
        self.maybe_remove(key);
        changed
    }

    /// We stop reading with `code`. Returns whether the peer must be told.
    pub(crate) fn stop(&mut self, key: StreamKey, code: ErrorCode) -> bool {
        let tell = self
            .with_recv(key, |recv, unpinned| recv.stop(code, unpinned))
            .unwrap_or(false);
        self.drop_owed_credit(key);
        if tell {
            if let Some(stream) = self.store.get_mut(key) {
                debug!(stream = stream.id.0, code = code.0, "stopped");
                stream.owe.stop = Some(code);
            }
            self.queue_control(key);
            self.wake_read(key);
        }
        tell
    }

    /// The receive half ended: credit still owed is not sent (no grants after the end). The
    /// opening message of a stream of ours still goes, as it makes the stream known.
    fn drop_owed_credit(&mut self, key: StreamKey) {
        if let Some(stream) = self.store.get_mut(key) {
            if stream.announced || !stream.local {
                stream.owe.credit = 0;
            }
        }
    }

    // ----- sending -----

    /// Writes to the stream; `Ok(0)` means "wait".
    pub(crate) fn write(
        &mut self,
        key: StreamKey,
        now: Instant,
        data: &[u8],
        framing: &dyn Framing,
    ) -> Result<usize, StreamError> {
        let conn_credit = self.conn_send_limit.saturating_sub(self.written_total);
        let config = &self.config;
        let Some(stream) = self.store.get_mut(key) else {
            return Err(StreamError::Finished);
        };
        let Some(send) = stream.send.as_mut() else {
            return Err(StreamError::Finished);
        };
        let written = send.write(
            data,
            conn_credit,
            config.send_buffer,
            config.max_payload,
            stream.id,
            framing,
        )?;
        if written == 0 {
            if (send.credit() == 0 || conn_credit == 0) && stream.credit_blocked_since.is_none() {
                stream.credit_blocked_since = Some(now);
            }
            if conn_credit == 0 && !stream.conn_blocked {
                stream.conn_blocked = true;
                self.conn_blocked.push(key);
            }
            return Ok(0);
        }
        self.written_total += written as u64;
        let ready = !config.coalesce || send.has_sealed();
        if ready {
            self.schedule(key);
        } else if !stream.corked {
            stream.corked = true;
            self.corked.push(key);
        }
        Ok(written)
    }

    /// Whether a write would make progress or fail rather than wait.
    pub(crate) fn writable(&self, key: StreamKey) -> bool {
        let conn_credit = self.conn_send_limit.saturating_sub(self.written_total);
        self.store
            .get(key)
            .and_then(|s| s.send.as_ref())
            .is_none_or(|send| send.writable(conn_credit, self.config.send_buffer))
    }

    /// The peer granted credit up to `limit` (absolute). Returns whether it increased.
    pub(crate) fn on_credit(&mut self, key: StreamKey, limit: u64) -> bool {
        let now = self.now;
        let Some(stream) = self.store.get_mut(key) else {
            return false;
        };
        let Some(send) = stream.send.as_mut() else {
            return false;
        };
        if limit <= send.limit {
            return false;
        }
        send.limit = limit;
        if let (Some(since), Some(now)) = (stream.credit_blocked_since.take(), now) {
            self.stats.credit_blocked += now.saturating_duration_since(since);
        }
        self.wake_write(key);
        true
    }

    /// The peer raised the connection-level limit (QMux's MAX_DATA, absolute). Writers that
    /// waited for it are woken.
    pub(crate) fn on_conn_credit(&mut self, limit: u64) {
        if limit <= self.conn_send_limit {
            return;
        }
        self.conn_send_limit = limit;
        for key in std::mem::take(&mut self.conn_blocked) {
            if let Some(stream) = self.store.get_mut(key) {
                stream.conn_blocked = false;
            }
            self.wake_write(key);
        }
    }

    /// Seals the stream's partial message so it leaves (a flush).
    pub(crate) fn flush(&mut self, key: StreamKey, framing: &dyn Framing) {
        let Some(stream) = self.store.get_mut(key) else {
            return;
        };
        if let Some(send) = stream.send.as_mut() {
            send.seal(stream.id, framing);
            if send.has_data() {
                self.schedule(key);
            }
        }
    }

    /// Releases every partial message held back (see `StreamsConfig::coalesce`).
    pub(crate) fn uncork_all(&mut self, framing: &dyn Framing) {
        for key in std::mem::take(&mut self.corked) {
            if let Some(stream) = self.store.get_mut(key) {
                stream.corked = false;
            }
            self.flush(key, framing);
        }
    }

    /// Whether partial messages are held back.
    pub(crate) fn has_corked(&self) -> bool {
        !self.corked.is_empty()
    }

    /// The application finished writing.
    pub(crate) fn finish(
        &mut self,
        key: StreamKey,
        framing: &dyn Framing,
    ) -> Result<(), StreamError> {
        let Some(stream) = self.store.get_mut(key) else {
            return Ok(());
        };
        let Some(send) = stream.send.as_mut() else {
            return Err(StreamError::Finished);
        };
        if send.finish(stream.id, framing)? {
            self.schedule(key);
        }
        Ok(())
    }

    /// We abort writing with `code`. Returns whether the peer must be told.
    pub(crate) fn reset(&mut self, key: StreamKey, code: ErrorCode) -> bool {
        let Some(stream) = self.store.get_mut(key) else {
            return false;
        };
        let Some(send) = stream.send.as_mut() else {
            return false;
        };
        let unsent = send.unsent();
        if !send.reset(code) {
            return false;
        }
        self.written_total -= unsent;
        debug!(stream = stream.id.0, code = code.0, "reset");
        stream.owe.reset = Some(code);
        self.stats.resets_sent += 1;
        self.queue_control(key);
        self.wake_write(key);
        true
    }

    /// The peer stopped reading. Returns whether the stop changed anything, and whether we owe
    /// it a reset (QMux).
    pub(crate) fn on_stop(&mut self, key: StreamKey, code: ErrorCode) -> Option<bool> {
        let send = self.store.get_mut(key)?.send.as_mut()?;
        if send.stop_code.is_some() || send.is_done() {
            return None;
        }
        let unsent = send.unsent();
        let owe_reset = send.on_stop(code);
        self.written_total -= unsent;
        self.wake_write(key);
        Some(owe_reset)
    }

    /// We owe the peer a reset of our sending half with `code` (QMux's answer to its stop).
    pub(crate) fn owe_reset(&mut self, key: StreamKey, code: ErrorCode) {
        if let Some(stream) = self.store.get_mut(key) {
            stream.owe.reset = Some(code);
            self.stats.resets_sent += 1;
            self.queue_control(key);
        }
    }

    /// The stream's FIN was encoded.
    pub(crate) fn fin_sent(&mut self, key: StreamKey) {
        if let Some(send) = self.store.get_mut(key).and_then(|s| s.send.as_mut()) {
            send.on_fin_sent();
            self.wake_write(key);
            self.maybe_remove(key);
        }
    }

    fn schedule(&mut self, key: StreamKey) {
        let Some(stream) = self.store.get_mut(key) else {
            return;
        };
        if stream.in_data {
            return;
        }
        let Some(send) = stream.send.as_ref() else {
            return;
        };
        if send.has_data() || send.fin_due() {
            stream.in_data = true;
            self.data.push(key, send.priority);
        }
    }

    /// The next stream's turn: one DATA message, or its FIN. `hold_partial` keeps partial
    /// messages back (coalescing). `ready` says whether the peer may receive on a stream yet.
    pub(crate) fn next_data(
        &mut self,
        hold_partial: bool,
        framing: &dyn Framing,
        ready: impl Fn(&Stream) -> bool,
    ) -> Option<DataTurn> {
        let mut skipped = Vec::new();
        let turn = loop {
            let Some((key, priority)) = self.data.pop() else {
                break None;
            };
            let Some(stream) = self.store.get_mut(key) else {
                continue;
            };
            stream.in_data = false;
            let Some(send) = stream.send.as_mut() else {
                continue;
            };
            if send.priority != priority {
                // Re-prioritised while queued: take its turn at the new level.
                stream.in_data = true;
                self.data.push(key, send.priority);
                continue;
            }
            if !send.has_data() && !send.fin_due() {
                // Nothing left to send: the half was reset, or failed with the connection, while
                // it waited for its turn. It leaves the schedule — a stream still waiting for the
                // peer's first ACK would otherwise stay in it, and hold our Close frame back.
                self.maybe_remove(key);
                continue;
            }
            if !ready(stream) {
                skipped.push(key);
                continue;
            }
            let send = stream.send.as_mut().expect("checked");
            if send.fin_due() {
                break Some(DataTurn::Fin(key));
            }
            let hold = hold_partial && send.state == SendState::Open;
            match send.next_data(hold, stream.id, framing) {
                Some((message, fin)) => {
                    if send.has_data() || send.fin_due() {
                        stream.in_data = true;
                        self.data.push(key, send.priority);
                    }
                    self.wake_write(key);
                    if fin {
                        // The message carries the FIN: the half is over, as after `fin_sent`.
                        self.maybe_remove(key);
                    }
                    break Some(DataTurn::Data(message));
                }
                None => {
                    if send.has_data() && !stream.corked {
                        stream.corked = true;
                        self.corked.push(key);
                    }
                    self.maybe_remove(key);
                }
            }
        };
        for key in skipped {
            if let Some(stream) = self.store.get_mut(key) {
                stream.in_data = true;
                let priority = stream.send.as_ref().map_or(0, |send| send.priority);
                self.data.push(key, priority);
            }
        }
        turn
    }

    /// Whether a stream's turn could send something now (for `has_transmit`).
    pub(crate) fn has_data(&self) -> bool {
        !self.data.is_empty()
    }

    /// Sets the stream's priority: higher goes first.
    pub(crate) fn set_priority(&mut self, key: StreamKey, priority: i32) {
        if let Some(send) = self.store.get_mut(key).and_then(|s| s.send.as_mut()) {
            send.priority = priority;
        }
    }

    // ----- control messages -----

    pub(crate) fn queue_control(&mut self, key: StreamKey) {
        if let Some(stream) = self.store.get_mut(key) {
            if !stream.in_control && stream.owe.any() {
                stream.in_control = true;
                self.control.push_back(key);
            }
        }
    }

    /// The next stream owing control messages; it stays in line until it owes nothing
    /// ([`Streams::control_done`]).
    pub(crate) fn next_control(&mut self) -> Option<StreamKey> {
        while let Some(&key) = self.control.front() {
            match self.store.get(key) {
                Some(stream) if stream.owe.any() => return Some(key),
                Some(_) => self.control_done(key),
                None => {
                    self.control.pop_front();
                }
            }
        }
        None
    }

    /// The stream at the front of the control line has sent all it owed.
    pub(crate) fn control_done(&mut self, key: StreamKey) {
        if self.control.front() == Some(&key) {
            self.control.pop_front();
        }
        if let Some(stream) = self.store.get_mut(key) {
            stream.in_control = false;
        }
        self.maybe_remove(key);
    }

    pub(crate) fn has_control(&self) -> bool {
        !self.control.is_empty()
    }

    // ----- handles -----

    /// The application dropped its handle on `half` of the stream (after the protocol action
    /// the drop implies). Buffered data goes; the stream is forgotten once it owes nothing.
    pub(crate) fn release(&mut self, key: StreamKey, send: bool, recv: bool) {
        let Some(stream) = self.store.get_mut(key) else {
            return;
        };
        if send {
            stream.send_held = false;
        }
        if recv {
            stream.recv_held = false;
            self.with_recv(key, |recv, unpinned| recv.discard(unpinned));
        }
        self.maybe_remove(key);
    }

    /// Forgets the stream if it is over.
    pub(crate) fn maybe_remove(&mut self, key: StreamKey) {
        let await_final_size = self.config.await_final_size;
        if !self
            .store
            .get(key)
            .is_some_and(|stream| stream.is_over(await_final_size))
        {
            return;
        }
        // Buffered data was discarded by `release`; an ended half holds no credit.
        self.with_recv(key, |recv, unpinned| recv.discard(unpinned));
        let Some(stream) = self.store.remove(key) else {
            return;
        };
        if let Some(recv) = &stream.recv {
            self.held_credit -= recv.held_credit();
            self.budget_used -= self.budgeted(recv);
        }
        let index = dir_index(stream.dir);
        if stream.local {
            self.local_open[index] -= 1;
            self.wakes.push_back(Wake::Openable(stream.dir));
        } else {
            self.peer_open[index] -= 1;
            self.peer_retired[index] += 1;
        }
    }

    // ----- the connection ending -----

    /// Every stream fails with `err`: reads return what was buffered, then the error; writes fail
    /// at once, while data already written still leaves ahead of our Close frame if it can.
    pub(crate) fn fail_all(&mut self, err: StreamError, framing: &dyn Framing) {
        for key in self.store.keys() {
            self.with_recv(key, |recv, unpinned| {
                recv.fail(err.clone(), false, unpinned)
            });
            if let Some(stream) = self.store.get_mut(key) {
                if let Some(send) = stream.send.as_mut() {
                    send.seal(stream.id, framing);
                    send.fail(err.clone());
                }
                stream.corked = false;
            }
            // No more credit — but a stream of ours the peer has not heard of keeps its opening
            // ACK, or the reset or stop it may owe would reach the peer as a malformed opening.
            self.drop_owed_credit(key);
            self.schedule(key);
            self.wake_read(key);
            self.wake_write(key);
        }
        self.corked.clear();
        for dir in [Dir::Bi, Dir::Uni] {
            self.wakes.push_back(Wake::Incoming(dir));
            self.wakes.push_back(Wake::Openable(dir));
        }
    }

    /// Nothing can leave any more (the socket is gone): queued data is dropped.
    pub(crate) fn abandon_all(&mut self) {
        self.control.clear();
        self.data.clear();
        self.corked.clear();
        for key in self.store.keys() {
            if let Some(stream) = self.store.get_mut(key) {
                stream.in_control = false;
                stream.in_data = false;
                stream.corked = false;
                stream.owe = Owed::default();
                if let Some(send) = stream.send.as_mut() {
                    send.abandon();
                }
            }
            self.wake_write(key);
            self.maybe_remove(key);
        }
    }

    /// The peer misbehaved on this stream: both halves fail with `err` (buffered data dropped),
    /// and everything further for it is ignored.
    pub(crate) fn fail_stream(&mut self, key: StreamKey, err: StreamError) {
        self.with_recv(key, |recv, unpinned| recv.fail(err.clone(), true, unpinned));
        // No more credit, but the opening ACK of a stream of ours still goes before the ERRORs.
        self.drop_owed_credit(key);
        if let Some(stream) = self.store.get_mut(key) {
            stream.failed = true;
            if let Some(send) = stream.send.as_mut() {
                let unsent = send.unsent();
                if send.reset(ErrorCode::UNKNOWN) {
                    self.written_total -= unsent;
                }
                send.state = SendState::Failed(err);
            }
        }
        self.wake_read(key);
        self.wake_write(key);
    }

    // ----- wakes and statistics -----

    pub(crate) fn wake_read(&mut self, key: StreamKey) {
        if let Some(stream) = self.store.get_mut(key) {
            if !stream.wake_read {
                stream.wake_read = true;
                self.wakes.push_back(Wake::Read(key));
            }
        }
    }

    pub(crate) fn wake_write(&mut self, key: StreamKey) {
        if let Some(stream) = self.store.get_mut(key) {
            if !stream.wake_write {
                stream.wake_write = true;
                self.wakes.push_back(Wake::Write(key));
            }
        }
    }

    pub(crate) fn push_wake(&mut self, wake: Wake) {
        self.wakes.push_back(wake);
    }

    /// The next handle to wake.
    pub(crate) fn poll_wake(&mut self) -> Option<Wake> {
        let wake = self.wakes.pop_front()?;
        match wake {
            Wake::Read(key) => {
                if let Some(stream) = self.store.get_mut(key) {
                    stream.wake_read = false;
                }
            }
            Wake::Write(key) => {
                if let Some(stream) = self.store.get_mut(key) {
                    stream.wake_write = false;
                }
            }
            _ => {}
        }
        Some(wake)
    }

    /// Bytes buffered for all readers now.
    pub(crate) fn buffered_total(&self) -> u64 {
        self.buffered_total
    }

    /// Credit all streams hold.
    pub(crate) fn held_credit(&self) -> u64 {
        self.held_credit
    }

    /// Pin budget in use.
    pub(crate) fn pinned(&self) -> usize {
        self.pinned
    }
}
