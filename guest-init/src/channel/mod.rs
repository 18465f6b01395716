//! guest-init's side of the control channel (contracts/guest-channel/PROTOCOL.md): exec sessions,
//! window sizes and usage figures, served on the guest's second console (/dev/hvc1) by a thread
//! of its own, so PID 1's duties never wait for it and a failure in it only ends the channel.
//!
//! At version 2 the conversation moves, once both sides agree, onto a bulk ring the guest grants
//! to dom0 itself (bulk.rs: /dev/xen/gntalloc and /dev/xen/evtchn); the console stays the
//! bootstrap, and where the ring cannot be had, the channel stays on the console.
//!
//! `guest-init channel --stdio` serves it on stdin/stdout in an ordinary process (for tests); it
//! never offers a bulk ring.

mod bulk;
mod device;
mod exec;
mod frame;
mod io;
mod messages;
mod metrics;
mod outbox;
mod pty;
mod reaper;
mod server;
mod session;
mod window;

use crate::plan::Plan;
use crate::sys::{self, Reaped};
use std::fs::File;
use std::os::unix::io::FromRawFd;

use exec::Defaults;

pub use device::DEFAULT_PATH as DEFAULT_DEVICE;

/// A child PID 1 (or the standalone mode) reaped: true when it was a session's, now the channel's.
pub fn deliver_exit(pid: libc::pid_t, how: &Reaped) -> bool {
    let ended = match how {
        Reaped::Exited(c) => messages::Ended::Code(*c),
        Reaped::Signaled(s) => messages::Ended::Signal(*s),
    };
    reaper::deliver(pid, ended)
}

/// In the guest, once the main process runs: serve `path` in a thread. Errors are logged.
pub fn start(p: &Plan, path: &str) {
    let defaults = Defaults { env: p.env.clone(), identity: p.identity.clone(), working_dir: p.working_dir.clone() };
    let path = path.to_string();
    let spawned = std::thread::Builder::new().name("channel".into()).spawn(move || {
        if !device::wait_for(&path, device::WAIT) {
            let secs = device::WAIT.as_secs();
            io::log(&format!("{} did not appear within {} s: no channel (exec and guest metrics are unavailable)", path, secs));
            return;
        }
        let opened = device::open(&path).and_then(|f| f.try_clone().map(|g| (f, g)).map_err(|e| format!("dup: {}", e)));
        let (input, output) = match opened {
            Ok(x) => x,
            Err(e) => return io::log(&format!("{}; no channel", e)),
        };
        let bulk: server::OpenBulk = Box::new(|| bulk::Bulk::open(bulk::IN_PAGES, bulk::OUT_PAGES));
        match server::serve(server::Io { input, output, console: device::console(), bulk: Some(bulk) }, defaults) {
            Ok(()) => io::log(&format!("{} hung up: the channel is closed", path)),
            Err(e) => io::log(&format!("{}: the channel is closed", e)),
        }
    });
    if let Err(e) = spawned {
        io::log(&format!("could not start its thread: {}", e));
    }
}

/// The current process's identity and environment, as the standalone mode's defaults.
fn current_defaults() -> Defaults {
    // SAFETY: plain getters; getgroups fills at most the buffer's length.
    let (uid, gid, groups) = unsafe {
        let mut groups = vec![0 as libc::gid_t; 256];
        let n = libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr());
        groups.truncate(n.max(0) as usize);
        (libc::geteuid(), libc::getegid(), groups)
    };
    let lossy = |s: std::ffi::OsString| s.to_string_lossy().into_owned();
    let env: Vec<(String, String)> = std::env::vars_os().map(|(k, v)| (lossy(k), lossy(v))).collect();
    let home = env.iter().find(|(k, _)| k == "HOME").map(|(_, v)| v.clone()).unwrap_or_else(|| "/".to_string());
    let working_dir = std::env::current_dir().map(|d| d.to_string_lossy().into_owned()).unwrap_or_else(|_| "/".to_string());
    Defaults { env, identity: crate::users::Identity { uid, gid, groups, home }, working_dir }
}

/// `guest-init channel --stdio`: the channel on fd 0 (from the host) and fd 1 (to it), with this
/// process's environment, identity and working directory as the defaults. The main thread reaps
/// children and delivers them as PID 1 does; the process ends when its input does.
pub fn stdio_main() -> i32 {
    let set = sys::block_signals(&[libc::SIGCHLD]);
    // SAFETY: descriptors 0 and 1 are this process's to use; nothing else here reads or writes them.
    let (input, output) = unsafe { (File::from_raw_fd(0), File::from_raw_fd(1)) };
    let defaults = current_defaults();
    let server = std::thread::spawn(move || server::serve(server::Io { input, output, console: None, bulk: None }, defaults));
    loop {
        sys::wait_signal(&set, 100);
        while let Some((pid, how)) = sys::reap_one() {
            deliver_exit(pid, &how);
        }
        if server.is_finished() {
            break;
        }
    }
    match server.join() {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            io::log(&e);
            1
        }
        Err(_) => 1,
    }
}
