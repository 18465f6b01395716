// The guest channel's byte stream over a console ring (device 1): the shape of the agent's
// ChannelTransport (node-agent/channel/types.ts), matched structurally since xen/ imports nothing above
// it. The console's ring pump (ring-pump.ts) serves it: output drained within a per-guest budget (over
// it, the bytes wait in the guest's ring and a timer resumes), input queued up to a bound with
// backpressure, never dropped.
import type { EventChannels } from '../evtchn.js';
import type { Mapping } from '../../../lib/libc.js';
import type { GuestRing } from './ring.js';
import { RingPump, type RingLimits } from './ring-pump.js';
import { DEFAULT_CONSOLE_BURST, DEFAULT_CONSOLE_RATE } from './throttle.js';

/** Output drained per guest channel: far above a console's, since exec streams run through it. */
export const DEFAULT_CHANNEL_RATE = 32 * 1024 * 1024;
export const DEFAULT_CHANNEL_BURST = 256 * 1024;
/** Frames queued for the guest before the channel is asked to wait (a stdin window's worth). */
export const DEFAULT_CHANNEL_INPUT_LIMIT = 256 * 1024;

export type ChannelLimits = RingLimits;

/** A guest's bulk ring (BULK_OFFER in contracts/guest-channel/PROTOCOL.md): the channel's BulkOffer. */
export interface BulkRingOffer {
  refs: readonly number[];
  port: number;
  inPages: number;
  outPages: number;
}

/** What node-agent/channel/ needs of a transport (its ChannelTransport). */
export interface ChannelByteStream {
  onData(cb: (data: Buffer) => void): void;
  write(data: Buffer): boolean;
  onDrain(cb: () => void): () => void;
  onClose(cb: () => void): void;
  close(): void;
  /** Keeps draining the guest's output, thrown away, until close(); see ChannelRingTransport.discard. */
  discard?(): void;
  /** Maps the guest's bulk ring and binds its port: a second transport to the same guest. */
  openBulk?(offer: BulkRingOffer): ChannelByteStream;
}

const CHANNEL_BOUNDS = {
  rateBytesPerSecond: DEFAULT_CHANNEL_RATE,
  burstBytes: DEFAULT_CHANNEL_BURST,
  inputLimitBytes: DEFAULT_CHANNEL_INPUT_LIMIT,
};

export class ChannelRingTransport implements ChannelByteStream {
  private readonly pump: RingPump;
  private readonly closeListeners: (() => void)[] = [];
  /** Run once on close, before the close listeners (the backend's frontend watch goes with it). */
  onRelease?: () => void;
  /** Set by the backend on the console device's transport: maps the guest's bulk ring (version 2). */
  openBulk?: (offer: BulkRingOffer) => ChannelRingTransport;

  constructor(
    readonly domid: number,
    ring: GuestRing,
    mapping: Pick<Mapping, 'unmap'>,
    evtchn: Pick<EventChannels, 'notify' | 'unbind'>,
    localPort: number,
    limits: ChannelLimits = {},
  ) {
    this.pump = new RingPump(ring, mapping, evtchn, localPort, limits, CHANNEL_BOUNDS);
  }

  get isClosed(): boolean {
    return this.pump.isClosed;
  }

  /** Input bytes waiting for room in the guest's ring. */
  get pendingInput(): number {
    return this.pump.pendingInput;
  }

  /** The one reader; until it subscribes, the guest's output stays in its ring (its writes wait). */
  onData(cb: (data: Buffer) => void): void {
    // This runs in the event-channel loop every guest shares: a throwing reader is reported, not unwound through it.
    this.pump.deliver = (data) => {
      try {
        cb(data);
      } catch (e) {
        process.emitWarning(`the channel reader of domain ${this.domid} threw: ${(e as Error).message}`);
      }
    };
    queueMicrotask(() => this.service());
  }

  /** The guest signalled: drain output to the reader within the budget, push queued input. */
  service(): void {
    this.pump.service();
  }

  /** Queues bytes for the guest; false when over the bound: wait for onDrain. Dropped once closed. */
  write(data: Buffer): boolean {
    return this.pump.write(data);
  }

  onDrain(cb: () => void): () => void {
    return this.pump.onDrain(cb);
  }

  /** `cb` runs once when the transport closes (at once, on a later tick, if it already has). */
  onClose(cb: () => void): void {
    if (this.isClosed) queueMicrotask(cb);
    else this.closeListeners.push(cb);
  }

  /**
   * The channel above is over (the guest broke the protocol), but the guest may go on writing to the
   * device: its output is drained at a console's budget (1 MiB/s, 256 KiB burst) and thrown away, input
   * dropped, until close() releases the ring (the domain gone). Left full, the ring would wedge the
   * guest's kernel (ring-pump.ts, discard). The close listeners do not hear of it: nothing is released yet.
   */
  discard(): void {
    this.pump.discard(DEFAULT_CONSOLE_RATE, DEFAULT_CONSOLE_BURST);
  }

  /** Unbinds and unmaps; the device stays connected in xenstore, so a restarted agent can serve it again. */
  close(): void {
    if (this.isClosed) return;
    this.pump.close();
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
}
