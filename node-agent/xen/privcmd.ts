// /dev/xen/privcmd: hypercalls and foreign memory mapping from dom0 userspace. Hypercall arguments
// that point at memory must point at buffers the kernel lets Xen touch: pages from /dev/xen/hypercall
// where it exists (Linux >= 4.18), otherwise anonymous pages locked in memory.
import { existsSync } from 'node:fs';
import { PAGE_SIZE, PrivcmdIoctl, privcmdHypercall, privcmdMmapBatchV2, privcmdMmapResource } from './abi.js';
import { setField } from '../../lib/c-layout.js';
import {
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  SysError,
  errnoName,
  sysClose,
  sysIoctl,
  sysMlock,
  sysMmap,
  sysMmapOver,
  sysOpen,
  type Mapping,
} from '../../lib/libc.js';

export const PRIVCMD_PATH = '/dev/xen/privcmd';
export const HYPERCALL_BUFFER_PATH = '/dev/xen/hypercall';

/** This process cannot talk to Xen: not a Xen dom0, privcmd not loaded, or the hypervisor does not answer. */
export class NotOnXenError extends Error {
  constructor(detail: string) {
    super(`krata needs a Xen dom0: ${detail}`);
  }
}

/** A failed hypercall: the hypervisor's errno, named. */
export class HypercallError extends Error {
  constructor(
    readonly what: string,
    readonly code: string,
    readonly errno: number,
  ) {
    super(`${what}: ${code}`);
  }
}

export interface HypercallBuffer {
  /** The address to hand to Xen. */
  address: bigint;
  bytes: Buffer;
  release(): void;
}

/**
 * Foreign mappings of at least WINDOW_MIN_BYTES go into reserved address-space windows reused from one
 * mapping to the next: a new mapping's JavaScript view would be a new external buffer of tens of MiB,
 * and V8 answers each with a full garbage collection (hundreds of ms on a slow dom0, mid-build).
 */
export const WINDOW_BYTES = 256 * 1024 * 1024;
const WINDOW_MIN_BYTES = 1024 * 1024;
/** Free windows kept for reuse; more are returned to the system. Each is address space only. */
const WINDOWS_KEPT = 2;

export class Privcmd {
  private readonly windows: Mapping[] = [];

  private constructor(
    private readonly fd: number,
    private readonly bufferFd: number | undefined,
  ) {}

  static open(paths: { privcmd?: string; hypercall?: string } = {}): Privcmd {
    const privcmd = paths.privcmd ?? PRIVCMD_PATH;
    if (!existsSync(privcmd)) {
      throw new NotOnXenError(`${privcmd} is missing (is this machine running Xen as dom0, with the xen_privcmd module loaded?)`);
    }
    let fd: number;
    try {
      fd = sysOpen(privcmd);
    } catch (e) {
      throw new NotOnXenError(
        `cannot open ${privcmd}: ` +
          `${(e as SysError).code ?? (e as Error).message}${(e as SysError).code === 'EACCES' ? ' (run as root)' : ''}`,
      );
    }
    const hypercall = paths.hypercall ?? HYPERCALL_BUFFER_PATH;
    let bufferFd: number | undefined;
    try {
      bufferFd = existsSync(hypercall) ? sysOpen(hypercall) : undefined;
    } catch {
      bufferFd = undefined;
    }
    return new Privcmd(fd, bufferFd);
  }

  /** Issue a hypercall; a negative result from Xen becomes a HypercallError naming `what`. */
  hypercall(op: number, args: (number | bigint)[], what = `hypercall ${op}`): number {
    if (args.length > 5) throw new RangeError('a hypercall takes at most 5 arguments');
    const call = Buffer.alloc(privcmdHypercall.size);
    setField(call, privcmdHypercall, 'op', op);
    args.forEach((a, i) => setField(call, privcmdHypercall, `arg${i}` as 'arg0', BigInt(a)));
    try {
      return sysIoctl(this.fd, PrivcmdIoctl.HYPERCALL, call, what);
    } catch (e) {
      if (e instanceof SysError) throw new HypercallError(what, e.code, e.errno);
      throw e;
    }
  }

