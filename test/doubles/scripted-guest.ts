// The guest's side of the control channel in TypeScript, over an in-memory transport pair: it answers
// HELLO (with a configurable version range, or never), runs scripted execs, answers METRICS and can send
// raw bytes. It checks the host's flow control (stdin past its window is recorded in `violations`) and can
// ignore the host's windows itself, to test the host's enforcement.
import {
  encodeFrame,
  FIN,
  FrameDecoder,
  FrameType,
  INITIAL_WINDOW,
  parseWindow,
  PROTOCOL_VERSION,
  windowPayload,
  type Frame,
} from '../../contracts/guest-channel/frames.js';
import type { Clock } from '../../lib/clock.js';
import { openGuestChannel, type HostGuestChannel } from '../../node-agent/channel/index.js';
import type { ChannelTransport, ExecRequest, ExecResult, ExecSink } from '../../node-agent/channel/types.js';

// --- the transport pair ---

/** One end of an in-memory byte pipe, as the agent's console backend would give the channel. */
export interface PipeEnd extends ChannelTransport {
  /** Bytes this end wrote that the other has not received yet. */
  readonly queued: number;
  /** The most `queued` ever reached. */
  readonly maxQueued: number;
  /** The other end stops reading (a guest that never drains its ring) / reads again. */
  pauseDelivery(): void;
  resumeDelivery(): void;
  readonly closed: boolean;
}

export interface TransportPairOptions {
  /** Queued bytes past which write() returns false (default 4096, the host→guest ring's size). */
  limit?: number;
  /** Bytes per delivered chunk: a number, or a function giving each chunk's size (to split frames anywhere). */
  chunk?: number | (() => number);
}

class PipeEndImpl implements PipeEnd {
  peer!: PipeEndImpl;
  private dataCb: ((d: Buffer) => void) | undefined;
  private readonly drainCbs = new Set<() => void>();
  private readonly closeCbs: (() => void)[] = [];
  private out: Buffer[] = [];
  private outBytes = 0;
  private needDrain = false;
  private scheduled = false;
  private paused = false;
  maxQueued = 0;
  closed = false;

  constructor(
    private readonly limit: number,
    private readonly chunk: () => number,
  ) {}

  get queued(): number {
    return this.outBytes;
  }

  get idle(): boolean {
    return this.closed || this.outBytes === 0 || this.peer.paused;
  }

  onData(cb: (d: Buffer) => void): void {
    this.dataCb = cb;
  }

  write(data: Buffer): boolean {
    if (this.closed) return false;
    this.out.push(Buffer.from(data));
    this.outBytes += data.length;
    this.maxQueued = Math.max(this.maxQueued, this.outBytes);
    this.schedule();
    if (this.outBytes < this.limit) return true;
    this.needDrain = true;
    return false;
  }

  onDrain(cb: () => void): () => void {
    this.drainCbs.add(cb);
    return () => this.drainCbs.delete(cb);
  }

  onClose(cb: () => void): void {
    this.closeCbs.push(cb);
  }

  close(): void {
    if (this.closed) return;
    for (const e of [this, this.peer]) {
      e.closed = true;
      e.out = [];
      e.outBytes = 0;
    }
    setImmediate(() => {
      for (const e of [this, this.peer]) for (const cb of e.closeCbs.splice(0)) cb();
    });
  }

  pauseDelivery(): void {
    this.paused = true;
  }

