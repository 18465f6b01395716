// The PV console ring (xen/io/console.h): the guest writes `out`, we write `in`. Indexes are free-running
// u32 counters masked by the ring size. The page is shared with the guest, so every index it writes is
// hostile: a producer that claims more than a ring's worth of data is clamped, never trusted.

export const IN_SIZE = 1024;
export const OUT_SIZE = 2048;
const IN_OFFSET = 0;
const OUT_OFFSET = 1024;
/** Indexes as 32-bit word offsets into the page. */
const IN_CONS = 3072 / 4;
const IN_PROD = 3076 / 4;
const OUT_CONS = 3080 / 4;
const OUT_PROD = 3084 / 4;
export const RING_BYTES = 3088;

/**
 * A view over a mapped console page. The guest's vCPU runs while we read and write, so each index is
 * one aligned 32-bit load or store (Atomics, which also orders the data accesses around it). Buffer's
 * readUInt32LE/writeUInt32LE go a byte at a time: a guest catching a consumer index half-written sees
 * it run backwards, and Linux's hvc_xen then calls the ring illegal and throws its pending output away.
 */
export class ConsoleRing {
  private readonly index: Uint32Array;

  constructor(private readonly page: Buffer) {
    if (page.length < RING_BYTES) throw new RangeError(`console ring needs ${RING_BYTES} bytes`);
    if (page.byteOffset % 4 !== 0) throw new RangeError('a console ring page must be 4-byte aligned');
    this.index = new Uint32Array(page.buffer, page.byteOffset, RING_BYTES / 4);
  }

  private load(word: number): number {
    return Atomics.load(this.index, word);
  }

  private store(word: number, value: number): void {
    Atomics.store(this.index, word, value >>> 0);
  }

  /** Bytes the guest has written and we have not taken (at most a ring's worth, whatever it claims). */
  outputPending(): number {
    const available = (this.load(OUT_PROD) - this.load(OUT_CONS)) >>> 0;
    return Math.min(available, OUT_SIZE);
  }

  /**
   * Take what the guest has written, at most `max` bytes (the rest stays in the ring, where it holds
   * the guest's writes back); returns [] when there is nothing.
   */
  readOutput(max = OUT_SIZE): Buffer {
    const cons = this.load(OUT_CONS);
    const prod = this.load(OUT_PROD);
    let available = (prod - cons) >>> 0;
    // A guest claiming more than the ring holds is lying; take one ring's worth and resynchronise.
    if (available > OUT_SIZE) available = OUT_SIZE;
    available = Math.max(0, Math.min(available, Math.floor(max)));
    const out = Buffer.allocUnsafe(available);
    const at = cons % OUT_SIZE;
    const first = Math.min(available, OUT_SIZE - at);
    this.page.copy(out, 0, OUT_OFFSET + at, OUT_OFFSET + at + first);
    this.page.copy(out, first, OUT_OFFSET, OUT_OFFSET + available - first);
    this.store(OUT_CONS, cons + available);
    return out;
  }

  /**
   * Queue keyboard input for the guest; returns how many bytes fitted (the rest waits for the guest to
   * consume). Each call copies from data[0..n), wrapping correctly (krata's prototype sliced wrongly).
   */
  writeInput(data: Buffer): number {
    const cons = this.load(IN_CONS);
    const prod = this.load(IN_PROD);
    const used = (prod - cons) >>> 0;
    if (used > IN_SIZE) return 0; // the guest corrupted its indexes; write nothing
    const n = Math.min(IN_SIZE - used, data.length);
    const at = prod % IN_SIZE;
    const first = Math.min(n, IN_SIZE - at);
    data.copy(this.page, IN_OFFSET + at, 0, first);
    data.copy(this.page, IN_OFFSET, first, n);
    this.store(IN_PROD, prod + n);
    return n;
  }
}

/** A bounded history of console output per guest, for `kratactl logs`: the newest bytes win. */
export class ConsoleHistory {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(readonly limit = 256 * 1024) {}

  append(data: Buffer): void {
    if (data.length === 0) return;
    this.chunks.push(Buffer.from(data));
    this.size += data.length;
    while (this.size > this.limit) {
      const first = this.chunks[0]!;
      const excess = this.size - this.limit;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
    }
  }

  contents(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}
