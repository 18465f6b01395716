// One guest ring served as a byte stream: what the console (device 0, backend.ts) and the guest channel
// (device 1, channel-transport.ts) share. Output is drained within a byte budget (over it, the bytes wait
// in the guest's ring and a timer resumes); input is queued up to a bound with backpressure, never dropped.
import type { EventChannels } from '../evtchn.js';
import type { Mapping } from '../../../lib/libc.js';
import type { GuestRing } from './ring.js';
import { TokenBucket } from '../../../lib/token-bucket.js';
import { InputQueue } from './throttle.js';

export interface RingLimits {
  /** Output drained per second (bytes) and the burst above it: past it, output waits in the guest's ring. */
  rateBytesPerSecond?: number;
  burstBytes?: number;
  /** Input queued before writers are asked to wait (`write` returns false until drained). */
  inputLimitBytes?: number;
  /** For tests: the clock and timer the output budget uses. */
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}

/** What a ring's owner uses where its RingLimits leave a bound unset. */
export type RingBounds = Required<Pick<RingLimits, 'rateBytesPerSecond' | 'burstBytes' | 'inputLimitBytes'>>;

export interface RingPumpHooks {
  /** Each chunk of output, in order; it may close the pump. Unset, output stays in the guest's ring. */
  deliver?: (out: Buffer) => void;
  /** Draining paused over budget with `pendingBytes` left in the ring. */
  onThrottled?: (pendingBytes: number) => void;
}

const realTimer = (fn: () => void, ms: number) => {
  const t = setTimeout(fn, ms);
  t.unref?.();
  return { cancel: () => clearTimeout(t) };
};

export class RingPump {
  /** Set later by an owner whose reader comes after the ring (the channel). */
  deliver?: (out: Buffer) => void;
  private readonly onThrottled?: (pendingBytes: number) => void;
  private readonly input: InputQueue;
  private budget: TokenBucket;
  private readonly now?: () => number;
  private readonly setTimer: NonNullable<RingLimits['setTimer']>;
  /** The resume scheduled while over budget. */
  private resume?: { cancel(): void };
  private closed = false;
  /** Output thrown away, input dropped (discard). */
  private discarding = false;

  constructor(
    private readonly ring: GuestRing,
    private readonly mapping: Pick<Mapping, 'unmap'>,
    private readonly evtchn: Pick<EventChannels, 'notify' | 'unbind'>,
    private readonly localPort: number,
    limits: RingLimits,
    defaults: RingBounds,
    hooks: RingPumpHooks = {},
  ) {
    this.deliver = hooks.deliver;
    this.onThrottled = hooks.onThrottled;
    this.input = new InputQueue(limits.inputLimitBytes ?? defaults.inputLimitBytes);
    this.now = limits.now;
    this.budget = new TokenBucket(
      limits.rateBytesPerSecond ?? defaults.rateBytesPerSecond,
      limits.burstBytes ?? defaults.burstBytes,
      limits.now,
    );
    this.setTimer = limits.setTimer ?? realTimer;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Input bytes waiting for room in the guest's ring. */
  get pendingInput(): number {
    return this.input.pending;
  }

  /**
   * The guest signalled (or the budget allows again): drain output within the budget, push queued input,
   * and notify the guest when either moved. Over budget, the rest stays in the ring (the guest's writes
   * wait) and draining resumes when the bucket has refilled; notifications meanwhile cost two index reads.
   */
  service(): void {
    if (this.closed) return;
    let consumed = false;
    if (this.deliver && !this.resume) {
      const out = this.ring.readOutput(this.budget.available());
      if (out.length) {
        consumed = true;
        this.budget.take(out.length);
        this.deliver(out);
        // Delivery may have closed the pump: the page is unmapped, and touching it would SIGSEGV the agent.
        if (this.closed) return;
      }
      const left = this.ring.outputPending();
      if (left > 0) {
        this.onThrottled?.(left);
        this.resume = this.setTimer(
          () => {
            this.resume = undefined;
            this.service();
          },
          Math.max(1, this.budget.msUntil(left)),
        );
      }
    }
    if (this.closed) return;
    const before = this.input.pending;
    this.flushInput();
    // Tell the guest there is room again (output taken) or input to read.
    if (consumed || this.input.pending !== before) this.evtchn.notify(this.localPort);
  }

  /** Queues bytes for the guest; false when over the bound: wait for onDrain. Dropped once closed. */
  write(data: Buffer): boolean {
    if (this.closed || this.discarding) return true;
    this.input.push(data);
    const before = this.input.pending;
    this.flushInput();
    if (this.input.pending !== before) this.evtchn.notify(this.localPort);
    return !this.input.isFull;
  }

  /** `cb` runs when queued input has gone down enough for writers to go on. */
  onDrain(cb: () => void): () => void {
    return this.input.onDrain(cb);
  }

  /**
   * Nobody reads this ring any more, but the guest may go on writing to it: from now on its output is
   * drained within `rateBytesPerSecond` (and `burstBytes`) and thrown away, and input is dropped, until
   * close(). A ring left full would not just hold the writer back: Linux's hvc_xen spins in the kernel
   * while its ring is full, which wedges every hvc console of the guest, its console too.
   */
  discard(rateBytesPerSecond: number, burstBytes: number): void {
    if (this.closed) return;
    this.discarding = true;
    this.deliver = () => {};
    this.input.clear();
    this.budget = new TokenBucket(rateBytesPerSecond, burstBytes, this.now);
    this.service();
  }

  /** Stops serving and releases the ring and its port. Every call releases: an owner that must do it once checks isClosed. */
  /** Once: a second unbind or unmap could hit a port or page since given to another guest. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.resume?.cancel();
    this.resume = undefined;
    this.input.clear();
    this.evtchn.unbind(this.localPort);
    this.mapping.unmap();
  }

  private flushInput(): void {
    this.input.flush((d) => this.ring.writeInput(d));
  }
}
