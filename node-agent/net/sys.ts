// The libc calls kratanet's frame I/O needs (packet sockets, tun, epoll, eventfd), through koffi, loaded
// lazily like lib/libc.ts. Hot-path functions take native addresses as plain numbers (intptr_t): the
// tables and arenas they point at live in anonymous mmaps whose addresses are computed once, so a call
// creates no Buffer, no BigInt and nothing for koffi to pin.
//
// Struct layouts and constants are written here from the Linux/glibc headers named next to them and checked
// against those headers by a gcc probe in link.test.ts.
import koffi from 'koffi';
import { SysError } from '../../lib/libc.js';
import { ioc, IOC_WRITE, layout } from '../xen/sys/layout.js';

// ---- constants -------------------------------------------------------------------------------------------

// sys/socket.h, bits/socket_type.h
export const AF_INET = 2;
export const AF_PACKET = 17;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const MSG_DONTWAIT = 0x40;
export const MSG_TRUNC = 0x20;

// linux/if_ether.h
export const ETH_P_ALL = 0x0003;
export const ETH_HLEN = 14;

// linux/if_packet.h
export const SOL_PACKET = 263;
export const PACKET_VNET_HDR = 15;
export const PACKET_IGNORE_OUTGOING = 23;
export const PACKET_OUTGOING = 4;

// linux/virtio_net.h
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

// linux/if_tun.h
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
/** _IOW('T', 202, int) */
export const TUNSETIFF = ioc(IOC_WRITE, 'T', 202, 4);
/** _IOW('T', 208, unsigned int) */
export const TUNSETOFFLOAD = ioc(IOC_WRITE, 'T', 208, 4);

// linux/sockios.h, net/if.h
export const SIOCGIFFLAGS = 0x8913;
export const SIOCSIFFLAGS = 0x8914;
export const SIOCGIFMTU = 0x8921;
export const IFF_UP = 0x1;
export const IFNAMSIZ = 16;

// sys/epoll.h
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;

// sys/eventfd.h
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;

// fcntl.h
export const O_RDWR = 0o2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const F_GETFL = 3;
export const F_SETFL = 4;

// errno (asm-generic/errno-base.h, errno.h)
export const EINTR = 4;
export const EAGAIN = 11;
export const ENOBUFS = 105;

// ---- struct layouts (x86_64 / LP64) ----------------------------------------------------------------------

/** struct iovec (sys/uio.h) */
export const iovec = layout('struct iovec', 16, {
  iov_base: { offset: 0, type: 'u64' },
  iov_len: { offset: 8, type: 'u64' },
});
/** struct msghdr (sys/socket.h) */
export const msghdr = layout('struct msghdr', 56, {
  msg_name: { offset: 0, type: 'u64' },
  msg_namelen: { offset: 8, type: 'u32' },
  msg_iov: { offset: 16, type: 'u64' },
  msg_iovlen: { offset: 24, type: 'u64' },
  msg_control: { offset: 32, type: 'u64' },
  msg_controllen: { offset: 40, type: 'u64' },
  msg_flags: { offset: 48, type: 'i32' },
});
/** struct mmsghdr (sys/socket.h): a msghdr and the byte count the call filled in. */
export const mmsghdr = layout('struct mmsghdr', 64, {
  msg_hdr: { offset: 0, type: 'bytes', length: 56 },
  msg_len: { offset: 56, type: 'u32' },
});
/** struct sockaddr_ll (linux/if_packet.h) */
export const sockaddrLl = layout('struct sockaddr_ll', 20, {
  sll_family: { offset: 0, type: 'u16' },
  sll_protocol: { offset: 2, type: 'u16' },
  sll_ifindex: { offset: 4, type: 'i32' },
  sll_hatype: { offset: 8, type: 'u16' },
  sll_pkttype: { offset: 10, type: 'u8' },
  sll_halen: { offset: 11, type: 'u8' },
  sll_addr: { offset: 12, type: 'bytes', length: 8 },
});
/** struct virtio_net_hdr (linux/virtio_net.h): the 10-byte header PACKET_VNET_HDR and IFF_VNET_HDR use. */
export const virtioNetHdr = layout('struct virtio_net_hdr', 10, {
  flags: { offset: 0, type: 'u8' },
  gso_type: { offset: 1, type: 'u8' },
  hdr_len: { offset: 2, type: 'u16' },
  gso_size: { offset: 4, type: 'u16' },
  csum_start: { offset: 6, type: 'u16' },
  csum_offset: { offset: 8, type: 'u16' },
});
/** struct ifreq (net/if.h): the name and the members of its union we use. */
export const ifreq = layout('struct ifreq', 40, {
  ifr_name: { offset: 0, type: 'bytes', length: IFNAMSIZ },
  ifr_flags: { offset: 16, type: 'u16' },
  ifr_mtu: { offset: 16, type: 'i32' },
  ifr_ifindex: { offset: 16, type: 'i32' },
});
/** struct epoll_event (sys/epoll.h): packed on x86_64 (12 bytes), naturally aligned (16) elsewhere. */
export const epollEvent = process.arch === 'x64'
  ? layout('struct epoll_event', 12, { events: { offset: 0, type: 'u32' }, data: { offset: 4, type: 'u64' } })
  : layout('struct epoll_event', 16, { events: { offset: 0, type: 'u32' }, data: { offset: 8, type: 'u64' } });

