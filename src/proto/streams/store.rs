//! Where streams live: a slab of slots, found by the handle's [`StreamKey`] in O(1) and by wire id
//! through one map.
//!
//! A key carries the stream id as well as the slot, so a handle whose stream is gone (and whose
//! slot was reused) finds nothing instead of someone else's stream — h2's `store::Key`.

use std::collections::HashMap;

use crate::proto::id::StreamId;

/// A stream's place in the store, held by its handles. Stale keys find nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    index: u32,
    id: StreamId,
}

impl StreamKey {
    /// The stream's wire id.
    pub fn id(self) -> StreamId {
        self.id
    }

    /// The slot number, for tables kept beside the store (the IO layer's wakers). Slots are
    /// reused; check [`id`](Self::id) where that matters.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// A slab of `T` with an id index.
#[derive(Debug)]
pub(crate) struct Store<T> {
    slots: Vec<Option<(StreamId, T)>>,
    free: Vec<u32>,
    ids: HashMap<StreamId, u32>,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            ids: HashMap::new(),
        }
    }
}

impl<T> Store<T> {
    pub(crate) fn insert(&mut self, id: StreamId, value: T) -> StreamKey {
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = Some((id, value));
                index
            }
            None => {
                let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 streams");
                self.slots.push(Some((id, value)));
                index
            }
        };
        self.ids.insert(id, index);
        StreamKey { index, id }
    }

    pub(crate) fn get(&self, key: StreamKey) -> Option<&T> {
        match self.slots.get(key.index as usize)? {
            Some((id, value)) if *id == key.id => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: StreamKey) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize)? {
            Some((id, value)) if *id == key.id => Some(value),
            _ => None,
        }
    }

    pub(crate) fn find(&self, id: StreamId) -> Option<StreamKey> {
        self.ids.get(&id).map(|&index| StreamKey { index, id })
    }

    pub(crate) fn remove(&mut self, key: StreamKey) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if !matches!(slot, Some((id, _)) if *id == key.id) {
            return None;
        }
        let (_, value) = slot.take()?;
        self.ids.remove(&key.id);
        self.free.push(key.index);
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Every key, for the rare operations that concern all streams (the connection ending).
    pub(crate) fn keys(&self) -> Vec<StreamKey> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                slot.as_ref().map(|(id, _)| StreamKey {
                    index: index as u32,
                    id: *id,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_key_finds_nothing_after_its_slot_is_reused() {
        let mut store = Store::default();
        let a = store.insert(StreamId(0), "a");
        assert_eq!(store.remove(a), Some("a"));
        let b = store.insert(StreamId(2), "b");
        assert_eq!(a.index(), b.index(), "slot reused");
        assert_eq!(store.get(a), None);
        assert_eq!(store.get(b), Some(&"b"));
        assert_eq!(store.find(StreamId(2)), Some(b));
        assert_eq!(store.find(StreamId(0)), None);
        assert_eq!(store.remove(a), None);
        assert_eq!(store.len(), 1);
    }
}
