// A dom0 TCP connection for a flow a guest opened, on a non-blocking fd of our own: connect, read and
// write are libc calls from the loop's one wake for all ready sockets (EpollSet), not net.Socket's stream
// machinery (a write request, a callback and a tick per write; a MakeCallback per read). A guest's
// request then costs kratanet one write and one read syscall and little JavaScript around them.
//
// Writes go to the kernel at once; what the kernel does not take is copied into a queue and written when
// the socket is writable. Reads are handed to the flow as they come, each in its own Buffer.
import {
  AF_INET,
  AF_INET6,
  EAGAIN,
  EINPROGRESS,
  EINTR,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  errno,
  errnoName,
  IPPROTO_TCP,
  libc,
  SHUT_WR,
  SO_LINGER,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
  SysError,
  sysClose,
  TCP_NODELAY,
} from '../../lib/libc.js';
import { EpollSet } from './epoll-set.js';
import type { HostSink, HostSocket } from './host-socket.js';
import { SIN6_ADDR, SIN_ADDR, SOCKADDR_IN6_SIZE, SOCKADDR_IN_SIZE, sockaddrIn, takeSocketError } from './sys.js';
import { parseIpv4, parseIpv6 } from './wire.js';

const MSG_NOSIGNAL = 0x4000;
/** Bytes per read (see readBuf for what happens to a large one). */
export const READ_BUF = 64 << 10;
/**
 * The buffer every raw socket reads into (reads are synchronous, on the main thread): not 64 KiB per
 * connection. A read that fills half of it or more is handed over whole and a new one takes its place.
 */
let readBuf = Buffer.allocUnsafeSlow(READ_BUF);
/** Reads per wake before yielding to the other sockets (level-triggered: the rest comes next wake). */
const READS_PER_WAKE = 4;
/** Queued bytes past which the flow hears hostDrained() once the queue empties (net.Socket's default high-water mark). */
const HIGH_WATER = 16 << 10;

const int1 = Buffer.from([1, 0, 0, 0]);
const linger0 = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]); // struct linger { l_onoff = 1, l_linger = 0 }

/** sockaddr_in or sockaddr_in6 for an IP literal and port. */
const PORT_AT = sockaddrIn.fields.sin_port.offset; // sin6_port's too

export function sockaddrFor(host: string, port: number): Buffer {
  const v6 = host.includes(':');
  const sa = Buffer.alloc(v6 ? SOCKADDR_IN6_SIZE : SOCKADDR_IN_SIZE);
  sa.writeUInt16LE(v6 ? AF_INET6 : AF_INET, 0);
  sa.writeUInt16BE(port, PORT_AT);
  if (v6) parseIpv6(host).copy(sa, SIN6_ADDR);
  else sa.writeUInt32BE(parseIpv4(host), SIN_ADDR);
  return sa;
}

/** The address bytes of a sockaddr_in or sockaddr_in6. */
function sockaddrIp(sa: Buffer): Buffer {
  return sa.readUInt16LE(0) === AF_INET6 ? sa.subarray(SIN6_ADDR, SIN6_ADDR + 16) : sa.subarray(SIN_ADDR, SIN_ADDR + 4);
}

export class RawHostSocket implements HostSocket {
  /**
   * Starts a non-blocking connect to `host` (an IP literal) and `port`; `sink` hears hostConnected()
   * or hostError(), never before this returns. Throws only if no socket can be made (EMFILE...).
   */
  static connect(host: string, port: number, sink: HostSink, set: EpollSet = EpollSet.shared()): RawHostSocket {
    const lib = libc();
    const sa = sockaddrFor(host, port);
    const fd = lib.socket(sa.readUInt16LE(0), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new SysError('socket', errno());
    const s = new RawHostSocket(fd, sink, set);
    lib.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, int1, 4);
    if (lib.connect(fd, sa, sa.length) < 0 && errno() !== EINPROGRESS) {
      s.fail(errno(), true);
      return s;
    }
    try {
      set.add(fd, EPOLLOUT, s.onReady);
    } catch (e) {
      s.destroy();
      throw e;
    }
    return s;
  }

  private connected = false;
  private reading = true;
  private ended = false; // EOF read
  private closed = false;
  private endWanted = false;
  private endDone = false;
  private closeWanted = false;
  private wasHigh = false;
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;

  private constructor(
    readonly fd: number,
    private readonly sink: HostSink,
    private readonly set: EpollSet,
  ) {}

  get queued(): number {
    return this.queuedBytes;
  }

  get destroyed(): boolean {
    return this.closed;
  }

  /** Whether the connection's two ends have the same address: the destination is one of dom0's own. */
  loopsBack(): boolean {
    const lib = libc();
    const a = Buffer.alloc(SOCKADDR_IN6_SIZE);
    const b = Buffer.alloc(SOCKADDR_IN6_SIZE);
    const la = Buffer.from([SOCKADDR_IN6_SIZE, 0, 0, 0]);
    const lb = Buffer.from([SOCKADDR_IN6_SIZE, 0, 0, 0]);
    if (lib.getsockname(this.fd, a, la) < 0 || lib.getpeername(this.fd, b, lb) < 0) return false;
    return sockaddrIp(a).equals(sockaddrIp(b));
  }

