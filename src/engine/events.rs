//! Observers of a connection's [`WsEvent`]s: each has a bounded queue of its own, so a slow or
//! absent reader never slows the connection nor grows without bound.
//!
//! - [`EventStream`] (from `events()`): when its queue is full the oldest event is dropped and
//!   counted ([`EventStream::dropped`]); [`WsEvent::Closed`] is always delivered, as the last
//!   event, even to a full queue (the oldest event makes room), after which the stream ends —
//!   also when nothing drives the connection any more: the stream reads its own queue.
//! - pharos observers (`observe()`): fed from a backlog of the same bound into a pharos channel
//!   that is always bounded (to `event_queue` events; filters are kept). Delivery into the channel
//!   happens while the connection is driven; when the connection ends the channel is closed, so
//!   the observer's stream ends after what it holds. An observer whose channel was full at that
//!   moment misses the events that did not fit, `Closed` included: use `events()` where the end
//!   must be seen.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
};

use futures::{Sink, Stream};
use pharos::{Channel, Observable, ObserveConfig, PharErr};

use crate::event::WsEvent;

/// One observer's queue, shared with its [`EventStream`].
#[derive(Debug)]
struct Queue {
    events: VecDeque<WsEvent>,
    capacity: usize,
    dropped: u64,
    /// No more events will come (after `Closed`, or the connection is gone).
    ended: bool,
    /// The stream was dropped.
    gone: bool,
    waker: Option<Waker>,
}

