//! Exits of session processes, handed from whoever reaps children (PID 1's main loop, or the
//! standalone mode's main thread) to the channel thread: a registry of the pids the channel owns,
//! their statuses, and a pipe that wakes the channel thread's poll.
//!
//! No race with a child that ends at once: the channel thread holds the lock across fork and
//! claim, and `deliver` takes the same lock, so a status is never looked up before its pid is
//! claimed.

use super::messages::Ended;
use std::os::unix::io::RawFd;
use std::sync::{Mutex, MutexGuard};

pub struct Registry {
    claimed: Vec<libc::pid_t>,
    exits: Vec<(libc::pid_t, Ended)>,
    wake: RawFd,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { claimed: Vec::new(), exits: Vec::new(), wake: -1 });

pub fn lock() -> MutexGuard<'static, Registry> {
    // With panic=abort nothing can poison it; in tests, carry on with the data regardless.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    pub fn claim(&mut self, pid: libc::pid_t) {
        self.claimed.push(pid);
    }

    /// The channel no longer wants this pid's status (a session closed or never started).
    pub fn release(&mut self, pid: libc::pid_t) {
        self.claimed.retain(|p| *p != pid);
        self.exits.retain(|(p, _)| *p != pid);
    }

    pub fn take_exits(&mut self) -> Vec<(libc::pid_t, Ended)> {
        let exits = std::mem::take(&mut self.exits);
        self.claimed.retain(|p| !exits.iter().any(|(e, _)| e == p));
        exits
    }
}

/// The read end of the wake pipe: readable whenever an exit was delivered. Made once per server.
pub fn wake_pipe() -> Result<RawFd, String> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let mut r = lock();
    if r.wake >= 0 {
        // SAFETY: the previous server's write end, ours to close.
        unsafe { libc::close(r.wake) };
    }
    r.wake = fds[1];
    Ok(fds[0])
}

/// A reaped child: true when it was a session's process (the channel thread now has its status).
pub fn deliver(pid: libc::pid_t, how: Ended) -> bool {
    let mut r = lock();
    if !r.claimed.contains(&pid) {
        return false;
    }
    r.exits.push((pid, how));
    if r.wake >= 0 {
        // SAFETY: one byte from a live buffer; a full pipe (EAGAIN) already means "wake up".
        unsafe { libc::write(r.wake, [1u8].as_ptr() as *const libc::c_void, 1) };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_claimed_pids_are_delivered_and_released_ones_are_forgotten() {
        // Pids far above pid_max: no real child interferes with this test.
        let (a, b) = (0x3fff_0001, 0x3fff_0002);
        lock().claim(a);
        lock().claim(b);
        assert!(!deliver(0x3fff_0003, Ended::Code(0)), "not a session's");
        assert!(deliver(a, Ended::Code(3)));
        assert!(deliver(b, Ended::Signal(9)));
        lock().release(b);
        let exits: Vec<_> = lock().take_exits().into_iter().filter(|(p, _)| *p == a || *p == b).collect();
        assert_eq!(exits, vec![(a, Ended::Code(3))]);
        assert!(!deliver(a, Ended::Code(0)), "taken once, then no longer claimed");
    }
}
