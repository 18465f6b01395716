// Readiness of kratanet's file descriptors (packet sockets, TAP devices, raw ICMP sockets), watched by
// the main thread's own event loop: one libuv uv_poll handle per fd (lib/libc.ts's libuv()), so a
// readable fd costs libuv's epoll_wait, which it makes anyway, and one call into JS; no thread, pipe
// or futex between the kernel and the handler. (Before: a worker thread in epoll_wait that woke the
// loop through a pipe, 7 syscalls and two thread switches per wake.) Level-triggered: a handler that
// leaves data behind (it hit its per-wake cap) is called again on the next loop iteration. An active
// handle holds the event loop, so an idle process can exit once its fds are removed.
import { isMainThread } from 'node:worker_threads';
import { libuv, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, sysMmap } from '../../lib/libc.js';
import { addrNumber } from './sys.js';

export interface PollHandlers {
  readable?: () => void;
  writable?: () => void;
}

function interest(h: PollHandlers): number {
  return (h.readable ? libuv().READABLE : 0) | (h.writable ? libuv().WRITABLE : 0);
}

interface Watch {
  fd: number;
  handle: number;
  handlers: PollHandlers;
  poller: Poller;
  /** The events the handle is started with (0: stopped). */
  events: number;
}

// uv_poll_t memory: slots in anonymous mmaps, never unmapped; a slot is reused once libuv's close
// callback says the handle is done with it.
const SLAB_SLOTS = 64;
const free: number[] = [];
const byHandle = new Map<number, Watch>();
let onPoll: unknown;
let onClose: unknown;

function slot(): number {
  if (free.length === 0) {
    const size = (libuv().pollSize + 15) & ~15;
    const slab = sysMmap(size * SLAB_SLOTS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const base = addrNumber(slab.address);
    for (let i = SLAB_SLOTS - 1; i >= 0; i--) free.push(base + i * size);
  }
  return free.pop()!;
}

/** libuv's callback for every handle: the watch's handlers; an error (POLLERR: libuv stopped the handle) is reported as readiness. */
function dispatch(handle: number, status: number, events: number): void {
  const w = byHandle.get(handle);
  if (!w) return;
  try {
    if (status < 0) {
      // The handlers' own calls see the socket's error (and clear it); the watch goes on.
      w.events = 0;
      w.handlers.readable?.();
      if (byHandle.get(handle) === w) w.handlers.writable?.();
      if (byHandle.get(handle) === w) w.poller.restart(w);
      return;
    }
    const uv = libuv();
    if (w.handlers.readable && events & uv.READABLE) w.handlers.readable();
    if (byHandle.get(handle) === w && w.handlers.writable && events & uv.WRITABLE) w.handlers.writable();
  } catch (e) {
    // koffi would swallow it: surface it as an uncaught exception, as any event handler's.
    process.nextTick(() => {
      throw e;
    });
  }
}

let shared: Poller | undefined;

export class Poller {
  /** The process-wide poller (a new one if the previous was closed). */
  static shared(): Poller {
    if (!shared || shared.closed) shared = new Poller();
    return shared;
  }

  private readonly watches = new Map<number, Watch>();
  private closed = false;

  constructor() {
    if (!isMainThread) throw new Error("the poller runs on the main thread's event loop");
    libuv();
    onPoll ??= libuv().pollCallback(dispatch);
    onClose ??= libuv().closeCallback((handle) => free.push(handle));
  }

  /** Watches `fd`: readable() when it is readable (or in error), writable() when writable. */
  add(fd: number, handlers: PollHandlers): void {
    if (this.closed) throw new Error('poller is closed');
    if (this.watches.has(fd)) throw new Error(`fd ${fd} is already in the poller`);
    const uv = libuv();
    const handle = slot();
    const rc = uv.poll_init(uv.loop, handle, fd);
    if (rc < 0) {
      free.push(handle);
      throw new Error(`uv_poll_init fd ${fd}: libuv error ${rc}`);
    }
    // Both fields always present: one object shape for dispatch's loads, whichever handlers a watch has.
    const w: Watch = { fd, handle, handlers: { readable: handlers.readable, writable: handlers.writable }, poller: this, events: 0 };
    this.watches.set(fd, w);
    byHandle.set(handle, w);
    this.restart(w);
  }

  /** Replaces the handlers (and so the interest) of a watched fd. A no-op once the poller is closed. */
  modify(fd: number, handlers: PollHandlers): void {
    if (this.closed) return;
    const w = this.watches.get(fd);
    if (!w) throw new Error(`fd ${fd} is not in the poller`);
    w.handlers.readable = handlers.readable;
    w.handlers.writable = handlers.writable;
    this.restart(w);
  }

  /** Stops watching `fd` (call before closing it). Unknown fds are ignored. */
  remove(fd: number): void {
    const w = this.watches.get(fd);
    if (!w) return;
    this.watches.delete(fd);
    this.release(w);
  }

  /** Forgets every fd. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watches.values()) this.release(w);
    this.watches.clear();
  }

  /** Number of watched fds. */
  get size(): number {
    return this.watches.size;
  }

  /** Starts (or stops) the handle with the handlers' interest, if it changed. */
  restart(w: Watch): void {
    const want = interest(w.handlers);
    if (want === w.events) return;
    const uv = libuv();
    const rc = want ? uv.poll_start(w.handle, want, onPoll) : uv.poll_stop(w.handle);
    if (rc < 0) throw new Error(`uv_poll_start fd ${w.fd}: libuv error ${rc}`);
    w.events = want;
  }

  private release(w: Watch): void {
    byHandle.delete(w.handle);
    // uv_close stops the handle; the slot is free once libuv calls back.
    libuv().close(w.handle, onClose);
  }
}
