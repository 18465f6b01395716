// ICMP echo NAT: a guest's ping to an outside address is re-originated from dom0 through one raw ICMP socket
// per family, and the reply's data handed back so the guest's reply can be synthesised. The proxy picks the
// identifier and sequence of each request itself (random, unique among pending requests), so guests using
// equal identifiers do not collide, and a reply is matched by its source address, identifier and sequence.
//
// A raw ICMP socket sees every echo reply that reaches dom0 (other processes' pings included) and anyone
// can send dom0 echo replies, so everything read is hostile: lengths, type, code and (IPv4) the checksum are
// checked, and unmatched replies are counted and dropped. The kernel verifies ICMPv6 checksums on raw
// IPPROTO_ICMPV6 sockets (IPV6_CHECKSUM is on by default there) and fills them in on send.
//
// Constants and layouts are written here from the headers named next to them and checked against those
// headers by a gcc probe in icmp-echo.test.ts (they are not in sys.ts, whose exports link.test.ts probes).
import { randomFillSync } from 'node:crypto';
import {
  AF_INET,
  AF_INET6,
  EAGAIN,
  EINTR,
  errno,
  errnoName,
  libc,
  MSG_TRUNC,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_RAW,
  sysRecvfrom,
  sysSendto,
} from '../../lib/libc.js';
import { Poller } from './poller.js';
import { SIN6_ADDR, SIN_ADDR, SOCKADDR_IN6_SIZE, SOCKADDR_IN_SIZE } from './sys.js';
import { finish, fold, ipv6Equal, parseIpv4, parseIpv6, sum16 } from './wire.js';

// netinet/in.h
export const IPPROTO_ICMP = 1;
export const IPPROTO_ICMPV6 = 58;
// linux/socket.h (SOL_RAW), linux/icmp.h (ICMP_FILTER), netinet/icmp6.h (ICMP6_FILTER, at level IPPROTO_ICMPV6)
export const SOL_RAW = 255;
export const ICMP_FILTER = 1;
export const ICMP6_FILTER = 1;
// netinet/ip_icmp.h, netinet/icmp6.h
export const ICMP_ECHOREPLY = 0;
export const ICMP_ECHO = 8;
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;
/** sizeof(struct icmp_filter), sizeof(struct icmp6_filter) */
export const ICMP_FILTER_SIZE = 4;
export const ICMP6_FILTER_SIZE = 32;

/** Most requests pending at once (over both families). */
export const MAX_PENDING = 4096;
export const DEFAULT_TIMEOUT_MS = 10_000;
/** Largest echo data: an IPv4 datagram is at most 65535 bytes (20 of IP header, 8 of ICMP header)... */
export const MAX_DATA4 = 65535 - 20 - 8;
/** ...and an IPv6 payload (which the ICMPv6 message is, without extension headers) at most 65535. */
export const MAX_DATA6 = 65535 - 8;
/** After socket() fails (no CAP_NET_RAW, IPv6 disabled) requests of that family fail without retrying for this long. */
const OPEN_RETRY_MS = 5_000;
/** Datagrams read per readable event; the poller is level-triggered, so what is left is read on the next wake. */
const MAX_PER_WAKE = 1024;
const BUF_SIZE = 65536;

export interface EchoReply {
  /** ICMP body after the 8-byte header: the echo data. */
  payload: Buffer;
}

export interface IcmpEchoStats {
  /** Requests sent. */
  sent: number;
  /** Requests that could not be sent (socket unavailable, sendto failed, too many pending, data too long). */
  failed: number;
  /** Replies matched and handed to their callback. */
  replies: number;
  /** Pending requests that timed out. */
  expired: number;
  /** Well-formed echo replies that matched nothing pending (late, duplicate, another process's, forged). */
  unmatched: number;
  /** Datagrams dropped as malformed (bad lengths, type, code, checksum, truncated). */
  malformed: number;
  /** The last reason a request could not be sent, e.g. "sendto: ENETUNREACH". */
  lastError: string;
}