export const VNET_HDR_LEN = virtioNetHdr.size;
export const MMSGHDR_SIZE = mmsghdr.size;
export const IOVEC_SIZE = iovec.size;
export const MMSG_LEN = mmsghdr.fields.msg_len.offset;
export const MSG_NAME = msghdr.fields.msg_name.offset;
export const MSG_NAMELEN = msghdr.fields.msg_namelen.offset;
export const MSG_IOV = msghdr.fields.msg_iov.offset;
export const MSG_IOVLEN = msghdr.fields.msg_iovlen.offset;
export const MSG_FLAGS = msghdr.fields.msg_flags.offset;
export const IOV_BASE = iovec.fields.iov_base.offset;
export const IOV_LEN = iovec.fields.iov_len.offset;
export const SLL_PKTTYPE = sockaddrLl.fields.sll_pkttype.offset;

// ---- bindings --------------------------------------------------------------------------------------------

/** Native addresses are passed as numbers (intptr_t); user-space addresses fit in 53 bits. */
type Addr = number;

export interface NetLibc {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  recvmmsg(fd: number, msgvec: Addr, vlen: number, flags: number, timeout: null): number;
  sendmmsg(fd: number, msgvec: Addr, vlen: number, flags: number): number;
  read(fd: number, buf: Addr, n: number): number;
  write(fd: number, buf: Addr, n: number): number;
  writev(fd: number, iov: Addr, iovcnt: number): number;
  epoll_create1(flags: number): number;
  epoll_ctl(epfd: number, op: number, fd: number, event: Addr): number;
  epoll_wait(epfd: number, events: Addr, maxevents: number, timeout: number): number;
  eventfd(initval: number, flags: number): number;
  pipe2(fds: Addr, flags: number): number;
  fcntl(fd: number, cmd: number, ...rest: unknown[]): number;
  if_nametoindex(name: string): number;
  ioctl(fd: number, request: number, ...rest: unknown[]): number;
  close(fd: number): number;
}

let lib: NetLibc | undefined;

export function net(): NetLibc {
  if (!lib) {
    const l = koffi.load('libc.so.6');
    lib = {
      socket: l.func('int socket(int domain, int type, int protocol)'),
      bind: l.func('int bind(int fd, const void *addr, uint32_t len)'),
      setsockopt: l.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
      recvmmsg: l.func('int recvmmsg(int fd, intptr_t msgvec, unsigned int vlen, int flags, void *timeout)'),
      sendmmsg: l.func('int sendmmsg(int fd, intptr_t msgvec, unsigned int vlen, int flags)'),
      read: l.func('long read(int fd, intptr_t buf, size_t n)'),
      write: l.func('long write(int fd, intptr_t buf, size_t n)'),
      writev: l.func('long writev(int fd, intptr_t iov, int iovcnt)'),
      epoll_create1: l.func('int epoll_create1(int flags)'),
      epoll_ctl: l.func('int epoll_ctl(int epfd, int op, int fd, intptr_t event)'),
      epoll_wait: l.func('int epoll_wait(int epfd, intptr_t events, int maxevents, int timeout)'),
      eventfd: l.func('int eventfd(unsigned int initval, int flags)'),
      pipe2: l.func('int pipe2(intptr_t fds, int flags)'),
      fcntl: l.func('int fcntl(int fd, int cmd, ...)'),
      if_nametoindex: l.func('unsigned int if_nametoindex(const char *name)'),
      ioctl: l.func('int ioctl(int fd, unsigned long request, ...)'),
      close: l.func('int close(int fd)'),
    };
  }
  return lib;
}