  resumeDelivery(): void {
    this.paused = false;
    this.peer.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** Delivers what this end wrote to the other, in chunks. */
  private flush(): void {
    while (!this.closed && !this.peer.paused && this.out.length) {
      const want = Math.max(1, this.chunk());
      const head = this.out[0]!;
      const piece = head.subarray(0, want);
      if (piece.length === head.length) this.out.shift();
      else this.out[0] = head.subarray(want);
      this.outBytes -= piece.length;
      this.peer.dataCb?.(piece);
    }
    if (!this.closed && this.outBytes === 0 && this.needDrain) {
      this.needDrain = false;
      for (const cb of [...this.drainCbs]) cb();
    }
  }
}

export interface TransportPair {
  host: PipeEnd;
  guest: PipeEnd;
  /** Resolves once no bytes move any more (everything delivered, or stuck behind a paused reader). */
  settle(): Promise<void>;
}

export function transportPair(opts: TransportPairOptions = {}): TransportPair {
  const c = opts.chunk ?? 65536;
  const chunk = typeof c === 'number' ? () => c : c;
  const host = new PipeEndImpl(opts.limit ?? 4096, chunk);
  const guest = new PipeEndImpl(opts.limit ?? 4096, chunk);
  host.peer = guest;
  guest.peer = host;
  return {
    host,
    guest,
    async settle() {
      for (let quiet = 0, i = 0; quiet < 3 && i < 100000; i++) {
        await new Promise<void>((r) => setImmediate(r));
        quiet = host.idle && guest.idle ? quiet + 1 : 0;
      }
    },
  };
}

// --- the scripted guest ---

/** What an exec does in the scripted guest. */
export type Script =
  /** Writes `stdout` (within its window), then exits with `code`. */
  | { kind: 'exit'; code: number; stdout?: string; stderr?: string }
  /** Copies stdin to stdout (reading stdin only as fast as stdout drains, like a pipe), exits 0 at stdin's end. */
  | { kind: 'echo' }
  /** Prints `bytes` bytes of `fill` to stdout (or stderr), then exits 0. */
  | { kind: 'print'; bytes: number; stream?: 'stdout' | 'stderr'; fill?: number }
  /** Killed by `signal` at once. */
  | { kind: 'signal'; signal: number }
  /** Could not start: EXIT with an error. */
  | { kind: 'fail'; error: string; exitCode: number }
  /** Runs until it is sent a signal (then killed by it) or closed; reads and credits stdin. */
  | { kind: 'hang' };

export interface ScriptedGuestOptions {
  /** The versions it speaks; null: it never answers nor sends HELLO (an init older than the channel). */
  versions?: { min: number; max: number } | null;
  software?: string;
  /** Send a guest HELLO at once (guest-init opened its device). */
  helloOnStart?: boolean;
  /** What each exec runs; default by argv[0]: true, false, cat (echo), exit N, yes N (print), sleep (hang). */
  program?: (req: ExecRequest) => Script;
  /** METRICS answers; 'never' does not answer. */
  metrics?: Record<string, unknown> | 'never';
  /** Sends output past the host's windows. */
  ignoreWindows?: boolean;
  /** Never returns stdin credit (a process that does not read). */
  stallStdin?: boolean;
  /** Output payload per frame (default 2036: a frame fills the 2048-byte guest→host ring). */
  outputChunk?: number;
  /**
   * A bulk ring to offer once up at version 2 (PROTOCOL.md, Bulk ring): `offer` is sent as BULK_OFFER and
   * `transport` is the guest's end of it, used both ways once the host's BULK_SWITCH arrives.
   */
  bulk?: { offer: Record<string, unknown>; transport: ChannelTransport };
}

export const SAMPLE_METRICS = {
  memoryTotalBytes: 256 * 1024 * 1024,
  memoryAvailableBytes: 200 * 1024 * 1024,
  memoryFreeBytes: 180 * 1024 * 1024,
  load1: 0.25,
  load5: 0.1,
  load15: 0.05,
  processes: 12,
  runningProcesses: 1,
  uptimeSeconds: 42.5,
};

interface GuestSession {
  id: number;
  req: ExecRequest;
  script: Script;
  credit: Record<number, number>;
  /** Credit the host still has for stdin, as the guest counts it. */
  stdinWindow: number;
  stdinBytes: number;
  stdinEnded: boolean;
  /** echo: stdin read but not yet written out; print: bytes left. */
  pending: Buffer[];
  left: number;
  exited: boolean;
}

function defaultProgram(req: ExecRequest): Script {
  const [cmd, arg] = req.argv;
  switch (cmd) {
    case 'true':
      return { kind: 'exit', code: 0 };
    case 'false':
      return { kind: 'exit', code: 1 };
    case 'cat':
      return { kind: 'echo' };
    case 'exit':
      return { kind: 'exit', code: Number(arg ?? 0) };
    case 'yes':
      return { kind: 'print', bytes: Number(arg ?? 1024) };
    case 'sleep':
      return { kind: 'hang' };
    default:
      return { kind: 'fail', error: `${cmd}: not found`, exitCode: 127 };
  }
}

export class ScriptedGuest {
  /** Every frame the host sent, in order. */
  readonly received: Frame[] = [];
  /** Breaches of the protocol by the host (stdin past its window, malformed frames). */
  readonly violations: string[] = [];
  readonly resizes: { stream: number; rows: number; cols: number }[] = [];
  readonly signals: { stream: number; signal: number }[] = [];
  readonly closedStreams: number[] = [];
  readonly sessions = new Map<number, GuestSession>();
  /** The version agreed, 0 until then. */
  version = 0;
  /** Where this guest writes: the console, then the bulk ring once switched. */
  out: ChannelTransport;
  /** Frames the host sent on the console after its BULK_SWITCH (it should send none). */
  readonly consoleAfterSwitch: Frame[] = [];
  private switched = false;
  private offered = false;
  private decoder = new FrameDecoder();
  private nextPid = 100;

