// krata's console backend (instead of xenconsoled): maps a guest's console ring, binds its event channel,
// and turns the ring into a byte stream with a bounded history, for attach and logs.
import { EventEmitter } from 'node:events';
import { BuildConst } from '../abi.js';
import type { EventChannels } from '../evtchn.js';
import type { GrantMapper } from '../gntdev.js';
import type { Privcmd } from '../privcmd.js';
import type { Mapping } from '../sys/libc.js';
import type { XenstoreClient } from '../xenstore/client.js';
import { ConsoleHistory, ConsoleRing } from './ring.js';

export class ConsoleSession extends EventEmitter {
  readonly history: ConsoleHistory;
  private pendingInput: Buffer[] = [];

  constructor(
    readonly domid: number,
    private readonly ring: ConsoleRing,
    private readonly mapping: Mapping,
    private readonly evtchn: EventChannels,
    private readonly localPort: number,
    historyBytes: number,
  ) {
    super();
    this.history = new ConsoleHistory(historyBytes);
  }

  /** Called when the guest signals: drain output, push queued input. */
  service(): void {
    const out = this.ring.readOutput();
    if (out.length) {
      this.history.append(out);
      this.emit('data', out);
    }
    this.flushInput();
    this.evtchn.notify(this.localPort); // tell the guest there is room again
  }

  write(data: Buffer): void {
    this.pendingInput.push(Buffer.from(data));
    this.flushInput();
    this.evtchn.notify(this.localPort);
  }

  close(): void {
    this.evtchn.unbind(this.localPort);
    this.mapping.unmap();
    this.emit('close');
  }

  private flushInput(): void {
    while (this.pendingInput.length) {
      const head = this.pendingInput[0]!;
      const n = this.ring.writeInput(head);
      if (n === head.length) this.pendingInput.shift();
      else {
        this.pendingInput[0] = head.subarray(n);
        return;
      }
    }
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
  async attach(domid: number, historyBytes = 256 * 1024): Promise<ConsoleSession> {
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
      session = new ConsoleSession(domid, ring, mapping, this.evtchn, local, historyBytes);
      session.service(); // output written before we attached
      return session;
    } catch (e) {
      mapping.unmap();
      throw e;
    }
  }
}
