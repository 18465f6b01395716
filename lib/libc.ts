// krata's one libc binding: the calls Node cannot make itself (ioctl, mmap, mlock for xen/; flock for the
// image cache's lock; sockets, eventfd and raw frame I/O for net/), through koffi. Loaded once,
// lazily, so that importing it on a machine without it (or in tests) costs nothing. The calls net/ makes
// per frame take native addresses as plain numbers (intptr_t): the tables and arenas they point at live in
// anonymous mmaps whose addresses are computed once, so such a call creates no Buffer, no BigInt and
// nothing for koffi to pin.
//
// Constants are libc's (Linux/glibc x86_64 values, from the headers named next to them); the gcc probe in
// node-agent/net/link.test.ts checks the ones kratanet uses.
import koffi from 'koffi';
import { constants } from 'node:os';

// fcntl.h
export const O_RDWR = 0o2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const F_GETFL = 3;
export const F_SETFL = 4;

// sys/mman.h
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_POPULATE = 0x8000;
export const PROT_NONE = 0;
export const MAP_FIXED = 0x10;
export const MAP_NORESERVE = 0x4000;
const MAP_FAILED = 0xffffffffffffffffn;

// sys/file.h
export const LOCK_EX = 2;
export const LOCK_NB = 4;

// sys/socket.h, bits/socket_type.h
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const IPPROTO_TCP = 6;
export const TCP_NODELAY = 1;
export const SO_ERROR = 4;
export const SO_LINGER = 13;
export const SHUT_WR = 1;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
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

// sys/eventfd.h
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;

// errno (asm-generic/errno-base.h, errno.h)
export const EINTR = 4;
export const EAGAIN = 11;
export const EINPROGRESS = 115;
export const ENOBUFS = 105;

/** A native address passed as a number (intptr_t); user-space addresses fit in 53 bits. */
type Addr = number;

export interface Libc {
  open(path: string, flags: number, mode: number): number;
  close(fd: number): number;
  ioctl(fd: number, request: number, ...rest: unknown[]): number;
  fcntl(fd: number, cmd: number, ...rest: unknown[]): number;
  mmap(addr: unknown, len: number, prot: number, flags: number, fd: number, offset: number | bigint): unknown;
  munmap(addr: unknown, len: number): number;
  mlock(addr: unknown, len: number): number;
  flock(fd: number, operation: number): number;
  read(fd: number, buf: Addr, n: number): number;
  write(fd: number, buf: Addr, n: number): number;
  writev(fd: number, iov: Addr, iovcnt: number): number;
  /** read(2) and send(2) straight to and from a Buffer's memory (koffi passes its pointer, no copy). */
  readBuf(fd: number, buf: Buffer, n: number): number;
  send(fd: number, buf: Buffer, n: number, flags: number): number;
  connect(fd: number, addr: Buffer, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Buffer, len: Buffer): number;
  getsockname(fd: number, addr: Buffer, len: Buffer): number;
  getpeername(fd: number, addr: Buffer, len: Buffer): number;
  shutdown(fd: number, how: number): number;
  epoll_create1(flags: number): number;
  epoll_ctl(epfd: number, op: number, fd: number, event: Buffer | null): number;
  epoll_wait(epfd: number, events: Addr, max: number, timeout: number): number;
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  recvmmsg(fd: number, msgvec: Addr, vlen: number, flags: number, timeout: null): number;
  sendmmsg(fd: number, msgvec: Addr, vlen: number, flags: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrLen: number): number;
  recvfrom(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer | null, addrLen: Buffer | null): number;
  if_nametoindex(name: string): number;
  eventfd(initval: number, flags: number): number;
}

let lib: Libc | undefined;

