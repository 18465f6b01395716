//! Thin, checked wrappers over the system calls PID 1 makes: each error names the call and its
//! arguments, because it ends up in the Guest's status as the reason the guest failed.

use std::ffi::CString;
use std::io;

pub fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{:?} contains a NUL character", s))
}

fn last(what: String) -> String {
    format!("{}: {}", what, io::Error::last_os_error())
}

pub fn mount(source: &str, target: &str, fstype: &str, flags: libc::c_ulong, data: &str) -> Result<(), String> {
    let (s, t, f, d) = (cstr(source)?, cstr(target)?, cstr(fstype)?, cstr(data)?);
    let data_ptr = if data.is_empty() { std::ptr::null() } else { d.as_ptr() as *const libc::c_void };
    let fs_ptr = if fstype.is_empty() { std::ptr::null() } else { f.as_ptr() };
    // SAFETY: every pointer is a live NUL-terminated string or null, as mount(2) allows.
    if unsafe { libc::mount(s.as_ptr(), t.as_ptr(), fs_ptr, flags, data_ptr) } != 0 {
        return Err(last(format!("mount {} on {} ({})", source, target, if fstype.is_empty() { "move/bind" } else { fstype })));
    }
    Ok(())
}

pub fn mkdir_p(path: &str) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("mkdir {}: {}", path, e))
}

pub fn chroot_here(dir: &str) -> Result<(), String> {
    let d = cstr(dir)?;
    let dot = cstr(".")?;
    // SAFETY: plain path arguments.
    unsafe {
        if libc::chdir(d.as_ptr()) != 0 {
            return Err(last(format!("chdir {}", dir)));
        }
        if libc::chroot(dot.as_ptr()) != 0 {
            return Err(last(format!("chroot {}", dir)));
        }
        if libc::chdir(cstr("/")?.as_ptr()) != 0 {
            return Err(last("chdir /".to_string()));
        }
    }
    Ok(())
}

pub fn sethostname(name: &str) -> Result<(), String> {
    // SAFETY: pointer and length of a live buffer.
    if unsafe { libc::sethostname(name.as_ptr() as *const libc::c_char, name.len()) } != 0 {
        return Err(last(format!("sethostname {}", name)));
    }
    Ok(())
}

/// Load a kernel module from a file (finit_module), tolerating one that is already loaded or built in.
pub fn load_module(path: &str) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("open {}: {}", path, e))?;
    use std::os::unix::io::AsRawFd;
    let empty = cstr("")?;
    // SAFETY: a valid descriptor and an empty parameter string.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), empty.as_ptr(), 0) };
    if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
        return Err(last(format!("load module {}", path)));
    }
    Ok(())
}

pub fn block_signals(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

pub fn unblock_all() {
    // SAFETY: as above.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Wait up to `timeout_ms` for one of the blocked signals in `set`.
pub fn wait_signal(set: &libc::sigset_t, timeout_ms: u64) -> Option<libc::c_int> {
    let ts = libc::timespec { tv_sec: (timeout_ms / 1000) as libc::time_t, tv_nsec: ((timeout_ms % 1000) * 1_000_000) as libc::c_long };
    // SAFETY: valid set and timespec; the siginfo is not needed.
    let r = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    if r > 0 {
        Some(r)
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    Exited(i32),
    Signaled(i32),
}

/// Reap one child without blocking: (pid, how it ended), or None when none has ended.
pub fn reap_one() -> Option<(libc::pid_t, Reaped)> {
    let mut status = 0;
    // SAFETY: status is a valid out pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    if libc::WIFEXITED(status) {
        Some((pid, Reaped::Exited(libc::WEXITSTATUS(status))))
    } else if libc::WIFSIGNALED(status) {
        Some((pid, Reaped::Signaled(libc::WTERMSIG(status))))
    } else {
        Some((pid, Reaped::Exited(0)))
    }
}