  write(data: Buffer): boolean {
    if (this.closed || this.endWanted) return false;
    let rest = data;
    if (this.connected && this.queuedBytes === 0) {
      const n = libc().send(this.fd, data, data.length, MSG_NOSIGNAL);
      if (n === data.length) return false;
      if (n < 0) {
        const e = errno();
        if (e !== EAGAIN && e !== EINTR) {
          this.fail(e, true);
          return false;
        }
      } else rest = data.subarray(n);
    }
    this.queue.push(Buffer.from(rest));
    this.queuedBytes += rest.length;
    if (this.queuedBytes > HIGH_WATER) this.wasHigh = true;
    this.watch();
    return false;
  }

  flush(): void {}

  pause(): void {
    if (!this.reading) return;
    this.reading = false;
    this.watch();
  }

  resume(): void {
    if (this.reading) return;
    this.reading = true;
    this.watch();
  }

  end(): void {
    if (this.closed || this.endWanted) return;
    this.endWanted = true;
    if (this.queuedBytes === 0) this.shutdownWrite();
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.set.remove(this.fd);
    sysClose(this.fd);
  }

  destroySoon(): void {
    if (this.queuedBytes === 0) this.destroy();
    else {
      this.closeWanted = true;
      this.end();
    }
  }

  reset(): void {
    if (this.closed) return;
    libc().setsockopt(this.fd, SOL_SOCKET, SO_LINGER, linger0, linger0.length);
    this.destroy();
  }

  /** What the socket waits for: the connect, room for queued bytes, and bytes to read unless paused or at EOF. */
  private watch(): void {
    if (this.closed) return;
    let ev = 0;
    if (!this.connected || this.queuedBytes > 0) ev |= EPOLLOUT;
    if (this.connected && this.reading && !this.ended) ev |= EPOLLIN;
    this.set.modify(this.fd, ev);
  }

  private shutdownWrite(): void {
    if (this.endDone || this.closed) return;
    this.endDone = true;
    libc().shutdown(this.fd, SHUT_WR);
  }

  /** The connection failed with errno `e`: closed, and the flow told (on the next tick when asked from its own call). */
  private fail(e: number, later: boolean): void {
    if (this.closed) return;
    this.destroy();
    const code = errnoName(e);
    if (later) process.nextTick(() => this.sink.hostError(code));
    else this.sink.hostError(code);
  }

  private readonly onReady = (events: number): void => {
    if (this.closed) return;
    if (!this.connected) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      const err = takeSocketError(this.fd);
      if (err !== 0) {
        this.fail(err, false);
        return;
      }
      this.connected = true;
      this.watch();
      this.sink.hostConnected();
      return;
    }
    if (events & EPOLLOUT && this.queuedBytes > 0) this.writeQueue();
    if (this.closed) return;
    if (events & EPOLLIN && this.reading && !this.ended) this.readSome();
    else if (events & (EPOLLERR | EPOLLHUP)) {
      // Not reading (paused, or at EOF): a pending error is the flow's now; a hang-up with nothing to
      // write leaves the set until the flow reads again.
      const err = takeSocketError(this.fd);
      if (err !== 0) this.fail(err, false);
      else if (this.queuedBytes === 0) this.set.modify(this.fd, 0);
    }
  };

  private readSome(): void {
    const lib = libc();
    for (let i = 0; i < READS_PER_WAKE && this.reading && !this.closed; i++) {
      const b = readBuf;
      const n = lib.readBuf(this.fd, b, READ_BUF);
      if (n > 0) {
        if (n < READ_BUF / 2) {
          // Copied out (Buffer.from's type dispatch is megamorphic: a measurable share of a small read).
          const c = Buffer.allocUnsafe(n);
          b.copy(c, 0, 0, n);
          this.sink.fromHost(c);
        } else {
          // Handed over whole: no byte copied twice; what a flow holds stays within twice its count.
          readBuf = Buffer.allocUnsafeSlow(READ_BUF);
          this.sink.fromHost(b.subarray(0, n));
        }
        if (n < READ_BUF) return;
        continue;
      }
      if (n === 0) {
        this.ended = true;
        this.watch();
        this.sink.hostEnded();
        return;
      }
      const e = errno();
      if (e === EAGAIN) return;
      if (e === EINTR) continue;
      this.fail(e, false);
      return;
    }
  }

  private writeQueue(): void {
    const lib = libc();
    const q = this.queue;
    while (q.length > 0) {
      const head = q[0]!;
      const n = lib.send(this.fd, head, head.length, MSG_NOSIGNAL);
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        if (e === EAGAIN) break;
        this.fail(e, false);
        return;
      }
      this.queuedBytes -= n;
      if (n === head.length) q.shift();
      else {
        q[0] = head.subarray(n);
        break;
      }
    }
    if (this.queuedBytes === 0) {
      this.watch();
      this.sink.hostWritten();
      if (this.wasHigh) {
        this.wasHigh = false;
        this.sink.hostDrained();
      }
      if (this.closed) return;
      if (this.closeWanted) this.destroy();
      else if (this.endWanted) this.shutdownWrite();
    } else this.sink.hostWritten();
  }
}
