//! Keep-alive: a Ping after a quiet interval, and a close with 1001 after a longer silence.
//!
//! Both are off by default, as in the peer library. "Quiet" means nothing arrived from the peer:
//! any message or control frame counts, so a busy connection never pings. Time is measured with
//! one [`futures_timer::Delay`] that is re-armed only when it fires (not on every message): on
//! each message we just note the time.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures_timer::Delay;

/// What the connection should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeepAliveAction {
    /// Send a Ping: the peer has been quiet for the interval.
    Ping,
    /// Close with 1001: the peer has been quiet for the idle timeout.
    IdleTimeout,
}

/// The keep-alive timer of one connection.
#[derive(Debug)]
pub(crate) struct KeepAlive {
    interval: Option<Duration>,
    idle_timeout: Option<Duration>,
    last_heard: Instant,
    /// When we last pinged; we ping once per quiet interval, not on every wake-up.
    last_ping: Option<Instant>,
    timer: Option<Delay>,
}

impl KeepAlive {
    /// A timer for these settings; `None` when both are off.
    pub(crate) fn new(interval: Option<Duration>, idle_timeout: Option<Duration>) -> Option<Self> {
        if interval.is_none() && idle_timeout.is_none() {
            return None;
        }
        Some(Self {
            interval,
            idle_timeout,
            last_heard: Instant::now(),
            last_ping: None,
            timer: None,
        })
    }

    /// Something arrived from the peer.
    pub(crate) fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// When we are next due to ping (counting from our last ping if the peer stayed quiet since).
    fn ping_due(&self) -> Option<Instant> {
        let since = self
            .last_ping
            .filter(|ping| *ping > self.last_heard)
            .unwrap_or(self.last_heard);
        self.interval.map(|interval| since + interval)
    }

    fn idle_due(&self) -> Option<Instant> {
        self.idle_timeout.map(|timeout| self.last_heard + timeout)
    }

    /// The action due at `now`, if any (pure, for tests).
    fn due(&mut self, now: Instant) -> Option<KeepAliveAction> {
        if self.idle_due().is_some_and(|due| now >= due) {
            return Some(KeepAliveAction::IdleTimeout);
        }
        if self.ping_due().is_some_and(|due| now >= due) {
            self.last_ping = Some(now);
            return Some(KeepAliveAction::Ping);
        }
        None
    }

    /// Whether it is time to act; otherwise arms the timer to wake `cx` at the next deadline.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Option<KeepAliveAction> {
        loop {
            let now = Instant::now();
            if let Some(action) = self.due(now) {
                return Some(action);
            }
            let deadline = [self.ping_due(), self.idle_due()]
                .into_iter()
                .flatten()
                .min()?;
            let timer = self.timer.get_or_insert_with(|| Delay::new(Duration::ZERO));
            timer.reset(deadline.saturating_duration_since(now));
            match Pin::new(timer).poll(cx) {
                Poll::Pending => return None,
                // Already due (a tiny delay): decide again.
                Poll::Ready(()) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn off_when_nothing_is_configured() {
        assert!(KeepAlive::new(None, None).is_none());
    }

    #[test]
    fn pings_once_per_quiet_interval_until_the_peer_is_heard() {
        let mut ka = KeepAlive::new(Some(10 * SECOND), None).unwrap();
        let t0 = ka.last_heard;
        assert_eq!(ka.due(t0 + 9 * SECOND), None);
        assert_eq!(ka.due(t0 + 10 * SECOND), Some(KeepAliveAction::Ping));
        // Still quiet: the next ping waits another interval.
        assert_eq!(ka.due(t0 + 15 * SECOND), None);
        assert_eq!(ka.due(t0 + 20 * SECOND), Some(KeepAliveAction::Ping));
    }

    #[test]
    fn idle_timeout_counts_from_the_last_message_heard() {
        let mut ka = KeepAlive::new(Some(10 * SECOND), Some(25 * SECOND)).unwrap();
        let t0 = ka.last_heard;
        assert_eq!(ka.due(t0 + 10 * SECOND), Some(KeepAliveAction::Ping));
        ka.last_heard = t0 + 12 * SECOND; // the pong
        assert_eq!(ka.due(t0 + 30 * SECOND), Some(KeepAliveAction::Ping));
        assert_eq!(ka.due(t0 + 37 * SECOND), Some(KeepAliveAction::IdleTimeout));
    }
}
