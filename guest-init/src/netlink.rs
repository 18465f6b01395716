//! Network configuration through rtnetlink (no `ip` binary in the guest): links up with an MTU,
//! IPv4/IPv6 addresses, routes. Each request is acknowledged by the kernel; an error names it.

use std::net::IpAddr;

const NETLINK_ROUTE: libc::c_int = 0;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_MTU: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const IFF_UP: u32 = 0x1;
const IFA_F_NODAD: u8 = 0x02;

pub struct Netlink {
    fd: libc::c_int,
    seq: u32,
}

fn attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn family(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        libc::AF_INET as u8
    } else {
        libc::AF_INET6 as u8
    }
}

impl Netlink {
    pub fn open() -> Result<Netlink, String> {
        // SAFETY: plain socket creation.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_ROUTE) };
        if fd < 0 {
            return Err(format!("netlink socket: {}", std::io::Error::last_os_error()));
        }
        Ok(Netlink { fd, seq: 1 })
    }

    /// Send one request and wait for its acknowledgement.
    fn request(&mut self, kind: u16, flags: u16, body: &[u8], what: &str) -> Result<(), String> {
        self.seq += 1;
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: a live buffer; the kernel is the destination (default address of a netlink socket).
        if unsafe { libc::send(self.fd, msg.as_ptr() as *const libc::c_void, msg.len(), 0) } < 0 {
            return Err(format!("{}: netlink send: {}", what, std::io::Error::last_os_error()));
        }
        let mut buf = vec![0u8; 8192];
        loop {
            // SAFETY: reading into a live buffer.
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            if n < 0 {
                return Err(format!("{}: netlink recv: {}", what, std::io::Error::last_os_error()));
            }
            let mut at = 0usize;
            while at + 16 <= n as usize {
                let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
                let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
                let seq = u32::from_ne_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]);
                if len < 16 || at + len > n as usize {
                    return Err(format!("{}: malformed netlink reply", what));
                }
                if ty == NLMSG_ERROR && seq == self.seq && len >= 20 {
                    let code = i32::from_ne_bytes([buf[at + 16], buf[at + 17], buf[at + 18], buf[at + 19]]);
                    return if code == 0 { Ok(()) } else { Err(format!("{}: {}", what, std::io::Error::from_raw_os_error(-code))) };
                }
                at += (len + 3) & !3;
            }
        }
    }

    /// Bring a link up, with an MTU when given.
    pub fn link_up(&mut self, index: u32, mtu: Option<u32>, name: &str) -> Result<(), String> {
        let mut body = Vec::new();
        body.push(libc::AF_UNSPEC as u8);
        body.push(0);
        body.extend_from_slice(&0u16.to_ne_bytes());
        body.extend_from_slice(&(index as i32).to_ne_bytes());
        body.extend_from_slice(&IFF_UP.to_ne_bytes());
        body.extend_from_slice(&IFF_UP.to_ne_bytes());
        if let Some(m) = mtu {
            attr(&mut body, IFLA_MTU, &m.to_ne_bytes());
        }
        self.request(RTM_NEWLINK, 0, &body, &format!("set {} up", name))
    }

    pub fn add_address(&mut self, index: u32, ip: &IpAddr, prefix: u8, name: &str) -> Result<(), String> {
        // IPv6: no duplicate address detection, the host hands out unique addresses, and a tentative
        // address would delay the guest's first connections by a second or two.
        let flags = if ip.is_ipv6() { IFA_F_NODAD } else { 0 };
        let mut body = vec![family(ip), prefix, flags, RT_SCOPE_UNIVERSE];
        body.extend_from_slice(&index.to_ne_bytes());
        attr(&mut body, IFA_LOCAL, &ip_bytes(ip));
        attr(&mut body, IFA_ADDRESS, &ip_bytes(ip));
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &body, &format!("add {}/{} to {}", ip, prefix, name))
    }

    /// A route to `dst/prefix` (prefix 0: default) via `gateway`, or on-link through `index`.
    pub fn add_route(&mut self, dst: &IpAddr, prefix: u8, gateway: Option<&IpAddr>, index: Option<u32>, what: &str) -> Result<(), String> {
        let scope = if gateway.is_none() { RT_SCOPE_LINK } else { RT_SCOPE_UNIVERSE };
        let mut body = vec![family(dst), prefix, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST];
        body.extend_from_slice(&0u32.to_ne_bytes());
        if prefix > 0 {
            attr(&mut body, RTA_DST, &ip_bytes(dst));
        }
        if let Some(gw) = gateway {
            attr(&mut body, RTA_GATEWAY, &ip_bytes(gw));
        }
        if let Some(i) = index {
            attr(&mut body, RTA_OIF, &i.to_ne_bytes());
        }
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &body, what)
    }
}

impl Drop for Netlink {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// The interface's index, waiting up to `timeout_ms` for it to appear (netfront attaches late).
pub fn wait_index(name: &str, timeout_ms: u64) -> Result<u32, String> {
    let c = crate::sys::cstr(name)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    loop {
        // SAFETY: a NUL-terminated name.
        let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if i != 0 {
            return Ok(i);
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("network interface {} did not appear within {} s", name, timeout_ms / 1000));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let mut out = Vec::new();
        attr(&mut out, IFA_LOCAL, &[10, 0, 0, 2]);
        assert_eq!(out.len(), 8);
        attr(&mut out, 7, &[1, 2, 3, 4, 5]);
        assert_eq!(out.len(), 8 + 12);
        assert_eq!(u16::from_ne_bytes([out[8], out[9]]), 9, "the length counts header and data, not the padding");
        assert_eq!(u16::from_ne_bytes([out[10], out[11]]), 7);
    }
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_SSG: u32 = 0x19;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_SGRO: u32 = 0x2c;

/// Checksum and segmentation offloads off (legacy ethtool ioctls): a userspace network on the host
/// then gets whole packets with their checksums computed, as a physical wire would carry them.
/// Features the device does not have (EOPNOTSUPP) are skipped.
pub fn disable_offloads(name: &str) -> Result<(), String> {
    if name.len() > 15 {
        return Err(format!("{}: interface name too long", name));
    }
    // SAFETY: a plain datagram socket, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!("offloads of {}: socket: {}", name, std::io::Error::last_os_error()));
    }
    let mut result = Ok(());
    for (cmd, what) in [(ETHTOOL_STSO, "TCP segmentation"), (ETHTOOL_SGSO, "generic segmentation"), (ETHTOOL_SGRO, "generic receive"), (ETHTOOL_SSG, "scatter-gather"), (ETHTOOL_STXCSUM, "TX checksumming")] {
        // struct ethtool_value { u32 cmd; u32 data } and struct ifreq { char name[16]; void *data; ... }.
        let mut value = [0u32; 2];
        value[0] = cmd;
        let mut ifr = [0u8; 40];
        ifr[..name.len()].copy_from_slice(name.as_bytes());
        ifr[16..24].copy_from_slice(&(value.as_mut_ptr() as usize as u64).to_ne_bytes());
        // SAFETY: ifr is a valid struct ifreq whose data pointer points at `value`, alive here.
        if unsafe { libc::ioctl(fd, SIOCETHTOOL, ifr.as_mut_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                result = Err(format!("turn {} offload off on {}: {}", what, name, e));
                break;
            }
        }
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    result
}