interface Pending {
  v6: boolean;
  dst4: number;
  dst6: Buffer | null;
  onReply: (data: Buffer) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface RawSock {
  fd: number;
  poller: Poller | null;
  /** Date.now() of the last failed socket(), or -Infinity. */
  failedAt: number;
}

let shared: IcmpEchoProxy | undefined;

/** Process-wide: one raw ICMP socket per family (SOCK_RAW, non-blocking, CLOEXEC), opened lazily, read through Poller.shared(). */
export class IcmpEchoProxy {
  /** The process-wide proxy (a new one if the previous was closed). */
  static shared(): IcmpEchoProxy {
    if (!shared || shared.closed) shared = new IcmpEchoProxy();
    return shared;
  }

  readonly stats: IcmpEchoStats = { sent: 0, failed: 0, replies: 0, expired: 0, unmatched: 0, malformed: 0, lastError: '' };
  private readonly pendingMap = new Map<number, Pending>();
  private readonly s4: RawSock = { fd: -1, poller: null, failedAt: -Infinity };
  private readonly s6: RawSock = { fd: -1, poller: null, failedAt: -Infinity };
  private readonly tx = Buffer.alloc(BUF_SIZE);
  private readonly rx = Buffer.alloc(BUF_SIZE);
  private readonly sa4 = Buffer.alloc(SOCKADDR_IN_SIZE);
  private readonly sa6 = Buffer.alloc(SOCKADDR_IN6_SIZE);
  private readonly from6 = Buffer.alloc(SOCKADDR_IN6_SIZE);
  private readonly from6Family = new Uint16Array(this.from6.buffer, this.from6.byteOffset, 1);
  /** socklen_t for recvfrom, in native byte order. */
  private readonly fromLen = Buffer.alloc(4);
  private readonly fromLenView = new Uint32Array(this.fromLen.buffer, this.fromLen.byteOffset, 1);
  /** Random identifier/sequence pairs, used from the end and refilled when spent. */
  private readonly keys = new Uint32Array(256);
  private keysLeft = 0;
  private closed = false;

  constructor() {
    new Uint16Array(this.sa4.buffer, this.sa4.byteOffset, 1)[0] = AF_INET;
    new Uint16Array(this.sa6.buffer, this.sa6.byteOffset, 1)[0] = AF_INET6;
  }

  /** Number of requests waiting for their reply. */
  get pending(): number {
    return this.pendingMap.size;
  }

  /**
   * Sends an echo request to `dst` (IPv4 dotted or IPv6 text; anything else throws) carrying `data`, with an
   * identifier/sequence unique among pending requests. `onReply(data)` is called once with the reply's data
   * when the matching echo reply arrives (same source address, identifier and sequence); the entry expires
   * silently after `timeoutMs`. Returns false if the request could not be sent (no raw socket, sendto
   * failed, e.g. EPERM or ENETUNREACH, data too long) or MAX_PENDING requests are pending.
   *
   * The destination is not checked against any policy (0.0.0.0 and :: reach dom0's loopback, for instance):
   * that is the caller's job.
   */
  request(dst: string, data: Buffer, onReply: (data: Buffer) => void, timeoutMs = DEFAULT_TIMEOUT_MS): boolean {
    const v6 = dst.includes(':');
    const dst4 = v6 ? 0 : parseIpv4(dst);
    const dst6 = v6 ? parseIpv6(dst) : null;
    if (this.closed) return this.fail('proxy is closed');
    if (this.pendingMap.size >= MAX_PENDING) return this.fail('too many pending requests');
    if (data.length > (v6 ? MAX_DATA6 : MAX_DATA4)) return this.fail(`echo data of ${data.length} bytes is too long`);
    const fd = this.socketFor(v6);
    if (fd < 0) return false;

    const key = this.freeKey();
    const n = 8 + data.length;
    const out = this.tx;
    out[0] = v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
    out[1] = 0;
    out.writeUInt16BE(0, 2);
    out.writeUInt16BE(key >>> 16, 4);
    out.writeUInt16BE(key & 0xffff, 6);
    data.copy(out, 8);
    let sa: Buffer;
    if (v6) {
      sa = this.sa6;
      dst6!.copy(sa, SIN6_ADDR);
    } else {
      out.writeUInt16BE(finish(sum16(out, 0, n)), 2);
      sa = this.sa4;
      sa.writeUInt32BE(dst4, SIN_ADDR);
    }
    if (sysSendto(fd, out, n, 0, sa, sa.length) < 0) return this.fail(`sendto ${dst}: ${errnoName(errno())}`);
    this.stats.sent++;

    const ms = Number.isFinite(timeoutMs) ? Math.min(Math.max(timeoutMs, 0), 0x7fffffff) : DEFAULT_TIMEOUT_MS;
    const entry: Pending = {
      v6,
      dst4,
      dst6,
      onReply,
      timer: setTimeout(() => {
        if (this.pendingMap.get(key) !== entry) return;
        this.pendingMap.delete(key);
        this.stats.expired++;
      }, ms),
    };
    entry.timer.unref();
    this.pendingMap.set(key, entry);
    return true;
  }

