// Raw Ethernet frame I/O for kratanet: an AF_PACKET socket bound to an interface (a Xen netback vif, the host
// end of a veth) or a TAP device. With offloads on, every frame is preceded by a struct virtio_net_hdr
// (PACKET_VNET_HDR / IFF_VNET_HDR), so TCP segmentation offload super-frames and partial checksums pass both
// ways untouched.
//
// Memory: a packet link receives into its own TPACKET_V2 ring, mapped from the kernel (small frames, no
// syscall), and frames too big for a ring slot, like a TAP's, into one process-wide receive arena
// (anonymous mmap, RX_SLOTS slots) with a prebuilt native mmsghdr/iovec/sockaddr_ll table, drained with
// recvmmsg (read for a TAP). Frames handed to onFrame are views into the ring or the arena, valid only
// during the call. Each link has its own transmit arena (bump-allocated, reset when everything queued
// has been sent) with a prebuilt mmsghdr/iovec table for sendmmsg (packet) or writev (tap). The hot path
// allocates nothing but the Buffer views, uses no BigInt, and passes native addresses to koffi as numbers.
import {
  AF_PACKET,
  check,
  EAGAIN,
  EINTR,
  errno,
  libc,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  MSG_DONTWAIT,
  MSG_TRUNC,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  SO_RCVBUFFORCE,
  SO_SNDBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_RAW,
  SOL_SOCKET,
  sysClose,
  sysMmap,
  sysOpen,
  SysError,
  type Mapping,
} from '../../lib/libc.js';
import { Poller } from './poller.js';
import {
  addrNumber,
  ETH_HLEN,
  ETH_P_ALL,
  get32le,
  htons,
  ifMtuAndUp,
  ifreqFor,
  ifreqName,
  ioctlPtr,
  IFF_NO_PI,
  IFF_TAP,
  IFF_VNET_HDR,
  IOV_BASE,
  IOV_LEN,
  IOVEC_SIZE,
  MMSG_LEN,
  MMSGHDR_SIZE,
  MSG_FLAGS,
  MSG_IOV,
  MSG_IOVLEN,
  MSG_NAME,
  MSG_NAMELEN,
  PACKET_IGNORE_OUTGOING,
  PACKET_OUTGOING,
  PACKET_COPY_THRESH,
  PACKET_RX_RING,
  PACKET_STATISTICS,
  PACKET_VERSION,
  PACKET_VNET_HDR,
  put16le,
  put32le,
  setIntOpt,
  SLL_PKTTYPE,
  sockaddrLl,
  SOL_PACKET,
  takeSocketError,
  TP_STATUS_COPY,
  TP_STATUS_KERNEL,
  TP_STATUS_LOSING,
  TP_STATUS_USER,
  TPACKET_ALIGNMENT,
  TPACKET_V2,
  tpacket2Hdr,
  tpacketReq,
  tpacketStats,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUNSETIFF,
  TUNSETOFFLOAD,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_HDR_GSO_UDP_L4,
  VNET_HDR_LEN,
  writeAddr,
} from './sys.js';

export type GsoType = 'none' | 'tcp4' | 'tcp6' | 'udp';
export interface RxMeta {
  csumPartial: boolean;
  gso: GsoType;
  gsoSize: number;
}
export interface TxOffload {
  /**
   * Checksum to be completed by the kernel/guest (VIRTIO_NET_HDR_F_NEEDS_CSUM): from csumStart (offset in the Ethernet frame),
   * stored at csumStart+csumOffset; the caller has put the pseudo-header sum there.
   */
  csumStart: number;
  csumOffset: number;
  /** A TCP segment larger than the MTU, split by the kernel/guest into gsoSize-byte segments. */
  gso?: 'tcp4' | 'tcp6';
  gsoSize?: number;
  hdrLen?: number;
}
export interface LinkStats {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  txDropped: number;
  rxDropped: number;
}
export interface Link {
  readonly name: string;
  readonly mtu: number;
  /** True when frames carry virtio-net headers (offloads: GSO in both directions, partial checksums). */
  readonly offloads: boolean;
  /**
   * Called for each received Ethernet frame; `frame` is a view into the link's ring or a shared arena,
   * valid only during the call. `meta` is reused too.
   */
  onFrame: (frame: Buffer, meta: RxMeta) => void;
  /** Called after each batch of received frames (a good moment to flush replies). */
  onBatchEnd: () => void;
  /** Space for one outgoing Ethernet frame of `len` bytes (len <= 65550) in this link's transmit arena. Fill it, then commit(). */
  alloc(len: number): Buffer;
  /**
   * Queues the frame last alloc()ed, possibly shortened to `len` bytes. Sent on flush() or on a setImmediate scheduled by the
   * first commit after a flush.
   */
  commit(len: number, offload?: TxOffload): void;
  flush(): void;
  close(): void;
  readonly stats: LinkStats;
}
export interface LinkOptions {
  poller?: Poller;
  rcvbuf?: number;
  sndbuf?: number;
  offloads?: boolean /* default true */;
  /** The clock that times a wake's slice (ms; default performance.now), for tests. */
  now?: () => number;
}

