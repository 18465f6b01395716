//! PID 1: set the guest up from its launch config and image disk, run the container process as the
//! image's user, reap everything, stop on request, report how the process ended, power off.
//!
//! The launch config is a file, /krata/launch.json of the initramfs (the node agent appends it to the
//! initrd as a cpio archive), or `krata.config=` on the kernel command line, or `--config` (tests).
//! The image (squashfs) is /dev/xvda, or `krata.image=` / `--image`. The control channel's device
//! (channel/) is /dev/hvc1, or `krata.channel=` / `--channel`. The process's end is printed on the
//! console as one line, `KRATA-EXIT {"exitCode":N}` or `KRATA-EXIT {"signal":N}`, and an init
//! failure as `KRATA-INIT-ERROR <reason>`.

use crate::channel;
use crate::config::Network;
use crate::netlink::{self, Netlink};
use crate::plan;
use crate::sys::{self, Reaped};
use crate::xenbus;
use std::ffi::CString;
use std::fs;

pub struct Options {
    /// The image's block device.
    pub image: String,
    /// The launch config file.
    pub config: String,
    /// Size of the writable layer over the image (tmpfs), MiB.
    pub rw_mib: u64,
    /// The control channel's device.
    pub channel: String,
}

/// Where the node agent's archive, unpacked by the kernel into the initramfs, puts the launch config.
pub const DEFAULT_CONFIG: &str = "/krata/launch.json";

impl Options {
    pub fn from_cmdline(cmdline: &str, args: &[String]) -> Options {
        let mut o = Options { image: "/dev/xvda".into(), config: DEFAULT_CONFIG.into(), rw_mib: 256, channel: channel::DEFAULT_DEVICE.into() };
        for word in cmdline.split_whitespace() {
            if let Some(v) = word.strip_prefix("krata.image=") {
                o.image = v.to_string();
            } else if let Some(v) = word.strip_prefix("krata.config=") {
                o.config = v.to_string();
            } else if let Some(v) = word.strip_prefix("krata.channel=") {
                o.channel = v.to_string();
            } else if let Some(v) = word.strip_prefix("krata.rw_mib=") {
                o.rw_mib = v.parse().unwrap_or(o.rw_mib);
            }
        }
        let mut i = 0;
        while i + 1 < args.len() {
            match args[i].as_str() {
                "--image" => o.image = args[i + 1].clone(),
                "--config" => o.config = args[i + 1].clone(),
                "--channel" => o.channel = args[i + 1].clone(),
                _ => {}
            }
            i += 1;
        }
        o
    }
}

const RUN: &str = "/run/krata";
const NEW_ROOT: &str = "/newroot";

