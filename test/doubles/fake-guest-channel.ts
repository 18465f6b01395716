// A GuestChannel for tests, in memory: scripted programs (by argv[0]) run in fake exec sessions with the
// channel's flow control modelled (a stdin window that fills while the program does not read, output held
// while the sink said false until resumeOutput), and everything a session was asked (stdin, resizes,
// signals, close) recorded for assertions.
import {
  ChannelUnavailable,
  type ChannelState,
  type ChannelStats,
  type ExecRequest,
  type ExecResult,
  type ExecSession,
  type ExecSink,
  type GuestChannel,
  type GuestReportedMetrics,
} from '../../node-agent/channel/index.js';

/** A program of the fake guest: drives its session (output, exit) from the moment it starts. */
export type FakeProgram = (s: FakeExecSession) => void;

/** The channel's initial window (PROTOCOL.md INITIAL_WINDOW): stdin queued past it makes writeStdin say false. */
export const FAKE_STDIN_WINDOW = 256 * 1024;

const FLOOD_CHUNK = Buffer.alloc(32 * 1024, 'y\n');

/**
 * The programs every fake channel knows:
 * - `true`, `false`; `exit N`; `sh -c 'exit N'`;
 * - `echo ARGS...` (stdout), `warn ARGS...` (stderr, exit 3);
 * - `cat`: stdin to stdout until stdin ends, then exit 0;
 * - `yes`: stdout as fast as the sink takes it, until closed or signalled;
 * - `sleep`: runs until a signal, then ends killed by it (128+N);
 * - `request`: prints its ExecRequest as JSON;
 * anything else cannot start (127, as execve's ENOENT).
 */
export const DEFAULT_PROGRAMS: Record<string, FakeProgram> = {
  true: (s) => s.exit({ exitCode: 0 }),
  false: (s) => s.exit({ exitCode: 1 }),
  exit: (s) => s.exit({ exitCode: Number(s.req.argv[1] ?? 0) }),
  sh: (s) => {
    const m = /^exit (\d+)$/.exec(s.req.argv[2] ?? '');
    if (s.req.argv[1] !== '-c' || !m) return s.exit({ exitCode: 2, error: 'the fake sh runs only -c "exit N"' });
    s.exit({ exitCode: Number(m[1]) });
  },
  echo: (s) => {
    s.write('stdout', Buffer.from(s.req.argv.slice(1).join(' ') + '\n'));
    s.exit({ exitCode: 0 });
  },
  warn: (s) => {
    s.write('stderr', Buffer.from(s.req.argv.slice(1).join(' ') + '\n'));
    s.exit({ exitCode: 3 });
  },
  cat: (s) =>
    s.readStdin(
      (d) => s.write('stdout', d),
      () => s.exit({ exitCode: 0 }),
    ),
  yes: (s) => {
    // A chunk per turn of the event loop, so the test's own I/O keeps running; held while the sink says no.
    const more = () => {
      if (s.done) return;
      s.write('stdout', FLOOD_CHUNK);
      if (s.outputBlocked) s.onResume(more);
      else setImmediate(more);
    };
    s.onSignal((n) => s.exit({ exitCode: 128 + n, signal: n }));
    more();
  },
  sleep: (s) => s.onSignal((n) => s.exit({ exitCode: 128 + n, signal: n })),
  request: (s) => {
    s.write('stdout', Buffer.from(JSON.stringify(s.req) + '\n'));
    s.exit({ exitCode: 0 });
  },
};

export class FakeExecSession implements ExecSession {
  /** Stdin the program took, in order. */
  readonly received: Buffer[] = [];
  readonly resizes: [number, number][] = [];
  readonly signals: number[] = [];
  stdinEnded = false;
  /** The host abandoned the session (close()). */
  closed = false;
  /** How it ended, once it did. */
  result?: ExecResult;
  /** The sink said false: output waits for resumeOutput(). */
  outputBlocked = false;
  /** Bytes of output the sink took. */
  outputBytes = 0;
  /** The program does not read stdin while set (a stalled process): the stdin window fills. */
  stalled: boolean;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private needDrain = false;
  private readonly drains = new Set<() => void>();
  private resumes: (() => void)[] = [];
  private signalHandler?: (n: number) => void;
  private reader?: { data: (d: Buffer) => void; end: () => void };

  constructor(
    readonly id: number,
    readonly req: ExecRequest,
    private readonly sink: ExecSink,
    stalled: boolean,
  ) {
    this.stalled = stalled;
  }

  get done(): boolean {
    return this.closed || this.result !== undefined;
  }

  /** Bytes of stdin queued and not yet taken by the program. */
  get queuedStdin(): number {
    return this.pendingBytes;
  }

  // --- the host's side (ExecSession) ---

  writeStdin(data: Buffer): boolean {
    if (this.done) return true;
    this.pending.push(Buffer.from(data));
    this.pendingBytes += data.length;
    this.pump();
    const ok = this.pendingBytes < FAKE_STDIN_WINDOW;
    if (!ok) this.needDrain = true;
    return ok;
  }

  onStdinDrain(cb: () => void): () => void {
    this.drains.add(cb);
    return () => this.drains.delete(cb);
  }

  endStdin(): void {
    this.stdinEnded = true;
    this.pump();
  }

  resize(rows: number, cols: number): void {
    this.resizes.push([rows, cols]);
  }

  signal(signo: number): void {
    this.signals.push(signo);
    if (!this.done) this.signalHandler?.(signo);
  }