/** The binding, loaded on first use (also in a worker thread: koffi functions belong to their thread). */
export function libc(): Libc {
  if (!lib) {
    const l = koffi.load('libc.so.6');
    lib = {
      open: l.func('int open(const char *path, int flags, int mode)'),
      close: l.func('int close(int fd)'),
      ioctl: l.func('int ioctl(int fd, unsigned long request, ...)'),
      fcntl: l.func('int fcntl(int fd, int cmd, ...)'),
      mmap: l.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t offset)'),
      munmap: l.func('int munmap(void *addr, size_t len)'),
      mlock: l.func('int mlock(const void *addr, size_t len)'),
      flock: l.func('int flock(int fd, int operation)'),
      read: l.func('long read(int fd, intptr_t buf, size_t n)'),
      write: l.func('long write(int fd, intptr_t buf, size_t n)'),
      writev: l.func('long writev(int fd, intptr_t iov, int iovcnt)'),
      readBuf: l.func('long read(int fd, void *buf, size_t n)'),
      send: l.func('long send(int fd, const void *buf, size_t n, int flags)'),
      connect: l.func('int connect(int fd, const void *addr, uint32_t len)'),
      getsockopt: l.func('int getsockopt(int fd, int level, int name, void *value, void *len)'),
      getsockname: l.func('int getsockname(int fd, void *addr, void *len)'),
      getpeername: l.func('int getpeername(int fd, void *addr, void *len)'),
      shutdown: l.func('int shutdown(int fd, int how)'),
      epoll_create1: l.func('int epoll_create1(int flags)'),
      epoll_ctl: l.func('int epoll_ctl(int epfd, int op, int fd, const void *event)'),
      epoll_wait: l.func('int epoll_wait(int epfd, intptr_t events, int maxevents, int timeout)'),
      socket: l.func('int socket(int domain, int type, int protocol)'),
      bind: l.func('int bind(int fd, const void *addr, uint32_t len)'),
      setsockopt: l.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
      recvmmsg: l.func('int recvmmsg(int fd, intptr_t msgvec, unsigned int vlen, int flags, void *timeout)'),
      sendmmsg: l.func('int sendmmsg(int fd, intptr_t msgvec, unsigned int vlen, int flags)'),
      sendto: l.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
      recvfrom: l.func('long recvfrom(int fd, void *buf, size_t len, int flags, void *addr, void *addrlen)'),
      if_nametoindex: l.func('unsigned int if_nametoindex(const char *name)'),
      eventfd: l.func('int eventfd(unsigned int initval, int flags)'),
    };
  }
  return lib;
}

/**
 * The main thread's libuv loop, from the node process itself (node exports libuv's API for addons): a
 * uv_poll handle lets the event loop watch a descriptor Node has no handle type for (AF_PACKET, raw
 * sockets), so readiness costs no thread hop. Main thread only (the loop and the callbacks are its).
 */
export interface Libuv {
  /** uv_default_loop(): the main thread's loop. */
  loop: Addr;
  /** sizeof(uv_poll_t). */
  pollSize: number;
  /** uv_poll_event's UV_READABLE and UV_WRITABLE. */
  READABLE: number;
  WRITABLE: number;
  poll_init(loop: Addr, handle: Addr, fd: number): number;
  /** `cb` is `pollCallback(fn)`'s value: fn(handle, status, events). */
  poll_start(handle: Addr, events: number, cb: unknown): number;
  poll_stop(handle: Addr): number;
  /** `cb` is `closeCallback(fn)`'s value: fn(handle), once libuv is done with the handle's memory. */
  close(handle: Addr, cb: unknown): void;
  pollCallback(fn: (handle: Addr, status: number, events: number) => void): unknown;
  closeCallback(fn: (handle: Addr) => void): unknown;
}

// uv.h (libuv's ABI, stable since 1.0; not exported, so the gcc probe of libc's constants skips them)
const UV_READABLE = 1; // enum uv_poll_event
const UV_WRITABLE = 2;
const UV_POLL = 8; // enum uv_handle_type

let uv: Libuv | undefined;

export function libuv(): Libuv {
  if (!uv) {
    const self = koffi.load(null);
    const handleSize = self.func('size_t uv_handle_size(int type)') as (t: number) => number;
    const PollCb = koffi.proto('void krata_uv_poll_cb(intptr_t handle, int status, int events)');
    const CloseCb = koffi.proto('void krata_uv_close_cb(intptr_t handle)');
    uv = {
      loop: (self.func('intptr_t uv_default_loop()') as () => number)(),
      pollSize: handleSize(UV_POLL),
      READABLE: UV_READABLE,
      WRITABLE: UV_WRITABLE,
      poll_init: self.func('int uv_poll_init(intptr_t loop, intptr_t handle, int fd)'),
      poll_start: self.func('int uv_poll_start(intptr_t handle, int events, krata_uv_poll_cb *cb)'),
      poll_stop: self.func('int uv_poll_stop(intptr_t handle)'),
      close: self.func('void uv_close(intptr_t handle, krata_uv_close_cb *cb)'),
      pollCallback: (fn) => koffi.register(fn, koffi.pointer(PollCb)),
      closeCallback: (fn) => koffi.register(fn, koffi.pointer(CloseCb)),
    };
  }
  return uv;
}

