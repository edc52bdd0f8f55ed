//! Who is waiting for what, so that the core's [`Wake`]s reach exactly those tasks.
//!
//! Stream waits are kept in tables indexed by the stream's slot in the core (O(1), no hashing);
//! the few connection-level waits are short lists. A waker is taken when it is woken: a task
//! that still waits registers again on its next poll.

use std::task::Waker;

use crate::proto::{Dir, StreamKey, Wake};

/// What a task waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Data or the end on a stream.
    Read(StreamKey),
    /// Credit, room or the end on a stream's send half.
    Write(StreamKey),
    /// A peer-opened stream.
    Incoming(Dir),
    /// Room to open a stream.
    Openable(Dir),
    /// A datagram (QMux).
    Datagram,
    /// Anything about the connection: its end, a pong, a shutdown.
    Connection,
}

/// See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    read: Vec<Option<Waker>>,
    write: Vec<Option<Waker>>,
    incoming: [Vec<Waker>; 2],
    openable: [Vec<Waker>; 2],
    datagram: Vec<Waker>,
    connection: Vec<Waker>,
}

fn dir_index(dir: Dir) -> usize {
    match dir {
        Dir::Bi => 0,
        Dir::Uni => 1,
    }
}

fn set(table: &mut Vec<Option<Waker>>, index: usize, waker: &Waker) {
    if table.len() <= index {
        table.resize(index + 1, None);
    }
    match &mut table[index] {
        Some(existing) if existing.will_wake(waker) => {}
        slot => *slot = Some(waker.clone()),
    }
}

fn add(list: &mut Vec<Waker>, waker: &Waker) {
    if !list.iter().any(|w| w.will_wake(waker)) {
        list.push(waker.clone());
    }
}

impl Wakers {
    /// Registers the task waiting for `slot` (replacing an older waker of that stream slot).
    pub(crate) fn register(&mut self, slot: Slot, waker: &Waker) {
        match slot {
            Slot::Read(key) => set(&mut self.read, key.index(), waker),
            Slot::Write(key) => set(&mut self.write, key.index(), waker),
            Slot::Incoming(dir) => add(&mut self.incoming[dir_index(dir)], waker),
            Slot::Openable(dir) => add(&mut self.openable[dir_index(dir)], waker),
            Slot::Datagram => add(&mut self.datagram, waker),
            Slot::Connection => add(&mut self.connection, waker),
        }
    }

    /// Forgets a stream's waiter (its handle is gone).
    pub(crate) fn forget(&mut self, slot: Slot) {
        let table = match slot {
            Slot::Read(key) => self.read.get_mut(key.index()),
            Slot::Write(key) => self.write.get_mut(key.index()),
            _ => None,
        };
        if let Some(entry) = table {
            *entry = None;
        }
    }

    /// Moves the wakers `wake` names into `out`.
    pub(crate) fn take(&mut self, wake: Wake, out: &mut Vec<Waker>) {
        match wake {
            Wake::Read(key) => out.extend(self.read.get_mut(key.index()).and_then(Option::take)),
            Wake::Write(key) => out.extend(self.write.get_mut(key.index()).and_then(Option::take)),
            Wake::Incoming(dir) => out.append(&mut self.incoming[dir_index(dir)]),
            Wake::Openable(dir) => out.append(&mut self.openable[dir_index(dir)]),
            Wake::Datagram => out.append(&mut self.datagram),
            Wake::Connection => out.append(&mut self.connection),
        }
    }

    /// Moves every waker into `out`: the driver resigned, and everyone must look again.
    pub(crate) fn take_all(&mut self, out: &mut Vec<Waker>) {
        out.extend(self.read.iter_mut().filter_map(Option::take));
        out.extend(self.write.iter_mut().filter_map(Option::take));
        for list in self.incoming.iter_mut().chain(self.openable.iter_mut()) {
            out.append(list);
        }
        out.append(&mut self.datagram);
        out.append(&mut self.connection);
    }
}
