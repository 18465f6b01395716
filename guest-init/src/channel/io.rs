//! Descriptor helpers for the channel thread: non-blocking reads and writes that say what happened
//! instead of failing, and bounded logging (a channel problem must never flood the console).

use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};

pub fn set_nonblocking(fd: RawFd) -> Result<(), String> {
    // SAFETY: fcntl on a descriptor the caller owns.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(format!("fcntl O_NONBLOCK: {}", std::io::Error::last_os_error()))
    }
}

pub enum Got {
    Data(usize),
    /// Nothing to read now.
    Again,
    /// EOF, or EIO from a pty master whose slave is closed everywhere.
    End,
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> Got {
    loop {
        // SAFETY: a live buffer of the length given.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n > 0 {
            return Got::Data(n as usize);
        }
        if n == 0 {
            return Got::End;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Got::Again,
            _ => return Got::End,
        }
    }
}

/// Bytes written (0 when the descriptor is full), or Err for a closed or broken one.
pub fn write(fd: RawFd, buf: &[u8]) -> Result<usize, std::io::Error> {
    loop {
        // SAFETY: a live buffer of the length given.
        let n = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(0),
            _ => return Err(e),
        }
    }
}

const MAX_LOG_LINES: u32 = 100;
static LOGGED: AtomicU32 = AtomicU32::new(0);

/// One line on stderr (the console), at most MAX_LOG_LINES in all. Never panics: PID 1 must not.
pub fn log(line: &str) {
    use std::io::Write;
    let n = LOGGED.fetch_add(1, Ordering::Relaxed);
    if n < MAX_LOG_LINES {
        let _ = writeln!(std::io::stderr(), "guest-init: channel: {}", line);
    } else if n == MAX_LOG_LINES {
        let _ = writeln!(std::io::stderr(), "guest-init: channel: further messages are not shown");
    }
}
