// Leader election on a coordination.k8s.io/v1 Lease with client-go's semantics: a lease is free when it
// has no holder or when it has not changed for leaseDurationSeconds by OUR clock (the time we first saw
// its current record, never the holder's renewTime, so clock skew between replicas does not matter);
// writes are optimistic (resourceVersion), renewals every retryPeriod, and leadership is given up when
// renewing fails for renewDeadline.
import { isConflict, isNotFound, type KubeClient } from './client.js';
import { wakeableSleep } from './wakeable-sleep.js';

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: LeaseSpec;
}

export interface LeaderElectorOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  /** Called when leadership is lost or released; run() then tries to acquire it again. */
  onStoppedLeading: () => void;
  log?: (msg: string, err?: unknown) => void;
}

/** MicroTime wants exactly six fractional digits. */
const microTime = (ms: number) => new Date(ms).toISOString().replace('Z', '000Z');

export class LeaderElector {
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly log: (msg: string, err?: unknown) => void;
  private readonly path: string;
  private leading = false;
  private stopped = false;
  private running?: Promise<void>;
  private wake?: () => void;
  /** The lease as last read or written, and when we first saw its current spec. */
  private observed?: Lease;
  private observedTime = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly opts: LeaderElectorOptions,
  ) {
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    this.log = opts.log ?? (() => {});
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(opts.namespace)}/leases`;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Acquires, holds and re-acquires leadership until stop(). */
  run(): Promise<void> {
    return (this.running ??= this.loop());
  }

  /**
   * Ends run(). With release (the default) a held lease is handed back at once (no holder, 1 s
   * duration), so a successor need not wait for it to expire; release: false just walks away, as a
   * crashed process would.
   */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    if (opts.release !== false && this.observed?.spec.holderIdentity === this.opts.identity) await this.release();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      while (!this.stopped && !(await this.tryAcquireOrRenew())) await this.sleep(this.retryPeriodMs * (1 + 0.2 * Math.random()));
      if (this.stopped) break;
      this.setLeading(true);
      let renewed = Date.now();
      while (!this.stopped) {
        await this.sleep(this.retryPeriodMs);
        if (this.stopped) break;
        const left = renewed + this.renewDeadlineMs - Date.now();
        if (left > 0 && (await this.withDeadline(this.tryAcquireOrRenew(), left))) renewed = Date.now();
        else if (Date.now() - renewed >= this.renewDeadlineMs) {
          this.log(`lease ${this.opts.name}: not renewed for ${this.renewDeadlineMs} ms, stepping down`);
          break;
        }
      }
      this.setLeading(false);
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = Date.now();
    const spec: LeaseSpec = {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    try {
      let current: Lease;
      try {
        current = await this.client.request<Lease>('GET', `${this.path}/${encodeURIComponent(this.opts.name)}`);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        const lease: Lease = {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.opts.name, namespace: this.opts.namespace },
          spec,
        };
        this.observe(await this.client.request<Lease>('POST', this.path, { body: lease }), Date.now());
        return true;
      }
      if (JSON.stringify(current.spec) !== JSON.stringify(this.observed?.spec)) this.observedTime = now;
      this.observed = current;
      const old = current.spec;
      const mine = old.holderIdentity === this.opts.identity;
      if (old.holderIdentity && !mine && this.observedTime + (old.leaseDurationSeconds ?? 0) * 1000 > now) return false;
      spec.leaseTransitions = (old.leaseTransitions ?? 0) + (mine ? 0 : 1);
      if (mine) spec.acquireTime = old.acquireTime;
      const updated = await this.client.request<Lease>('PUT', `${this.path}/${encodeURIComponent(this.opts.name)}`, {
        body: { ...current, spec },
      });
      this.observe(updated, Date.now());
      return true;
    } catch (e) {
      if (!isConflict(e)) this.log(`lease ${this.opts.name}: acquire or renew failed`, e);
      return false;
    }
  }

  private async release(): Promise<void> {
    const lease = this.observed!;
    const now = microTime(Date.now());
    const spec: LeaseSpec = { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now };
    try {
      this.observe(
        await this.client.request<Lease>('PUT', `${this.path}/${encodeURIComponent(this.opts.name)}`, { body: { ...lease, spec } }),
        Date.now(),
      );
    } catch (e) {
      this.log(`lease ${this.opts.name}: release failed`, e);
    }
  }

  private observe(lease: Lease, at: number): void {
    this.observed = lease;
    this.observedTime = at;
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.log(`lease ${this.opts.name}: ${this.opts.identity} ${leading ? 'is leading' : 'stopped leading'}`);
    try {
      (leading ? this.opts.onStartedLeading : this.opts.onStoppedLeading)();
    } catch (e) {
      this.log(`lease ${this.opts.name}: leadership callback failed`, e);
    }
  }

  /** The attempt's result, or false once `ms` pass (the attempt itself is left to finish). */
  private withDeadline(attempt: Promise<boolean>, ms: number): Promise<boolean> {
    let t: NodeJS.Timeout;
    return Promise.race([attempt, new Promise<boolean>((resolve) => (t = setTimeout(resolve, ms, false)))]).finally(() => clearTimeout(t));
  }

  private sleep(ms: number): Promise<void> {
    const { done, wake } = wakeableSleep(ms);
    this.wake = wake;
    return done;
  }
}
