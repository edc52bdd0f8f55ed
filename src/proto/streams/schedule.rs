//! Which stream sends next: the highest priority first, streams of equal priority in turn, one
//! message per turn. Joining and leaving are O(1) (O(log levels) with several priorities), so an
//! idle stream costs nothing here.

use std::collections::{BTreeMap, VecDeque};

use super::store::StreamKey;

/// Streams with something to send, by priority.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    /// Keyed by priority; the last entry is the highest.
    levels: BTreeMap<i32, VecDeque<StreamKey>>,
}

impl Schedule {
    /// Adds a stream at the back of its priority's turn. The caller makes sure it is not
    /// already in (a flag on the stream).
    pub(crate) fn push(&mut self, key: StreamKey, priority: i32) {
        self.levels.entry(priority).or_default().push_back(key);
    }

    /// Takes the stream whose turn it is, with the priority it was queued at.
    pub(crate) fn pop(&mut self) -> Option<(StreamKey, i32)> {
        let mut level = self.levels.last_entry()?;
        let priority = *level.key();
        let key = level.get_mut().pop_front();
        if level.get().is_empty() {
            level.remove();
        }
        key.map(|key| (key, priority))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.levels.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{id::StreamId, streams::store::Store};

    #[test]
    fn higher_priorities_first_equal_ones_take_turns() {
        let mut store = Store::default();
        let [a, b, c] = [0, 2, 4].map(|id| store.insert(StreamId(id), ()));
        let mut schedule = Schedule::default();
        schedule.push(a, 0);
        schedule.push(b, 0);
        schedule.push(c, 5);
        assert_eq!(schedule.pop(), Some((c, 5)));
        assert_eq!(schedule.pop(), Some((a, 0)));
        schedule.push(a, 0);
        assert_eq!(schedule.pop(), Some((b, 0)));
        assert_eq!(schedule.pop(), Some((a, 0)));
        assert!(schedule.is_empty());
    }
}
