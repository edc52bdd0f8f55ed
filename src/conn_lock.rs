//! The connection's lock, taken so that a busy lock never blocks an executor thread.
//!
//! Every handle of a connection works under one lock (one acquisition per operation). With many
//! streams, tasks of the same connection often run on every executor thread at once; a blocking
//! lock would then put a worker thread to sleep while it could run other tasks (the other end of
//! a loopback connection, other connections). A polled operation therefore only *tries* the
//! lock: if it is taken, the task is registered and the holder wakes it when it lets go.

use std::{
    ops::{Deref, DerefMut},
    sync::{
        atomic::{fence, AtomicUsize, Ordering},
        Mutex, MutexGuard, TryLockError,
    },
    task::{Context, Waker},
};

/// A mutex whose polled acquisition parks the task instead of the thread.
pub(crate) struct ConnLock<T> {
    inner: Mutex<T>,
    /// Tasks that found the lock taken; woken when it is released.
    waiting: Mutex<Vec<Waker>>,
    /// `waiting.len()`, so that releasing the lock costs no second lock when nobody waits.
    waiting_count: AtomicUsize,
}

/// Access to the locked value; releasing it wakes the tasks that found the lock taken.
pub(crate) struct ConnGuard<'a, T> {
    guard: Option<MutexGuard<'a, T>>,
    lock: &'a ConnLock<T>,
}

impl<T> ConnLock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            inner: Mutex::new(value),
            waiting: Mutex::new(Vec::new()),
            waiting_count: AtomicUsize::new(0),
        }
    }

    /// Takes the lock, blocking the thread if needed (for short, non-polled work: drops,
    /// `reset`, accessors).
    pub(crate) fn lock(&self) -> ConnGuard<'_, T> {
        // A panic while holding the lock is a bug; the state is still the best we have.
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.guard(guard)
    }

    /// Takes the lock if it is free. Otherwise registers the task, which is woken once the
    /// holder releases it, and returns `None`: the caller returns `Poll::Pending`.
    pub(crate) fn poll_lock(&self, cx: &Context<'_>) -> Option<ConnGuard<'_, T>> {
        if let Some(guard) = self.try_lock() {
            return Some(guard);
        }
        {
            let mut waiting = lock(&self.waiting);
            if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                waiting.push(cx.waker().clone());
            }
            self.waiting_count.store(waiting.len(), Ordering::Relaxed);
        }
        // Pairs with the fence in `ConnGuard::drop`: either the holder sees our registration
        // after it released the lock, or we see the lock free now.
        fence(Ordering::SeqCst);
        // If this succeeds our registration stays: a spurious wake-up later is harmless.
        self.try_lock()
    }

    fn try_lock(&self) -> Option<ConnGuard<'_, T>> {
        match self.inner.try_lock() {
            Ok(guard) => Some(self.guard(guard)),
            Err(TryLockError::Poisoned(poisoned)) => Some(self.guard(poisoned.into_inner())),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn guard<'a>(&'a self, guard: MutexGuard<'a, T>) -> ConnGuard<'a, T> {
        ConnGuard {
            guard: Some(guard),
            lock: self,
        }
    }

    fn wake_waiting(&self) {
        fence(Ordering::SeqCst);
        if self.waiting_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let woken = {
            let mut waiting = lock(&self.waiting);
            self.waiting_count.store(0, Ordering::Relaxed);
            std::mem::take(&mut *waiting)
        };
        woken.into_iter().for_each(Waker::wake);
    }
}

impl<T> Deref for ConnGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.guard.as_deref().expect("guard present until drop")
    }
}

impl<T> DerefMut for ConnGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_deref_mut().expect("guard present until drop")
    }
}

impl<T> Drop for ConnGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.lock.wake_waiting();
    }
}

/// Locks, ignoring poisoning: a list of wakers stays consistent whatever panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        sync::Arc,
        task::{Wake, Waker},
    };

    #[derive(Default)]
    struct Flag(std::sync::atomic::AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_task_that_finds_the_lock_taken_is_woken_on_release() {
        let lock = ConnLock::new(0u32);
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        let cx = Context::from_waker(&waker);
        let held = lock.lock();
        assert!(lock.poll_lock(&cx).is_none());
        assert!(!flag.0.load(Ordering::SeqCst));
        drop(held);
        assert!(flag.0.load(Ordering::SeqCst), "not woken on release");
        let mut guard = lock.poll_lock(&cx).expect("free now");
        *guard += 1;
        drop(guard);
        assert_eq!(*lock.lock(), 1);
    }
}
