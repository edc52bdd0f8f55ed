//! What the harness knows about one stream, from both ends: what the application did and saw
//! through the core's API, and what went over the wire in each direction.
//!
//! The wire half is filled from the messages themselves, decoded with the codec — the peer's as
//! they are fed in (raw bytes included), the core's as they come out — so the model never assumes
//! what the core made of a message: it only records what the peer said and checks that the core's
//! answers are explained by it.

use ws_stream_mux::proto::{ErrorCode, StreamKey};

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct StreamModel {
    /// The application's key, once it has one (it opened or accepted the stream).
    pub key: Option<StreamKey>,

    // ----- the application, through the core's API -----
    /// Bytes `write` accepted, in order.
    pub written: Vec<u8>,
    /// Bytes `read`/`read_chunk` returned, in order.
    pub read: Vec<u8>,
    /// The application dropped its send / receive half (`release`): it no longer uses it.
    pub send_released: bool,
    pub recv_released: bool,
    /// `finish` succeeded, or the send half was released without panicking (which finishes it).
    pub finished: bool,
    /// Codes the application reset with (`reset`, a panicking release).
    pub resets: Vec<ErrorCode>,
    /// Codes the application stopped with (`stop`, the release of the receive half).
    pub stops: Vec<ErrorCode>,
    /// The code a release stops or resets with.
    pub drop_code: ErrorCode,

    // ----- the peer's messages (the harness is the peer) -----
    /// DATA payloads the peer sent, concatenated.
    pub sent: Vec<u8>,
    /// How much the peer had sent when it sent its FIN (CLOSE Read), if it did.
    pub peer_fin_at: Option<usize>,
    /// Codes of the peer's ERROR Read (resets) and ERROR Write (stops).
    pub peer_resets: Vec<ErrorCode>,
    pub peer_stops: Vec<ErrorCode>,
    /// The peer sent CLOSE Write (a stop without a code).
    pub peer_close_write: bool,
    /// The peer opened the stream: its first message on this (peer-parity) id was an ACK.
    pub peer_opened: bool,
    /// The peer's first message on this new id was something else (a parse error for the id).
    pub peer_bad_opening: bool,
    /// The peer sent a malformed message for this id.
    pub peer_malformed: bool,
    /// The peer sent more DATA than the credit the core had granted on the wire so far.
    pub peer_over_credit: bool,
    /// Credit the peer granted the core (its ACKs).
    pub credit_to_core: u64,

    // ----- the core's messages -----
    /// Credit the core granted the peer (its ACKs).
    pub credit_from_core: u64,
    /// DATA bytes the core sent.
    pub data_from_core: usize,
    /// The core has sent something on the stream (the first must be the opening ACK).
    pub core_spoke: bool,
    /// The core sent its FIN (CLOSE Read), a reset (ERROR Read), a stop (ERROR Write).
    pub core_fin: bool,
    pub core_reset: bool,
    pub core_stopped: bool,
}

impl StreamModel {
    /// A stream whose releases use `drop_code`.
    pub fn new(drop_code: ErrorCode) -> Self {
        Self {
            drop_code,
            ..Self::default()
        }
    }
}
