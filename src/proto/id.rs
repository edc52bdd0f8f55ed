//! Who opened a stream, which way it carries data, and its number on the wire.

use std::fmt;

/// A stream's number on the wire, as the negotiated protocol assigns it.
///
/// - The @matrixai/ws protocol: the client opens 0, 2, 4, …, the server 1, 3, 5, …; every stream
///   is bidirectional.
/// - QMux (QUIC's numbering): `index << 2 | unidirectional << 1 | opened_by_server`.
///
/// In both, the lowest bit tells who opened the stream ([`StreamId::initiator`]). Ids are never
/// reused within a connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

impl StreamId {
    /// The side that opened this stream.
    pub fn initiator(self) -> Side {
        if self.0 & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        }
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which side of the WebSocket we are: the client sent the HTTP upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Sent the upgrade request; opens streams with even ids.
    Client,
    /// Answered it; opens streams with odd ids.
    Server,
}

impl Side {
    /// The lowest bit of the ids this side opens: 0 for the client, 1 for the server.
    pub fn parity(self) -> u64 {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }

    /// The other side.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// Which way a stream carries data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Both ways: each side has a send half and a receive half.
    Bi,
    /// One way, from the side that opened it (QMux only).
    Uni,
}

/// One direction of a stream, named from the point of view of the side whose half it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Half {
    /// The receiving half.
    Read,
    /// The sending half.
    Write,
}

/// Who started something: a close, a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// This side.
    Local,
    /// The peer.
    Peer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_bit_names_the_opener() {
        assert_eq!(StreamId(0).initiator(), Side::Client);
        assert_eq!(StreamId(7).initiator(), Side::Server);
        assert_eq!(StreamId(Side::Server.parity()).initiator(), Side::Server);
        assert_eq!(Side::Client.peer(), Side::Server);
    }
}
