// One exec session on the host: the guest's windows in both directions, stdin queued beyond the guest's
// credit (bounded by backpressure on the writer), output credit held while the sink is backed up.
import {
  encodeFrame,
  FIN,
  FrameType,
  INITIAL_WINDOW,
  MAX_PAYLOAD,
  resizePayload,
  signalPayload,
} from '../../contracts/guest-channel/frames.js';
import type { ExecResult, ExecSession, ExecSink } from './types.js';
import type { Outbox, StdinSource } from './outbox.js';

/** Stdin queued past this makes writeStdin return false (the data is still kept). */
export const STDIN_QUEUE_LIMIT = 64 * 1024;

type OutputType = typeof FrameType.STDOUT | typeof FrameType.STDERR;

/** What a session needs of its channel. */
export interface SessionOwner {
  readonly outbox: Outbox;
  /** The session ended for the host (EXIT, CLOSE, or the channel went away): forget it. */
  ended(session: HostExecSession): void;
}

export class HostExecSession implements ExecSession, StdinSource {
  private stdinCredit = INITIAL_WINDOW;
  private stdinQueue: Buffer[] = [];
  private stdinQueued = 0;
  private stdinEnd = false;
  private stdinFinSent = false;
  private wantDrain = false;
  private readonly drainListeners = new Set<() => void>();
  /** Output bytes the guest may still send, per type, and whether it ended that direction. */
  private readonly allowance = { [FrameType.STDOUT]: INITIAL_WINDOW, [FrameType.STDERR]: INITIAL_WINDOW };
  private readonly outputEnded = { [FrameType.STDOUT]: false, [FrameType.STDERR]: false };
  /** Credit held back while the sink is backed up. */
  private readonly held = { [FrameType.STDOUT]: 0, [FrameType.STDERR]: 0 };
  private paused = false;
  private startedSeen = false;
  private done = false;

  constructor(
    readonly id: number,
    private readonly sink: ExecSink,
    private readonly stdinOpen: boolean,
    private readonly owner: SessionOwner,
  ) {}

  get isDone(): boolean {
    return this.done;
  }

  /** Stdin waiting for the guest's credit or for the transport. */
  get queuedStdin(): number {
    return this.stdinQueued;
  }

  /** Output the guest sent whose credit is held because the sink is backed up. */
  get heldOutput(): number {
    return this.held[FrameType.STDOUT] + this.held[FrameType.STDERR];
  }

  writeStdin(data: Buffer): boolean {
    // Without stdin the process reads /dev/null; stdin after the end or after the session is dropped.
    if (this.done || !this.stdinOpen || this.stdinEnd) return true;
    if (data.length) {
      this.stdinQueue.push(Buffer.from(data));
      this.stdinQueued += data.length;
      this.owner.outbox.pump();
    }
    if (this.stdinQueued < STDIN_QUEUE_LIMIT) return true;
    this.wantDrain = true;
    return false;
  }

  onStdinDrain(cb: () => void): () => void {
    this.drainListeners.add(cb);
    return () => this.drainListeners.delete(cb);
  }

  endStdin(): void {
    if (this.done || !this.stdinOpen || this.stdinEnd) return;
    this.stdinEnd = true;
    this.owner.outbox.pump();
  }

  resize(rows: number, cols: number): void {
    checkSize(rows, cols);
    if (this.done) return;
    this.owner.outbox.send(this.id, encodeFrame(FrameType.RESIZE, this.id, resizePayload(rows, cols)), { key: `resize:${this.id}` });
    this.owner.outbox.pump();
  }

  signal(signo: number): void {
    if (!Number.isInteger(signo) || signo < 1 || signo > 31) throw new RangeError(`signal ${signo} is not one of 1..31`);
    if (this.done) return;
    // A signal already queued is not queued twice: the guest's input may be stalled.
    this.owner.outbox.send(this.id, encodeFrame(FrameType.SIGNAL, this.id, signalPayload(signo)), { key: `signal:${this.id}:${signo}` });
    this.owner.outbox.pump();
  }

