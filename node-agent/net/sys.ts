// What kratanet's frame I/O needs beyond libc itself (lib/libc.ts, the one binding): the Linux constants and
// struct layouts of packet sockets, tun/tap, virtio-net headers and interface ioctls, and small helpers on
// them. Struct layouts and constants are written here from the Linux/glibc headers named next to them and
// checked against those headers by a gcc probe in link.test.ts.
import { AF_INET, check, errno, libc, SO_ERROR, SOCK_CLOEXEC, SOCK_DGRAM, SOL_SOCKET } from '../../lib/libc.js';
import { ioc, IOC_WRITE, layout } from '../../lib/c-layout.js';

// ---- constants -------------------------------------------------------------------------------------------

// linux/if_ether.h
export const ETH_P_ALL = 0x0003;
export const ETH_HLEN = 14;

// linux/if_packet.h
export const SOL_PACKET = 263;
export const PACKET_VNET_HDR = 15;
export const PACKET_IGNORE_OUTGOING = 23;
export const PACKET_OUTGOING = 4;
export const PACKET_RX_RING = 5;
export const PACKET_STATISTICS = 6;
export const PACKET_COPY_THRESH = 7;
export const PACKET_VERSION = 10;
export const TPACKET_V2 = 1;
export const TPACKET_ALIGNMENT = 16;
export const TP_STATUS_KERNEL = 0;
export const TP_STATUS_USER = 1;
export const TP_STATUS_COPY = 2;
export const TP_STATUS_LOSING = 4;

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
/** struct sockaddr_in (netinet/in.h); the port and address in network byte order. */
export const sockaddrIn = layout('struct sockaddr_in', 16, {
  sin_family: { offset: 0, type: 'u16' },
  sin_port: { offset: 2, type: 'u16' },
  sin_addr: { offset: 4, type: 'bytes', length: 4 },
});
/** struct sockaddr_in6 (netinet/in.h) */
export const sockaddrIn6 = layout('struct sockaddr_in6', 28, {
  sin6_family: { offset: 0, type: 'u16' },
  sin6_port: { offset: 2, type: 'u16' },
  sin6_flowinfo: { offset: 4, type: 'u32' },
  sin6_addr: { offset: 8, type: 'bytes', length: 16 },
  sin6_scope_id: { offset: 24, type: 'u32' },
});
/** struct tpacket_req (linux/if_packet.h): the shape of a packet socket's ring. */
export const tpacketReq = layout('struct tpacket_req', 16, {
  tp_block_size: { offset: 0, type: 'u32' },
  tp_block_nr: { offset: 4, type: 'u32' },
  tp_frame_size: { offset: 8, type: 'u32' },
  tp_frame_nr: { offset: 12, type: 'u32' },
});
/** struct tpacket2_hdr (linux/if_packet.h): the head of each TPACKET_V2 ring frame, a sockaddr_ll after it. */
export const tpacket2Hdr = layout('struct tpacket2_hdr', 32, {
  tp_status: { offset: 0, type: 'u32' },
  tp_len: { offset: 4, type: 'u32' },
  tp_snaplen: { offset: 8, type: 'u32' },
  tp_mac: { offset: 12, type: 'u16' },
  tp_net: { offset: 14, type: 'u16' },
  tp_sec: { offset: 16, type: 'u32' },
  tp_nsec: { offset: 20, type: 'u32' },
  tp_vlan_tci: { offset: 24, type: 'u16' },
  tp_vlan_tpid: { offset: 26, type: 'u16' },
  tp_padding: { offset: 28, type: 'bytes', length: 4 },
});
/** struct tpacket_stats (linux/if_packet.h): PACKET_STATISTICS's counts since the last read. */
export const tpacketStats = layout('struct tpacket_stats', 8, {
  tp_packets: { offset: 0, type: 'u32' },
  tp_drops: { offset: 4, type: 'u32' },
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
export const SOCKADDR_IN_SIZE = sockaddrIn.size;
export const SOCKADDR_IN6_SIZE = sockaddrIn6.size;
export const SIN_ADDR = sockaddrIn.fields.sin_addr.offset;
export const SIN6_ADDR = sockaddrIn6.fields.sin6_addr.offset;

export function htons(v: number): number {
  return ((v & 0xff) << 8) | ((v >> 8) & 0xff);
}

// Little-endian loads and stores for native tables touched per frame (Buffer's methods cost ~10 ns a
// call: see wire.ts's get32/put32).

export function put16le(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
}

export function put32le(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

/** An unsigned 32-bit little-endian load. */
export function get32le(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/** Writes a native address (a number below 2^53) as a little-endian u64 without BigInt. */
export function writeAddr(buf: Uint8Array, at: number, addr: number): void {
  put32le(buf, at, addr % 0x100000000);
  put32le(buf, at + 4, Math.floor(addr / 0x100000000));
}

/** An address from koffi.address() as a number; throws if it would not be exact. */
export function addrNumber(a: bigint): number {
  if (a > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`address 0x${a.toString(16)} is beyond 2^53`);
  return Number(a);
}

export function setIntOpt(fd: number, level: number, name: number, value: number, what: string): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  check(`setsockopt ${what}`, libc().setsockopt(fd, level, name, b, 4));
}

/** Takes (and so clears) a socket's pending error: SO_ERROR's value, or getsockopt's own errno. */
export function takeSocketError(fd: number): number {
  const v = Buffer.alloc(4);
  const len = Buffer.from([4, 0, 0, 0]);
  if (libc().getsockopt(fd, SOL_SOCKET, SO_ERROR, v, len) < 0) return errno();
  return v.readInt32LE(0);
}

export function ifreqFor(name: string): Buffer {
  const b = Buffer.alloc(ifreq.size);
  const n = Buffer.from(name, 'utf8');
  if (n.length >= IFNAMSIZ || n.length === 0)
    throw new RangeError(`interface name ${JSON.stringify(name)} must be 1..${IFNAMSIZ - 1} bytes`);
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
  return check(what, libc().ioctl(fd, request, 'void *', arg));
}

/** MTU of `name` (SIOCGIFMTU), and bring it up (SIOCSIFFLAGS IFF_UP) if down, through a throwaway AF_INET socket. */
export function ifMtuAndUp(name: string): number {
  const s = check('socket AF_INET', libc().socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
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
    libc().close(s);
  }
}