  constructor(
    readonly transport: ChannelTransport,
    private readonly opts: ScriptedGuestOptions = {},
  ) {
    this.out = transport;
    transport.onData((d) => this.onData(d, false));
    if (opts.helloOnStart && opts.versions !== null) this.hello();
  }

  /** Sends a guest HELLO (what guest-init does when it opens its device, or restarts). */
  hello(range = this.opts.versions ?? PROTOCOL_VERSION): void {
    this.send(FrameType.HELLO, 0, { role: 'guest', min: range.min, max: range.max, software: this.opts.software ?? 'scripted-guest' });
  }

  send(type: number, stream: number, payload: Buffer | object = Buffer.alloc(0), flags = 0): void {
    this.out.write(encodeFrame(type, stream, payload, flags));
  }

  sendRaw(bytes: Buffer): void {
    this.out.write(bytes);
  }

  /** On the bulk ring both ways. */
  get onBulk(): boolean {
    return this.switched;
  }

  /** Stdin bytes received for a session. */
  stdinOf(stream: number): number {
    return this.sessions.get(stream)?.stdinBytes ?? 0;
  }

  private onData(d: Buffer, fromBulk: boolean): void {
    if (this.switched && !fromBulk) {
      const late = new FrameDecoder();
      late.push(d);
      for (let r = late.next(); r?.ok; r = late.next()) this.consoleAfterSwitch.push(r.frame);
      return;
    }
    const decoder = this.decoder;
    decoder.push(d);
    for (let r = decoder.next(); r; r = decoder.next()) {
      if (!r.ok) {
        this.violations.push(r.reason);
        return;
      }
      this.received.push(r.frame);
      this.handle(r.frame);
      if (this.decoder !== decoder) return; // moved to the bulk ring: the console's rest is not read as the conversation
    }
  }

  /** The host's BULK_SWITCH: ours is the last frame on the console, then both ways over the bulk ring. */
  private onBulkSwitch(): void {
    const bulk = this.opts.bulk;
    if (!bulk || this.switched) return void this.violations.push('an unasked BULK_SWITCH');
    this.send(FrameType.BULK_SWITCH, 0);
    this.switched = true;
    this.out = bulk.transport;
    this.decoder = new FrameDecoder();
    bulk.transport.onData((d) => this.onData(d, true));
  }

