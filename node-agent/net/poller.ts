// One epoll set per process for kratanet's file descriptors. epoll_wait runs through koffi's async call on
// the libuv threadpool, so the main thread never blocks; when it returns, the ready fds' handlers run on the
// main thread and the wait is re-armed. Level-triggered: a handler that leaves data behind (e.g. it hit its
// per-wake cap) is called again on the next wake.
//
// An eventfd in the set lets remove()/close() interrupt a pending wait. When no fds are registered no wait
// is pending, so the process can exit. Note that while fds are registered one threadpool thread is parked
// in epoll_wait (consider UV_THREADPOOL_SIZE if the process also leans on fs/dns/crypto).
import { sysMmap, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, type Mapping } from '../xen/sys/libc.js';
import {
  addrNumber, check, EFD_CLOEXEC, EFD_NONBLOCK, EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLERR, EPOLLHUP,
  EPOLLIN, EPOLLOUT, epollEvent, net,
} from './sys.js';

export interface PollHandlers {
  readable?: () => void;
  writable?: () => void;
}

const MAX_EVENTS = 64;
const EV_SIZE = epollEvent.size;
const EV_DATA = epollEvent.fields.data.offset;
// Layout of the poller's native page: the events array the worker thread fills, then (main thread only) the
// epoll_event for epoll_ctl, an 8-byte eventfd counter to write and one to read into.
const CTL_AT = MAX_EVENTS * 16;
const WAKE_AT = CTL_AT + 16;
const DRAIN_AT = WAKE_AT + 8;
const PAGE = 4096;

function interest(h: PollHandlers): number {
  return (h.readable ? EPOLLIN : 0) | (h.writable ? EPOLLOUT : 0);
}

let shared: Poller | undefined;
// A wait still blocked in epoll_wait on a threadpool thread would keep the process from exiting (libuv
// joins its threads at exit): every live poller is woken and closed when the process exits.
const live = new Set<Poller>();
let exitHook = false;

export class Poller {
  /** The process-wide poller (a new one if the previous was closed). */
  static shared(): Poller {
    if (!shared || shared.closed) shared = new Poller();
    return shared;
  }

  private readonly epfd: number;
  private readonly efd: number;
  private readonly page: Mapping;
  private readonly bytes: Buffer;
  private readonly base: number;
  private readonly handlers = new Map<number, PollHandlers>();
  private waiting = false;
  private dispatching = false;
  private signalled = false;
  private closed = false;
  private released = false;

  constructor() {
    const lib = net();
    this.epfd = check('epoll_create1', lib.epoll_create1(EPOLL_CLOEXEC));
    try {
      this.efd = check('eventfd', lib.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      try {
        this.page = sysMmap(PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      } catch (e) {
        lib.close(this.efd);
        throw e;
      }
    } catch (e) {
      lib.close(this.epfd);
      throw e;
    }
    this.bytes = this.page.bytes;
    this.base = addrNumber(this.page.address);
    this.bytes.writeUInt32LE(1, WAKE_AT);
    this.ctl(EPOLL_CTL_ADD, this.efd, EPOLLIN);
    live.add(this);
    if (!exitHook) {
      exitHook = true;
      process.once('exit', () => {
        for (const p of [...live]) p.close();
      });
    }
  }

  /** Watches `fd`; interest is EPOLLIN if `readable` is set and EPOLLOUT if `writable` is. */
  add(fd: number, handlers: PollHandlers): void {
    if (this.closed) throw new Error('poller is closed');
    if (this.handlers.has(fd)) throw new Error(`fd ${fd} is already in the poller`);
    this.ctl(EPOLL_CTL_ADD, fd, interest(handlers));
    this.handlers.set(fd, { ...handlers });
    this.arm();
  }

  /** Replaces the handlers (and so the interest) of a watched fd. A no-op once the poller is closed. */
  modify(fd: number, handlers: PollHandlers): void {
    if (this.closed) return;
    const old = this.handlers.get(fd);
    if (!old) throw new Error(`fd ${fd} is not in the poller`);
    const want = interest(handlers);
    // epoll_ctl takes effect on a pending wait too: the kernel wakes it if the new interest is ready.
    if (want !== interest(old)) this.ctl(EPOLL_CTL_MOD, fd, want);
    old.readable = handlers.readable;
    old.writable = handlers.writable;
  }

  /** Stops watching `fd` (call before closing it). Unknown fds are ignored. */
  remove(fd: number): void {
    if (!this.handlers.delete(fd)) return;
    net().epoll_ctl(this.epfd, EPOLL_CTL_DEL, fd, 0);
    if (this.handlers.size === 0) this.wake();
  }

  /** Forgets every fd and closes the epoll set (once a pending wait has returned). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    live.delete(this);
    this.handlers.clear();
    if (this.waiting) this.wake();
    else if (!this.dispatching) this.release();
  }

  /** Number of watched fds (not counting the internal eventfd). */
  get size(): number {
    return this.handlers.size;
  }

  private ctl(op: number, fd: number, events: number): void {
    this.bytes.writeUInt32LE(events, CTL_AT);
    this.bytes.writeUInt32LE(fd, CTL_AT + EV_DATA);
    this.bytes.writeUInt32LE(0, CTL_AT + EV_DATA + 4);
    check(`epoll_ctl ${op} fd ${fd}`, net().epoll_ctl(this.epfd, op, fd, this.base + CTL_AT));
  }

  private wake(): void {
    if (!this.waiting || this.signalled) return;
    this.signalled = true;
    net().write(this.efd, this.base + WAKE_AT, 8);
  }

  private arm(): void {
    if (this.waiting || this.dispatching || this.closed || this.handlers.size === 0) return;
    this.waiting = true;
    net().epoll_wait.async(this.epfd, this.base, MAX_EVENTS, -1, this.onWake);
  }

  private readonly onWake = (err: unknown, n: number): void => {
    this.waiting = false;
    if (this.closed) {
      this.release();
      return;
    }
    if (err) {
      // koffi could not make the call at all; retrying would spin.
      process.nextTick(() => {
        throw err;
      });
      return;
    }
    let failure: unknown;
    let failed = false;
    this.dispatching = true;
    try {
      const b = this.bytes;
      for (let i = 0; i < n && !this.closed; i++) {
        const at = i * EV_SIZE;
        const ev = b.readUInt32LE(at);
        const fd = b.readUInt32LE(at + EV_DATA);
        if (fd === this.efd) {
          net().read(this.efd, this.base + DRAIN_AT, 8);
          this.signalled = false;
          continue;
        }
        let h = this.handlers.get(fd);
        if (!h) continue;
        try {
          if (h.readable && ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) h.readable();
          h = this.handlers.get(fd);
          if (h?.writable && ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) h.writable();
        } catch (e) {
          // Keep the poller consistent and serving the other fds; surface the error afterwards.
          if (!failed) failure = e;
          failed = true;
        }
      }
    } finally {
      this.dispatching = false;
    }
    if (this.closed) this.release();
    else this.arm();
    if (failed) {
      process.nextTick(() => {
        throw failure;
      });
    }
  };

  private release(): void {
    if (this.released) return;
    this.released = true;
    const lib = net();
    lib.close(this.efd);
    lib.close(this.epfd);
    this.page.unmap();
  }
}
