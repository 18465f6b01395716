//! Starting an exec session's process: the request resolved against the main process's defaults
//! (env, identity, working directory, PATH), then fork + exec in a new session, on a pty or pipes.
//! As runtime::spawn, an error before exec comes back through a close-on-exec pipe, so the host
//! hears STARTED only once execve succeeded.

use super::messages::{merge_env, ExecRequest};
use super::{io, pty, reaper};
use crate::{plan, process, sys, users};
use std::ffi::CString;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};

/// What an exec inherits unless the request says otherwise: the main process's.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub env: Vec<(String, String)>,
    pub identity: users::Identity,
    pub working_dir: String,
}

/// Why a process did not start, as EXIT reports it: 127 when the program is missing, else 126.
#[derive(Debug, PartialEq, Eq)]
pub struct StartError {
    pub message: String,
    pub code: i32,
}

fn fail(message: String) -> StartError {
    StartError { message, code: 126 }
}

/// What to run, fully resolved.
#[derive(Debug, PartialEq, Eq)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub identity: users::Identity,
    pub cwd: String,
}

fn is_executable(path: &str) -> bool {
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Resolve a request: `user` against /etc/passwd and /etc/group as the image's User is.
pub fn resolve(req: &ExecRequest, d: &Defaults, passwd: &str, group: &str, is_exec: impl Fn(&str) -> bool) -> Result<Launch, StartError> {
    let env = merge_env(&d.env, &req.env);
    let identity = match &req.user {
        Some(spec) => users::resolve(spec, &users::parse_passwd(passwd), &users::parse_group(group)).map_err(fail)?,
        None => d.identity.clone(),
    };
    let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str()).unwrap_or(process::DEFAULT_PATH);
    let mut argv = req.argv.clone();
    let first = argv.first_mut().ok_or_else(|| fail("argv: empty".to_string()))?;
    *first = process::lookup(first, path, is_exec).map_err(|message| StartError { message, code: 127 })?;
    let cwd = req.cwd.clone().unwrap_or_else(|| d.working_dir.clone());
    Ok(Launch { argv, env, identity, cwd })
}

/// /etc/passwd or /etc/group of the guest's root (the image's), bounded as for the main process.
fn read_db(path: &str) -> String {
    plan::read_bounded(path, plan::MAX_DB_BYTES).unwrap_or_default()
}

pub fn resolve_here(req: &ExecRequest, d: &Defaults) -> Result<Launch, StartError> {
    // Read only when needed: most execs run as the main process's user.
    let (passwd, group) = match req.user {
        Some(_) => (read_db("/etc/passwd"), read_db("/etc/group")),
        None => (String::new(), String::new()),
    };
    resolve(req, d, &passwd, &group, is_executable)
}

/// A running session process and the parent's ends of its stdio.
pub struct Child {
    pub pid: libc::pid_t,
    /// Where STDIN goes: a pipe, or the pty master; None with `stdin: false`.
    pub stdin: Option<File>,
    pub stdout: File,
    /// None on a pty (the slave is stdout and stderr).
    pub stderr: Option<File>,
    /// The pty master, for RESIZE.
    pub pty: Option<File>,
}

/// A pipe: (read end, write end), both close-on-exec so no other session's child holds them.
fn pipe() -> Result<(File, File), StartError> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two descriptors, wrapped at once.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(fail(format!("pipe: {}", std::io::Error::last_os_error())));
    }
    // SAFETY: both descriptors are new and ours alone.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

fn dev_null() -> Result<File, StartError> {
    std::fs::File::open("/dev/null").map_err(|e| fail(format!("/dev/null: {}", e)))
}

const STEPS: [&str; 9] = ["", "setsid", "set the controlling TTY", "set up stdio", "setgroups", "setgid", "setuid", "chdir", "execve"];
const STEP_CHDIR: u8 = 7;
const STEP_EXECVE: u8 = 8;

