// krata's console backend (instead of xenconsoled): maps a guest's console ring, binds its event channel,
// and turns the ring into a byte stream with a bounded history, for attach and logs. Output is drained
// within a per-guest byte budget and input queues up to a bound (ring-pump.ts): a flooding guest costs
// dom0 bounded CPU, a fast attach client bounded memory.
import { EventEmitter } from 'node:events';
import { BuildConst } from '../abi.js';
import type { EventChannels } from '../evtchn.js';
import type { GrantMapper } from '../gntdev.js';
import type { Privcmd } from '../privcmd.js';
import type { Mapping } from '../../../lib/libc.js';
import type { XenstoreClient } from '../xenstore/client.js';
import { ConsoleHistory, ConsoleRing } from './ring.js';
import { RingPump, type RingLimits } from './ring-pump.js';
import { consoleStats, DEFAULT_CONSOLE_BURST, DEFAULT_CONSOLE_INPUT_LIMIT, DEFAULT_CONSOLE_RATE } from './throttle.js';

export type ConsoleLimits = RingLimits;

const CONSOLE_BOUNDS = {
  rateBytesPerSecond: DEFAULT_CONSOLE_RATE,
  burstBytes: DEFAULT_CONSOLE_BURST,
  inputLimitBytes: DEFAULT_CONSOLE_INPUT_LIMIT,
};

export class ConsoleSession extends EventEmitter {
  readonly history: ConsoleHistory;
  private readonly pump: RingPump;

  constructor(
    readonly domid: number,
    ring: ConsoleRing,
    mapping: Pick<Mapping, 'unmap'>,
    evtchn: Pick<EventChannels, 'notify' | 'unbind'>,
    localPort: number,
    historyBytes: number,
    limits: ConsoleLimits = {},
  ) {
    super();
    this.history = new ConsoleHistory(historyBytes);
    this.pump = new RingPump(ring, mapping, evtchn, localPort, limits, CONSOLE_BOUNDS, {
      deliver: (out) => {
        this.history.append(out);
        this.emit('data', out); // a throwing listener unwinds through service(), as EventEmitter's do
      },
      onThrottled: (left) => {
        consoleStats.throttled++;
        consoleStats.throttledBytes += left;
      },
    });
  }

  /** Input bytes waiting for room in the guest's ring. */
  get pendingInput(): number {
    return this.pump.pendingInput;
  }

  /** Called when the guest signals: drain output within the budget (history, then 'data'), push queued input. */
  service(): void {
    this.pump.service();
  }

  /** Queues input for the guest; false when the queue is over its limit: wait for onDrain before writing more. */
  write(data: Buffer): boolean {
    return this.pump.write(data);
  }

  /** `cb` runs when queued input has gone down enough for writers to go on. */
  onDrain(cb: () => void): () => void {
    return this.pump.onDrain(cb);
  }

  close(): void {
    if (this.pump.isClosed) return;
    this.pump.close();
    this.emit('close');
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
    // Both reads in flight at once: one round trip to xenstored, not two.
    const [ringRef, port] = await Promise.all([
      this.xs.read(`/local/domain/${domid}/console/ring-ref`),
      this.xs.read(`/local/domain/${domid}/console/port`),
    ]);
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
