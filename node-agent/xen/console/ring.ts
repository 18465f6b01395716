// The PV console ring (xen/io/console.h): the guest writes `out`, we write `in`. Indexes are free-running
// u32 counters masked by the ring size. The page is shared with the guest, so every index it writes is
// hostile: a producer that claims more than a ring's worth of data is clamped, never trusted.

export const IN_SIZE = 1024;
export const OUT_SIZE = 2048;
const IN_OFFSET = 0;
const OUT_OFFSET = 1024;
const IN_CONS = 3072;
const IN_PROD = 3076;
const OUT_CONS = 3080;
const OUT_PROD = 3084;
export const RING_BYTES = 3088;

/** A view over a mapped console page; memory barriers come from the event channel round trip. */
export class ConsoleRing {
  constructor(private readonly page: Buffer) {
    if (page.length < RING_BYTES) throw new RangeError(`console ring needs ${RING_BYTES} bytes`);
  }

  /** Bytes the guest has written and we have not taken (at most a ring's worth, whatever it claims). */
  outputPending(): number {
    const available = (this.page.readUInt32LE(OUT_PROD) - this.page.readUInt32LE(OUT_CONS)) >>> 0;
    return Math.min(available, OUT_SIZE);
  }

  /**
   * Take what the guest has written, at most `max` bytes (the rest stays in the ring, where it holds
   * the guest's writes back); returns [] when there is nothing.
   */
  readOutput(max = OUT_SIZE): Buffer {
    const cons = this.page.readUInt32LE(OUT_CONS);
    const prod = this.page.readUInt32LE(OUT_PROD);
    let available = (prod - cons) >>> 0;
    // A guest claiming more than the ring holds is lying; take one ring's worth and resynchronise.
    if (available > OUT_SIZE) available = OUT_SIZE;
    available = Math.max(0, Math.min(available, Math.floor(max)));
    const out = Buffer.alloc(available);
    for (let i = 0; i < available; i++) out[i] = this.page[OUT_OFFSET + (((cons + i) >>> 0) % OUT_SIZE)]!;
    this.page.writeUInt32LE((cons + available) >>> 0, OUT_CONS);
    return out;
  }

  /**
   * Queue keyboard input for the guest; returns how many bytes fitted (the rest waits for the guest to
   * consume). Each call copies from data[0..n), wrapping correctly (krata's prototype sliced wrongly).
   */
  writeInput(data: Buffer): number {
    const cons = this.page.readUInt32LE(IN_CONS);
    const prod = this.page.readUInt32LE(IN_PROD);
    const used = (prod - cons) >>> 0;
    if (used > IN_SIZE) return 0; // the guest corrupted its indexes; write nothing
    const n = Math.min(IN_SIZE - used, data.length);
    for (let i = 0; i < n; i++) this.page[IN_OFFSET + (((prod + i) >>> 0) % IN_SIZE)] = data[i]!;
    this.page.writeUInt32LE((prod + n) >>> 0, IN_PROD);
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