  resumeOutput(): void {
    this.outputBlocked = false;
    for (const r of this.resumes.splice(0)) r();
    this.pump();
  }

  close(): void {
    this.closed = true;
  }

  // --- the program's side ---

  /** Output to the sink (stderr goes to stdout on a tty, as on a pty); marks output blocked when it says false. */
  write(stream: 'stdout' | 'stderr', data: Buffer): void {
    if (this.done) return;
    this.outputBytes += data.length;
    const ok = stream === 'stderr' && !this.req.tty ? this.sink.stderr(data) : this.sink.stdout(data);
    if (!ok) this.outputBlocked = true;
  }

  /** Takes stdin as it comes (not while output is blocked or the session is stalled). */
  readStdin(data: (d: Buffer) => void, end: () => void): void {
    this.reader = { data, end };
    this.pump();
  }

  onResume(cb: () => void): void {
    this.resumes.push(cb);
  }

  onSignal(cb: (n: number) => void): void {
    this.signalHandler = cb;
  }

  exit(result: ExecResult): void {
    if (this.done) return;
    this.result = result;
    this.sink.exit(result);
  }

  /** Lets a stalled program read again. */
  unstall(): void {
    this.stalled = false;
    this.pump();
  }

  private pump(): void {
    if (!this.reader) return;
    while (this.pending.length && !this.stalled && !this.outputBlocked && !this.done) {
      const d = this.pending.shift()!;
      this.pendingBytes -= d.length;
      this.received.push(d);
      this.reader.data(d);
    }
    if (this.needDrain && this.pendingBytes < FAKE_STDIN_WINDOW) {
      this.needDrain = false;
      for (const cb of [...this.drains]) cb();
    }
    if (!this.pending.length && this.stdinEnded && !this.done) {
      const { end } = this.reader;
      this.reader = undefined;
      end();
    }
  }
}

export class FakeGuestChannel implements GuestChannel {
  private st: ChannelState = { phase: 'up', version: 1, guestSoftware: 'fake-guest-init 1', transport: 'console' };
  readonly sessions: FakeExecSession[] = [];
  readonly programs = new Map<string, FakeProgram>(Object.entries(DEFAULT_PROGRAMS));
  readonly consoleSizes: [number, number][] = [];
  /** The timeouts ready() was called with. */
  readonly readyCalls: number[] = [];
  /** New sessions start stalled (their program reads no stdin until unstall()). */
  stallStdin = false;
  metricsValue: GuestReportedMetrics = {
    memoryTotalBytes: 512 * 1024 * 1024,
    memoryAvailableBytes: 400 * 1024 * 1024,
    memoryFreeBytes: 300 * 1024 * 1024,
    load1: 0.5,
    load5: 0.25,
    load15: 0.1,
    processes: 5,
    runningProcesses: 1,
    uptimeSeconds: 60,
  };
  readonly stats: ChannelStats = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, protocolErrors: 0 };
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private nextId = 1;

  constructor(state?: ChannelState) {
    if (state) this.st = state;
  }

  state(): ChannelState {
    return this.st;
  }

  /** Moves the channel on: up resolves waiting ready() calls, closed/incompatible rejects them. */
  setState(state: ChannelState): void {
    this.st = state;
    if (state.phase === 'connecting') return;
    for (const w of this.waiters.splice(0)) {
      const err = this.unavailable();
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  private unavailable(): ChannelUnavailable | undefined {
    const s = this.st;
    if (s.phase === 'up') return undefined;
    if (s.phase === 'connecting') return new ChannelUnavailable('the guest did not answer the channel handshake in time', 'connecting');
    return new ChannelUnavailable(`the channel is ${s.phase}: ${s.reason}`, s.phase);
  }

  ready(timeoutMs: number): Promise<void> {
    this.readyCalls.push(timeoutMs);
    if (this.st.phase !== 'connecting') {
      const err = this.unavailable();
      return err ? Promise.reject(err) : Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(this.unavailable()!);
      }, timeoutMs);
      const waiter = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e: Error) => (clearTimeout(timer), reject(e)),
      };
      this.waiters.push(waiter);
    });
  }

  exec(req: ExecRequest, sink: ExecSink): ExecSession {
    const err = this.unavailable();
    if (err) throw err;
    const session = new FakeExecSession(this.nextId++, structuredClone(req), sink, this.stallStdin);
    this.sessions.push(session);
    const program = this.programs.get(req.argv[0] ?? '');
    // The guest answers after a round trip, never inside exec().
    setImmediate(() => {
      if (session.done) return;
      if (!program) return session.exit({ exitCode: 127, error: `exec: "${req.argv[0]}": executable file not found in $PATH` });
      sink.started?.(1000 + session.id);
      program(session);
    });
    return session;
  }

  metrics(_timeoutMs: number): Promise<GuestReportedMetrics> {
    const err = this.unavailable();
    return err ? Promise.reject(err) : Promise.resolve({ ...this.metricsValue });
  }

  resizeConsole(rows: number, cols: number): void {
    if (this.st.phase === 'up') this.consoleSizes.push([rows, cols]);
  }

  close(reason: string): void {
    this.setState({ phase: 'closed', reason });
    for (const s of this.sessions) s.exit({ exitCode: 255, error: `the guest's control channel closed: ${reason}` });
  }

  /** The most recent session. */
  get last(): FakeExecSession | undefined {
    return this.sessions.at(-1);
  }
}