/** Largest frame alloc() accepts (an IP datagram of 65535 bytes behind an Ethernet header, and a VLAN tag). */
export const MAX_TX_FRAME = 65550;
/** Receive arena: slots per recvmmsg, bytes per slot (virtio_net_hdr + the largest GSO frame + slack). */
export const RX_SLOTS = 32;
export const RX_SLOT = 65600;
/** Frames read per readable wake before yielding to the other fds (level-triggered: the rest come next wake). */
export const RX_CAP = 256;
/**
 * Milliseconds of handling one wake may spend on a link's frames before yielding, frames that open flows
 * being far dearer than others: a guest flooding new flows is served in slices, and another guest's
 * frames wait about one slice per busy link, not for a whole batch of the flood. Reads are sized to what
 * fits in the slice at the link's recent cost per frame, so no frame is read and then left unhandled.
 */
export const RX_SLICE_MS = 10;
/** Transmit arena bytes and table entries (sendmmsg takes at most UIO_MAXIOV = 1024 messages). */
export const TX_ARENA = 1 << 20;
export const TX_MAX = 1024;

const DEFAULT_RCVBUF = 8 << 20;
const DEFAULT_SNDBUF = 4 << 20;
const SO_SNDBUF = 7; // asm-generic/socket.h, the unprivileged fallbacks
const SO_RCVBUF = 8;

// ---- the process-wide receive arena ----------------------------------------------------------------------

// Table page: mmsghdr[RX_SLOTS] | iovec[RX_SLOTS] | sockaddr_ll[RX_SLOTS] (32-byte stride).
const RX_IOV_AT = RX_SLOTS * MMSGHDR_SIZE;
const RX_SLL_AT = RX_IOV_AT + RX_SLOTS * IOVEC_SIZE;
const RX_SLL_STRIDE = 32;
const RX_TABLE = RX_SLL_AT + RX_SLOTS * RX_SLL_STRIDE;

interface RxArena {
  data: Buffer;
  dataAddr: number;
  table: Buffer;
  tableAddr: number;
}
let rxArena: RxArena | undefined;

