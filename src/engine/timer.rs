//! The engine's one timer, re-armed to whatever deadline the core reports (quinn's
//! `drive_timer`): the core reads no clock, so the keep-alive, idle, close and reply deadlines
//! all come through here.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use futures_timer::Delay;

/// A timer for one deadline at a time.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    delay: Option<Delay>,
    armed_for: Option<Instant>,
}

impl Timer {
    /// `Ready` once `deadline` has passed; otherwise arms the timer to wake `cx` then. `None`
    /// disarms it.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, deadline: Option<Instant>) -> Poll<()> {
        let Some(deadline) = deadline else {
            self.delay = None;
            self.armed_for = None;
            return Poll::Pending;
        };
        let now = Instant::now();
        if deadline <= now {
            return Poll::Ready(());
        }
        if self.armed_for != Some(deadline) {
            let wait = deadline - now;
            match self.delay.as_mut() {
                Some(delay) => delay.reset(wait),
                None => self.delay = Some(Delay::new(wait)),
            }
            self.armed_for = Some(deadline);
        }
        let delay = self.delay.as_mut().expect("armed");
        match Pin::new(delay).poll(cx) {
            Poll::Ready(()) => {
                self.armed_for = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
