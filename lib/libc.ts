// The few libc calls Node cannot make itself (ioctl, mmap, mlock, flock), through koffi. Loaded lazily so that
// importing xen/ on a machine without it (or in tests) costs nothing.
import koffi from 'koffi';
import { constants } from 'node:os';

export const O_RDWR = 0o2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_POPULATE = 0x8000;
const MAP_FAILED = 0xffffffffffffffffn;
export const LOCK_EX = 2;
export const LOCK_NB = 4;

interface Libc {
  open: (path: string, flags: number, mode: number) => number;
  close: (fd: number) => number;
  ioctl: (fd: number, request: number, ...rest: unknown[]) => number;
  mmap: (addr: unknown, len: number, prot: number, flags: number, fd: number, offset: number | bigint) => unknown;
  munmap: (addr: unknown, len: number) => number;
  mlock: (addr: unknown, len: number) => number;
  flock: (fd: number, operation: number) => number;
}

let libc: Libc | undefined;

function load(): Libc {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    libc = {
      open: lib.func('int open(const char *path, int flags, int mode)'),
      close: lib.func('int close(int fd)'),
      ioctl: lib.func('int ioctl(int fd, unsigned long request, ...)'),
      mmap: lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t offset)'),
      munmap: lib.func('int munmap(void *addr, size_t len)'),
      mlock: lib.func('int mlock(const void *addr, size_t len)'),
      flock: lib.func('int flock(int fd, int operation)'),
    };
  }
  return libc;
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

function check(call: string, result: number): number {
  if (result < 0) throw new SysError(call, koffi.errno());
  return result;
}

export function sysOpen(path: string, flags = O_RDWR | O_CLOEXEC): number {
  return check(`open ${path}`, load().open(path, flags, 0));
}

export function sysClose(fd: number): void {
  load().close(fd);
}

/** ioctl with a pointer argument; returns the ioctl's (non-negative) result. */
export function sysIoctl(fd: number, request: number, arg: Buffer | null, name = `ioctl 0x${request.toString(16)}`): number {
  return check(name, load().ioctl(fd, request, 'void *', arg));
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
  const c = load();
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

export function sysMlock(m: Mapping): void {
  check('mlock', load().mlock(m.pointer, m.length));
}

/** flock(2); with LOCK_NB, false when another open file holds the lock (EWOULDBLOCK). */
export function sysFlock(fd: number, operation: number): boolean {
  if (load().flock(fd, operation) === 0) return true;
  const errno = koffi.errno();
  if (errno === constants.errno.EWOULDBLOCK) return false;
  throw new SysError('flock', errno);
}
