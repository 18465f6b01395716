// The channel's byte stream across the move onto a guest's bulk ring (PROTOCOL.md, Bulk ring): it starts
// as the console device and switches each direction at the frame the protocol names. Output switches when
// the host sends BULK_SWITCH (its last frame on the console); input when the guest's BULK_SWITCH has been
// read from the console, after which the console's bytes go to `onStray` (the guest has no business
// writing there any more). Both transports close together.
import type { BulkOffer, ChannelTransport } from './types.js';

export class SwitchingTransport implements ChannelTransport {
  private out: ChannelTransport;
  private bulk?: ChannelTransport;
  private inputOnBulk = false;
  private reader?: (data: Buffer) => void;
  /** Console bytes after the input switched. */
  onStray?: (data: Buffer) => void;
  private readonly drainListeners = new Set<() => void>();
  private readonly closeListeners: (() => void)[] = [];
  private ended = false;

  constructor(private readonly console: ChannelTransport) {
    this.out = console;
    console.onDrain(() => {
      if (this.out === console) this.emitDrain();
    });
    console.onClose(() => this.end());
  }

  /** Whether output has moved to the bulk ring. */
  get onBulk(): boolean {
    return this.bulk !== undefined;
  }

  /** Whether the console transport can map a bulk ring (the xen backend's can; tests' pipes cannot). */
  get canOpenBulk(): boolean {
    return typeof this.console.openBulk === 'function';
  }

  onData(cb: (data: Buffer) => void): void {
    this.reader = cb;
    this.console.onData((d) => {
      if (!this.inputOnBulk) this.reader?.(d);
      else if (d.length) this.onStray?.(d);
    });
  }

  write(data: Buffer): boolean {
    if (this.ended) return true;
    return this.out.write(data);
  }

  onDrain(cb: () => void): () => void {
    this.drainListeners.add(cb);
    return () => void this.drainListeners.delete(cb);
  }

  onClose(cb: () => void): void {
    if (this.ended) queueMicrotask(cb);
    else this.closeListeners.push(cb);
  }

  /**
   * Maps the guest's ring (throws when that fails: nothing changes), writes `lastConsoleFrame` to the
   * console and sends everything after it to the bulk ring.
   */
  switchOutput(offer: BulkOffer, lastConsoleFrame: Buffer): void {
    if (this.bulk) throw new Error('the channel is already on a bulk ring');
    if (!this.console.openBulk) throw new Error('this transport has no bulk ring');
    const bulk = this.console.openBulk(offer);
    if (this.ended) {
      bulk.close();
      return;
    }
    this.bulk = bulk;
    bulk.onDrain(() => {
      if (this.out === bulk) this.emitDrain();
    });
    bulk.onClose(() => this.end());
    this.console.write(lastConsoleFrame);
    this.out = bulk;
    // A writer waiting for the console to drain may go on at once: the bulk ring is empty.
    queueMicrotask(() => this.emitDrain());
  }

  /** The guest's BULK_SWITCH was read: input comes from the bulk ring alone from now on. */
  switchInput(): void {
    if (!this.bulk || this.inputOnBulk) throw new Error('no bulk ring to read from');
    this.inputOnBulk = true;
    this.bulk.onData((d) => this.reader?.(d));
  }

  close(): void {
    this.end();
  }

  /**
   * The channel is over: the bulk ring is released (guest-init's own pages), the console device drains
   * and discards what the guest still writes until its owner closes it (ChannelTransport.discard).
   */
  discard(): void {
    if (this.ended) return;
    // Ended first: the bulk ring's close listener ends this transport too, which would close the console.
    const bulk = this.bulk;
    this.bulk = undefined;
    if (this.console.discard) this.end(() => this.console.discard!());
    else this.end();
    bulk?.close();
  }

  private emitDrain(): void {
    if (this.ended) return;
    for (const cb of [...this.drainListeners]) cb();
  }

  private end(release = () => this.console.close()): void {
    if (this.ended) return;
    this.ended = true;
    // Whichever went first (the domain is gone), the other is released with it.
    this.bulk?.close();
    release();
    for (const cb of this.closeListeners.splice(0)) {
      try {
        cb();
      } catch {
        // a listener's failure must not keep the others from hearing
      }
    }
  }
}
