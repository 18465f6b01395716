// One epoll set per process for kratanet's file descriptors. A worker thread blocks in epoll_wait and,
// when something is ready, writes a byte into a pipe that the main thread's event loop watches (libuv
// wakes for it like for any socket); the main thread then collects the ready fds with a non-blocking
// epoll_wait of its own, runs their handlers, and lets the worker wait again. Level-triggered: a handler
// that leaves data behind (e.g. it hit its per-wake cap) is called again on the next wake. (koffi's async
// call did the same through the libuv threadpool, at ~27 µs of main-thread CPU per wake; this costs a
// few.)
//
// An eventfd in the set lets close() interrupt the worker's wait. The pipe keeps the event loop alive only
// while fds are registered, so an idle process can exit.
import { Worker } from 'node:worker_threads';
import { Socket } from 'node:net';
import {
  check,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  libc,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_CLOEXEC,
  PROT_READ,
  PROT_WRITE,
  sysMmap,
  type Mapping,
} from '../../lib/libc.js';
import { addrNumber, epollEvent } from './sys.js';

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
const PIPE_AT = DRAIN_AT + 8; // int[2] from pipe2
const WORKER_AT = PIPE_AT + 8; // the worker's own events array and the byte it writes
const PAGE = 4096;

// The worker: wait, signal through the pipe, park until the main thread has dispatched, repeat. It loads
// lib/libc.js itself: koffi's functions belong to the thread that declared them.
const WORKER = `
const { workerData } = require('node:worker_threads');
import(workerData.libc).then(({ libc, errno, EINTR }) => {
  const l = libc();
  const ctl = new Int32Array(workerData.ctl);
  const { epfd, pipe, scratch } = workerData;
  for (;;) {
    const n = l.epoll_wait(epfd, scratch, 4, -1);
    if (Atomics.load(ctl, 1)) break;
    if (n < 0) { if (errno() === EINTR) continue; break; }
    if (n === 0) continue;
    Atomics.store(ctl, 0, 0);
    if (l.write(pipe, scratch + 64, 1) !== 1) break;
    Atomics.wait(ctl, 0, 0);
    if (Atomics.load(ctl, 1)) break;
  }
});
`;

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
  /** [0]: the main thread has dispatched (the worker may wait again); [1]: stop. */
  private readonly ctlWords = new Int32Array(new SharedArrayBuffer(8));
  private worker: Worker | null = null;
  private pipe: Socket | null = null;
  private closed = false;
  private released = false;

  constructor() {
    const lib = libc();
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
    this.start();
    this.pipe?.ref();
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
    libc().epoll_ctl(this.epfd, EPOLL_CTL_DEL, fd, 0);
    if (this.handlers.size === 0) this.pipe?.unref();
  }

  /** Forgets every fd and closes the epoll set (once a pending wait has returned). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    live.delete(this);
    this.handlers.clear();
    this.pipe?.destroy();
    this.pipe = null;
    const w = this.worker;
    if (!w) {
      this.release();
      return;
    }
    // Out of epoll_wait (the eventfd) or out of its parking (the flag), then it exits; the fds it
    // waits on are closed only after that.
    Atomics.store(this.ctlWords, 1, 1);
    Atomics.store(this.ctlWords, 0, 1);
    Atomics.notify(this.ctlWords, 0);
    libc().write(this.efd, this.base + WAKE_AT, 8);
    w.once('exit', () => this.release());
  }

  /** Number of watched fds (not counting the internal eventfd). */
  get size(): number {
    return this.handlers.size;
  }

  private ctl(op: number, fd: number, events: number): void {
    this.bytes.writeUInt32LE(events, CTL_AT);
    this.bytes.writeUInt32LE(fd, CTL_AT + EV_DATA);
    this.bytes.writeUInt32LE(0, CTL_AT + EV_DATA + 4);
    check(`epoll_ctl ${op} fd ${fd}`, libc().epoll_ctl(this.epfd, op, fd, this.base + CTL_AT));
  }

  private start(): void {
    if (this.worker || this.closed) return;
    const lib = libc();
    check('pipe2', lib.pipe2(this.base + PIPE_AT, O_CLOEXEC));
    const readFd = this.bytes.readInt32LE(PIPE_AT);
    const writeFd = this.bytes.readInt32LE(PIPE_AT + 4);
    this.writeFd = writeFd;
    this.pipe = new Socket({ fd: readFd, readable: true, writable: false });
    this.pipe.on('data', this.onWake);
    this.pipe.on('error', (e) =>
      process.nextTick(() => {
        throw e;
      }),
    );
    const w = new Worker(WORKER, {
      eval: true,
      workerData: {
        libc: new URL('../../lib/libc.js', import.meta.url).href,
        ctl: this.ctlWords.buffer,
        epfd: this.epfd,
        pipe: writeFd,
        scratch: this.base + WORKER_AT,
      },
    });
    w.unref();
    w.on('error', (e) =>
      process.nextTick(() => {
        throw e;
      }),
    );
    w.on('exit', () => {
      if (!this.closed)
        process.nextTick(() => {
          throw new Error("the poller's worker thread exited");
        });
    });
    this.worker = w;
  }

  private writeFd = -1;

  private readonly onWake = (): void => {
    if (this.closed) return;
    let failure: unknown;
    let failed = false;
    try {
      const lib = libc();
      const b = this.bytes;
      const n = lib.epoll_wait(this.epfd, this.base, MAX_EVENTS, 0);
      for (let i = 0; i < n && !this.closed; i++) {
        const at = i * EV_SIZE;
        const ev = b.readUInt32LE(at);
        const fd = b.readUInt32LE(at + EV_DATA);
        if (fd === this.efd) {
          lib.read(this.efd, this.base + DRAIN_AT, 8);
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
      if (!this.closed) {
        Atomics.store(this.ctlWords, 0, 1);
        Atomics.notify(this.ctlWords, 0);
      }
    }
    if (failed) {
      process.nextTick(() => {
        throw failure;
      });
    }
  };

  private release(): void {
    if (this.released) return;
    this.released = true;
    const lib = libc();
    lib.close(this.efd);
    lib.close(this.epfd);
    if (this.writeFd >= 0) lib.close(this.writeFd);
    this.page.unmap();
  }
}