  /** Closes the sockets (removing them from the poller) and forgets every pending request. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [this.s4, this.s6]) {
      if (s.fd < 0) continue;
      s.poller?.remove(s.fd);
      libc().close(s.fd);
      s.fd = -1;
      s.poller = null;
    }
    for (const e of this.pendingMap.values()) clearTimeout(e.timer);
    this.pendingMap.clear();
    if (shared === this) shared = undefined;
  }

  // ---- internals -----------------------------------------------------------------------------------------

  private fail(reason: string): false {
    this.stats.failed++;
    this.stats.lastError = reason;
    return false;
  }

  /** A random identifier (high 16 bits) and sequence (low 16) that no pending request uses. */
  private freeKey(): number {
    for (;;) {
      if (this.keysLeft === 0) {
        randomFillSync(this.keys);
        this.keysLeft = this.keys.length;
      }
      const k = this.keys[--this.keysLeft]!;
      if (!this.pendingMap.has(k)) return k;
    }
  }

  /** The family's raw socket, opened on first use; -1 (with stats.lastError set) if it cannot be. */
  private socketFor(v6: boolean): number {
    const s = v6 ? this.s6 : this.s4;
    if (s.fd >= 0) return s.fd;
    if (Date.now() - s.failedAt < OPEN_RETRY_MS) {
      this.fail(`${v6 ? 'ICMPv6' : 'ICMP'} socket unavailable (${this.stats.lastError || 'failed recently'})`);
      return -1;
    }
    const lib = libc();
    const what = v6 ? 'socket AF_INET6 SOCK_RAW IPPROTO_ICMPV6' : 'socket AF_INET SOCK_RAW IPPROTO_ICMP';
    const fd = lib.socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
    if (fd < 0) {
      s.failedAt = Date.now();
      this.fail(`${what}: ${errnoName(errno())}`);
      return -1;
    }
    // Deliver echo replies only: a set bit blocks its type (linux/icmp.h, netinet/icmp6.h).
    const filter = v6 ? new Uint32Array(ICMP6_FILTER_SIZE / 4).fill(0xffffffff) : new Uint32Array([0xffffffff]);
    const pass = v6 ? ICMP6_ECHO_REPLY : ICMP_ECHOREPLY;
    filter[pass >> 5] = filter[pass >> 5]! & ~(1 << (pass & 31));
    const fb = Buffer.from(filter.buffer);
    let poller: Poller;
    try {
      if (lib.setsockopt(fd, v6 ? IPPROTO_ICMPV6 : SOL_RAW, v6 ? ICMP6_FILTER : ICMP_FILTER, fb, fb.length) < 0) {
        throw new Error(`setsockopt ${v6 ? 'ICMP6_FILTER' : 'ICMP_FILTER'}: ${errnoName(errno())}`);
      }
      poller = Poller.shared();
      poller.add(fd, { readable: v6 ? () => this.drain(this.s6, true) : () => this.drain(this.s4, false) });
    } catch (e) {
      lib.close(fd);
      s.failedAt = Date.now();
      this.fail(`${what}: ${(e as Error).message}`);
      return -1;
    }
    s.fd = fd;
    s.poller = poller;
    s.failedAt = -Infinity;
    return fd;
  }

