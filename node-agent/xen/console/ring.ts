// Byte rings shared with a guest: the PV console's (xen/io/console.h: the guest writes `out`, we write
// `in`) and the guest channel's bulk ring (contracts/guest-channel/PROTOCOL.md), which differ only in
// where the data and the four indexes sit. Indexes are free-running u32 counters masked by the ring
// size. The pages are shared with the guest, so every index it writes is hostile: a producer that
// claims more than a ring's worth of data is clamped, never trusted.

/** Where a ring's parts sit, in bytes from the start of the mapping; sizes are powers of two. */
export interface RingLayout {
  inOffset: number;
  inSize: number;
  outOffset: number;
  outSize: number;
  /** The indexes: in_cons, in_prod, out_cons, out_prod at `indexOffset` + 0, 4, 8, 12. */
  indexOffset: number;
  /** The bytes the mapping must have. */
  bytes: number;
}

export const IN_SIZE = 1024;
export const OUT_SIZE = 2048;
export const RING_BYTES = 3088;
/** struct xencons_interface. */
export const CONSOLE_LAYOUT: RingLayout = {
  inOffset: 0,
  inSize: IN_SIZE,
  outOffset: 1024,
  outSize: OUT_SIZE,
  indexOffset: 3072,
  bytes: RING_BYTES,
};

const PAGE = 4096;
/** The most data pages a bulk ring has in each direction (PROTOCOL.md). */
export const MAX_BULK_PAGES = 32;

/** The guest channel's bulk ring: a header page with the indexes, then `inPages`, then `outPages`. */
export function bulkLayout(inPages: number, outPages: number): RingLayout {
  for (const n of [inPages, outPages]) {
    if (!Number.isInteger(n) || n < 1 || n > MAX_BULK_PAGES || (n & (n - 1)) !== 0)
      throw new RangeError(`a bulk ring's page count must be a power of two from 1 to ${MAX_BULK_PAGES}, not ${n}`);
  }
  return {
    inOffset: PAGE,
    inSize: inPages * PAGE,
    outOffset: PAGE * (1 + inPages),
    outSize: outPages * PAGE,
    indexOffset: 0,
    bytes: PAGE * (1 + inPages + outPages),
  };
}

/** What a ring pump needs of a ring. */
export interface GuestRing {
  outputPending(): number;
  readOutput(max?: number): Buffer;
  writeInput(data: Buffer): number;
}

/**
 * A view over mapped ring pages. The guest's vCPU runs while we read and write, so each index is one
 * aligned 32-bit load or store (Atomics, which also orders the data accesses around it). Buffer's
 * readUInt32LE/writeUInt32LE go a byte at a time: a guest catching a consumer index half-written sees
 * it run backwards, and Linux's hvc_xen then calls the ring illegal and throws its pending output away.
 */
export class ByteRing implements GuestRing {
  private readonly index: Uint32Array;
  private readonly inCons: number;
  private readonly inProd: number;
  private readonly outCons: number;
  private readonly outProd: number;

  constructor(
    private readonly page: Buffer,
    private readonly layout: RingLayout,
  ) {
    if (page.length < layout.bytes) throw new RangeError(`this ring needs ${layout.bytes} bytes`);
    if ((page.byteOffset + layout.indexOffset) % 4 !== 0) throw new RangeError('a ring page must be 4-byte aligned');
    this.index = new Uint32Array(page.buffer, page.byteOffset + layout.indexOffset, 4);
    [this.inCons, this.inProd, this.outCons, this.outProd] = [0, 1, 2, 3];
  }

  private load(word: number): number {
    return Atomics.load(this.index, word);
  }

  private store(word: number, value: number): void {
    Atomics.store(this.index, word, value >>> 0);
  }

  /** Bytes the guest has written and we have not taken (at most a ring's worth, whatever it claims). */
  outputPending(): number {
    const available = (this.load(this.outProd) - this.load(this.outCons)) >>> 0;
    return Math.min(available, this.layout.outSize);
  }