/** The errno of the last failed call on this thread. */
export function errno(): number {
  return koffi.errno();
}

export function check(call: string, result: number): number {
  if (result < 0) throw new SysError(call, koffi.errno());
  return result;
}

export function htons(v: number): number {
  return ((v & 0xff) << 8) | ((v >> 8) & 0xff);
}

/** Writes a native address (a number below 2^53) as a little-endian u64 without BigInt. */
export function writeAddr(buf: Buffer, at: number, addr: number): void {
  buf.writeUInt32LE(addr % 0x100000000, at);
  buf.writeUInt32LE(Math.floor(addr / 0x100000000), at + 4);
}

/** An address from koffi.address() as a number; throws if it would not be exact. */
export function addrNumber(a: bigint): number {
  if (a > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`address 0x${a.toString(16)} is beyond 2^53`);
  return Number(a);
}

export function setIntOpt(fd: number, level: number, name: number, value: number, what: string): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  check(`setsockopt ${what}`, net().setsockopt(fd, level, name, b, 4));
}

export function ifreqFor(name: string): Buffer {
  const b = Buffer.alloc(ifreq.size);
  const n = Buffer.from(name, 'utf8');
  if (n.length >= IFNAMSIZ || n.length === 0) throw new RangeError(`interface name ${JSON.stringify(name)} must be 1..${IFNAMSIZ - 1} bytes`);
  n.copy(b, 0);
  return b;
}

/** The NUL-terminated name in an ifreq. */
export function ifreqName(b: Buffer): string {
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 || end > IFNAMSIZ ? IFNAMSIZ : end);
}

/** ioctl with a pointer argument. */
export function ioctlPtr(fd: number, request: number, arg: Buffer, what: string): number {
  return check(what, net().ioctl(fd, request, 'void *', arg));
}

/** MTU of `name` (SIOCGIFMTU), and bring it up (SIOCSIFFLAGS IFF_UP) if down, through a throwaway AF_INET socket. */
export function ifMtuAndUp(name: string): number {
  const s = check('socket AF_INET', net().socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  try {
    const req = ifreqFor(name);
    ioctlPtr(s, SIOCGIFMTU, req, `SIOCGIFMTU ${name}`);
    const mtu = req.readInt32LE(ifreq.fields.ifr_mtu.offset);
    req.fill(0, IFNAMSIZ);
    ioctlPtr(s, SIOCGIFFLAGS, req, `SIOCGIFFLAGS ${name}`);
    const flags = req.readUInt16LE(ifreq.fields.ifr_flags.offset);
    if (!(flags & IFF_UP)) {
      req.writeUInt16LE(flags | IFF_UP, ifreq.fields.ifr_flags.offset);
      ioctlPtr(s, SIOCSIFFLAGS, req, `SIOCSIFFLAGS ${name}`);
    }
    return mtu;
  } finally {
    net().close(s);
  }
}

// ---- sendto/recvfrom (for icmp-echo.ts) ------------------------------------------------------------------
// Datagram I/O on raw sockets with plain Buffers (koffi passes their memory, no copy, no BigInt).

interface DgramLibc {
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrLen: number): number;
  recvfrom(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer | null, addrLen: Buffer | null): number;
}

let dgramLib: DgramLibc | undefined;

function dgram(): DgramLibc {
  if (!dgramLib) {
    const l = koffi.load('libc.so.6');
    dgramLib = {
      sendto: l.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
      recvfrom: l.func('long recvfrom(int fd, void *buf, size_t len, int flags, void *addr, void *addrlen)'),
    };
  }
  return dgramLib;
}

/** sendto(2) of buf[0, len) to the sockaddr in addr[0, addrLen); -1 and errno() on failure. */
export function sysSendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrLen: number): number {
  return dgram().sendto(fd, buf, len, flags, addr, addrLen);
}

/**
 * recvfrom(2) into buf[0, len); the sender's sockaddr goes to `addr` when given, with `addrLen` a 4-byte
 * socklen_t holding addr's size on entry and the address length on return. -1 and errno() on failure.
 */
export function sysRecvfrom(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer | null, addrLen: Buffer | null): number {
  return dgram().recvfrom(fd, buf, len, flags, addr, addrLen);
}
