// krata's console backend (instead of xenconsoled): maps a guest's console ring, binds its event channel,
// and turns the ring into a byte stream with a bounded history, for attach and logs. Output is drained
// within a per-guest byte budget and input queues up to a bound (throttle.ts): a flooding guest costs
// dom0 bounded CPU, a fast attach client bounded memory.
import { EventEmitter } from 'node:events';
import { BuildConst } from '../abi.js';
import type { EventChannels } from '../evtchn.js';
import type { GrantMapper } from '../gntdev.js';
import type { Privcmd } from '../privcmd.js';
import type { Mapping } from '../../../lib/libc.js';
import type { XenstoreClient } from '../xenstore/client.js';
import { ConsoleHistory, ConsoleRing } from './ring.js';
import {
  consoleStats,
  DEFAULT_CONSOLE_BURST,
  DEFAULT_CONSOLE_INPUT_LIMIT,
  DEFAULT_CONSOLE_RATE,
  InputQueue,
  TokenBucket,
} from './throttle.js';

export interface ConsoleLimits {
  /** Output drained per second (bytes) and the burst above it: past it, output waits in the guest's ring. */
  rateBytesPerSecond?: number;
  burstBytes?: number;
  /** Input queued before writers are asked to wait (`write` returns false until 'drain'). */
  inputLimitBytes?: number;
  /** For tests: the clock and timer the output budget uses. */
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}

const realTimer = (fn: () => void, ms: number) => {
  const t = setTimeout(fn, ms);
  t.unref?.();
  return { cancel: () => clearTimeout(t) };
};

export class ConsoleSession extends EventEmitter {
  readonly history: ConsoleHistory;
  private readonly input: InputQueue;
  private readonly budget: TokenBucket;
  private readonly setTimer: NonNullable<ConsoleLimits['setTimer']>;
  /** The resume scheduled while over budget. */
  private resume?: { cancel(): void };
  private closed = false;

  constructor(
    readonly domid: number,
    private readonly ring: ConsoleRing,
    private readonly mapping: Pick<Mapping, 'unmap'>,
    private readonly evtchn: Pick<EventChannels, 'notify' | 'unbind'>,
    private readonly localPort: number,
    historyBytes: number,
    limits: ConsoleLimits = {},
  ) {
    super();
    this.history = new ConsoleHistory(historyBytes);
    this.input = new InputQueue(limits.inputLimitBytes ?? DEFAULT_CONSOLE_INPUT_LIMIT);
    this.budget = new TokenBucket(
      limits.rateBytesPerSecond ?? DEFAULT_CONSOLE_RATE,
      limits.burstBytes ?? DEFAULT_CONSOLE_BURST,
      limits.now,
    );
    this.setTimer = limits.setTimer ?? realTimer;
  }

  /** Input bytes waiting for room in the guest's ring. */
  get pendingInput(): number {
    return this.input.pending;
  }

  /**
   * Called when the guest signals (and when the budget allows again): drain output within the budget,
   * push queued input. Over budget, the rest stays in the ring (the guest's writes wait) and draining
   * resumes when the bucket has refilled; notifications meanwhile cost two index reads.
   */
  service(): void {
    if (this.closed) return;
    let consumed = false;
    if (!this.resume) {
      const out = this.ring.readOutput(this.budget.available());
      if (out.length) {
        consumed = true;
        this.budget.take(out.length);
        this.history.append(out);
        this.emit('data', out);
        if (this.closed) return; // a listener closed the session: the page is unmapped
      }
      const left = this.ring.outputPending();
      if (left > 0 && !this.closed) {
        consoleStats.throttled++;
        consoleStats.throttledBytes += left;
        this.resume = this.setTimer(
          () => {
            this.resume = undefined;
            this.service();
          },
          Math.max(1, this.budget.msUntil(left)),
        );
      }
    }
    const before = this.input.pending;
    this.flushInput();
    // Tell the guest there is room again (output taken) or input to read.
    if (consumed || this.input.pending !== before) this.evtchn.notify(this.localPort);
  }

  /** Queues input for the guest; false when the queue is over its limit: wait for onDrain before writing more. */
  write(data: Buffer): boolean {
    if (this.closed) return true;
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

  close(): void {
    this.closed = true;
    this.resume?.cancel();
    this.resume = undefined;
    this.input.clear();
    this.evtchn.unbind(this.localPort);
    this.mapping.unmap();
    this.emit('close');
  }

  private flushInput(): void {
    this.input.flush((d) => this.ring.writeInput(d));
  }
}

export class ConsoleBackend {
  /** With a GrantMapper the ring is mapped through the grant the builder seeded (as xenconsoled does); without, by frame. */
  constructor(
    private readonly privcmd: Privcmd,
    private readonly evtchn: EventChannels,
    private readonly xs: XenstoreClient,
    private readonly grants?: GrantMapper,
  ) {}

  /** Serve a domain's PV console (its ring frame and port come from xenstore, guest-readable but ours). */
  async attach(domid: number, historyBytes = 256 * 1024, limits: ConsoleLimits = {}): Promise<ConsoleSession> {
    const ringRef = await this.xs.read(`/local/domain/${domid}/console/ring-ref`);
    const port = await this.xs.read(`/local/domain/${domid}/console/port`);
    if (!/^\d{1,15}$/.test(ringRef) || !/^\d{1,5}$/.test(port)) throw new Error(`domain ${domid} has a malformed console ring-ref or port`);
    const mapping = this.grants
      ? this.grants.mapGrant(domid, BuildConst.GNTTAB_RESERVED_CONSOLE)
      : await this.privcmd.mapForeign(domid, [BigInt(ringRef)]);
    let session: ConsoleSession | undefined;
    try {
      const ring = new ConsoleRing(mapping.bytes);
      const local = this.evtchn.bindInterdomain(domid, Number(port), () => session?.service());
      session = new ConsoleSession(domid, ring, mapping, this.evtchn, local, historyBytes, limits);
      session.service(); // output written before we attached
      return session;
    } catch (e) {
      mapping.unmap();
      throw e;
    }
  }
}