  resumeOutput(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.done) return;
    for (const t of [FrameType.STDOUT, FrameType.STDERR] as const) {
      this.credit(t, this.held[t]);
      this.held[t] = 0;
    }
    this.owner.outbox.pump();
  }

  close(): void {
    if (this.done) return;
    const unsent = this.owner.outbox.forget(this.id);
    if (!unsent) this.owner.outbox.send(this.id, encodeFrame(FrameType.CLOSE, this.id));
    this.finish({ exitCode: 255, error: 'the session was closed before the process ended' });
    this.owner.outbox.pump();
  }

  nextStdinFrame(): Buffer | undefined {
    if (this.done) return undefined;
    if (this.stdinQueued > 0) {
      if (this.stdinCredit <= 0) return undefined;
      const n = Math.min(this.stdinCredit, MAX_PAYLOAD, this.stdinQueued);
      const payload = this.takeStdin(n);
      this.stdinCredit -= n;
      const last = this.stdinEnd && this.stdinQueued === 0;
      if (last) this.stdinFinSent = true;
      this.noteDrain();
      return encodeFrame(FrameType.STDIN, this.id, payload, last ? FIN : 0);
    }
    if (this.stdinEnd && !this.stdinFinSent) {
      this.stdinFinSent = true;
      return encodeFrame(FrameType.STDIN, this.id, Buffer.alloc(0), FIN);
    }
    return undefined;
  }

  // --- from the guest; each returns a violation's reason, or undefined ---

  onStarted(pid: number): string | undefined {
    if (this.startedSeen) return `a second STARTED for stream ${this.id}`;
    this.startedSeen = true;
    this.sink.started?.(pid);
    return undefined;
  }

  onOutput(type: OutputType, data: Buffer, fin: boolean): string | undefined {
    const name = type === FrameType.STDOUT ? 'stdout' : 'stderr';
    if (this.outputEnded[type]) return `${name} data on stream ${this.id} after its FIN`;
    if (data.length > this.allowance[type]) {
      return `${data.length} bytes of ${name} on stream ${this.id} exceed its window of ${this.allowance[type]}`;
    }
    this.allowance[type] -= data.length;
    if (fin) this.outputEnded[type] = true;
    if (!data.length) return undefined;
    const more = type === FrameType.STDOUT ? this.sink.stdout(data) : this.sink.stderr(data);
    if (this.done) return undefined; // the sink closed the session
    if (!more) this.paused = true;
    if (this.paused) this.held[type] += data.length;
    else this.credit(type, data.length);
    return undefined;
  }

  /** Credit returned by the guest; crediting more than it was sent is a violation. */
  onCredit(dataType: number, increment: number): string | undefined {
    if (dataType !== FrameType.STDIN) return `the guest credited data type 0x${dataType.toString(16)}, which it never receives`;
    if (this.stdinCredit + increment > INITIAL_WINDOW) return `the guest credited stdin of stream ${this.id} past its window`;
    this.stdinCredit += increment;
    if (increment > 0) this.owner.outbox.pump();
    return undefined;
  }

  /** The sink took `n` bytes: the guest may send that many more (told with WINDOW). */
  private credit(type: OutputType, n: number): void {
    if (this.outputEnded[type]) return;
    this.allowance[type] += n;
    this.owner.outbox.owe(this.id, type, n);
  }

  onExit(result: ExecResult): void {
    this.owner.outbox.forget(this.id);
    this.finish(result);
  }

  /** Ends the session with `result` (the channel went away); no frame is sent. */
  abort(result: ExecResult): void {
    this.finish(result);
  }

  private finish(result: ExecResult): void {
    if (this.done) return;
    this.done = true;
    this.stdinQueue = [];
    this.stdinQueued = 0;
    this.drainListeners.clear();
    this.owner.ended(this);
    try {
      this.sink.exit(result);
    } catch {
      // The sink's own failure: the session is over either way, and the channel must go on for the others.
    }
  }

  private takeStdin(n: number): Buffer {
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const head = this.stdinQueue[0]!;
      if (head.length <= left) {
        parts.push(head);
        this.stdinQueue.shift();
        left -= head.length;
      } else {
        parts.push(head.subarray(0, left));
        this.stdinQueue[0] = head.subarray(left);
        left = 0;
      }
    }
    this.stdinQueued -= n;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Tells writers to go on once the queue is back under its limit (after the current pump). */
  private noteDrain(): void {
    if (!this.wantDrain || this.stdinQueued >= STDIN_QUEUE_LIMIT) return;
    this.wantDrain = false;
    queueMicrotask(() => {
      if (this.done) return;
      for (const cb of [...this.drainListeners]) cb();
    });
  }
}

export function checkSize(rows: number, cols: number): void {
  const ok = (n: number) => Number.isInteger(n) && n >= 1 && n <= 0xffff;
  if (!ok(rows) || !ok(cols)) throw new RangeError(`a window of ${rows}x${cols} is not rows and columns in 1..65535`);
}
