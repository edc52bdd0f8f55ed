//! The engine for handles used from many tasks (`Connection` and its streams, `MessageSocket`):
//! the core behind a lock, the socket behind another, and the rule for who drives.
//!
//! # Two locks
//!
//! The core and the wakers are behind a `Mutex` that is held only for quick work on memory — never
//! while the socket is polled. The socket is behind a second mutex that is only ever *tried*:
//! whoever gets it drives (pumps the socket); whoever finds it taken leaves a request that the
//! holder serves before letting go, so no work is lost and no thread blocks on socket I/O.
//!
//! # Who drives
//!
//! The socket is always polled with one waker, the [`Router`]'s, and the router decides whom a
//! socket wake-up reaches:
//!
//! - **A driver runs** (`run()` spawned): the wake-up reaches the driver only. The driver reads,
//!   and wakes exactly the handles the core names (data for that stream, credit for that writer,
//!   a stream to accept). Idle streams' tasks are never woken by other streams' traffic, so the
//!   cost of a message does not grow with them. Handles still send what they queued themselves
//!   (no hop through the driver); they never read the socket.
//! - **No driver**: every task that waits is a candidate, and the wake-up reaches them all; the
//!   first to run drives for everyone. A task that stopped polling its wait (a `select!` that went
//!   elsewhere, a cancelled future) cannot strand the others, because they were woken too. The
//!   cost of a wake-up grows with the number of waiting tasks.
//!
//! When the last driver goes away (its future dropped or finished), every waiting task is woken
//! once so that it becomes a candidate: nothing waits for a driver that is gone.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    task::{Context, Poll, Wake, Waker},
    time::Instant,
};

use super::{
    events::EventHub,
    pump::{pump, Access, Io},
    transport::BoxSocket,
    wakers::{Slot, Wakers},
    Session,
};

/// A drive was requested.
const DRIVE: u8 = 1;
/// ... by a task that waits: partial messages held back to coalesce writes go too.
const FLUSH: u8 = 2;

/// What the core lock protects.
pub(crate) struct State<S> {
    pub(crate) session: S,
    pub(crate) wakers: Wakers,
    pub(crate) events: EventHub,
}

impl<S: Session> State<S> {
    /// Publishes the core's events, then collects the wakers of the handles it names.
    fn dispatch(&mut self, woken: &mut Vec<Waker>) {
        while let Some(event) = self.session.poll_event() {
            self.events.publish(event);
        }
        while let Some(wake) = self.session.poll_wake() {
            self.wakers.take(wake, woken);
        }
    }
}

/// Where socket wake-ups go; see the module docs.
#[derive(Default)]
pub(crate) struct Router {
    /// Counts the socket's wake-ups.
    epoch: AtomicU64,
    drivers: Mutex<Vec<(u64, Waker)>>,
    driver_count: AtomicUsize,
    next_driver: AtomicU64,
    /// Tasks waiting while no driver runs.
    candidates: Mutex<Vec<Waker>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Router {
    fn has_driver(&self) -> bool {
        self.driver_count.load(Ordering::SeqCst) > 0
    }

    fn add_candidate(&self, waker: &Waker) {
        let mut candidates = lock(&self.candidates);
        if !candidates.iter().any(|w| w.will_wake(waker)) {
            candidates.push(waker.clone());
        }
    }

    fn set_driver(&self, id: u64, waker: &Waker) {
        let mut drivers = lock(&self.drivers);
        match drivers.iter_mut().find(|(d, _)| *d == id) {
            Some((_, existing)) if existing.will_wake(waker) => {}
            Some((_, existing)) => existing.clone_from(waker),
            None => {
                drivers.push((id, waker.clone()));
                self.driver_count.store(drivers.len(), Ordering::SeqCst);
            }
        }
    }

    /// Removes a driver; `true` if it was the last one.
    fn remove_driver(&self, id: u64) -> bool {
        let mut drivers = lock(&self.drivers);
        let before = drivers.len();
        drivers.retain(|(d, _)| *d != id);
        self.driver_count.store(drivers.len(), Ordering::SeqCst);
        before > 0 && drivers.is_empty()
    }
}

impl Wake for Router {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if self.has_driver() {
            for (_, waker) in lock(&self.drivers).iter() {
                waker.wake_by_ref();
            }
            return;
        }
        let candidates = std::mem::take(&mut *lock(&self.candidates));
        for waker in candidates {
            waker.wake();
        }
    }
}

