// Readiness of many sockets (the dom0 ends of a guest's TCP flows) through one epoll instance of our own,
// itself watched by the Poller as a single fd: a loop iteration in which N sockets are ready costs one
// call into JS and one epoll_wait, not N libuv callbacks. Level-triggered, as the Poller: a handler that
// leaves data behind is called again on the next iteration. Like a socket, the set holds the event loop
// only while it watches something.
import {
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  errno,
  EINTR,
  libc,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  SysError,
  check,
  sysClose,
  sysMmap,
  type Mapping,
} from '../../lib/libc.js';
import { Poller } from './poller.js';
import { addrNumber, get32le, put32le } from './sys.js';

export type ReadyHandler = (events: number) => void;

/** struct epoll_event is packed on x86_64: u32 events, u64 data (here: fd, then the watch's serial). */
const EVENT_SIZE = 12;
const MAX_EVENTS = 256;

interface Entry {
  handler: ReadyHandler;
  serial: number;
  /** The events registered with the kernel; -1 when the fd is not in the epoll set. */
  events: number;
}

let shared: EpollSet | undefined;

export class EpollSet {
  /** The process-wide set (a new one if the previous was closed). */
  static shared(): EpollSet {
    if (!shared || shared.closed) shared = new EpollSet();
    return shared;
  }

  private readonly epfd: number;
  private readonly ring: Mapping;
  private readonly ringAddr: number;
  private readonly entries: (Entry | undefined)[] = [];
  private readonly event = Buffer.alloc(EVENT_SIZE);
  private serial = 0;
  private count = 0;
  private closed = false;

  constructor(private readonly poller: Poller = Poller.shared()) {
    this.epfd = check('epoll_create1', libc().epoll_create1(EPOLL_CLOEXEC));
    try {
      this.ring = sysMmap(MAX_EVENTS * EVENT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    } catch (e) {
      sysClose(this.epfd);
      throw e;
    }
    this.ringAddr = addrNumber(this.ring.address);
    poller.add(this.epfd, {});
  }

  /** Watches `fd` for `events` (EPOLLIN | EPOLLOUT; 0: registered, nothing asked); `handler` gets what is ready. */
  add(fd: number, events: number, handler: ReadyHandler): void {
    if (this.closed) throw new Error('epoll set is closed');
    if (this.entries[fd]) throw new Error(`fd ${fd} is already in the epoll set`);
    const e: Entry = { handler, serial: (this.serial = (this.serial + 1) >>> 0), events: -1 };
    try {
      this.ctl(fd, e, events);
    } catch (err) {
      if (e.events >= 0) libc().epoll_ctl(this.epfd, EPOLL_CTL_DEL, fd, null);
      throw err;
    }
    this.entries[fd] = e;
    if (this.count++ === 0) this.poller.modify(this.epfd, { readable: this.onReady });
  }

  /**
   * Changes what `fd` is watched for. With `events` 0 the fd leaves the kernel's set (EPOLLHUP and
   * EPOLLERR are reported whatever is asked: a paused socket whose peer hung up would wake us forever).
   */
  modify(fd: number, events: number): void {
    const e = this.entries[fd];
    if (!e || this.closed) return;
    this.ctl(fd, e, events);
  }

  /** Stops watching `fd` (call before closing it). Unknown fds are ignored. */
  remove(fd: number): void {
    const e = this.entries[fd];
    if (!e) return;
    this.entries[fd] = undefined;
    if (this.closed) return;
    if (e.events >= 0) libc().epoll_ctl(this.epfd, EPOLL_CTL_DEL, fd, null);
    if (--this.count === 0) this.poller.modify(this.epfd, {});
  }

  /** Number of watched fds. */
  get size(): number {
    return this.count;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller.remove(this.epfd);
    sysClose(this.epfd);
    this.ring.unmap();
    this.entries.length = 0;
    this.count = 0;
  }

  private ctl(fd: number, e: Entry, events: number): void {
    if (events === e.events) return;
    let op: number;
    if (events === 0) {
      if (e.events < 0) return;
      op = EPOLL_CTL_DEL;
    } else op = e.events < 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    const ev = this.event;
    put32le(ev, 0, events);
    put32le(ev, 4, fd);
    put32le(ev, 8, e.serial);
    if (libc().epoll_ctl(this.epfd, op, fd, op === EPOLL_CTL_DEL ? null : ev) < 0) throw new SysError(`epoll_ctl fd ${fd}`, errno());
    e.events = events === 0 ? -1 : events;
  }

  private readonly onReady = (): void => {
    if (this.closed) return;
    let n = libc().epoll_wait(this.epfd, this.ringAddr, MAX_EVENTS, 0);
    if (n < 0) {
      if (errno() !== EINTR) throw new SysError('epoll_wait', errno());
      n = 0;
    }
    const ring = this.ring.bytes;
    for (let i = 0; i < n; i++) {
      const at = i * EVENT_SIZE;
      const fd = get32le(ring, at + 4);
      const e = this.entries[fd];
      // A handler earlier in this batch may have closed the fd and another socket taken its number.
      if (!e || e.serial !== get32le(ring, at + 8)) continue;
      e.handler(get32le(ring, at));
    }
  };
}
