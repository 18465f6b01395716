// A guest channel's transport before its ring is connected: the channel is opened at once (so that
// channel() answers "connecting" while the guest boots, not "none"), its first writes (HELLO) wait here
// up to a bound, and everything passes through once the real transport is attached.
import type { BulkOffer, ChannelTransport } from '../channel/types.js';

/** Bytes queued before the ring is up: the channel sends only HELLO then. */
const DEFAULT_PENDING_LIMIT = 64 * 1024;

export class PendingTransport implements ChannelTransport {
  private real?: ChannelTransport;
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private reader?: (data: Buffer) => void;
  private readonly drainListeners = new Set<() => void>();
  private readonly closeListeners: (() => void)[] = [];
  private closed = false;
  private ended = false;

  constructor(private readonly limit = DEFAULT_PENDING_LIMIT) {}

  get attached(): boolean {
    return this.real !== undefined;
  }

  onData(cb: (data: Buffer) => void): void {
    this.reader = cb;
    this.real?.onData(cb);
  }

  write(data: Buffer): boolean {
    if (this.closed) return true;
    if (this.real) return this.real.write(data);
    this.queued.push(Buffer.from(data));
    this.queuedBytes += data.length;
    return this.queuedBytes < this.limit;
  }

  onDrain(cb: () => void): () => void {
    this.drainListeners.add(cb);
    return () => void this.drainListeners.delete(cb);
  }

  onClose(cb: () => void): void {
    if (this.ended) queueMicrotask(cb);
    else this.closeListeners.push(cb);
  }

  /** Only once the ring is connected: the channel asks for it after the handshake, which needs the ring. */
  get openBulk(): ((offer: BulkOffer) => ChannelTransport) | undefined {
    const real = this.real;
    if (!real?.openBulk || this.closed) return undefined;
    return (offer) => real.openBulk!(offer);
  }

  /** The ring is connected: queued bytes go first, then everything passes through. */
  attach(real: ChannelTransport): void {
    if (this.closed || this.real) {
      real.close();
      return;
    }
    this.real = real;
    real.onDrain(() => this.emitDrain());
    real.onClose(() => this.end());
    if (this.reader) real.onData(this.reader);
    const wasFull = this.queuedBytes >= this.limit;
    let ok = true;
    for (const chunk of this.queued) ok = real.write(chunk);
    this.queued = [];
    this.queuedBytes = 0;
    if (wasFull && ok) this.emitDrain();
  }

  /** The real transport drains and discards until close(); not connected yet, there is nothing to drain. */
  discard(): void {
    if (this.closed) return;
    this.queued = [];
    this.queuedBytes = 0;
    if (this.real?.discard) this.real.discard();
    else this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queued = [];
    this.queuedBytes = 0;
    this.real?.close();
    this.end();
  }

  private emitDrain(): void {
    for (const cb of [...this.drainListeners]) cb();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.closed = true;
    for (const cb of this.closeListeners.splice(0)) cb();
  }
}
