// Parsed kernels kept by a resident builder, so a compressed kernel (a bzImage's xz payload takes
// seconds to decode on a slow dom0) is decompressed once, not per launch. The key is the image's exact
// bytes: a hit needs an equal-length image that compares equal (one memcmp), so a kernel rewritten in
// place under the same path is never served stale. Bounded by entries and bytes, least recently used first out.
import { findKernelPayload } from './bzimage.js';
import { decompressKernel, detectCompression } from './decompress.js';
import { parseElfKernel, type ElfKernel } from './elf.js';

export interface KernelCacheLimits {
  /** Kernels kept at most. */
  entries: number;
  /** Bytes kept at most: each entry's image copy plus its decompressed kernel. */
  bytes: number;
}

export const DEFAULT_KERNEL_CACHE: KernelCacheLimits = { entries: 2, bytes: 160 * 1024 * 1024 };

interface Entry {
  /** A copy of the compressed payload: the key. */
  payload: Buffer;
  kernel: ElfKernel;
  bytes: number;
}

export class KernelCache {
  private entries: Entry[] = [];
  private hits = 0;
  private misses = 0;

  constructor(
    private readonly limits: KernelCacheLimits = DEFAULT_KERNEL_CACHE,
    private readonly decompress: (payload: Buffer) => Buffer = decompressKernel,
  ) {}

  /** The kernel in `image` (bzImage or ELF), parsed; decompressed only when these payload bytes are new. */
  kernel(image: Buffer): ElfKernel {
    const { payload } = findKernelPayload(image);
    // An uncompressed ELF parses in microseconds and its bytes are the caller's: nothing worth keeping.
    if (detectCompression(payload) === 'none') return parseElfKernel(payload);
    const i = this.entries.findIndex((e) => e.payload.length === payload.length && e.payload.equals(payload));
    if (i >= 0) {
      const [hit] = this.entries.splice(i, 1);
      this.entries.unshift(hit!);
      this.hits++;
      return hit!.kernel;
    }
    this.misses++;
    const kernel = parseElfKernel(this.decompress(payload));
    const entry = { payload: Buffer.from(payload), kernel, bytes: payload.length + kernel.bytes.length };
    if (entry.bytes > this.limits.bytes || this.limits.entries < 1) return kernel;
    this.entries.unshift(entry);
    let total = this.entries.reduce((s, e) => s + e.bytes, 0);
    while (this.entries.length > this.limits.entries || total > this.limits.bytes) total -= this.entries.pop()!.bytes;
    return kernel;
  }

  stats(): { entries: number; bytes: number; hits: number; misses: number } {
    return { entries: this.entries.length, bytes: this.entries.reduce((s, e) => s + e.bytes, 0), hits: this.hits, misses: this.misses };
  }
}
