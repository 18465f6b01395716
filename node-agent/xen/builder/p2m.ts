// The guest's pfn → mfn table as one BigUint64Array, filled and read through a Uint32Array view of the
// same bytes: plain number arithmetic per page instead of a BigInt per page (a 128 MiB guest has 32768
// pages, and dom0's CPU is slow under emulation). x86_64 is little-endian: word 2i is entry i's low half.

/** A zeroed table for `pages` guest frames. */
export function newP2m(pages: number): BigUint64Array {
  return new BigUint64Array(pages);
}

/** The table's 32-bit halves: [2 * pfn] low, [2 * pfn + 1] high. */
export function p2mWords(p2m: BigUint64Array): Uint32Array {
  return new Uint32Array(p2m.buffer, p2m.byteOffset, p2m.length * 2);
}

/**
 * Record one populated extent: `2 ** order` frames from `firstPfn` on are the machine frames from the
 * one whose halves are `mfnLo`/`mfnHi` on (Xen hands out an order-n extent as contiguous frames).
 */
export function setExtent(words: Uint32Array, firstPfn: number, mfnLo: number, mfnHi: number, order: number): void {
  const n = 2 ** order;
  if (firstPfn < 0 || (firstPfn + n) * 2 > words.length) throw new RangeError(`pfns ${firstPfn}..${firstPfn + n} outside the p2m`);
  for (let j = 0, w = firstPfn * 2; j < n; j++, w += 2) {
    const lo = mfnLo + j;
    words[w] = lo; // stored modulo 2 ** 32
    words[w + 1] = lo > 0xffffffff ? mfnHi + 1 : mfnHi;
  }
}
