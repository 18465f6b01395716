// The host's end of a guest channel (contracts/guest-channel/PROTOCOL.md) for tests of guest-init:
// its own small frame encoder and decoder, independent of node-agent/channel/, so the two sides check
// each other; sessions that collect output, return credit and check that the guest keeps to it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

export const T = {
  HELLO: 0x01,
  HELLO_ACK: 0x02,
  EXEC: 0x10,
  STARTED: 0x11,
  EXIT: 0x12,
  STDIN: 0x20,
  STDOUT: 0x21,
  STDERR: 0x22,
  WINDOW: 0x23,
  RESIZE: 0x24,
  SIGNAL: 0x25,
  CLOSE: 0x26,
  METRICS_REQUEST: 0x30,
  METRICS: 0x31,
} as const;
export const FIN = 1;
export const MAX_PAYLOAD = 32768;
export const INITIAL_WINDOW = 262144;

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export function encode(type: number, stream: number, payload: Buffer = Buffer.alloc(0), flags = 0): Buffer {
  const h = Buffer.alloc(12);
  h.write('KC', 0, 'latin1');
  h.writeUInt8(type, 2);
  h.writeUInt8(flags, 3);
  h.writeUInt32LE(stream, 4);
  h.writeUInt32LE(payload.length, 8);
  return Buffer.concat([h, payload]);
}

/** Running, not gone and not a zombie (an orphan's zombie waits for this machine's init to reap it). */
export function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return false;
  }
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/** Frames out of a byte stream; anything malformed from the guest fails the test. */
export class FrameReader {
  private buf = Buffer.alloc(0);
  push(data: Buffer): Frame[] {
    this.buf = Buffer.concat([this.buf, data]);
    const out: Frame[] = [];
    while (this.buf.length >= 12) {
      assert.equal(this.buf.toString('latin1', 0, 2), 'KC', 'magic');
      const length = this.buf.readUInt32LE(8);
      assert.ok(length <= MAX_PAYLOAD, `length ${length}`);
      if (this.buf.length < 12 + length) break;
      const flags = this.buf.readUInt8(3);
      assert.equal(flags & ~FIN, 0, 'flags');
      out.push({ type: this.buf.readUInt8(2), flags, stream: this.buf.readUInt32LE(4), payload: this.buf.subarray(12, 12 + length) });
      this.buf = this.buf.subarray(12 + length);
    }
    return out;
  }
}

/** One exec session as the host sees it: output collected (credit returned unless paused), windows checked. */
export class Session {
  readonly out = { [T.STDOUT]: [] as Buffer[], [T.STDERR]: [] as Buffer[] };
  readonly fin = { [T.STDOUT]: false, [T.STDERR]: false };
  readonly credit = { [T.STDOUT]: INITIAL_WINDOW, [T.STDERR]: INITIAL_WINDOW };
  /** Room the guest gave us for STDIN. */
  stdinWindow = INITIAL_WINDOW;
  stdinSent = 0;
  started?: number;
  exit?: { exitCode?: number; signal?: number; error?: string };
  violations: string[] = [];
  returnCredit = true;
  /** Every frame the session got, in order. */
  readonly types: number[] = [];

  constructor(
    private readonly guest: ChannelPeer,
    readonly id: number,
  ) {}

  handle(f: Frame): void {
    this.types.push(f.type);
    if (this.exit) this.violations.push(`frame 0x${f.type.toString(16)} after EXIT`);
    if (f.type === T.STDOUT || f.type === T.STDERR) {
      const k = f.type;
      if (f.payload.length > this.credit[k]) this.violations.push(`${f.payload.length} bytes past a credit of ${this.credit[k]}`);
      this.credit[k] -= f.payload.length;
      this.out[k].push(Buffer.from(f.payload));
      if (f.flags & FIN) this.fin[k] = true;
      if (this.returnCredit && f.payload.length > 0) this.grant(k, f.payload.length);
    } else if (f.type === T.WINDOW) {
      assert.equal(f.payload.readUInt8(0), T.STDIN, 'the guest credits STDIN only');
      this.stdinWindow += f.payload.readUInt32LE(4);
    } else if (f.type === T.STARTED) {
      this.started = JSON.parse(f.payload.toString()).pid;
    } else if (f.type === T.EXIT) {
      this.exit = JSON.parse(f.payload.toString());
    } else {
      this.violations.push(`unexpected frame 0x${f.type.toString(16)}`);
    }
  }