  /**
   * Take what the guest has written, at most `max` bytes (the rest stays in the ring, where it holds
   * the guest's writes back); returns [] when there is nothing.
   */
  readOutput(max = this.layout.outSize): Buffer {
    const { outOffset, outSize } = this.layout;
    const cons = this.load(this.outCons);
    const prod = this.load(this.outProd);
    let available = (prod - cons) >>> 0;
    // A guest claiming more than the ring holds is lying; take one ring's worth and resynchronise.
    if (available > outSize) available = outSize;
    available = Math.max(0, Math.min(available, Math.floor(max)));
    const out = Buffer.allocUnsafe(available);
    const at = cons & (outSize - 1);
    const first = Math.min(available, outSize - at);
    this.page.copy(out, 0, outOffset + at, outOffset + at + first);
    this.page.copy(out, first, outOffset, outOffset + available - first);
    this.store(this.outCons, cons + available);
    return out;
  }

  /**
   * Queue input for the guest; returns how many bytes fitted (the rest waits for the guest to
   * consume). Each call copies from data[0..n), wrapping correctly (krata's prototype sliced wrongly).
   */
  writeInput(data: Buffer): number {
    const { inOffset, inSize } = this.layout;
    const cons = this.load(this.inCons);
    const prod = this.load(this.inProd);
    const used = (prod - cons) >>> 0;
    if (used > inSize) return 0; // the guest corrupted its indexes; write nothing
    const n = Math.min(inSize - used, data.length);
    const at = prod & (inSize - 1);
    const first = Math.min(n, inSize - at);
    data.copy(this.page, inOffset + at, 0, first);
    data.copy(this.page, inOffset, first, n);
    this.store(this.inProd, prod + n);
    return n;
  }
}

/** The PV console's ring (one page, struct xencons_interface). */
export class ConsoleRing extends ByteRing {
  constructor(page: Buffer) {
    super(page, CONSOLE_LAYOUT);
  }
}

/**
 * A bounded history of console output per guest, for `kratactl logs`: the newest bytes win. One buffer,
 * grown by doubling up to the limit and then used as a circular buffer, so a guest that writes a byte at
 * a time holds no more than the limit (one Buffer per write would cost ~100 bytes of bookkeeping each).
 */
export class ConsoleHistory {
  private buf = Buffer.alloc(0);
  /** Where the next byte goes, and how many bytes are held (<= buf.length). */
  private head = 0;
  private size = 0;

  constructor(readonly limit = 256 * 1024) {}

  /** Bytes of buffer the history holds: never more than the limit, however the output was split. */
  get allocatedBytes(): number {
    return this.buf.length;
  }

  append(data: Buffer): void {
    if (data.length === 0 || this.limit <= 0) return;
    if (data.length >= this.limit) data = data.subarray(data.length - this.limit);
    if (this.buf.length < this.limit && this.size + data.length > this.buf.length) this.grow(this.size + data.length);
    const cap = this.buf.length;
    const first = Math.min(data.length, cap - this.head);
    data.copy(this.buf, this.head, 0, first);
    data.copy(this.buf, 0, first);
    this.head = (this.head + data.length) % cap;
    this.size = Math.min(this.size + data.length, cap);
  }

  contents(): Buffer {
    const cap = this.buf.length;
    const start = (this.head - this.size + cap) % (cap || 1);
    if (start + this.size <= cap) return Buffer.from(this.buf.subarray(start, start + this.size));
    return Buffer.concat([this.buf.subarray(start), this.buf.subarray(0, this.head)], this.size);
  }

  /** A larger buffer (doubling, at least `need`, at most the limit) holding the same bytes from 0. */
  private grow(need: number): void {
    const cap = Math.min(this.limit, Math.max(need, this.buf.length * 2, 4096));
    const old = this.contents();
    this.buf = Buffer.alloc(cap);
    old.copy(this.buf);
    this.head = old.length % cap;
    this.size = old.length;
  }
}
