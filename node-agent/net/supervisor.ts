// The node agent's side of kratanet: runs it as a child process (node-agent/net/main.js, configured
// over IPC), hands it the newest configuration (one apply at a time: configurations given while one
// is being applied collapse into the newest), restarts it with backoff when it dies and gives it the
// last configuration again, and re-sends the configuration every few seconds while some guest could
// not be set up (typically: its vif did not exist yet).
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import type { KratanetConfig } from './config.js';
import type { GuestResult } from './kratanet.js';

export type NetLog = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface NetSupervisorOptions {
  /** The kratanet script to fork (default: main.js beside this file). */
  script?: string;
  args?: string[];
  log?: NetLog;
  /** Re-send the configuration this often while a guest's result is not ok (default 2000 ms). */
  retryMs?: number;
  /** Restart delay after an unexpected exit: doubling from the first to the second (default 1 s to 30 s). */
  restartBackoffMs?: [number, number];
  /** A child that ran this long before it died restarts after the shortest delay again (default 30 s). */
  stableMs?: number;
  /** SIGKILL after SIGTERM if it has not exited within this (default 5000 ms). */
  stopTimeoutMs?: number;
  /** A child that does not answer an apply within this is killed and restarted (default 60 s). */
  applyTimeoutMs?: number;
}

export interface NetSupervisorStatus {
  /** A child is up and has said it is ready. */
  running: boolean;
  /** Unexpected exits so far. */
  restarts: number;
  /** The last apply kratanet refused (an invalid configuration), until one is accepted. */
  error?: string;
}

interface Applied {
  type: 'applied';
  seq: number;
  results?: GuestResult[];
  error?: string;
}

export class NetSupervisor {
  private readonly script: string;
  private readonly args: string[];
  private readonly log: NetLog;
  private readonly retryMs: number;
  private readonly backoff: [number, number];
  private readonly stableMs: number;
  private readonly stopTimeoutMs: number;
  private readonly applyTimeoutMs: number;

  private child: ChildProcess | undefined;
  private ready = false;
  private startedAt = 0;
  private seq = 0;
  /** The newest configuration given. */
  private desired: KratanetConfig | undefined;
  /** The desired configuration has not been sent to this child since it last changed (or a retry is due). */
  private dirty = false;
  /** What this child was last sent (to skip sending an identical configuration). */
  private sent: KratanetConfig | undefined;
  private inflight: { seq: number; timer: NodeJS.Timeout } | undefined;
  private lastResults = new Map<string, GuestResult>();
  private lastError: string | undefined;
  private restarts = 0;
  private delay: number;
  private restartTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(opts: NetSupervisorOptions = {}) {
    this.script = opts.script ?? fileURLToPath(new URL('./main.js', import.meta.url));
    this.args = opts.args ?? [];
    this.log = opts.log ?? (() => {});
    this.retryMs = opts.retryMs ?? 2000;
    this.backoff = opts.restartBackoffMs ?? [1000, 30_000];
    this.stableMs = opts.stableMs ?? 30_000;
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 5000;
    this.applyTimeoutMs = opts.applyTimeoutMs ?? 60_000;
    this.delay = this.backoff[0];
  }

  /** Starts kratanet (once); configurations given before it is ready are sent when it is. */
  start(): this {
    if (!this.child && !this.stopping && !this.restartTimer) this.spawn();
    return this;
  }

  /** The configuration kratanet should have; the newest wins. Starts kratanet if it was not started. */
  update(cfg: KratanetConfig): void {
    if (this.stopping) return;
    this.desired = cfg;
    // The same configuration as the one sent (or being applied) need not go again.
    if (!isDeepStrictEqual(cfg, this.sent)) this.dirty = true;
    this.start();
    this.pump();
  }

  /** The per-guest outcome of the last apply (ok, error, portErrors), by guest id. */
  results(): GuestResult[] {
    return [...this.lastResults.values()];
  }

  result(id: string): GuestResult | undefined {
    return this.lastResults.get(id);
  }

  status(): NetSupervisorStatus {
    return { running: this.ready, restarts: this.restarts, ...(this.lastError !== undefined ? { error: this.lastError } : {}) };
  }

