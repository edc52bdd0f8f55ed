//! Who is waiting on a connection, and how they are woken.
//!
//! There is no background task: whichever handle is polled drives the socket. The socket is
//! therefore polled with one connection-wide waker ([`Waiters`]), and every task that goes to sleep
//! on any handle registers here. When the socket becomes ready, *every* registered task is woken,
//! so none can be stranded by a task that stopped polling (a cancelled read, a `select!` that
//! went elsewhere); the first to run drives the socket for all, the others find their work done.
//! Events that concern one handle (data for one stream, credit, an accepted stream) wake just that
//! handle.
//!
//! The cost of waking everyone grows with the number of *sleeping* operations, not of streams.
//! An epoch counter closes the race between "the socket had nothing" and "I registered".

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{Wake, Waker},
};

use crate::proto::StreamId;

/// What a sleeping task waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum WaitKey {
    /// A read on this stream.
    Read(StreamId),
    /// A write, flush or close on this stream.
    Write(StreamId),
    /// An `accept` call (numbered: several tasks may accept at once).
    Accept(u64),
    /// An `open` waiting for a free slot.
    Open(u64),
    /// A connection-level wait: `close`, the driver.
    Connection(u64),
}

/// The connection-wide waker and the set of sleeping tasks.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    sleeping: Mutex<HashMap<WaitKey, Waker>>,
    /// Incremented by every socket wake-up, before the sleepers are woken.
    epoch: AtomicU64,
    /// Numbers for keys of operations that are not tied to a stream.
    next_key: AtomicU64,
}

impl Waiters {
    /// A fresh number for an `Accept`, `Open` or `Connection` key.
    pub(crate) fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// The current epoch; compare after registering to catch a wake-up that came in between.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Registers a sleeping task (replacing its previous waker).
    pub(crate) fn register(&self, key: WaitKey, waker: &Waker) {
        let mut sleeping = lock(&self.sleeping);
        match sleeping.get_mut(&key) {
            Some(existing) if existing.will_wake(waker) => {}
            Some(existing) => existing.clone_from(waker),
            None => {
                sleeping.insert(key, waker.clone());
            }
        }
    }

    /// Whether any task sleeps (only registered while the connection's lock is held, so the
    /// answer stays true while the caller holds that lock).
    pub(crate) fn has_sleepers(&self) -> bool {
        !lock(&self.sleeping).is_empty()
    }

    /// Forgets a task that no longer waits (its handle is gone).
    pub(crate) fn unregister(&self, key: WaitKey) {
        lock(&self.sleeping).remove(&key);
    }

    /// Wakes the task waiting for `key`, if any.
    pub(crate) fn wake(&self, key: WaitKey) {
        let waker = lock(&self.sleeping).remove(&key);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wakes every task whose key matches.
    pub(crate) fn wake_matching(&self, matches: impl Fn(&WaitKey) -> bool) {
        let woken: Vec<Waker> = {
            let mut sleeping = lock(&self.sleeping);
            let keys: Vec<WaitKey> = sleeping.keys().filter(|k| matches(k)).copied().collect();
            keys.iter().filter_map(|k| sleeping.remove(k)).collect()
        };
        woken.into_iter().for_each(Waker::wake);
    }

    fn wake_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let woken = std::mem::take(&mut *lock(&self.sleeping));
        woken.into_values().for_each(Waker::wake);
    }
}

/// The socket's waker: readiness of the socket wakes every sleeper.
impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_all();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_all();
    }
}

/// Locks, ignoring poisoning: the map stays consistent whatever panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
