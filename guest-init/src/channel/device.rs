//! The channel's device in a guest: `/dev/hvc1` (or `krata.channel=PATH` on the kernel command
//! line, parsed with the other options in runtime.rs), waited for, opened without becoming our
//! controlling tty, and made raw.

use std::fs::File;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

pub const DEFAULT_PATH: &str = "/dev/hvc1";
/// hvc1 appears once the console frontend has connected; a host without the channel never adds it.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn wait_for(path: &str, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while !std::path::Path::new(path).exists() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Open read-write and non-blocking; a tty is made raw, dropping whatever arrived before
/// (TCSAFLUSH), so a line discipline never echoes or rewrites the frames.
pub fn open(path: &str) -> Result<File, String> {
    let c = crate::sys::cstr(path)?;
    // SAFETY: a NUL-terminated path; the descriptor is wrapped at once.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(format!("open {}: {}", path, std::io::Error::last_os_error()));
    }
    // SAFETY: fd is new and ours alone.
    let f = unsafe { File::from_raw_fd(fd) };
    make_raw(f.as_raw_fd()).map_err(|e| format!("{}: {}", path, e))?;
    Ok(f)
}

fn make_raw(fd: i32) -> Result<(), String> {
    // SAFETY: termios is plain data filled by tcgetattr; both calls take a valid descriptor.
    unsafe {
        if libc::isatty(fd) != 1 {
            return Ok(());
        }
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return Err(format!("tcgetattr: {}", std::io::Error::last_os_error()));
        }
        libc::cfmakeraw(&mut t);
        if libc::tcsetattr(fd, libc::TCSAFLUSH, &t) != 0 {
            return Err(format!("tcsetattr: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// PID 1's stdin when it is a terminal: the console the main process has (its controlling tty
/// with `tty`), whose size RESIZE on stream 0 sets.
pub fn console() -> Option<File> {
    // SAFETY: isatty and fcntl on descriptor 0; the duplicate is ours alone.
    unsafe {
        if libc::isatty(0) != 1 {
            return None;
        }
        let fd = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3);
        if fd < 0 {
            None
        } else {
            Some(File::from_raw_fd(fd))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pty_slave_is_opened_raw() {
        let (master, slave) = crate::channel::pty::open(24, 80).unwrap();
        let path = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd())).unwrap();
        let f = open(path.to_str().unwrap()).unwrap();
        // SAFETY: termios filled by tcgetattr on a live descriptor.
        let t = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(f.as_raw_fd(), &mut t), 0);
            t
        };
        assert_eq!(t.c_lflag & (libc::ECHO | libc::ICANON), 0, "no echo, no line editing");
        assert_eq!(t.c_oflag & libc::OPOST, 0, "no output processing");
        drop(master);
    }
}
