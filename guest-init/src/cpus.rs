//! vCPUs the host hot-plugs. Linux's Xen CPU hotplug driver acts on the host's cpu/N/availability: it
//! takes a vCPU offline itself, but one marked online is only registered (a new /sys/devices/system/cpu
//! /cpuN, announced by a uevent) and left offline: bringing it up is userspace's job (udev's
//! elsewhere). A thread listens for those uevents and writes 1 to the CPU's `online`; when it starts
//! it does the same for any CPU registered before it listened.

use std::fs;
use std::time::Duration;

const CPU_DIR: &str = "/sys/devices/system/cpu";
/// The uevent multicast group the kernel sends to.
const KERNEL_GROUP: u32 = 1;

/// Starts the thread; a kernel without uevents (or a sandbox without sysfs) is left as it is.
pub fn start() {
    let _ = std::thread::Builder::new().name("cpus".into()).spawn(|| {
        if let Some(fd) = open_uevents() {
            online_offline_cpus();
            listen(fd);
        }
    });
}

fn open_uevents() -> Option<libc::c_int> {
    // SAFETY: a plain socket(2); the descriptor is owned by this thread for the process's life.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_KOBJECT_UEVENT) };
    if fd < 0 {
        return None;
    }
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value, then the fields we need are set.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = KERNEL_GROUP;
    let len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_nl of `len` bytes.
    if unsafe { libc::bind(fd, &addr as *const libc::sockaddr_nl as *const libc::sockaddr, len) } != 0 {
        unsafe { libc::close(fd) };
        return None;
    }
    Some(fd)
}

fn listen(fd: libc::c_int) {
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: sockaddr_nl zeroed is valid; recvfrom writes at most buf.len() bytes and the address.
        let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
                &mut from as *mut libc::sockaddr_nl as *mut libc::sockaddr,
                &mut from_len,
            )
        };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // ENOBUFS (events dropped under load): look at every CPU instead.
            online_offline_cpus();
            continue;
        }
        // Only the kernel's own messages (port 0): another process in the guest cannot fake one.
        if from.nl_pid != 0 {
            continue;
        }
        if let Some(cpu) = added_cpu(&buf[..n as usize]) {
            online(cpu);
        }
    }
}

/// The CPU number of an "add@/devices/system/cpu/cpuN" uevent.
pub fn added_cpu(msg: &[u8]) -> Option<u32> {
    let header = msg.split(|&b| b == 0).next()?;
    let rest = std::str::from_utf8(header).ok()?.strip_prefix("add@/devices/system/cpu/cpu")?;
    if rest.is_empty() || rest.len() > 5 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// Writes 1 to cpuN/online. The driver registers the CPU just before it marks it present, so a write
/// that comes too early is refused: a few tries.
fn online(cpu: u32) {
    let path = format!("{}/cpu{}/online", CPU_DIR, cpu);
    for _ in 0..20 {
        if fs::read_to_string(&path).map(|v| v.trim() == "1").unwrap_or(false) || fs::write(&path, "1").is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("guest-init: could not bring vCPU {} online", cpu);
}

/// Every registered CPU whose `online` says 0: registered by the host's request, not brought up yet.
fn online_offline_cpus() {
    let entries = match fs::read_dir(CPU_DIR) {
        Ok(e) => e,
        Err(_) => return,
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let cpu = name.to_str().and_then(|n| n.strip_prefix("cpu")).and_then(|n| n.parse::<u32>().ok());
        if let Some(cpu) = cpu {
            if fs::read_to_string(e.path().join("online")).map(|v| v.trim() == "0").unwrap_or(false) {
                online(cpu);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::added_cpu;

    #[test]
    fn cpu_add_uevents_and_nothing_else() {
        assert_eq!(added_cpu(b"add@/devices/system/cpu/cpu1\0ACTION=add\0DEVPATH=/devices/system/cpu/cpu1\0"), Some(1));
        assert_eq!(added_cpu(b"add@/devices/system/cpu/cpu63\0"), Some(63));
        assert_eq!(added_cpu(b"remove@/devices/system/cpu/cpu1\0"), None);
        assert_eq!(added_cpu(b"add@/devices/system/cpu/cpufreq\0"), None);
        assert_eq!(added_cpu(b"add@/devices/system/cpu/cpu\0"), None);
        assert_eq!(added_cpu(b"add@/devices/system/cpu/cpu1/cache\0"), None);
        assert_eq!(added_cpu(b"add@/devices/system/cpu/cpu999999\0"), None);
        assert_eq!(added_cpu(b"libudev\0\xfe\xed\xca\xfe"), None);
    }
}