/// See the [module docs](self).
pub(crate) struct Shared<S> {
    state: Mutex<State<S>>,
    /// The socket; only ever `try_lock`ed. `None` once released.
    io: Mutex<Option<Io<BoxSocket>>>,
    /// Someone wanted the socket driven while it was taken: [`DRIVE`], plus [`FLUSH`] if a task
    /// waits (partial messages go then).
    drive_requested: AtomicU8,
    router: Arc<Router>,
    socket_waker: Waker,
    /// Handles the application holds; when the last goes, the connection is abandoned.
    handles: AtomicUsize,
    /// The connection's tracing span (a no-op without the `tracing` feature).
    pub(crate) span: super::span::Span,
}

/// The pump's access to the core through the lock.
struct Locked<'a, S>(&'a Shared<S>);

impl<S: Session> Access for Locked<'_, S> {
    type Session = S;

    fn with<R>(&mut self, f: impl FnOnce(&mut S) -> R) -> R {
        self.0.with_state(|state| f(&mut state.session))
    }
}

impl<S: Session> Shared<S> {
    pub(crate) fn new(
        session: S,
        io: Io<BoxSocket>,
        event_queue: usize,
        span: super::span::Span,
    ) -> Self {
        let router = Arc::new(Router::default());
        Self {
            state: Mutex::new(State {
                session,
                wakers: Wakers::default(),
                events: EventHub::new(event_queue),
            }),
            io: Mutex::new(Some(io)),
            drive_requested: AtomicU8::new(0),
            socket_waker: Waker::from(Arc::clone(&router)),
            router,
            handles: AtomicUsize::new(0),
            span,
        }
    }

