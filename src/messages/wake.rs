//! One waker for the socket that wakes every task waiting on it.
//!
//! The WebSocket keeps only the waker of the last task that polled it. Several tasks share one
//! [`MessageSocket`](super::MessageSocket) (one reading, one pinging, one writing), and whichever
//! of them polls the socket may be dropped (a cancelled ping) while the others still wait. So the
//! socket is always polled with this set's waker, which wakes all registered tasks; each re-checks
//! its own condition under the lock.
//!
//! The socket wakes only when it has news for a poll that returned `Pending`. A task that polls it
//! and finds data already there (the reader takes the Pong a ping waits for) must wake the others
//! itself: [`WakerSet::wake_others`].

use std::{
    sync::{Arc, Mutex},
    task::{Wake, Waker},
};

#[derive(Default)]
pub(crate) struct WakerSet {
    wakers: Mutex<Vec<Waker>>,
}

impl WakerSet {
    /// Adds a task to wake at the next socket event. A waker that is already registered (the same
    /// task polling again) is not added twice, so the set stays as small as the number of tasks.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }

    /// Wakes every registered task except `current` (which is running and stays registered).
    pub(crate) fn wake_others(&self, current: &Waker) {
        let others: Vec<Waker> = {
            let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
            let (mine, others) = std::mem::take(&mut *wakers)
                .into_iter()
                .partition(|w| w.will_wake(current));
            *wakers = mine;
            others
        };
        for waker in others {
            waker.wake();
        }
    }
}

impl Wake for WakerSet {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for waker in wakers {
            waker.wake();
        }
    }
}