  grant(type: typeof T.STDOUT | typeof T.STDERR, n: number): void {
    this.credit[type] += n;
    const p = Buffer.alloc(8);
    p.writeUInt8(type, 0);
    p.writeUInt32LE(n, 4);
    this.guest.send(T.WINDOW, this.id, p);
  }

  text(type: typeof T.STDOUT | typeof T.STDERR = T.STDOUT): string {
    return Buffer.concat(this.out[type]).toString();
  }

  bytes(type: typeof T.STDOUT | typeof T.STDERR = T.STDOUT): number {
    return this.out[type].reduce((n, b) => n + b.length, 0);
  }

  /** Writes all of `data` within the guest's window, waiting for credit as needed. */
  async write(data: Buffer, end = false): Promise<void> {
    let at = 0;
    while (at < data.length) {
      await this.guest.until(() => (this.stdinWindow > 0 || this.exit ? true : undefined), `STDIN credit on ${this.id}`);
      if (this.exit) throw new Error(`session ${this.id} ended while writing stdin`);
      const n = Math.min(this.stdinWindow, MAX_PAYLOAD, data.length - at);
      this.guest.send(T.STDIN, this.id, data.subarray(at, at + n));
      this.stdinWindow -= n;
      this.stdinSent += n;
      at += n;
    }
    if (end) this.guest.send(T.STDIN, this.id, Buffer.alloc(0), FIN);
  }

  async ended(): Promise<{ exitCode?: number; signal?: number; error?: string }> {
    const exit = await this.guest.until(() => this.exit, `EXIT on ${this.id}`);
    assert.deepEqual(this.violations, []);
    return exit;
  }
}

/** The host's end over any byte stream; frames for no session are kept in order for `next`. */
export class ChannelPeer {
  private readonly reader = new FrameReader();
  readonly queue: Frame[] = [];
  private readonly sessions = new Map<number, Session>();
  private wakers: (() => void)[] = [];
  private nextId = 1;
  closed = false;

  /** `write` sends bytes to the guest; `describe` says what to show when a wait fails (its log). */
  constructor(
    private readonly write: (data: Buffer) => void,
    private readonly describe: () => string,
  ) {}

  /** Bytes from the guest. */
  data(d: Buffer): void {
    for (const f of this.reader.push(d)) {
      const s = this.sessions.get(f.stream);
      if (s) s.handle(f);
      else this.queue.push(f);
    }
    this.wake();
  }

  /** The guest's end went away. */
  close(): void {
    this.closed = true;
    this.wake();
  }

  wake(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }

  send(type: number, stream: number, payload?: Buffer, flags = 0): void {
    this.write(encode(type, stream, payload, flags));
  }

  json(type: number, stream: number, value: unknown): void {
    this.send(type, stream, Buffer.from(JSON.stringify(value)));
  }

  /**
   * Resolves with check()'s first defined value, checked on every frame and every 20 ms (some
   * conditions are outside this process: a pid gone from /proc). A 20 s guard turns a hang into a failure.
   */
  async until<V>(check: () => V | undefined, what: string): Promise<V> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      if (this.closed) throw new Error(`the guest ended before ${what}; ${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within 20 s; ${this.describe()}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 20));
        this.wakers.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** The next queued frame (no session's), in the order the guest sent it. */
  async next(what: string): Promise<Frame> {
    return this.until(() => this.queue.shift(), what);
  }

  async handshake(): Promise<void> {
    const hello = await this.next('HELLO');
    assert.equal(hello.type, T.HELLO);
    this.json(T.HELLO, 0, { role: 'host', min: 1, max: 1, software: 'test' });
    const ack = await this.next('HELLO_ACK');
    assert.equal(ack.type, T.HELLO_ACK);
    assert.equal(JSON.parse(ack.payload.toString()).version, 1);
  }

  exec(req: Record<string, unknown>): Session {
    const s = new Session(this, this.nextId++);
    this.sessions.set(s.id, s);
    this.json(T.EXEC, s.id, { tty: false, stdin: false, ...req });
    return s;
  }
}