    /// Runs `f` under the core lock; afterwards publishes the core's events and wakes the handles
    /// it named (outside the lock).
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State<S>) -> R) -> R {
        let mut woken = Vec::new();
        let result = {
            let mut state = lock(&self.state);
            let result = f(&mut state);
            state.dispatch(&mut woken);
            result
        };
        for waker in woken {
            waker.wake();
        }
        result
    }

    /// Runs `op` on the core. If it is ready, whatever it queued is sent at once. Otherwise the
    /// task waits for `slot`: it registers, drives the socket unless a driver does, and tries once
    /// more.
    ///
    /// `op` must only have effects when it returns `Ready`: it may run twice.
    pub(crate) fn poll_op<T>(
        &self,
        cx: &mut Context<'_>,
        slot: Slot,
        mut op: impl FnMut(&mut S, Instant) -> Poll<T>,
    ) -> Poll<T> {
        let now = Instant::now();
        let (outcome, send, held, driven) = self.with_state(|state| {
            let outcome = op(&mut state.session, now);
            let driven = outcome.is_pending() && self.wait(state, slot, cx.waker());
            let session = &state.session;
            (
                outcome,
                session.has_output(),
                session.has_held_output(),
                driven,
            )
        });
        if outcome.is_ready() {
            if send {
                self.drive(false);
            } else if held {
                // Output held back to coalesce writes leaves when a task waits: tell the driver,
                // or the waiting candidates, to come round.
                self.socket_waker.wake_by_ref();
            }
            return outcome;
        }
        if !driven || send {
            self.drive(true);
            // Driving may have brought what `op` waits for.
            let (outcome, send) = self.with_state(|state| {
                let outcome = op(&mut state.session, Instant::now());
                (outcome, state.session.has_output())
            });
            if outcome.is_ready() && send {
                // What it queued goes now.
                self.drive(false);
            }
            return outcome;
        }
        Poll::Pending
    }

    /// Registers the task as waiting for `slot`; without a driver it is a candidate to drive too.
    /// Returns whether a driver runs.
    fn wait(&self, state: &mut State<S>, slot: Slot, waker: &Waker) -> bool {
        state.wakers.register(slot, waker);
        let driven = self.router.has_driver();
        if !driven {
            self.router.add_candidate(waker);
        }
        driven
    }

    /// Drives the socket now, unless someone else is: then they do it for us before letting go.
    /// `waiting`: the caller is a task that waits (partial messages held back go too).
    pub(crate) fn drive(&self, waiting: bool) {
        let mut request = DRIVE | if waiting { FLUSH } else { 0 };
        loop {
            let mut io = match self.io.try_lock() {
                Ok(io) => io,
                Err(_) => {
                    self.drive_requested.fetch_or(request, Ordering::SeqCst);
                    // The holder may have let go before it saw the request.
                    match self.io.try_lock() {
                        Ok(io) => io,
                        Err(_) => return,
                    }
                }
            };
            request |= self.drive_requested.swap(0, Ordering::SeqCst);
            let _entered = self.span.enter();
            if let Some(engine) = io.as_mut() {
                let mut cx = Context::from_waker(&self.socket_waker);
                let epoch = self.router.epoch.load(Ordering::SeqCst);
                let flush = request & FLUSH != 0 || self.router.has_driver();
                pump(engine, &mut Locked(self), &mut cx, Some(epoch), flush, true);
                if engine.transport.is_released() {
                    *io = None;
                }
            }
            drop(io);
            request = self.drive_requested.load(Ordering::SeqCst);
            if request == 0 {
                return;
            }
        }
    }

    /// The driver's poll (`run()`): drives, and returns `Ready` once `done` says so.
    pub(crate) fn poll_driver<T>(
        &self,
        cx: &mut Context<'_>,
        id: u64,
        done: impl Fn(&mut S) -> Option<T>,
    ) -> Poll<T> {
        self.router.set_driver(id, cx.waker());
        self.drive(true);
        match self.with_state(|state| {
            let outcome = done(&mut state.session);
            if outcome.is_none() {
                state.wakers.register(Slot::Connection, cx.waker());
            }
            outcome
        }) {
            Some(outcome) => {
                self.resign(id);
                Poll::Ready(outcome)
            }
            None => Poll::Pending,
        }
    }

    /// A number for a new driver.
    pub(crate) fn next_driver_id(&self) -> u64 {
        self.router.next_driver.fetch_add(1, Ordering::Relaxed)
    }

    /// A driver stops (finished or dropped). If it was the last, every waiting task is woken to
    /// drive for itself.
    pub(crate) fn resign(&self, id: u64) {
        if !self.router.remove_driver(id) {
            return;
        }
        let mut woken = Vec::new();
        lock(&self.state).wakers.take_all(&mut woken);
        for waker in woken {
            waker.wake();
        }
    }

    /// Registers an application handle.
    pub(crate) fn add_handle(&self) {
        self.handles.fetch_add(1, Ordering::SeqCst);
    }

    /// An application handle is gone. When it was the last, the connection is abandoned: closed
    /// as well as possible (a driver completes the close; without one, what can leave now leaves
    /// and the socket is dropped).
    pub(crate) fn remove_handle(&self) {
        if self.handles.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        self.with_state(|state| state.session.abandon(Instant::now()));
        self.drive(true);
        if !self.router.has_driver() {
            self.with_state(|state| {
                if !state.session.is_done() {
                    state.session.handle_input(
                        Instant::now(),
                        super::Input::Ended("every handle was dropped".to_owned()),
                    );
                }
            });
            if let Ok(mut io) = self.io.try_lock() {
                *io = None;
            }
        }
    }
}

impl<S> std::fmt::Debug for Shared<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("handles", &self.handles.load(Ordering::Relaxed))
            .field("drivers", &self.router.driver_count.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
