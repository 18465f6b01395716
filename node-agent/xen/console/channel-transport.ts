// The guest channel's byte stream over a console ring (device 1): the shape of the agent's
// ChannelTransport (node-agent/channel/types.ts), matched structurally since xen/ imports nothing above
// it. Same bounds as the console: output drained within a per-guest budget (over it, the bytes wait in
// the guest's ring and a timer resumes), input queued up to a bound with backpressure, never dropped.
import type { EventChannels } from '../evtchn.js';
import type { Mapping } from '../../../lib/libc.js';
import type { ConsoleRing } from './ring.js';
import { InputQueue, TokenBucket } from './throttle.js';

/** Output drained per guest channel: far above a console's, since exec streams run through it. */
export const DEFAULT_CHANNEL_RATE = 32 * 1024 * 1024;
export const DEFAULT_CHANNEL_BURST = 256 * 1024;
/** Frames queued for the guest before the channel is asked to wait (a stdin window's worth). */
export const DEFAULT_CHANNEL_INPUT_LIMIT = 256 * 1024;

export interface ChannelLimits {
  rateBytesPerSecond?: number;
  burstBytes?: number;
  inputLimitBytes?: number;
  /** For tests: the clock and timer the output budget uses. */
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}

/** What node-agent/channel/ needs of a transport (its ChannelTransport). */
export interface ChannelByteStream {
  onData(cb: (data: Buffer) => void): void;
  write(data: Buffer): boolean;
  onDrain(cb: () => void): () => void;
  onClose(cb: () => void): void;
  close(): void;
}

const realTimer = (fn: () => void, ms: number) => {
  const t = setTimeout(fn, ms);
  t.unref?.();
  return { cancel: () => clearTimeout(t) };
};

export class ChannelRingTransport implements ChannelByteStream {
  private readonly input: InputQueue;
  private readonly budget: TokenBucket;
  private readonly setTimer: NonNullable<ChannelLimits['setTimer']>;
  private resume?: { cancel(): void };
  private reader?: (data: Buffer) => void;
  private readonly closeListeners: (() => void)[] = [];
  private closed = false;
  /** Run once on close, before the close listeners (the backend's frontend watch goes with it). */
  onRelease?: () => void;

  constructor(
    readonly domid: number,
    private readonly ring: ConsoleRing,
    private readonly mapping: Pick<Mapping, 'unmap'>,
    private readonly evtchn: Pick<EventChannels, 'notify' | 'unbind'>,
    private readonly localPort: number,
    limits: ChannelLimits = {},
  ) {
    this.input = new InputQueue(limits.inputLimitBytes ?? DEFAULT_CHANNEL_INPUT_LIMIT);
    this.budget = new TokenBucket(
      limits.rateBytesPerSecond ?? DEFAULT_CHANNEL_RATE,
      limits.burstBytes ?? DEFAULT_CHANNEL_BURST,
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

  /** The one reader; until it subscribes, the guest's output stays in its ring (its writes wait). */
  onData(cb: (data: Buffer) => void): void {
    this.reader = cb;
    queueMicrotask(() => this.service());
  }

  /**
   * The guest signalled (or the budget allows again): drain output within the budget, push queued
   * input, and notify the guest when either moved.
   */
  service(): void {
    if (this.closed) return;
    let consumed = false;
    if (this.reader && !this.resume) {
      const out = this.ring.readOutput(this.budget.available());
      if (out.length) {
        consumed = true;
        this.budget.take(out.length);
        this.deliver(out);
        // The reader may have closed us (a protocol violation): the page is unmapped, never touch it again.
        if (this.closed) return;
      }
      const left = this.ring.outputPending();
      if (left > 0 && !this.closed) {
        this.resume = this.setTimer(
          () => {
            this.resume = undefined;
            this.service();
          },
          Math.max(1, this.budget.msUntil(left)),
        );
      }
    }
    if (this.closed) return; // the reader closed us
    const before = this.input.pending;
    this.flushInput();
    if (consumed || this.input.pending !== before) this.evtchn.notify(this.localPort);
  }

  /** Queues bytes for the guest; false when over the bound: wait for onDrain. Dropped once closed. */
  write(data: Buffer): boolean {
    if (this.closed) return true;
    this.input.push(data);
    const before = this.input.pending;
    this.flushInput();
    if (this.input.pending !== before) this.evtchn.notify(this.localPort);
    return !this.input.isFull;
  }

  onDrain(cb: () => void): () => void {
    return this.input.onDrain(cb);
  }

  /** `cb` runs once when the transport closes (at once, on a later tick, if it already has). */
  onClose(cb: () => void): void {
    if (this.closed) queueMicrotask(cb);
    else this.closeListeners.push(cb);
  }

  /** Unbinds and unmaps; the device stays connected in xenstore, so a restarted agent can serve it again. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.resume?.cancel();
    this.resume = undefined;
    this.input.clear();
    this.evtchn.unbind(this.localPort);
    this.mapping.unmap();
    try {
      this.onRelease?.();
    } catch {
      // best effort: the watch goes with the connection anyway
    }
    for (const cb of this.closeListeners.splice(0)) {
      try {
        cb();
      } catch (e) {
        process.emitWarning(`a channel close listener of domain ${this.domid} threw: ${(e as Error).message}`);
      }
    }
  }

  private deliver(data: Buffer): void {
    // This runs in the event-channel loop every guest shares: a throwing reader is reported, not unwound through it.
    try {
      this.reader!(data);
    } catch (e) {
      process.emitWarning(`the channel reader of domain ${this.domid} threw: ${(e as Error).message}`);
    }
  }

  private flushInput(): void {
    this.input.flush((d) => this.ring.writeInput(d));
  }
}