/** The errno of the last failed call on this thread. */
export function errno(): number {
  return koffi.errno();
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** ENOENT for 2, or "errno N" for numbers the OS does not name. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

export class SysError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    const code = errnoName(errno);
    super(`${call}: ${code}`);
    this.code = code;
  }
  readonly code: string;
}

/** `result`, or a SysError with errno if it is negative. */
export function check(call: string, result: number): number {
  if (result < 0) throw new SysError(call, koffi.errno());
  return result;
}

export function sysOpen(path: string, flags = O_RDWR | O_CLOEXEC): number {
  return check(`open ${path}`, libc().open(path, flags, 0));
}

export function sysClose(fd: number): void {
  libc().close(fd);
}

/** ioctl with a pointer argument; returns the ioctl's (non-negative) result. */
export function sysIoctl(fd: number, request: number, arg: Buffer | null, name = `ioctl 0x${request.toString(16)}`): number {
  return check(name, libc().ioctl(fd, request, 'void *', arg));
}

export interface Mapping {
  pointer: unknown;
  address: bigint;
  length: number;
  /** The mapped bytes, without copying. Do not touch after unmap(). */
  bytes: Buffer;
  unmap(): void;
}

export function sysMmap(length: number, prot: number, flags: number, fd = -1, offset: number | bigint = 0): Mapping {
  const c = libc();
  const pointer = c.mmap(null, length, prot, flags, fd, offset);
  const address = koffi.address(pointer);
  if (address === MAP_FAILED || address === 0n) throw new SysError('mmap', koffi.errno());
  let mapped = true;
  return {
    pointer,
    address,
    length,
    bytes: Buffer.from(koffi.view(pointer, length)),
    unmap: () => {
      if (mapped) c.munmap(pointer, length);
      mapped = false;
    },
  };
}

/**
 * mmap(2) with MAP_FIXED over the start of an existing mapping `at` (replacing what was there), without
 * a new JavaScript view: the caller keeps using at.bytes. Lets a process reuse one view, and so V8 does
 * not count a new external buffer (and collect garbage for it) per mapping.
 */
export function sysMmapOver(at: Mapping, length: number, prot: number, flags: number, fd = -1, offset: number | bigint = 0): void {
  if (length > at.length) throw new RangeError(`mmap over ${at.length} bytes: ${length} asked`);
  const pointer = libc().mmap(at.pointer, length, prot, flags | MAP_FIXED, fd, offset);
  const address = koffi.address(pointer);
  if (address === MAP_FAILED || address === 0n) throw new SysError('mmap', koffi.errno());
  if (address !== at.address) throw new Error(`mmap MAP_FIXED at 0x${at.address.toString(16)} returned 0x${address.toString(16)}`);
}

export function sysMlock(m: Mapping): void {
  check('mlock', libc().mlock(m.pointer, m.length));
}

/** sendto(2) of buf[0, len) to the sockaddr in addr[0, addrLen); -1 and errno() on failure. */
/** flock(2); with LOCK_NB, false when another open file holds the lock (EWOULDBLOCK). */
export function sysFlock(fd: number, operation: number): boolean {
  if (libc().flock(fd, operation) === 0) return true;
  const e = koffi.errno();
  if (e === constants.errno.EWOULDBLOCK) return false;
  throw new SysError('flock', e);
}

export function sysSendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrLen: number): number {
  return libc().sendto(fd, buf, len, flags, addr, addrLen);
}

/**
 * recvfrom(2) into buf[0, len); the sender's sockaddr goes to `addr` when given, with `addrLen` a 4-byte
 * socklen_t holding addr's size on entry and the address length on return. -1 and errno() on failure.
 */
export function sysRecvfrom(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer | null, addrLen: Buffer | null): number {
  return libc().recvfrom(fd, buf, len, flags, addr, addrLen);
}