fn mount_basics() -> Result<(), String> {
    // Mounted here even when something is already there (a test's namespace): the guest's view
    // must not depend on what was inherited.
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    sys::mkdir_p("/proc")?;
    sys::mount("proc", "/proc", "proc", nosuid, "")?;
    sys::mkdir_p("/sys")?;
    sys::mount("sysfs", "/sys", "sysfs", nosuid, "").or_else(|e| if std::path::Path::new("/sys/kernel").exists() { Ok(()) } else { Err(e) })?;
    sys::mkdir_p("/dev")?;
    sys::mount("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID, "mode=0755")?;
    sys::mkdir_p("/dev/pts")?;
    sys::mount("devpts", "/dev/pts", "devpts", libc::MS_NOSUID | libc::MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")?;
    // cgroup2, for processes in the image that manage cgroups; the guest itself is the isolation
    // boundary, so a kernel without it is not fatal.
    if sys::mkdir_p("/sys/fs/cgroup").and_then(|_| sys::mount("cgroup2", "/sys/fs/cgroup", "cgroup2", nosuid, "")).is_err() {
        eprintln!("guest-init: cgroup2 is not available; continuing without it");
    }
    sys::mkdir_p("/run")?;
    sys::mount("tmpfs", "/run", "tmpfs", libc::MS_NOSUID | libc::MS_NODEV, "mode=0755,size=16m")?;
    Ok(())
}

/// Modules the initrd carries for a stock kernel, in load order (`/lib/modules/krata.order`).
fn load_modules() -> Result<(), String> {
    let order = match fs::read_to_string("/lib/modules/krata.order") {
        Ok(o) => o,
        Err(_) => return Ok(()), // a kernel with everything built in
    };
    for line in order.lines().map(str::trim).filter(|l| !l.is_empty()) {
        sys::load_module(line)?;
    }
    Ok(())
}

/// Read the launch config, mount the image and build the root: the image read-only under a
/// size-limited writable layer.
fn build_root(o: &Options) -> Result<(String, plan::Plan, crate::config::LaunchConfig), String> {
    let config = plan::read_config(&o.config)?;
    // The root is assembled outside /run: /run itself is moved into it afterwards.
    let (lower, rw, root) = (format!("{}/image", RUN), format!("{}/rw", RUN), NEW_ROOT.to_string());
    for d in [&lower, &rw, &root] {
        sys::mkdir_p(d)?;
    }
    // The block device appears asynchronously once its frontend driver (just loaded) connects.
    wait_for(&o.image, 20_000)?;
    sys::mount(&o.image, &lower, "squashfs", libc::MS_RDONLY | libc::MS_NODEV, "")?;
    sys::mount("tmpfs", &rw, "tmpfs", libc::MS_NODEV, &format!("mode=0755,size={}m", o.rw_mib))?;
    sys::mkdir_p(&format!("{}/upper", rw))?;
    sys::mkdir_p(&format!("{}/work", rw))?;
    sys::mount("overlay", &root, "overlay", 0, &format!("lowerdir={},upperdir={}/upper,workdir={}/work", lower, rw, rw))?;
    write_identity_files(&root, &config.hostname)?;
    let p = plan::resolve_in_root(&config, &root)?;
    Ok((root, p, config))
}

fn wait_for(path: &str, timeout_ms: u64) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    while !std::path::Path::new(path).exists() {
        if std::time::Instant::now() >= deadline {
            return Err(format!("{} did not appear within {} s", path, timeout_ms / 1000));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

fn write_identity_files(root: &str, hostname: &str) -> Result<(), String> {
    let etc = format!("{}/etc", root);
    sys::mkdir_p(&etc)?;
    let name = if hostname.is_empty() { "localhost" } else { hostname };
    sys::sethostname(name)?;
    // Replaced, not edited: a symlink planted by the image must not redirect the write.
    for (file, body) in [("hostname", format!("{}\n", name)), ("hosts", format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n", name))] {
        let path = format!("{}/{}", etc, file);
        let _ = fs::remove_file(&path);
        fs::write(&path, body).map_err(|e| format!("write {}: {}", path, e))?;
    }
    Ok(())
}

/// Loopback up, then each interface (waiting for it: netfront attaches late) with its MTU and
/// addresses, then the routes.
fn configure_network(n: &Network) -> Result<(), String> {
    let mut nl = Netlink::open()?;
    if let Ok(lo) = netlink::wait_index("lo", 0) {
        nl.link_up(lo, None, "lo")?;
    }
    for i in &n.interfaces {
        let index = netlink::wait_index(&i.name, 20_000)?;
        if !i.offloads {
            netlink::disable_offloads(&i.name)?;
        }
        nl.link_up(index, i.mtu, &i.name)?;
        for a in &i.addresses {
            nl.add_address(index, &a.ip, a.prefix, &i.name)?;
        }
    }
    for r in &n.routes {
        let index = match &r.dev {
            Some(d) => Some(netlink::wait_index(d, 0)?),
            None => None,
        };
        let what = format!("add route to {}/{}{}", r.to.ip, r.to.prefix, r.via.map(|v| format!(" via {}", v)).unwrap_or_default());
        nl.add_route(&r.to.ip, r.to.prefix, r.via.as_ref(), index, &what)?;
    }
    Ok(())
}

/// /etc/resolv.conf in the new root when the Guest has nameservers; the image's otherwise.
fn write_resolv_conf(root: &str, n: &Network) -> Result<(), String> {
    if n.nameservers.is_empty() {
        return Ok(());
    }
    let mut body = String::new();
    for ns in &n.nameservers {
        body.push_str(&format!("nameserver {}\n", ns));
    }
    if !n.searches.is_empty() {
        body.push_str(&format!("search {}\n", n.searches.join(" ")));
    }
    let path = format!("{}/etc/resolv.conf", root);
    let _ = fs::remove_file(&path); // often a symlink in images: replaced, not followed
    fs::write(&path, body).map_err(|e| format!("write {}: {}", path, e))
}

/// Move the mounts the process needs into the new root and make it `/`.
fn switch_root(root: &str) -> Result<(), String> {
    for m in ["/dev", "/proc", "/sys", "/run"] {
        let target = format!("{}{}", root, m);
        sys::mkdir_p(&target)?;
        sys::mount(m, &target, "", libc::MS_MOVE, "")?;
    }
    // As switch_root does: the new root moved onto /, then chroot. Where / cannot take the move
    // (a test's chroot), chroot into the new root is the same for the process.
    if std::env::set_current_dir(root).is_err() {
        return Err(format!("chdir {}", root));
    }
    match sys::mount(".", "/", "", libc::MS_MOVE, "") {
        Ok(()) => sys::chroot_here("."),
        Err(_) => sys::chroot_here(root),
    }
}

/// fork + exec as the resolved identity. An error before exec reaches us through a CLOEXEC pipe.
fn spawn(p: &plan::Plan, tty: bool) -> Result<libc::pid_t, String> {
    let argv: Vec<CString> = p.argv.iter().map(|a| sys::cstr(a)).collect::<Result<_, _>>()?;
    let envp: Vec<CString> = p.env.iter().map(|(k, v)| sys::cstr(&format!("{}={}", k, v))).collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let dir = sys::cstr(&p.working_dir)?;
    let dev_null = sys::cstr("/dev/null")?;
    let groups: Vec<libc::gid_t> = p.identity.groups.clone();
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: between fork and exec the child only makes async-signal-safe calls on memory prepared
    // above, then writes a fixed-size error report and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        unsafe {
            libc::close(fds[0]);
            sys::unblock_all();
            let fail = |step: u8| {
                let report = [step, *libc::__errno_location() as u8];
                libc::write(fds[1], report.as_ptr() as *const libc::c_void, 2);
                libc::_exit(127);
            };
            if libc::setsid() < 0 {
                fail(1);
            }
            if tty {
                // The console becomes the process's controlling terminal (stdin, stdout, stderr).
                if libc::ioctl(0, libc::TIOCSCTTY, 1) != 0 {
                    fail(2);
                }
            } else {
                // As for a container without a TTY: no input; output still goes to the console (logs).
                let null = libc::open(dev_null.as_ptr(), libc::O_RDONLY);
                if null < 0 || libc::dup2(null, 0) < 0 {
                    fail(8);
                }
                libc::close(null);
            }
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                fail(3);
            }
            if libc::setgid(p.identity.gid) != 0 {
                fail(4);
            }
            if libc::setuid(p.identity.uid) != 0 {
                fail(5);
            }
            if libc::chdir(dir.as_ptr()) != 0 {
                fail(6);
            }
            libc::execve(argv_ptrs[0], argv_ptrs.as_ptr(), env_ptrs.as_ptr());
            fail(7);
        }
    }
    // SAFETY: closing our copy of the write end, then reading the child's report, if any.
    unsafe {
        libc::close(fds[1]);
        let mut report = [0u8; 2];
        let n = libc::read(fds[0], report.as_mut_ptr() as *mut libc::c_void, 2);
        libc::close(fds[0]);
        if n == 2 {
            let step = ["", "setsid", "set the controlling TTY", "setgroups", "setgid", "setuid", "chdir", "execve", "stdin from /dev/null"][report[0] as usize % 9];
            let what = match report[0] {
                6 => format!("chdir {}", p.working_dir),
                7 => format!("execve {}", p.argv[0]),
                _ => step.to_string(),
            };
            return Err(format!("{}: {}", what, std::io::Error::from_raw_os_error(report[1] as i32)));
        }
    }
    Ok(pid)
}

fn report(line: &str) {
    println!("{}", line);
}

/// The host learns how the guest ended from xenstore (krata/guest/ is the only place the guest may
/// write); the console line is for people and for runs without Xen, where there is no xenbus.
fn report_to_host(key: &str, value: &str) {
    if !std::path::Path::new(xenbus::XENBUS_PATH).exists() {
        return;
    }
    // Bounded: the reason is free text, and xenstore limits a value to 4 KiB.
    let value: String = value.chars().take(2048).collect();
    if let Err(e) = xenbus::Xenbus::open().and_then(|mut xs| xs.write(&format!("krata/guest/{}", key), &value)) {
        eprintln!("guest-init: could not report {} to the host: {}", key, e);
    }
}

fn init_error(reason: &str) -> i32 {
    report(&format!("KRATA-INIT-ERROR {}", reason));
    report_to_host("init-error", reason);
    1
}

/// The host's stop request arrives the standard way for a PV guest: the kernel watches
/// control/shutdown itself and, for poweroff or halt, runs `poweroff_cmd`, for reboot signals init
/// (with Ctrl-Alt-Del handling off). poweroff_cmd is pointed back at this binary (through /proc/1/exe,
/// which exists whatever the image holds), and it signals PID 1; the main loop does the rest.
fn route_shutdown_requests() {
    if std::process::id() != 1 {
        return;
    }
    let _ = fs::write("/proc/sys/kernel/poweroff_cmd", format!("/proc/1/exe {}\n", POWEROFF_ARG));
    // SAFETY: RB_DISABLE_CAD only changes what Ctrl-Alt-Del (and a reboot request) does: SIGINT to us.
    unsafe { libc::reboot(libc::RB_DISABLE_CAD) };
}

/// The argument poweroff_cmd runs guest-init with.
pub const POWEROFF_ARG: &str = "krata-poweroff";

/// Everything else still running gets SIGTERM, then SIGKILL after `grace_ms`; all are reaped.
fn stop_everything(set: &libc::sigset_t, grace_ms: u64) {
    // SAFETY: kill(-1) signals every process we may signal, in our PID namespace all but ourselves.
    unsafe { libc::kill(-1, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(grace_ms);
    while std::time::Instant::now() < deadline {
        while sys::reap_one().is_some() {}
        // SAFETY: kill(-1, 0) asks whether any process is left to signal.
        if unsafe { libc::kill(-1, 0) } != 0 {
            return;
        }
        sys::wait_signal(set, 50);
    }
    unsafe { libc::kill(-1, libc::SIGKILL) };
    while sys::reap_one().is_some() {}
}

pub fn run(args: &[String]) -> i32 {
    // Signals are taken synchronously; children get them unblocked back before exec.
    let set = sys::block_signals(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2, libc::SIGPWR]);
    if let Err(e) = mount_basics() {
        return init_error(&e);
    }
    // The kernel command line is readable once /proc is mounted.
    let o = &Options::from_cmdline(&fs::read_to_string("/proc/cmdline").unwrap_or_default(), args);
    let setup = load_modules().and_then(|_| build_root(o));
    let (root, p, config) = match setup {
        Ok(x) => x,
        Err(e) => return init_error(&e),
    };
    if let Err(e) = configure_network(&config.network).and_then(|_| write_resolv_conf(&root, &config.network)).and_then(|_| switch_root(&root)) {
        return init_error(&e);
    }
    route_shutdown_requests();
    let main = match spawn(&p, config.process.tty) {
        Ok(pid) => pid,
        Err(e) => return init_error(&e),
    };
    // Beside the main process, never before it: a channel that fails or waits must not hold it up.
    channel::start(&p, &o.channel);
    // vCPUs the host hot-plugs later are brought up (the kernel leaves that to userspace).
    if std::process::id() == 1 {
        crate::cpus::start();
    }
    let grace_ms = config.shutdown_grace_seconds.saturating_mul(1000);
    let mut stop_deadline: Option<std::time::Instant> = None;
    loop {
        let signal = sys::wait_signal(&set, 1000);
        // Every ended child is reaped (PID 1 inherits orphans); the main process's end is the guest's.
        while let Some((pid, how)) = sys::reap_one() {
            if pid == main {
                let (key, value) = match how {
                    Reaped::Exited(code) => ("exit-code", code),
                    Reaped::Signaled(sig) => ("signal", sig),
                };
                report(&format!("KRATA-EXIT {{\"{}\":{}}}", if key == "exit-code" { "exitCode" } else { "signal" }, value));
                report_to_host(key, &value.to_string());
                stop_everything(&set, 2000);
                return 0;
            }
            // An exec session's process: the channel thread reports it.
            channel::deliver_exit(pid, &how);
        }
        match signal {
            // A shutdown request (the kernel's poweroff path signals init; the xenstore watch will
            // too): SIGTERM to the process group, SIGKILL after the grace period.
            Some(libc::SIGTERM) | Some(libc::SIGINT) | Some(libc::SIGUSR2) | Some(libc::SIGPWR) if stop_deadline.is_none() => {
                unsafe { libc::kill(-main, libc::SIGTERM) };
                stop_deadline = Some(std::time::Instant::now() + std::time::Duration::from_millis(grace_ms));
            }
            _ => {}
        }
        if let Some(d) = stop_deadline {
            if std::time::Instant::now() >= d {
                unsafe { libc::kill(-main, libc::SIGKILL) };
            }
        }
    }
}

/// The end of PID 1: flush and power the machine off (in a PID namespace this ends the namespace).
pub fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    std::process::exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_cmdline_and_arguments() {
        let o = Options::from_cmdline("console=hvc0 krata.image=/dev/vda krata.rw_mib=64", &[]);
        assert_eq!((o.image.as_str(), o.config.as_str(), o.rw_mib), ("/dev/vda", "/krata/launch.json", 64));
        let o = Options::from_cmdline("krata.config=/etc/other.json", &[]);
        assert_eq!(o.config, "/etc/other.json");
        let o = Options::from_cmdline("krata.config=/etc/other.json", &["guest-init".into(), "--config".into(), "/tmp/launch.json".into()]);
        assert_eq!((o.image.as_str(), o.config.as_str(), o.channel.as_str()), ("/dev/xvda", "/tmp/launch.json", "/dev/hvc1"));
        let o = Options::from_cmdline("krata.channel=/dev/hvc2", &[]);
        assert_eq!(o.channel, "/dev/hvc2");
        let o = Options::from_cmdline("krata.channel=/dev/hvc2", &["--channel".into(), "/proc/self/fd/3".into()]);
        assert_eq!(o.channel, "/proc/self/fd/3");
    }
}