  private handle(f: Frame): void {
    const s = this.sessions.get(f.stream);
    switch (f.type) {
      case FrameType.HELLO:
        return this.onHello(f);
      case FrameType.HELLO_ACK:
        this.version = typeof f.json?.version === 'number' ? f.json.version : 0;
        return this.offerBulk();
      case FrameType.BULK_SWITCH:
        return this.onBulkSwitch();
      case FrameType.EXEC:
        return this.onExec(f);
      case FrameType.METRICS_REQUEST:
        if (this.opts.metrics !== 'never') this.send(FrameType.METRICS, f.stream, this.opts.metrics ?? SAMPLE_METRICS);
        return;
      case FrameType.RESIZE:
        this.resizes.push({ stream: f.stream, rows: f.payload.readUInt16LE(0), cols: f.payload.readUInt16LE(2) });
        return;
    }
    if (!s) return; // a session this guest already ended
    switch (f.type) {
      case FrameType.STDIN:
        return this.onStdin(s, f);
      case FrameType.WINDOW: {
        const w = parseWindow(f.payload);
        if (!w) this.violations.push('malformed WINDOW');
        else s.credit[w.dataType] = (s.credit[w.dataType] ?? 0) + w.increment;
        return this.run(s);
      }
      case FrameType.SIGNAL: {
        const signal = f.payload.readUInt32LE(0);
        this.signals.push({ stream: f.stream, signal });
        if (s.script.kind === 'hang') this.exit(s, { signal });
        return;
      }
      case FrameType.CLOSE:
        this.closedStreams.push(f.stream);
        s.exited = true;
        this.sessions.delete(f.stream);
        return;
    }
  }

  private offerBulk(): void {
    // Once per conversation, though the host's HELLO and its answer to ours may both arrive.
    if (!this.opts.bulk || this.version < 2 || this.offered) return;
    this.offered = true;
    this.send(FrameType.BULK_OFFER, 0, this.opts.bulk.offer);
  }

  private onHello(f: Frame): void {
    if (this.opts.versions === null) return;
    this.offered = false;
    for (const s of this.sessions.values()) s.exited = true;
    this.sessions.clear();
    const mine = this.opts.versions ?? PROTOCOL_VERSION;
    const theirs = { min: Number(f.json?.min), max: Number(f.json?.max) };
    const v = Math.min(mine.max, theirs.max);
    if (v >= Math.max(mine.min, theirs.min)) {
      this.version = v;
      this.send(FrameType.HELLO_ACK, 0, { version: v, software: this.opts.software ?? 'scripted-guest' });
      this.offerBulk();
    } else {
      this.send(FrameType.HELLO_ACK, 0, { version: 0, error: `this guest speaks ${mine.min}..${mine.max}` });
    }
  }

  private onExec(f: Frame): void {
    const req = f.json as unknown as ExecRequest;
    const script = (this.opts.program ?? defaultProgram)(req);
    const s: GuestSession = {
      id: f.stream,
      req,
      script,
      credit: { [FrameType.STDOUT]: INITIAL_WINDOW, [FrameType.STDERR]: INITIAL_WINDOW },
      stdinWindow: INITIAL_WINDOW,
      stdinBytes: 0,
      stdinEnded: false,
      pending: [],
      left: script.kind === 'print' ? script.bytes : 0,
      exited: false,
    };
    this.sessions.set(f.stream, s);
    if (script.kind === 'fail') return this.exit(s, { error: script.error, exitCode: script.exitCode });
    this.send(FrameType.STARTED, s.id, { pid: this.nextPid++ });
    if (script.kind === 'signal') return this.exit(s, { signal: script.signal });
    if (script.kind === 'exit') {
      if (script.stdout) s.pending.push(Buffer.from(script.stdout));
      if (script.stderr) this.output(s, FrameType.STDERR, Buffer.from(script.stderr));
    }
    this.run(s);
  }

  private onStdin(s: GuestSession, f: Frame): void {
    if (f.payload.length > s.stdinWindow) {
      this.violations.push(`stdin of ${f.payload.length} bytes on stream ${s.id} past a window of ${s.stdinWindow}`);
    }
    s.stdinWindow -= f.payload.length;
    s.stdinBytes += f.payload.length;
    if (f.flags & FIN) s.stdinEnded = true;
    if (s.script.kind === 'echo') {
      if (f.payload.length) s.pending.push(Buffer.from(f.payload));
      return this.run(s);
    }
    if (!this.opts.stallStdin && f.payload.length) this.creditStdin(s, f.payload.length);
  }

  private creditStdin(s: GuestSession, n: number): void {
    s.stdinWindow += n;
    this.send(FrameType.WINDOW, s.id, windowPayload(FrameType.STDIN, n));
  }

