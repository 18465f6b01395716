//! Pseudo-terminals for `tty` sessions, and window sizes (of a session's pty or of the console).

use std::fs::File;
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};

fn err(what: &str) -> String {
    format!("{}: {}", what, std::io::Error::last_os_error())
}

/// TIOCSWINSZ: the terminal's size; its foreground process group gets SIGWINCH.
pub fn set_size(fd: RawFd, rows: u16, cols: u16) -> Result<(), String> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: a valid winsize for the ioctl to read.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(err("TIOCSWINSZ"));
    }
    Ok(())
}

/// A new pty of `rows` × `cols`: (master, non-blocking; slave, not yet anyone's controlling tty).
/// Both are close-on-exec: the child dups the slave onto its stdio.
pub fn open(rows: u16, cols: u16) -> Result<(File, File), String> {
    // SAFETY: posix_openpt returns a new descriptor or -1; wrapped at once so it is closed on error.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(err("posix_openpt"));
    }
    // SAFETY: fd is ours alone.
    let master = unsafe { File::from_raw_fd(fd) };
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: the master descriptor and a buffer of the length given.
    unsafe {
        if libc::grantpt(fd) != 0 {
            return Err(err("grantpt"));
        }
        if libc::unlockpt(fd) != 0 {
            return Err(err("unlockpt"));
        }
        if libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) != 0 {
            return Err(err("ptsname"));
        }
    }
    // SAFETY: ptsname_r wrote a NUL-terminated path into name.
    let slave_fd = unsafe { libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if slave_fd < 0 {
        return Err(err("open the pty's slave"));
    }
    // SAFETY: slave_fd is ours alone.
    let slave = unsafe { File::from_raw_fd(slave_fd) };
    set_size(master.as_raw_fd(), rows, cols)?;
    super::io::set_nonblocking(master.as_raw_fd())?;
    Ok((master, slave))
}
