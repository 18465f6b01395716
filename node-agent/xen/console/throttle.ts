// Bounds on one guest's console, so that a guest cannot spend dom0's CPU or memory through it:
// output is drained at a bounded rate (a token bucket; over budget the bytes stay in the guest's ring
// and its writes wait, as on a real serial line), and input from attach clients queues up to a bound
// past which the client is told to wait (backpressure, never a drop).

/** Output drained per guest, bytes per second, and the burst above it. */
export const DEFAULT_CONSOLE_RATE = 1024 * 1024;
export const DEFAULT_CONSOLE_BURST = 256 * 1024;
/** Input queued per guest before writers are asked to wait. */
export const DEFAULT_CONSOLE_INPUT_LIMIT = 64 * 1024;

/** Host-wide console counters, read by the agent's metrics (no dependency on prom-client here). */
export const consoleStats = {
  /** Times a guest's console went over its output budget and draining paused. */
  throttled: 0,
  /** Bytes that were left in guests' rings at those times (what waited for the budget). */
  throttledBytes: 0,
};

/**
 * Input waiting for room in the guest's ring. `push` always keeps the data (nothing is dropped) and
 * says whether the writer may go on; once the queue is down to half the limit, 'drain' listeners run.
 */
export class InputQueue {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private full = false;
  private readonly drainListeners = new Set<() => void>();

  constructor(readonly limit = DEFAULT_CONSOLE_INPUT_LIMIT) {}

  get pending(): number {
    return this.bytes;
  }

  /** Over the limit and not yet drained to half of it: writers wait. */
  get isFull(): boolean {
    return this.full;
  }

  /** Queues a copy of `data`; false when the writer should wait for a drain. */
  push(data: Buffer): boolean {
    if (data.length) {
      this.chunks.push(Buffer.from(data));
      this.bytes += data.length;
    }
    if (this.bytes >= this.limit) this.full = true;
    return !this.full;
  }

  /** Hands queued bytes to `write` (which returns how many it took) until it takes less than offered. */
  flush(write: (data: Buffer) => number): void {
    while (this.chunks.length) {
      const head = this.chunks[0]!;
      const n = write(head);
      this.bytes -= n;
      if (n === head.length) this.chunks.shift();
      else {
        this.chunks[0] = head.subarray(n);
        break;
      }
    }
    // Resume writers at half the limit, not just below it: fewer pause/resume round trips.
    if (this.full && this.bytes <= this.limit / 2) {
      this.full = false;
      for (const l of [...this.drainListeners]) l();
    }
  }

  onDrain(cb: () => void): () => void {
    this.drainListeners.add(cb);
    return () => void this.drainListeners.delete(cb);
  }

  clear(): void {
    this.chunks = [];
    this.bytes = 0;
    this.drainListeners.clear();
  }
}

/** --console-rate KIB_PER_S and --console-burst KIB as console limits; a bad value names its flag. */
export function consoleFlags(rate: string | undefined, burst: string | undefined): { rateBytesPerSecond?: number; burstBytes?: number } {
  const kib = (flag: string, raw: string): number => {
    // Up to 1 GiB: far above what a console needs, and no float overflow on the way.
    if (!/^\d{1,7}$/.test(raw) || Number(raw) < 1 || Number(raw) > 1024 * 1024)
      throw new Error(`${flag}: expected a whole number of KiB from 1 to 1048576, not ${JSON.stringify(raw)}`);
    return Number(raw) * 1024;
  };
  return {
    ...(rate !== undefined ? { rateBytesPerSecond: kib('--console-rate', rate) } : {}),
    ...(burst !== undefined ? { burstBytes: kib('--console-burst', burst) } : {}),
  };
}