function receiveArena(): RxArena {
  if (!rxArena) {
    const data = sysMmap(RX_SLOTS * RX_SLOT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const table = sysMmap(RX_TABLE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const dataAddr = addrNumber(data.address);
    const tableAddr = addrNumber(table.address);
    const t = table.bytes;
    for (let i = 0; i < RX_SLOTS; i++) {
      const m = i * MMSGHDR_SIZE;
      writeAddr(t, m + MSG_NAME, tableAddr + RX_SLL_AT + i * RX_SLL_STRIDE);
      t.writeUInt32LE(sockaddrLl.size, m + MSG_NAMELEN);
      writeAddr(t, m + MSG_IOV, tableAddr + RX_IOV_AT + i * IOVEC_SIZE);
      writeAddr(t, m + MSG_IOVLEN, 1);
      const v = RX_IOV_AT + i * IOVEC_SIZE;
      writeAddr(t, v + IOV_BASE, dataAddr + i * RX_SLOT);
      writeAddr(t, v + IOV_LEN, RX_SLOT);
    }
    // Never unmapped: it is shared by every link for the life of the process.
    rxArena = { data: data.bytes, dataAddr, table: t, tableAddr };
  }
  return rxArena;
}

// ---- the common link: transmit queue and frame delivery --------------------------------------------------

const TX_IOV_AT = TX_MAX * MMSGHDR_SIZE;
const TX_TABLE = TX_IOV_AT + TX_MAX * IOVEC_SIZE;

function noop(): void {}

abstract class FrameLink implements Link {
  onFrame: (frame: Buffer, meta: RxMeta) => void = noop;
  onBatchEnd: () => void = noop;
  protected readonly counters: LinkStats = { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txDropped: 0, rxDropped: 0 };

  /** The counters, brought up to date first (a packet link's ring drops are counted by the kernel). */
  get stats(): LinkStats {
    if (!this.closed) this.refreshStats();
    return this.counters;
  }

  /** Folds counts kept elsewhere into `counters`; nothing to do for a TAP. */
  protected refreshStats(): void {}

  /** Bytes of virtio_net_hdr in front of every frame: 10 with offloads, else 0. */
  protected readonly hdr: number;
  protected readonly poller: Poller;
  protected readonly rx = receiveArena();
  private readonly meta: RxMeta = { csumPartial: false, gso: 'none', gsoSize: 0 };

  private readonly txMap: Mapping;
  private readonly tableMap: Mapping;
  protected readonly txBuf: Buffer;
  protected readonly txAddr: number;
  protected readonly table: Buffer;
  protected readonly tableAddr: number;
  /** Bump pointer, offset of the frame handed out by alloc() (-1: none), and its capacity. */
  private off = 0;
  private cur = -1;
  private curLen = 0;
  /** Queued frames are table entries [head, count); lens[i] is entry i's Ethernet frame length. */
  protected head = 0;
  protected count = 0;
  protected readonly lens = new Uint32Array(TX_MAX);
  private wantWritable = false;
  private immediate: NodeJS.Immediate | undefined;
  protected closed = false;
  private stopped = false;
  private readonly handlers: { readable: () => void; writable?: () => void };
  /** What handling one of this link's frames has cost lately (ms, a moving average): sizes reads to the slice. */
  private frameMs = 0;

  constructor(
    readonly name: string,
    readonly mtu: number,
    readonly offloads: boolean,
    protected readonly fd: number,
    /** The fd frames are sent on: `fd`, or (packet links) a socket of its own that receives nothing. */
    protected readonly txFd: number,
    poller: Poller,
    packetTable: boolean,
    protected readonly now: () => number = () => performance.now(),
  ) {
    this.hdr = offloads ? VNET_HDR_LEN : 0;
    this.poller = poller;
    this.txMap = sysMmap(TX_ARENA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    try {
      this.tableMap = sysMmap(TX_TABLE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    } catch (e) {
      this.txMap.unmap();
      throw e;
    }
    this.txBuf = this.txMap.bytes;
    this.txAddr = addrNumber(this.txMap.address);
    this.table = this.tableMap.bytes;
    this.tableAddr = addrNumber(this.tableMap.address);
    if (packetTable) {
      for (let i = 0; i < TX_MAX; i++) {
        const m = i * MMSGHDR_SIZE;
        writeAddr(this.table, m + MSG_IOV, this.tableAddr + TX_IOV_AT + i * IOVEC_SIZE);
        writeAddr(this.table, m + MSG_IOVLEN, 1);
      }
    }
    this.handlers = { readable: this.onReadable };
    try {
      poller.add(fd, this.handlers);
    } catch (e) {
      this.txMap.unmap();
      this.tableMap.unmap();
      throw e;
    }
  }

  alloc(len: number): Buffer {
    if (this.closed) throw new Error(`link ${this.name} is closed`);
    if (!(len >= 0 && len <= MAX_TX_FRAME)) throw new RangeError(`frame length ${len} is not in 0..${MAX_TX_FRAME}`);
    const need = this.hdr + len;
    if (this.off + need > TX_ARENA || this.count >= TX_MAX) {
      this.flush();
      if (this.count > this.head) this.dropPending();
      // Everything sent (or dropped): the arena is free again.
      this.off = 0;
    }
    this.cur = this.off;
    this.curLen = len;
    const at = this.cur + this.hdr;
    return this.txBuf.subarray(at, at + len);
  }

  commit(len: number, offload?: TxOffload): void {
    const cur = this.cur;
    if (cur < 0) throw new Error('commit() without alloc()');
    if (!(len >= 0 && len <= this.curLen)) throw new RangeError(`commit(${len}) beyond the ${this.curLen} bytes alloc()ed`);
    this.cur = -1;
    const b = this.txBuf;
    if (this.hdr) {
      if (offload) {
        let gso = 0;
        let gsoSize = 0;
        let hdrLen = 0;
        if (offload.gso) {
          gso = offload.gso === 'tcp4' ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
          gsoSize = offload.gsoSize ?? 0;
          // Headers up to the end of the TCP header (its data offset is the high nibble of byte 12).
          hdrLen = offload.hdrLen ?? offload.csumStart + ((b[cur + VNET_HDR_LEN + offload.csumStart + 12]! >> 4) << 2);
        }
        b[cur] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        b[cur + 1] = gso;
        put16le(b, cur + 2, hdrLen);
        put16le(b, cur + 4, gsoSize);
        put16le(b, cur + 6, offload.csumStart);
        put16le(b, cur + 8, offload.csumOffset);
      } else for (let k = 0; k < VNET_HDR_LEN; k++) b[cur + k] = 0;
    }
    const i = this.count++;
    const v = TX_IOV_AT + i * IOVEC_SIZE;
    writeAddr(this.table, v + IOV_BASE, this.txAddr + cur);
    put32le(this.table, v + IOV_LEN, this.hdr + len);
    this.lens[i] = len;
    this.off = cur + ((this.hdr + len + 7) & ~7);
    if (!this.immediate) this.immediate = setImmediate(this.onImmediate);
  }

  flush(): void {
    if (this.immediate) {
      clearImmediate(this.immediate);
      this.immediate = undefined;
    }
    if (this.closed || this.head === this.count) return;
    const done = this.transmit();
    if (done) {
      this.head = this.count = 0;
      // A frame alloc()ed but not yet committed keeps its place: start after it.
      this.off = this.cur >= 0 ? this.cur + ((this.hdr + this.curLen + 7) & ~7) : 0;
    }
    this.setWritable(!done);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    this.counters.txDropped += this.count - this.head;
    this.head = this.count = 0;
    this.poller.remove(this.fd);
    sysClose(this.fd);
    if (this.txFd !== this.fd) {
      this.poller.remove(this.txFd);
      sysClose(this.txFd);
    }
    this.txMap.unmap();
    this.tableMap.unmap();
  }

  /** How many frames (1..max) to read next, `spent` ms of this wake's slice gone. */
  protected fitSlice(spent: number, max: number): number {
    if (this.frameMs <= 0) return max;
    return Math.max(1, Math.min(max, Math.floor((RX_SLICE_MS - spent) / this.frameMs)));
  }

  /** Records that `frames` frames took `ms` to handle. */
  protected costed(ms: number, frames: number): void {
    if (frames > 0) this.frameMs = this.frameMs === 0 ? ms / frames : this.frameMs * 0.75 + (ms / frames) * 0.25;
  }

  /** Sends queued entries [head, count), advancing head; false if the kernel pushed back (retry on writable). */
  protected abstract transmit(): boolean;
  protected abstract drain(): void;

  private readonly onReadable = (): void => {
    if (!this.closed) this.drain();
  };

  private readonly onWritable = (): void => {
    if (!this.closed) this.flush();
  };

  private readonly onImmediate = (): void => {
    this.immediate = undefined;
    this.flush();
  };

  private dropPending(): void {
    this.counters.txDropped += this.count - this.head;
    this.head = this.count = 0;
    this.setWritable(false);
  }

  private setWritable(want: boolean): void {
    if (want === this.wantWritable || this.closed || this.stopped) return;
    this.wantWritable = want;
    if (this.txFd !== this.fd) {
      // The transmit socket is watched only while the kernel pushes back.
      if (want) this.poller.add(this.txFd, { writable: this.onWritable });
      else this.poller.remove(this.txFd);
      return;
    }
    this.handlers.writable = want ? this.onWritable : undefined;
    this.poller.modify(this.fd, this.handlers);
  }

  /** Stops reading (the fd reports a permanent error). */
  protected stopReading(): void {
    this.stopped = true;
    this.poller.remove(this.fd);
  }

  /** Hands the frame at `at` (virtio_net_hdr included when offloads are on), `len` bytes, to onFrame. */
  protected deliver(data: Buffer, at: number, len: number): void {
    const hdr = this.hdr;
    if (len < hdr + ETH_HLEN) {
      this.counters.rxDropped++;
      return;
    }
    const meta = this.meta;
    if (hdr) {
      meta.csumPartial = (data[at]! & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0;
      const gso = data[at + 1]! & 0x7f;
      if (gso === 0) {
        meta.gso = 'none';
        meta.gsoSize = 0;
      } else {
        meta.gso =
          gso === VIRTIO_NET_HDR_GSO_TCPV4
            ? 'tcp4'
            : gso === VIRTIO_NET_HDR_GSO_TCPV6
              ? 'tcp6'
              : gso === VIRTIO_NET_HDR_GSO_UDP || gso === VIRTIO_NET_HDR_GSO_UDP_L4
                ? 'udp'
                : 'none';
        meta.gsoSize = data[at + 4]! | (data[at + 5]! << 8);
      }
    }
    this.counters.rxFrames++;
    this.counters.rxBytes += len - hdr;
    this.onFrame(data.subarray(at + hdr, at + len), meta);
  }
}

// ---- AF_PACKET --------------------------------------------------------------------------------------------

/**
 * The receiving socket's TPACKET_V2 ring (PACKET_RX_RING), mapped into the process: RX_RING_FRAMES slots
 * of RX_RING_FRAME bytes. The kernel copies each frame into the next free slot as it arrives, in the
 * sender's context (netback's thread, a veth peer's softirq), so reading one costs no syscall and no
 * socket buffer. Slots are small, because every frame takes one and their number is the burst the ring
 * absorbs: ACKs, requests and other small frames fit; a bigger one (an MTU-sized segment, a GSO
 * super-frame) takes its slot marked TP_STATUS_COPY and waits whole on the socket's queue
 * (PACKET_COPY_THRESH, within SO_RCVBUF), read with recvmmsg in ring order. 512 slots of 256 bytes
 * (frames up to 180 bytes in the slot): 128 KiB of dom0's memory a link, and a burst of 512 frames
 * absorbed while kratanet is busy (twice what a netfront queue's ring holds).
 */
export const RX_RING_FRAME = 256;
export const RX_RING_FRAMES = 512;
const RX_RING_BLOCK = 4096;
/** Where a ring slot's sockaddr_ll starts: after its tpacket2_hdr, aligned. */
const RING_SLL_AT = (tpacket2Hdr.size + TPACKET_ALIGNMENT - 1) & ~(TPACKET_ALIGNMENT - 1);
const TP_LEN = tpacket2Hdr.fields.tp_len.offset;
const TP_SNAPLEN = tpacket2Hdr.fields.tp_snaplen.offset;
const TP_MAC = tpacket2Hdr.fields.tp_mac.offset;

class PacketLink extends FrameLink {
  /** The ring's status words (one 32-bit load or store each), indexed by byte offset / 4. */
  private readonly status: Uint32Array;
  private readonly ringBytes: Buffer;
  /** The next ring frame to read. */
  private next = 0;
  private readonly statsBuf = Buffer.alloc(tpacketStats.size);

  constructor(
    name: string,
    mtu: number,
    offloads: boolean,
    fd: number,
    txFd: number,
    poller: Poller,
    private readonly ring: Mapping,
    now?: () => number,
  ) {
    super(name, mtu, offloads, fd, txFd, poller, true, now);
    this.ringBytes = ring.bytes;
    this.status = new Uint32Array(ring.bytes.buffer, ring.bytes.byteOffset, ring.bytes.length >>> 2);
  }

  override close(): void {
    const was = this.closed;
    super.close();
    if (!was) this.ring.unmap();
  }

  protected transmit(): boolean {
    const lib = libc();
    const lens = this.lens;
    const stats = this.counters;
    while (this.head < this.count) {
      const n = lib.sendmmsg(this.txFd, this.tableAddr + this.head * MMSGHDR_SIZE, this.count - this.head, MSG_DONTWAIT);
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        if (e === EAGAIN) return false;
        // ENOBUFS: the device (a full veth backlog, a qdisc) already dropped the frame. Retrying it on
        // "writable" would spin, since a packet socket is almost always writable: TCP recovers it.
        // The kernel refuses this frame (EINVAL, EMSGSIZE, ENETDOWN, ENXIO...): drop it and go on.
        stats.txDropped++;
        this.head++;
        continue;
      }
      const end = this.head + n;
      for (let i = this.head; i < end; i++) {
        stats.txFrames++;
        stats.txBytes += lens[i]!;
      }
      this.head = end;
    }
    return true;
  }

  protected drain(): void {
    let total = 0;
    const start = this.now();
    let t = start;
    while (total < RX_CAP && !this.closed) {
      const want = this.fitSlice(t - start, Math.min(RX_SLOTS, RX_CAP - total));
      const n = this.readRing(want);
      total += n;
      const now = this.now();
      this.costed(now - t, n);
      t = now;
      if (n < want || t - start >= RX_SLICE_MS) break;
    }
    // A pending socket error (ENETDOWN when the interface goes down) is reported with the ring empty:
    // take it, or level-triggered polling would spin on it. (Not with a read: the socket's queue holds
    // the TP_STATUS_COPY frames, in ring order.)
    if (total === 0 && !this.closed && takeSocketError(this.fd) !== 0) this.counters.rxDropped++;
    if (total > 0 && !this.closed) this.onBatchEnd();
  }

  /** Hands up to `want` ring frames to onFrame, returning each slot to the kernel; how many were taken. */
  private readRing(want: number): number {
    const status = this.status;
    const ring = this.ringBytes;
    const hdr = this.hdr;
    let n = 0;
    while (n < want && !this.closed) {
      const at = this.next * RX_RING_FRAME;
      const st = status[at >>> 2]!;
      if (!(st & TP_STATUS_USER)) break;
      // Frames were lost before this one (the ring was full): count them.
      if (st & TP_STATUS_LOSING) this.refreshStats();
      if (st & TP_STATUS_COPY) {
        n += this.readCopies(want - n);
        continue;
      }
      const snap = get32le(ring, at + TP_SNAPLEN);
      if (ring[at + RING_SLL_AT + SLL_PKTTYPE] === PACKET_OUTGOING) {
        // Our own transmission: PACKET_IGNORE_OUTGOING keeps these out; a guard, as the queue's reads had.
      } else if (snap < get32le(ring, at + TP_LEN)) {
        // Too big for the slot with the socket's queue full: only its head was kept.
        this.counters.rxDropped++;
      } else {
        const mac = ring[at + TP_MAC]! | (ring[at + TP_MAC + 1]! << 8);
        this.deliver(ring, at + mac - hdr, hdr + snap);
        // Closed by onFrame: the ring is unmapped.
        if (this.closed) return n + 1;
      }
      this.releaseSlot();
      n++;
    }
    return n;
  }

  /** Returns the slot at `next` to the kernel and moves on. */
  private releaseSlot(): void {
    this.status[(this.next * RX_RING_FRAME) >>> 2] = TP_STATUS_KERNEL;
    this.next = this.next + 1 === RX_RING_FRAMES ? 0 : this.next + 1;
  }

  /** Adds the frames the ring had no slot for since the last count (PACKET_STATISTICS, which resets it). */
  protected override refreshStats(): void {
    const v = this.statsBuf;
    const len = Buffer.from([tpacketStats.size, 0, 0, 0]);
    if (libc().getsockopt(this.fd, SOL_PACKET, PACKET_STATISTICS, v, len) === 0)
      this.counters.rxDropped += v.readUInt32LE(tpacketStats.fields.tp_drops.offset);
  }

  /**
   * The run of TP_STATUS_COPY frames at `next` (at most `max`, and RX_SLOTS), read whole from the socket's
   * queue, where they wait in ring order, with one recvmmsg; their slots returned.
   */
  private readCopies(max: number): number {
    const status = this.status;
    let run = 0;
    for (let i = this.next; run < max && run < RX_SLOTS; i = i + 1 === RX_RING_FRAMES ? 0 : i + 1) {
      const st = status[(i * RX_RING_FRAME) >>> 2]!;
      if (!(st & TP_STATUS_USER) || !(st & TP_STATUS_COPY)) break;
      run++;
    }
    const { data, table, tableAddr } = this.rx;
    let got = -1;
    // A pending socket error (ENETDOWN) is reported, and cleared, by the first call: read again, or the
    // queue would fall out of step with the ring. EAGAIN (nothing queued): the frames are lost.
    for (let tries = 0; got < 0 && tries < 3; tries++) {
      got = libc().recvmmsg(this.fd, tableAddr, run, MSG_DONTWAIT, null);
      if (got < 0 && errno() === EAGAIN) break;
    }
    if (got < 0) got = 0;
    for (let i = 0; i < run; i++) {
      if (i >= got || get32le(table, i * MMSGHDR_SIZE + MSG_FLAGS) & MSG_TRUNC) this.counters.rxDropped++;
      else if (!this.closed) this.deliver(data, i * RX_SLOT, get32le(table, i * MMSGHDR_SIZE + MMSG_LEN));
      if (this.closed) return run;
      this.releaseSlot();
    }
    return run;
  }
}

/**
 * AF_PACKET SOCK_RAW sockets bound to the interface (a Xen netback vif<domid>.<n>, or the host end of a
 * veth): one receiving (ETH_P_ALL), one sending that receives nothing. Apart, because a sent frame's
 * memory is charged to its socket and freed once the device has it (netback's copy to the guest's
 * ring, a veth peer's receive): each free wakes whatever waits on that socket, and the receiving one
 * always has the event loop's epoll waiting on it. The sending one has a waiter only while the kernel
 * pushes back.
 */
export function openPacketLink(ifname: string, opts: LinkOptions = {}): Link {
  const lib = libc();
  const offloads = opts.offloads !== false;
  // Protocol 0 until bind(): a socket receives nothing, rather than every interface's frames, before it
  // is bound to ours with ETH_P_ALL; the sending one stays at 0.
  const fd = check('socket AF_PACKET', lib.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const txFd = lib.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (txFd < 0) {
    const e = errno();
    sysClose(fd);
    throw new SysError('socket AF_PACKET', e);
  }
  let ring: Mapping | undefined;
  try {
    if (offloads) {
      setIntOpt(fd, SOL_PACKET, PACKET_VNET_HDR, 1, 'PACKET_VNET_HDR');
      setIntOpt(txFd, SOL_PACKET, PACKET_VNET_HDR, 1, 'PACKET_VNET_HDR');
    }
    // The sending socket's frames are outgoing on the interface: not ours to receive.
    setIntOpt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, 'PACKET_IGNORE_OUTGOING');
    // The ring: after PACKET_VNET_HDR (which a socket with a ring refuses), before any frame arrives.
    setIntOpt(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V2, 'PACKET_VERSION');
    setIntOpt(fd, SOL_PACKET, PACKET_COPY_THRESH, 1, 'PACKET_COPY_THRESH');
    const req = Buffer.alloc(tpacketReq.size);
    req.writeUInt32LE(RX_RING_BLOCK, tpacketReq.fields.tp_block_size.offset);
    req.writeUInt32LE((RX_RING_FRAMES * RX_RING_FRAME) / RX_RING_BLOCK, tpacketReq.fields.tp_block_nr.offset);
    req.writeUInt32LE(RX_RING_FRAME, tpacketReq.fields.tp_frame_size.offset);
    req.writeUInt32LE(RX_RING_FRAMES, tpacketReq.fields.tp_frame_nr.offset);
    check('setsockopt PACKET_RX_RING', lib.setsockopt(fd, SOL_PACKET, PACKET_RX_RING, req, req.length));
    ring = sysMmap(RX_RING_FRAMES * RX_RING_FRAME, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    setBuf(fd, SO_RCVBUFFORCE, SO_RCVBUF, opts.rcvbuf ?? DEFAULT_RCVBUF, 'SO_RCVBUF');
    setBuf(txFd, SO_SNDBUFFORCE, SO_SNDBUF, opts.sndbuf ?? DEFAULT_SNDBUF, 'SO_SNDBUF');
    ifreqFor(ifname); // validates the name
    const ifindex = lib.if_nametoindex(ifname);
    if (ifindex === 0) throw new SysError(`if_nametoindex ${ifname}`, errno());
    const mtu = ifMtuAndUp(ifname);
    const sll = Buffer.alloc(sockaddrLl.size);
    sll.writeUInt16LE(AF_PACKET, sockaddrLl.fields.sll_family.offset);
    sll.writeInt32LE(ifindex, sockaddrLl.fields.sll_ifindex.offset);
    check(`bind AF_PACKET ${ifname} (sending)`, lib.bind(txFd, sll, sll.length));
    sll.writeUInt16LE(htons(ETH_P_ALL), sockaddrLl.fields.sll_protocol.offset);
    check(`bind AF_PACKET ${ifname}`, lib.bind(fd, sll, sll.length));
    return new PacketLink(ifname, mtu, offloads, fd, txFd, opts.poller ?? Poller.shared(), ring, opts.now);
  } catch (e) {
    ring?.unmap();
    sysClose(fd);
    sysClose(txFd);
    throw e;
  }
}

function setBuf(fd: number, force: number, plain: number, bytes: number, what: string): void {
  try {
    setIntOpt(fd, SOL_SOCKET, force, bytes, `${what}FORCE`);
  } catch (e) {
    if (!(e instanceof SysError && e.code === 'EPERM')) throw e;
    setIntOpt(fd, SOL_SOCKET, plain, bytes, what);
  }
}

// ---- TAP --------------------------------------------------------------------------------------------------

class TapLink extends FrameLink {
  protected transmit(): boolean {
    const lib = libc();
    const lens = this.lens;
    const stats = this.counters;
    const iov = this.tableAddr + TX_IOV_AT;
    while (this.head < this.count) {
      const n = lib.writev(this.fd, iov + this.head * IOVEC_SIZE, 1);
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        if (e === EAGAIN) return false;
        // ENOBUFS (dropped by the device, see PacketLink), EIO while the device is down, EINVAL for a bad
        // virtio_net_hdr...: drop the frame.
        stats.txDropped++;
      } else {
        stats.txFrames++;
        stats.txBytes += lens[this.head]!;
      }
      this.head++;
    }
    return true;
  }

  protected drain(): void {
    const lib = libc();
    const { data, dataAddr } = this.rx;
    let total = 0;
    const start = this.now();
    while (total < RX_CAP && !this.closed && this.now() - start < RX_SLICE_MS) {
      const n = lib.read(this.fd, dataAddr, RX_SLOT);
      if (n < 0) {
        const e = errno();
        if (e === EAGAIN) break;
        if (e === EINTR) continue;
        // EBADFD/EIO: the device is gone; level-triggered polling would spin on it.
        this.stopReading();
        break;
      }
      if (n === 0) break;
      total++;
      this.deliver(data, 0, n);
    }
    if (total > 0 && !this.closed) this.onBatchEnd();
  }
}

/** A TAP device (created if absent) through /dev/net/tun: IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, TUNSETOFFLOAD csum+tso4+tso6. */
export function openTapLink(name: string, opts: LinkOptions = {}): Link {
  const offloads = opts.offloads !== false;
  const req = ifreqFor(name);
  const fd = sysOpen('/dev/net/tun', O_RDWR | O_CLOEXEC | O_NONBLOCK);
  try {
    req.writeUInt16LE(IFF_TAP | IFF_NO_PI | (offloads ? IFF_VNET_HDR : 0), 16);
    ioctlPtr(fd, TUNSETIFF, req, `TUNSETIFF ${name}`);
    const actual = ifreqName(req);
    if (offloads) check('TUNSETOFFLOAD', libc().ioctl(fd, TUNSETOFFLOAD, 'unsigned long', TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6));
    const mtu = ifMtuAndUp(actual);
    return new TapLink(actual, mtu, offloads, fd, fd, opts.poller ?? Poller.shared(), false, opts.now);
  } catch (e) {
    sysClose(fd);
    throw e;
  }
}