  /** Memory Xen may read and write during a hypercall, rounded up to whole pages. */
  buffer(size: number): HypercallBuffer {
    const length = Math.max(PAGE_SIZE, Math.ceil(size / PAGE_SIZE) * PAGE_SIZE);
    let m: Mapping;
    if (this.bufferFd !== undefined) m = sysMmap(length, PROT_READ | PROT_WRITE, MAP_SHARED, this.bufferFd, 0);
    else {
      m = sysMmap(length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      try {
        sysMlock(m);
      } catch (e) {
        m.unmap();
        throw e;
      }
    }
    m.bytes.fill(0);
    return { address: m.address, bytes: m.bytes.subarray(0, size), release: () => m.unmap() };
  }

  /**
   * Map frames of another domain into our address space (IOCTL_PRIVCMD_MMAPBATCH_V2). Frames Xen
   * reports as paged out (ENOENT) are retried briefly; any other per-frame error fails the mapping.
   */
  async mapForeign(domid: number, frames: bigint[] | BigUint64Array, writable = true): Promise<Mapping> {
    const length = frames.length * PAGE_SIZE;
    const m = this.mapDevice(length, PROT_READ | (writable ? PROT_WRITE : 0));
    // The frame and error arrays are read and written by the kernel through pointers in the request,
    // so they live in memory whose address we know.
    const arrays = sysMmap(Math.ceil((frames.length * 12) / PAGE_SIZE) * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    try {
      new BigUint64Array(arrays.bytes.buffer, arrays.bytes.byteOffset, frames.length).set(frames);
      const errAddress = arrays.address + BigInt(frames.length * 8);
      for (let attempt = 0; ; attempt++) {
        const req = Buffer.alloc(privcmdMmapBatchV2.size);
        setField(req, privcmdMmapBatchV2, 'num', frames.length);
        setField(req, privcmdMmapBatchV2, 'dom', domid);
        setField(req, privcmdMmapBatchV2, 'addr', m.address);
        setField(req, privcmdMmapBatchV2, 'arr', arrays.address);
        setField(req, privcmdMmapBatchV2, 'err', errAddress);
        let paged = false;
        try {
          sysIoctl(this.fd, PrivcmdIoctl.MMAPBATCH_V2, req, `map ${frames.length} frames of domain ${domid}`);
        } catch (e) {
          paged = (e as SysError).code === 'ENOENT';
          if (!paged || attempt >= 50) throw e;
        }
        // The ioctl can succeed with some frames unmapped: their errors are in the err array, and
        // touching such a page would crash the process. Refuse the whole mapping instead.
        const failed = firstFrameError(arrays.bytes, frames.length * 8, frames.length);
        if (!paged && failed === undefined) return m;
        if (failed !== undefined && failed.errno !== -2) {
          throw new HypercallError(
            `map frame ${frames[failed.index]} (${failed.index + 1} of ${frames.length}) of domain ${domid}`,
            errnoName(-failed.errno),
            -failed.errno,
          );
        }
        if (attempt >= 50) throw new HypercallError(`map ${frames.length} frames of domain ${domid}: frames stay paged out`, 'ENOENT', 2);
        await new Promise((r) => setTimeout(r, 1));
      }
    } catch (e) {
      m.unmap();
      throw e;
    } finally {
      arrays.unmap();
    }
  }

  /** A fresh privcmd mapping of `length` bytes, in a reused window when it is large. */
  private mapDevice(length: number, prot: number): Mapping {
    if (length < WINDOW_MIN_BYTES || length > WINDOW_BYTES) return sysMmap(length, prot, MAP_SHARED, this.fd, 0);
    const window = this.windows.pop() ?? sysMmap(WINDOW_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    try {
      sysMmapOver(window, length, prot, MAP_SHARED, this.fd, 0);
    } catch (e) {
      window.unmap();
      throw e;
    }
    let mapped = true;
    return {
      pointer: window.pointer,
      address: window.address,
      length,
      bytes: window.bytes.subarray(0, length),
      unmap: () => {
        if (!mapped) return;
        mapped = false;
        // Replacing the foreign pages with reserved address space unmaps them, as munmap would.
        try {
          sysMmapOver(window, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
        } catch {
          window.unmap();
          return;
        }
        if (this.windows.length < WINDOWS_KEPT) this.windows.push(window);
        else window.unmap();
      },
    };
  }

  /** Map a domain's resource frames (IOCTL_PRIVCMD_MMAP_RESOURCE), e.g. its grant table. */
  mapResource(domid: number, type: number, id: number, index: number, frames: number): Mapping {
    const m = sysMmap(frames * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, this.fd, 0);
    const req = Buffer.alloc(privcmdMmapResource.size);
    setField(req, privcmdMmapResource, 'dom', domid);
    setField(req, privcmdMmapResource, 'type', type);
    setField(req, privcmdMmapResource, 'id', id);
    setField(req, privcmdMmapResource, 'idx', index);
    setField(req, privcmdMmapResource, 'num', BigInt(frames));
    setField(req, privcmdMmapResource, 'addr', m.address);
    try {
      sysIoctl(this.fd, PrivcmdIoctl.MMAP_RESOURCE, req, `map resource ${type} of domain ${domid}`);
      return m;
    } catch (e) {
      m.unmap();
      throw e;
    }
  }

  close(): void {
    for (const w of this.windows.splice(0)) w.unmap();
    sysClose(this.fd);
    if (this.bufferFd !== undefined) sysClose(this.bufferFd);
  }
}

function firstFrameError(bytes: Buffer, offset: number, count: number): { index: number; errno: number } | undefined {
  for (let i = 0; i < count; i++) {
    const errno = bytes.readInt32LE(offset + i * 4);
    if (errno !== 0) return { index: i, errno };
  }
  return undefined;
}