  /** Moves a session's output along as far as its windows allow. */
  private run(s: GuestSession): void {
    if (s.exited) return;
    const k = s.script.kind;
    if (k === 'print') {
      const type = s.script.kind === 'print' && s.script.stream === 'stderr' ? FrameType.STDERR : FrameType.STDOUT;
      const fill = s.script.kind === 'print' ? (s.script.fill ?? 0x79) : 0x79;
      while (s.left > 0) {
        const n = this.room(s, type, s.left);
        if (n === 0) return;
        this.output(s, type, Buffer.alloc(n, fill));
        s.left -= n;
      }
      this.send(type, s.id, Buffer.alloc(0), FIN);
      return this.exit(s, { exitCode: 0 });
    }
    if (k === 'echo' || k === 'exit') {
      while (s.pending.length) {
        const head = s.pending[0]!;
        const n = this.room(s, FrameType.STDOUT, head.length);
        if (n === 0) return;
        this.output(s, FrameType.STDOUT, head.subarray(0, n));
        if (n === head.length) s.pending.shift();
        else s.pending[0] = head.subarray(n);
        if (k === 'echo' && !this.opts.stallStdin) this.creditStdin(s, n);
      }
      if (k === 'exit') return this.exit(s, { exitCode: s.script.kind === 'exit' ? s.script.code : 0 });
      if (s.stdinEnded) {
        this.send(FrameType.STDOUT, s.id, Buffer.alloc(0), FIN);
        this.exit(s, { exitCode: 0 });
      }
    }
  }

  /** Bytes it may send now: within the window unless told to ignore it, one frame at most. */
  private room(s: GuestSession, type: number, want: number): number {
    const chunk = this.opts.outputChunk ?? 2036;
    if (this.opts.ignoreWindows) return Math.min(want, chunk);
    return Math.min(want, chunk, s.credit[type] ?? 0);
  }

  private output(s: GuestSession, type: number, data: Buffer): void {
    s.credit[type] = (s.credit[type] ?? 0) - data.length;
    this.send(type, s.id, data);
  }

  private exit(s: GuestSession, body: object): void {
    s.exited = true;
    this.send(FrameType.EXIT, s.id, body);
  }
}

// --- a channel wired to a scripted guest, and a sink that records ---

/** A sink that keeps what it is given; `accept` is what stdout/stderr return (false: backed up). */
export class RecordingSink implements ExecSink {
  readonly out: Buffer[] = [];
  readonly err: Buffer[] = [];
  pid: number | undefined;
  result: ExecResult | undefined;
  exits = 0;
  accept = true;
  private waiters: ((r: ExecResult) => void)[] = [];

  stdout(data: Buffer): boolean {
    this.out.push(Buffer.from(data));
    return this.accept;
  }

  stderr(data: Buffer): boolean {
    this.err.push(Buffer.from(data));
    return this.accept;
  }

  started(pid: number): void {
    this.pid = pid;
  }

  exit(result: ExecResult): void {
    this.exits++;
    this.result = result;
    for (const w of this.waiters.splice(0)) w(result);
  }

  get stdoutBytes(): number {
    return this.out.reduce((n, b) => n + b.length, 0);
  }

  get stdoutText(): string {
    return Buffer.concat(this.out).toString();
  }

  get stderrText(): string {
    return Buffer.concat(this.err).toString();
  }

  waitExit(): Promise<ExecResult> {
    return this.result ? Promise.resolve(this.result) : new Promise((r) => this.waiters.push(r));
  }
}

export interface ScriptedChannel {
  pair: TransportPair;
  guest: ScriptedGuest;
  channel: HostGuestChannel;
}

/** A host channel and a scripted guest over a fresh pair, settled (up, unless the guest never answers). */
export async function scriptedChannel(
  guestOpts: ScriptedGuestOptions = {},
  pairOpts: TransportPairOptions = {},
  clock?: Clock,
): Promise<ScriptedChannel> {
  const pair = transportPair(pairOpts);
  const guest = new ScriptedGuest(pair.guest, guestOpts);
  const channel = openGuestChannel(pair.host, { software: 'test-agent 0.0.0', clock }) as HostGuestChannel;
  await pair.settle();
  return { pair, guest, channel };
}