impl Queue {
    fn push(&mut self, event: WsEvent) {
        if self.events.len() >= self.capacity {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn end(&mut self) {
        self.ended = true;
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection's events for one observer: a [`Stream`] of [`WsEvent`]s that ends after
/// [`WsEvent::Closed`]. See [`Connection::events`](crate::Connection::events).
///
/// Its queue holds at most the configured number of events (`Config::event_queue`); when the
/// observer falls behind, the oldest are dropped and counted. `Closed` is never dropped.
#[derive(Debug)]
pub struct EventStream {
    queue: Arc<Mutex<Queue>>,
}

impl EventStream {
    /// How many events were dropped because this observer fell behind.
    pub fn dropped(&self) -> u64 {
        lock(&self.queue).dropped
    }
}

impl Stream for EventStream {
    type Item = WsEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WsEvent>> {
        let mut queue = lock(&self.queue);
        if let Some(event) = queue.events.pop_front() {
            return Poll::Ready(Some(event));
        }
        if queue.ended {
            return Poll::Ready(None);
        }
        queue.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        lock(&self.queue).gone = true;
    }
}

/// A pharos observer: its own pharos (so that one full channel does not hold the others back)
/// and the events waiting for room in it.
struct PharosObserver {
    pharos: pharos::Pharos<WsEvent>,
    backlog: VecDeque<WsEvent>,
    closed: bool,
}

impl PharosObserver {
    /// Moves what fits into the channel. Returns `false` once the observer is gone.
    fn deliver(&mut self) -> bool {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        while let Some(event) = self.backlog.pop_front() {
            match Pin::new(&mut self.pharos).poll_ready(&mut cx) {
                Poll::Ready(Ok(())) => {
                    if Pin::new(&mut self.pharos).start_send(event).is_err() {
                        return false;
                    }
                }
                Poll::Ready(Err(_)) => return false,
                Poll::Pending => {
                    self.backlog.push_front(event);
                    break;
                }
            }
        }
        // Observers that went away are noticed here too.
        self.pharos.num_observers() > 0
    }

    fn close(&mut self) {
        self.deliver();
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let _ = Pin::new(&mut self.pharos).poll_close(&mut cx);
        self.closed = true;
    }
}

/// Every observer of one connection.
pub(crate) struct EventHub {
    observers: Vec<Arc<Mutex<Queue>>>,
    pharos: Vec<PharosObserver>,
    capacity: usize,
    ended: bool,
}

impl EventHub {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            observers: Vec::new(),
            pharos: Vec::new(),
            capacity: capacity.max(1),
            ended: false,
        }
    }

    /// A new observer. Once the connection has ended, its stream ends at once.
    pub(crate) fn subscribe(&mut self) -> EventStream {
        let queue = Arc::new(Mutex::new(Queue {
            events: VecDeque::new(),
            capacity: self.capacity,
            dropped: 0,
            ended: self.ended,
            gone: false,
            waker: None,
        }));
        if !self.ended {
            self.observers.push(Arc::clone(&queue));
        }
        EventStream { queue }
    }

    /// A new pharos observer, on a bounded channel of the hub's capacity. Fails once the
    /// connection has ended.
    pub(crate) fn observe(
        &mut self,
        options: ObserveConfig<WsEvent>,
    ) -> Result<pharos::Events<WsEvent>, PharErr> {
        use futures::FutureExt;
        if self.ended {
            return Err(pharos::ErrorKind::Closed.into());
        }
        let mut pharos = pharos::Pharos::new(1);
        let options = options.channel(Channel::Bounded(self.capacity));
        // Pharos's observe does its work synchronously; it is ready on the first poll.
        let events = pharos
            .observe(options)
            .now_or_never()
            .unwrap_or_else(|| Err(pharos::ErrorKind::Closed.into()))?;
        self.pharos.push(PharosObserver {
            pharos,
            backlog: VecDeque::new(),
            closed: false,
        });
        Ok(events)
    }

    /// Hands `event` to every observer. After [`WsEvent::Closed`] nothing more is published and
    /// the observers' streams end.
    pub(crate) fn publish(&mut self, event: WsEvent) {
        if self.ended {
            return;
        }
        let last = matches!(event, WsEvent::Closed { .. });
        self.observers.retain(|queue| {
            let mut queue = lock(queue);
            if queue.gone {
                return false;
            }
            queue.push(event.clone());
            if last {
                queue.end();
            }
            true
        });
        let capacity = self.capacity;
        self.pharos.retain_mut(|observer| {
            if observer.backlog.len() >= capacity {
                observer.backlog.pop_front();
            }
            observer.backlog.push_back(event.clone());
            if last {
                observer.close();
                return false;
            }
            observer.deliver()
        });
        if last {
            self.ended = true;
            self.observers.clear();
        }
    }
}

impl Drop for EventHub {
    fn drop(&mut self) {
        // The connection is gone: whatever was not said by now never will be.
        for queue in &self.observers {
            lock(queue).end();
        }
        for observer in &mut self.pharos {
            if !observer.closed {
                observer.close();
            }
        }
    }
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("observers", &self.observers.len())
            .field("pharos_observers", &self.pharos.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::CloseCode;
    use futures::StreamExt;

    fn closed() -> WsEvent {
        WsEvent::Closed {
            code: CloseCode::NORMAL,
            reason: String::new(),
        }
    }

    #[test]
    fn a_full_observer_drops_the_oldest_but_always_gets_closed_then_ends() {
        let mut hub = EventHub::new(3);
        let mut stream = hub.subscribe();
        for len in 0..10 {
            hub.publish(WsEvent::TextReceived { len });
        }
        hub.publish(closed());
        hub.publish(WsEvent::TextReceived { len: 99 });
        let got: Vec<WsEvent> = futures::executor::block_on(async {
            let mut got = Vec::new();
            while let Some(event) = stream.next().await {
                got.push(event);
            }
            got
        });
        assert_eq!(got.len(), 3);
        assert!(matches!(got[0], WsEvent::TextReceived { len: 8 }));
        assert!(matches!(got[2], WsEvent::Closed { .. }), "{got:?}");
        assert_eq!(stream.dropped(), 8);
    }

    #[test]
    fn observers_of_an_ended_connection_end_at_once() {
        let mut hub = EventHub::new(3);
        hub.publish(closed());
        let mut stream = hub.subscribe();
        assert!(futures::executor::block_on(stream.next()).is_none());
        assert!(hub.observe(ObserveConfig::default()).is_err());
    }

    #[test]
    fn dropping_the_hub_ends_the_streams() {
        let mut hub = EventHub::new(3);
        let mut stream = hub.subscribe();
        hub.publish(WsEvent::TextReceived { len: 1 });
        drop(hub);
        let got: Vec<WsEvent> = futures::executor::block_on(stream.by_ref().collect());
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn pharos_observers_get_a_bounded_channel() {
        let mut hub = EventHub::new(4);
        let mut events = hub.observe(ObserveConfig::default()).unwrap();
        for len in 0..100 {
            hub.publish(WsEvent::TextReceived { len });
        }
        hub.publish(closed());
        let got: Vec<WsEvent> = futures::executor::block_on(events.by_ref().collect());
        assert!(
            got.len() <= 8,
            "{} events held for a reader that never read",
            got.len()
        );
    }
}