pub fn spawn(l: &Launch, tty: bool, stdin: bool, rows: u16, cols: u16) -> Result<Child, StartError> {
    let cs = |s: &str| sys::cstr(s).map_err(fail);
    let argv: Vec<CString> = l.argv.iter().map(|a| cs(a)).collect::<Result<_, _>>()?;
    let envp: Vec<CString> = l.env.iter().map(|(k, v)| cs(&format!("{}={}", k, v))).collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let dir = cs(&l.cwd)?;
    let groups = l.identity.groups.clone();
    let (uid, gid) = (l.identity.uid, l.identity.gid);
    // Root switches identity always (the groups too); anyone else can only stay who it is.
    // SAFETY: plain getters.
    let switch_ids = unsafe { libc::geteuid() == 0 || libc::geteuid() != uid || libc::getegid() != gid };

    // The child's stdio (theirs) and what the parent keeps (ours).
    let (mut ours_in, mut ours_err, mut pty_master) = (None, None, None);
    let (their_in, their_out, their_err, stdout): (File, File, File, File);
    if tty {
        let (master, slave) = pty::open(rows, cols).map_err(fail)?;
        // The terminal is stdin even without `stdin` (as `docker exec -t`): programs ask it for its
        // size and mode. The host just sends nothing.
        their_in = slave.try_clone().map_err(|e| fail(format!("dup: {}", e)))?;
        their_err = slave.try_clone().map_err(|e| fail(format!("dup: {}", e)))?;
        their_out = slave;
        if stdin {
            ours_in = Some(master.try_clone().map_err(|e| fail(format!("dup: {}", e)))?);
        }
        pty_master = Some(master.try_clone().map_err(|e| fail(format!("dup: {}", e)))?);
        stdout = master;
    } else {
        their_in = if stdin {
            let (r, w) = pipe()?;
            ours_in = Some(w);
            r
        } else {
            dev_null()?
        };
        let (r, w) = pipe()?;
        stdout = r;
        their_out = w;
        let (r, w) = pipe()?;
        ours_err = Some(r);
        their_err = w;
    }
    let stdio: [RawFd; 3] = [their_in.as_raw_fd(), their_out.as_raw_fd(), their_err.as_raw_fd()];
    let (report_r, report_w) = pipe()?;
    let report_w_fd = report_w.as_raw_fd();

    // Held across fork and claim: the reaper cannot hand this pid's status over before it is claimed.
    let mut registry = reaper::lock();
    // SAFETY: between fork and exec the child only makes async-signal-safe calls on memory prepared
    // above (no allocation, no locks), then writes a fixed-size error report and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(fail(format!("fork: {}", std::io::Error::last_os_error())));
    }
    if pid == 0 {
        unsafe {
            let fail = |step: u8| {
                let report = [step, *libc::__errno_location() as u8];
                libc::write(report_w_fd, report.as_ptr() as *const libc::c_void, 2);
                libc::_exit(127);
            };
            sys::unblock_all();
            // Rust ignores SIGPIPE for itself; a command expects the default.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if libc::setsid() < 0 {
                fail(1);
            }
            if tty && libc::ioctl(stdio[1], libc::TIOCSCTTY, 0) != 0 {
                fail(2);
            }
            for (target, fd) in stdio.iter().enumerate() {
                let target = target as RawFd;
                // dup2 onto itself would leave close-on-exec set.
                let ok = if *fd == target { libc::fcntl(target, libc::F_SETFD, 0) == 0 } else { libc::dup2(*fd, target) == target };
                if !ok {
                    fail(3);
                }
            }
            if switch_ids {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                    fail(4);
                }
                if libc::setgid(gid) != 0 {
                    fail(5);
                }
                if libc::setuid(uid) != 0 {
                    fail(6);
                }
            }
            if libc::chdir(dir.as_ptr()) != 0 {
                fail(STEP_CHDIR);
            }
            libc::execve(argv_ptrs[0], argv_ptrs.as_ptr(), env_ptrs.as_ptr());
            fail(STEP_EXECVE);
        }
    }
    registry.claim(pid);
    drop(registry);
    drop((their_in, their_out, their_err, report_w));
    let mut report = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match io::read(report_r.as_raw_fd(), &mut report[got..]) {
            io::Got::Data(n) => got += n,
            // The report pipe is blocking: Again means an interrupted read, so read again.
            io::Got::Again => continue,
            io::Got::End => break,
        }
    }
    if got == 2 {
        // The child has exited (or will): its status is of no interest now.
        reaper::lock().release(pid);
        let errno = std::io::Error::from_raw_os_error(report[1] as i32);
        let step = STEPS[report[0] as usize % STEPS.len()];
        let message = match report[0] {
            STEP_CHDIR => format!("chdir {}: {}", l.cwd, errno),
            STEP_EXECVE => format!("execve {}: {}", l.argv[0], errno),
            _ => format!("{}: {}", step, errno),
        };
        let code = if report[0] == STEP_EXECVE && report[1] as i32 == libc::ENOENT { 127 } else { 126 };
        return Err(StartError { message, code });
    }
    for f in [Some(&stdout), ours_in.as_ref(), ours_err.as_ref()].iter().flatten() {
        io::set_nonblocking(f.as_raw_fd()).map_err(fail)?;
    }
    Ok(Child { pid, stdin: ours_in, stdout, stderr: ours_err, pty: pty_master })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::messages::parse_exec;

    fn defaults() -> Defaults {
        Defaults {
            env: vec![("PATH".into(), "/usr/bin:/bin".into()), ("HOME".into(), "/home/app".into())],
            identity: users::Identity { uid: 1000, gid: 1000, groups: vec![1000], home: "/home/app".into() },
            working_dir: "/srv".into(),
        }
    }
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root\n";

    fn r(json: &str) -> Result<Launch, StartError> {
        resolve(&parse_exec(json.as_bytes()).unwrap(), &defaults(), PASSWD, GROUP, |p| p == "/bin/sh" || p == "/opt/bin/tool")
    }

    #[test]
    fn defaults_are_the_main_processs() {
        let l = r(r#"{"argv":["sh","-c","x"]}"#).unwrap();
        assert_eq!(l.argv, vec!["/bin/sh", "-c", "x"]);
        assert_eq!((l.identity, l.cwd, l.env), (defaults().identity, "/srv".to_string(), defaults().env));
    }

    #[test]
    fn overrides_and_user_resolution() {
        let l = r(r#"{"argv":["tool"],"env":["PATH=/opt/bin","K=V"],"cwd":"/tmp","user":"root"}"#).unwrap();
        assert_eq!(l.argv, vec!["/opt/bin/tool"], "looked up in the overridden PATH");
        assert_eq!((l.identity.uid, l.identity.gid, l.identity.groups.clone()), (0, 0, vec![0, 10]));
        assert_eq!(l.cwd, "/tmp");
        assert!(l.env.contains(&("K".into(), "V".into())));
        assert_eq!(r(r#"{"argv":["sh"],"user":"4242:7"}"#).unwrap().identity.gid, 7);
    }

    #[test]
    fn failures_have_their_exit_codes() {
        let e = r(r#"{"argv":["nope"]}"#).unwrap_err();
        assert_eq!(e.code, 127);
        assert!(e.message.contains("not found in PATH"), "{}", e.message);
        let e = r(r#"{"argv":["sh"],"user":"ghost"}"#).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (126, "user \"ghost\" is not in the image's /etc/passwd"));
    }
}
