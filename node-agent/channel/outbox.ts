// What the host has to say to the guest, written to the transport only as fast as it takes it: control
// frames in order, owed credit (kept as counts, so a guest that never reads its input costs no memory per
// frame it sends), then stdin round-robin across sessions within the guest's windows. Once the transport
// says it is full, nothing more is written until it drains: no byte is dropped and the queue stays bounded.
import { encodeFrame, FrameType, windowPayload } from '../../contracts/guest-channel/frames.js';
import type { ChannelTransport } from './types.js';

/** A session with stdin to send. */
export interface StdinSource {
  readonly id: number;
  /** Its next STDIN frame that fits the guest's window now, or undefined. */
  nextStdinFrame(): Buffer | undefined;
}

interface ControlEntry {
  stream: number;
  frame: Buffer;
  /** Replaces a queued entry with the same key (a newer window size). */
  key?: string;
  /** The frame that opens its stream (EXEC, METRICS_REQUEST). */
  opens: boolean;
}

export class Outbox {
  private control: ControlEntry[] = [];
  private controlBytes = 0;
  private readonly credit = new Map<string, { stream: number; dataType: number; n: number }>();
  private full = false;
  private pumping = false;
  private again = false;

  constructor(
    private readonly transport: ChannelTransport,
    private readonly stdinSources: () => Iterable<StdinSource>,
    private readonly wrote: (frame: Buffer) => void,
  ) {}

  /** Bytes waiting here (not yet given to the transport). */
  get queuedBytes(): number {
    return this.controlBytes;
  }

  get queuedFrames(): number {
    return this.control.length + this.credit.size;
  }

  /** The transport said it is over its bound and has not drained since. */
  get blocked(): boolean {
    return this.full;
  }

  send(stream: number, frame: Buffer, opts: { key?: string; opens?: boolean } = {}): void {
    if (opts.key !== undefined) {
      const old = this.control.find((e) => e.key === opts.key);
      if (old) {
        this.controlBytes += frame.length - old.frame.length;
        old.frame = frame;
        return;
      }
    }
    this.control.push({ stream, frame, key: opts.key, opens: opts.opens ?? false });
    this.controlBytes += frame.length;
  }

  /** Credit owed to the guest for `n` bytes of `dataType` its consumer took. */
  owe(stream: number, dataType: number, n: number): void {
    if (n <= 0) return;
    const k = `${stream}:${dataType}`;
    const c = this.credit.get(k);
    if (c) c.n += n;
    else this.credit.set(k, { stream, dataType, n });
  }

  /** Drops what is queued for a stream; true when its opening frame was still here (the guest never heard of it). */
  forget(stream: number): boolean {
    const opened = this.control.some((e) => e.stream === stream && e.opens);
    this.control = this.control.filter((e) => {
      if (e.stream !== stream) return true;
      this.controlBytes -= e.frame.length;
      return false;
    });
    for (const [k, c] of this.credit) if (c.stream === stream) this.credit.delete(k);
    return opened;
  }

  /** Drops everything queued (a reset or the end of the channel). */
  clear(): void {
    this.control = [];
    this.controlBytes = 0;
    this.credit.clear();
  }

  drained(): void {
    this.full = false;
    this.pump();
  }

  /** Writes what it may; safe to call from anywhere, including from inside a write. */
  pump(): void {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        this.writeAll();
      } while (this.again && !this.full);
    } finally {
      this.pumping = false;
    }
  }

  private writeAll(): void {
    while (!this.full && this.control.length) {
      const e = this.control.shift()!;
      this.controlBytes -= e.frame.length;
      this.write(e.frame);
    }
    for (const [k, c] of this.credit) {
      if (this.full) return;
      this.credit.delete(k);
      this.write(encodeFrame(FrameType.WINDOW, c.stream, windowPayload(c.dataType, c.n)));
    }
    let progress = true;
    while (!this.full && progress) {
      progress = false;
      for (const s of this.stdinSources()) {
        if (this.full) return;
        const f = s.nextStdinFrame();
        if (f) {
          progress = true;
          this.write(f);
        }
      }
    }
  }

  private write(frame: Buffer): void {
    this.wrote(frame);
    if (!this.transport.write(frame)) this.full = true;
  }
}
