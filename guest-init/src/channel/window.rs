//! Per-direction flow control (PROTOCOL.md, "Flow control"): what the guest may still send, and
//! what the host may still send and how much credit to give back.

pub const INITIAL_WINDOW: u32 = 262144;
/// Credit is returned in batches of at least this much (or when everything was taken), so a
/// trickle of small reads does not become a flood of WINDOW frames.
const RETURN_BATCH: u32 = 16384;

/// Output the guest sends (STDOUT, STDERR): bytes the host has room for.
#[derive(Debug)]
pub struct Credit(u32);

impl Default for Credit {
    fn default() -> Self {
        Credit(INITIAL_WINDOW)
    }
}

impl Credit {
    pub fn available(&self) -> u32 {
        self.0
    }
    /// Record `n` bytes sent (the caller sent at most `available()`).
    pub fn spend(&mut self, n: usize) {
        self.0 = self.0.saturating_sub(n.min(u32::MAX as usize) as u32);
    }
    /// A WINDOW from the host. Saturates: a confused host cannot wrap it back to a small number.
    pub fn grant(&mut self, increment: u32) {
        self.0 = self.0.saturating_add(increment);
    }
}

/// Input the host sends (STDIN): the room it was given, and what the process took but the host
/// has not been credited for yet.
#[derive(Debug)]
pub struct Granted {
    room: u32,
    taken: u32,
}

impl Default for Granted {
    fn default() -> Self {
        Granted { room: INITIAL_WINDOW, taken: 0 }
    }
}

impl Granted {
    /// `n` bytes arrived: false when they exceed the window (the host broke the protocol).
    pub fn accept(&mut self, n: usize) -> bool {
        if n > self.room as usize {
            return false;
        }
        self.room -= n as u32;
        true
    }
    /// The consumer took `n` bytes.
    pub fn taken(&mut self, n: usize) {
        self.taken = self.taken.saturating_add(n.min(u32::MAX as usize) as u32);
    }
    /// Credit to return now, if it is worth a frame: a batch, or all of it once nothing is queued.
    pub fn credit_due(&mut self, queue_empty: bool) -> Option<u32> {
        if self.taken == 0 || (self.taken < RETURN_BATCH && !queue_empty) {
            return None;
        }
        let n = self.taken;
        self.taken = 0;
        self.room = self.room.saturating_add(n);
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_never_exceeds_the_hosts_credit() {
        let mut c = Credit::default();
        assert_eq!(c.available(), INITIAL_WINDOW);
        c.spend(INITIAL_WINDOW as usize);
        assert_eq!(c.available(), 0, "a stalled host stops the output");
        c.spend(10);
        assert_eq!(c.available(), 0);
        c.grant(100);
        assert_eq!(c.available(), 100);
        c.grant(u32::MAX);
        assert_eq!(c.available(), u32::MAX, "saturates rather than wrapping");
    }

    #[test]
    fn input_is_held_to_the_window_and_credit_comes_back_as_it_is_taken() {
        let mut g = Granted::default();
        assert!(g.accept(INITIAL_WINDOW as usize - 10));
        assert!(!g.accept(11), "past the window");
        assert!(g.accept(10));
        assert!(!g.accept(1));
        g.taken(100);
        assert_eq!(g.credit_due(false), None, "a small amount waits while more is queued");
        assert_eq!(g.credit_due(true), Some(100), "all of it once the queue is empty");
        assert_eq!(g.credit_due(true), None);
        assert!(g.accept(100) && !g.accept(1), "the returned credit is room again");
        g.taken(RETURN_BATCH as usize);
        assert_eq!(g.credit_due(false), Some(RETURN_BATCH));
    }
}