  /** Stops kratanet: SIGTERM, then SIGKILL after the timeout; resolves once it has exited. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    clearTimeout(this.restartTimer);
    clearTimeout(this.retryTimer);
    this.restartTimer = this.retryTimer = undefined;
    const child = this.child;
    if (!child) return (this.stopping = Promise.resolve());
    const kill = setTimeout(() => {
      this.log('warn', `kratanet did not exit within ${this.stopTimeoutMs} ms of SIGTERM; killing it`, { pid: child.pid });
      child.kill('SIGKILL');
    }, this.stopTimeoutMs);
    child.kill('SIGTERM');
    this.stopping = this.exited.then(() => clearTimeout(kill));
    return this.stopping;
  }

  private spawn(): void {
    this.restartTimer = undefined;
    this.ready = false;
    this.sent = undefined;
    this.dirty = this.desired !== undefined;
    this.startedAt = Date.now();
    let child: ChildProcess;
    try {
      // stdin closed; stdout and stderr (kratanet's log) shared with the agent; IPC for configurations.
      child = fork(this.script, this.args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [], serialization: 'json' });
    } catch (e) {
      this.log('error', `kratanet could not be started: ${(e as Error).message}`);
      this.scheduleRestart();
      return;
    }
    this.child = child;
    let done!: () => void;
    this.exited = new Promise<void>((r) => (done = r));
    let gone = false;
    const onGone = (code: number | null, signal: NodeJS.Signals | null, err?: Error) => {
      if (gone) return;
      gone = true;
      if (this.child === child) this.child = undefined;
      this.ready = false;
      if (this.inflight) clearTimeout(this.inflight.timer);
      this.inflight = undefined;
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      done();
      if (this.stopping) return;
      this.restarts++;
      const why = err ? err.message : signal ? `killed by ${signal}` : `exited with code ${code}`;
      // A child that ran a while is not in a crash loop: start over at the shortest delay.
      if (Date.now() - this.startedAt >= this.stableMs) this.delay = this.backoff[0];
      this.log('error', `kratanet ${why}; restarting in ${this.delay} ms`, { pid: child.pid });
      this.scheduleRestart();
    };
    child.on('exit', (code, signal) => onGone(code, signal));
    child.on('error', (err) => {
      // A failed spawn or a failed send; the first may come without an 'exit'.
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        this.log('warn', `kratanet: ${err.message}`, { pid: child.pid });
        return;
      }
      onGone(child.exitCode, child.signalCode, err);
    });
    child.on('message', (m: { type?: string }) => {
      if (this.child !== child) return;
      if (m?.type === 'ready') {
        this.ready = true;
        this.log('info', 'kratanet started', { pid: child.pid });
        this.pump();
      } else if (m?.type === 'applied') this.onApplied(m as Applied);
    });
  }

  private scheduleRestart(): void {
    const delay = this.delay;
    this.delay = Math.min(this.delay * 2, this.backoff[1]);
    this.restartTimer = setTimeout(() => this.spawn(), delay);
    this.restartTimer.unref?.();
  }

  /** Sends the newest configuration if the child is ready, idle, and does not have it. */
  private pump(): void {
    const child = this.child;
    if (!child || !this.ready || this.inflight || !this.dirty || !this.desired || this.stopping) return;
    const config = this.desired;
    const seq = ++this.seq;
    this.dirty = false;
    this.sent = config;
    const timer = setTimeout(() => {
      if (this.inflight?.seq !== seq || this.child !== child) return;
      this.log('error', `kratanet did not apply a configuration within ${this.applyTimeoutMs} ms; killing it`, { pid: child.pid });
      child.kill('SIGKILL');
    }, this.applyTimeoutMs);
    this.inflight = { seq, timer };
    try {
      child.send({ type: 'apply', seq, config }, (err) => {
        if (err) this.log('warn', `kratanet: sending the configuration failed: ${err.message}`, { pid: child.pid });
      });
    } catch (e) {
      // The channel is closed: the child is going away, and the exit handler restarts it.
      this.log('warn', `kratanet: sending the configuration failed: ${(e as Error).message}`, { pid: child.pid });
    }
  }

  private onApplied(m: Applied): void {
    if (!this.inflight || m.seq !== this.inflight.seq) return;
    clearTimeout(this.inflight.timer);
    this.inflight = undefined;
    if (m.error !== undefined) {
      // An invalid configuration: sending it again would not help; the next update might.
      if (m.error !== this.lastError) this.log('error', `kratanet refused the configuration: ${m.error}`);
      this.lastError = m.error;
    } else {
      if (this.lastError !== undefined) this.log('info', 'kratanet accepted the configuration');
      this.lastError = undefined;
      this.record(m.results ?? []);
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      if (this.lastResults.size && [...this.lastResults.values()].some((r) => !r.ok)) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.dirty = true;
          this.pump();
        }, this.retryMs);
        this.retryTimer.unref?.();
      }
    }
    this.pump();
  }

  /** Keeps the results and logs what changed: a guest failing or recovering, new port errors. */
  private record(results: GuestResult[]): void {
    const next = new Map(results.map((r) => [r.id, r]));
    for (const r of results) {
      const old = this.lastResults.get(r.id);
      if (!r.ok && (old?.ok !== false || old.error !== r.error))
        this.log('warn', `guest ${r.id}: network not set up: ${r.error ?? 'unknown error'} (retrying every ${this.retryMs / 1000} s)`, {
          guest: r.id,
        });
      if (r.ok && old?.ok !== true) this.log('info', `guest ${r.id}: network set up`, { guest: r.id });
      const newPortErrors = r.portErrors.filter((e) => !old?.portErrors.includes(e));
      for (const e of newPortErrors) this.log('warn', `guest ${r.id}: ${e}`, { guest: r.id });
    }
    this.lastResults = next;
  }
}
