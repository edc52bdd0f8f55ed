//! Flow-control credit for one direction of one stream (WIRE.md, "Flow control").

/// The receiving side's account: how much the peer may still send, and how much the application
/// has read that we have not yet granted back.
///
/// Credit goes back in batches — one ACK once half the window has been consumed — rather than
/// one ACK per DATA message as the peer library does; both are compatible.
#[derive(Debug, Clone)]
pub struct RecvCredit {
    window: u32,
    /// Bytes the peer may still send without overflowing.
    available: u64,
    /// Bytes the application consumed that are not yet granted back.
    unacked: u64,
}

/// DATA beyond the granted credit: the stream fails with a buffer overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

impl RecvCredit {
    /// A new stream; the peer's initial credit is our whole window (our opening ACK carries it).
    pub fn new(window: u32) -> Self {
        Self {
            window,
            available: u64::from(window),
            unacked: 0,
        }
    }

    /// The window announced in our first ACK.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// The peer sent `len` bytes.
    pub fn on_data(&mut self, len: usize) -> Result<(), Overflow> {
        let len = len as u64;
        if len > self.available {
            return Err(Overflow);
        }
        self.available -= len;
        Ok(())
    }

    /// The application consumed `len` bytes. Returns the credit to grant in an ACK, if it is time.
    pub fn on_consumed(&mut self, len: usize) -> Option<u32> {
        self.unacked += len as u64;
        let threshold = u64::from(self.window / 2).max(1);
        if self.unacked < threshold {
            return None;
        }
        // unacked <= window <= u32::MAX: buffered bytes never exceed the window.
        let grant = u32::try_from(self.unacked).unwrap_or(u32::MAX);
        self.unacked -= u64::from(grant);
        self.available += u64::from(grant);
        Some(grant)
    }
}

/// The sending side's account: credit granted by the peer's ACKs, spent by DATA we queue.
#[derive(Debug, Clone, Default)]
pub struct SendCredit {
    available: u64,
}

impl SendCredit {
    /// The peer granted `credit` more bytes. An ACK of 0 is tolerated (the peer library sends it).
    pub fn grant(&mut self, credit: u32) {
        self.available = self.available.saturating_add(u64::from(credit));
    }

    /// How many of `wanted` bytes may be sent now.
    pub fn allowance(&self, wanted: usize) -> usize {
        wanted.min(usize::try_from(self.available).unwrap_or(usize::MAX))
    }

    /// Spend `len` bytes (at most the allowance).
    pub fn spend(&mut self, len: usize) {
        debug_assert!(len as u64 <= self.available);
        self.available -= len as u64;
    }

    /// Credit left.
    pub fn available(&self) -> u64 {
        self.available
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_are_batched_at_half_the_window() {
        let mut credit = RecvCredit::new(16);
        credit.on_data(16).unwrap();
        assert_eq!(credit.on_data(1), Err(Overflow));
        assert_eq!(credit.on_consumed(7), None);
        assert_eq!(credit.on_consumed(1), Some(8));
        credit.on_data(8).unwrap();
        assert_eq!(credit.on_data(1), Err(Overflow));
    }

    #[test]
    fn window_of_one_acks_every_byte() {
        let mut credit = RecvCredit::new(1);
        credit.on_data(1).unwrap();
        assert_eq!(credit.on_consumed(1), Some(1));
    }

    #[test]
    fn huge_window_does_not_overflow_u32() {
        let mut credit = RecvCredit::new(u32::MAX);
        credit.on_data(u32::MAX as usize).unwrap();
        assert_eq!(credit.on_consumed(u32::MAX as usize), Some(u32::MAX));
    }

    #[test]
    fn send_credit_accumulates_and_is_spent() {
        let mut credit = SendCredit::default();
        assert_eq!(credit.allowance(10), 0);
        credit.grant(0);
        credit.grant(4);
        credit.grant(4);
        assert_eq!(credit.allowance(10), 8);
        credit.spend(8);
        assert_eq!(credit.available(), 0);
    }
}