  /** Reads what the socket holds (up to MAX_PER_WAKE datagrams) and answers the matching requests. */
  private drain(s: RawSock, v6: boolean): void {
    const b = this.rx;
    let failure: unknown;
    let failed = false;
    for (let i = 0; i < MAX_PER_WAKE && !this.closed && s.fd >= 0; i++) {
      let n: number;
      if (v6) {
        this.fromLenView[0] = SOCKADDR_IN6_SIZE;
        n = sysRecvfrom(s.fd, b, BUF_SIZE, MSG_TRUNC, this.from6, this.fromLen);
      } else n = sysRecvfrom(s.fd, b, BUF_SIZE, MSG_TRUNC, null, null);
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        // EAGAIN: drained. Anything else (a pending socket error, ENOMEM): stop; level-triggered epoll calls
        // again if there is more.
        if (e !== EAGAIN) this.stats.lastError = `recvfrom: ${errnoName(e)}`;
        break;
      }
      if (n > BUF_SIZE) {
        this.stats.malformed++; // MSG_TRUNC: longer than any IP datagram without jumbograms
        continue;
      }
      const err = v6 ? this.input6(n) : this.input4(n);
      if (err !== undefined && !failed) {
        failed = true;
        failure = err.error;
      }
    }
    if (failed) throw failure;
  }

  /** An IPv4 datagram (IP header first) of n bytes in rx. Returns a callback's exception, if one threw. */
  private input4(n: number): { error: unknown } | undefined {
    const b = this.rx;
    if (n < 28 || b[0]! >> 4 !== 4) return this.malformed();
    const ihl = (b[0]! & 15) * 4;
    const total = b.readUInt16BE(2);
    if (ihl < 20 || total < ihl + 8 || total > n) return this.malformed();
    if (b[ihl] !== ICMP_ECHOREPLY || b[ihl + 1] !== 0) return this.malformed();
    if (fold(sum16(b, ihl, total)) !== 0xffff) return this.malformed();
    const key = (b.readUInt16BE(ihl + 4) * 65536 + b.readUInt16BE(ihl + 6)) >>> 0;
    const e = this.pendingMap.get(key);
    if (!e || e.v6 || e.dst4 !== b.readUInt32BE(12)) {
      this.stats.unmatched++;
      return undefined;
    }
    return this.deliver(key, e, ihl + 8, total);
  }

  /** An ICMPv6 message of n bytes in rx, its sender's sockaddr_in6 in from6. */
  private input6(n: number): { error: unknown } | undefined {
    const b = this.rx;
    if (n < 8 || b[0] !== ICMP6_ECHO_REPLY || b[1] !== 0) return this.malformed();
    const from = this.from6;
    if (this.fromLenView[0]! < SIN6_ADDR + 16 || this.from6Family[0] !== AF_INET6) return this.malformed();
    const key = (b.readUInt16BE(4) * 65536 + b.readUInt16BE(6)) >>> 0;
    const e = this.pendingMap.get(key);
    if (!e || !e.v6 || !ipv6Equal(from, SIN6_ADDR, e.dst6!)) {
      this.stats.unmatched++;
      return undefined;
    }
    return this.deliver(key, e, 8, n);
  }

  private malformed(): undefined {
    this.stats.malformed++;
    return undefined;
  }

  private deliver(key: number, e: Pending, start: number, end: number): { error: unknown } | undefined {
    this.pendingMap.delete(key);
    clearTimeout(e.timer);
    this.stats.replies++;
    const data = Buffer.allocUnsafe(end - start);
    this.rx.copy(data, 0, start, end);
    try {
      e.onReply(data);
    } catch (error) {
      return { error };
    }
    return undefined;
  }
}
