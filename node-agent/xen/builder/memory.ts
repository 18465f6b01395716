// The guest memory the builder writes into, as page-sized views: in a real build the frames are mapped
// from the new domain with privcmd; in tests they are plain buffers with a made-up pfn → mfn map.
import { PAGE_SIZE } from '../abi.js';

export interface GuestMemory {
  /** A writable 4096-byte view of the guest frame. */
  page(pfn: number): Buffer;
  /** The machine frame behind a guest frame. */
  mfn(pfn: number): bigint;
  /** The whole guest's pfn → mfn table (p2m[pfn] === mfn(pfn)), read in bulk by the p2m and page-table writers. */
  readonly p2m: BigUint64Array;
  /**
   * Frames pfn..pfn+pages-1 as one writable view, where the implementation maps them contiguously
   * (the real build does); undefined otherwise. Lets a segment be copied in one call, not per page.
   */
  span?(pfn: number, pages: number): Buffer | undefined;
}

/** Copy `data` to guest memory starting at `offset` bytes into frame `pfn`. */
export function copyToGuest(mem: GuestMemory, pfn: number, offset: number, data: Buffer): void {
  const pages = Math.ceil((offset + data.length) / PAGE_SIZE);
  const span = mem.span?.(pfn, pages);
  if (span) {
    data.copy(span, offset);
    return;
  }
  for (let copied = 0; copied < data.length;) {
    const at = offset + copied;
    const n = Math.min(PAGE_SIZE - (at % PAGE_SIZE), data.length - copied);
    data.copy(mem.page(pfn + Math.floor(at / PAGE_SIZE)), at % PAGE_SIZE, copied, copied + n);
    copied += n;
  }
}
