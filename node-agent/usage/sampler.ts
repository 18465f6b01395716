// Per-guest usage for the local API, kratactl top and Prometheus: Xen's figures of each running Guest's
// domain (hv.stats), CPU in cores over the interval since an earlier sample, and the guest's own
// figures over its control channel. Channel requests run in parallel with a bound, are shared and
// cached briefly (a scrape and a top at once ask a guest once), and every sample is answered within
// the timeout: a guest that never answers only loses its own figures.
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import type { Clock } from '../../lib/clock.js';
import { Semaphore } from '../../lib/semaphore.js';
import type { ChannelState, GuestChannel, GuestReportedMetrics } from '../channel/index.js';
import type { DomainStats, Hypervisor } from '../runtime/hypervisor.js';
import { guestKey, type GuestStore } from '../store/guest-store.js';

export interface UsageSamplerOptions {
  clock: Clock;
  /** How long a sample waits for the guests' answers, ms. */
  metricsTimeoutMs?: number;
  /** How long a guest's answer (or its failure) is reused, ms. */
  cacheMs?: number;
  /** Channel requests in flight at once, over all guests. */
  concurrency?: number;
  /** A CPU window shorter than this keeps the previous rate instead of measuring a new one, ms. */
  minWindowMs?: number;
  /** Between the background reads of Xen's figures that keep CPU rates fresh (`start`), ms. */
  periodMs?: number;
}

interface CpuSample {
  at: number;
  cpuSeconds: number;
}

/** What the sampler keeps of one Guest: bounded, and dropped once the Guest's domain is gone. */
interface GuestState {
  domid: number;
  /** The sample the next CPU rate is measured from. */
  base: CpuSample;
  rate?: { cpuCores: number; windowSeconds: number };
  /** The guest's last answer (undefined: it failed) and when it came. */
  answer?: { at: number; metrics: GuestReportedMetrics | undefined };
  /** A request in flight: callers share it. */
  pending?: Promise<GuestReportedMetrics | undefined>;
}

/** A guest's figures are used only when every one is a finite number, not negative: a hostile guest's are dropped. */
function sane(m: GuestReportedMetrics | undefined): GuestReportedMetrics | undefined {
  if (typeof m !== 'object' || m === null) return undefined;
  const fields = [
    m.memoryTotalBytes,
    m.memoryAvailableBytes,
    m.memoryFreeBytes,
    m.load1,
    m.load5,
    m.load15,
    m.processes,
    m.runningProcesses,
    m.uptimeSeconds,
  ];
  return fields.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0) ? m : undefined;
}

interface DomainRead {
  namespace: string;
  name: string;
  domid: number;
  stats: DomainStats;
  state: GuestState;
}

export class UsageSampler {
  private readonly guests = new Map<string, GuestState>();
  private timer: { cancel(): void } | undefined;
  private readonly slots: Semaphore;
  private readonly timeoutMs: number;
  private readonly cacheMs: number;
  private readonly minWindowMs: number;

  constructor(
    private readonly store: GuestStore,
    private readonly hv: Hypervisor,
    private readonly opts: UsageSamplerOptions,
  ) {
    this.slots = new Semaphore(opts.concurrency ?? 16);
    this.timeoutMs = opts.metricsTimeoutMs ?? 1000;
    this.cacheMs = opts.cacheMs ?? 2000;
    this.minWindowMs = opts.minWindowMs ?? 1000;
  }

  /**
   * Reads Xen's figures (not the guests') every periodMs, so that a reader gets a CPU rate over at
   * most the last period, even the first reader after a while: like metrics-server's resolution.
   */
  start(): void {
    const tick = () => {
      this.readDomains(undefined, undefined);
      this.timer = this.opts.clock.setTimeout(tick, this.opts.periodMs ?? 10_000);
    };
    this.timer ??= this.opts.clock.setTimeout(tick, this.opts.periodMs ?? 10_000);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Usage of the Guests with a running domain (in `namespace`; only `name` there when given), by namespace and name. */
  async sample(namespace?: string, name?: string): Promise<GuestUsage[]> {
    const now = this.opts.clock.now();
    const read = this.readDomains(namespace, name);
    const reported = await this.withinTimeout(read.map((r) => this.guestMetrics(r.state, this.hv.channel(r.domid), now)));
    const timestamp = new Date(now).toISOString();
    return read.map((r, i): GuestUsage => {
      const channel = this.hv.channel(r.domid);
      const state = channel?.state() ?? { phase: 'closed', reason: 'the domain has no control channel (an older agent started it)' };
      const m = reported[i];
      return {
        namespace: r.namespace,
        name: r.name,
        domid: r.domid,
        timestamp,
        cpuSeconds: r.stats.cpuSeconds,
        ...(r.state.rate ?? {}),
        vcpus: { online: r.stats.vcpusOnline, max: r.stats.vcpusMax },
        memory: { domainBytes: r.stats.memoryBytes, maxBytes: r.stats.maxMemoryBytes },
        channel: channelFigures(state),
        ...(m
          ? {
              guest: {
                memoryTotalBytes: m.memoryTotalBytes,
                memoryAvailableBytes: m.memoryAvailableBytes,
                memoryUsedBytes: Math.max(0, m.memoryTotalBytes - m.memoryAvailableBytes),
                load: [m.load1, m.load5, m.load15],
                processes: m.processes,
                uptimeSeconds: m.uptimeSeconds,
              },
            }
          : {}),
      };
    });
  }

  /** Xen's figures of the Guests' running domains, with their CPU rates brought up to date, by namespace and name. */
  private readDomains(namespace: string | undefined, name: string | undefined): DomainRead[] {
    this.forgetGone();
    const now = this.opts.clock.now();
    const read: DomainRead[] = [];
    for (const g of this.store.list(namespace)) {
      const ns = g.metadata.namespace ?? 'default';
      const domid = g.status?.domid;
      if (domid === undefined || (name !== undefined && g.metadata.name !== name)) continue;
      const stats = this.domainStats(domid);
      if (!stats) continue;
      read.push({ namespace: ns, name: g.metadata.name, domid, stats, state: this.cpu(guestKey(ns, g.metadata.name), domid, now, stats) });
    }
    return read.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  }

  /** Guests the sampler still holds something of (for tests: memory stays bounded). */
  get tracked(): number {
    return this.guests.size;
  }

  /**
   * The Guest's state with its CPU rate brought up to date. A new domain starts over; a sample less
   * than minWindowMs after the base keeps the last rate, so two readers at once do not measure a
   * window of a few milliseconds.
   */
  private cpu(key: string, domid: number, now: number, stats: DomainStats): GuestState {
    const sample = { at: now, cpuSeconds: stats.cpuSeconds };
    let state = this.guests.get(key);
    if (!state || state.domid !== domid || stats.cpuSeconds < state.base.cpuSeconds) {
      state = { domid, base: sample };
      this.guests.set(key, state);
      return state;
    }
    const windowMs = now - state.base.at;
    if (windowMs >= this.minWindowMs) {
      state.rate = { cpuCores: (stats.cpuSeconds - state.base.cpuSeconds) / (windowMs / 1000), windowSeconds: windowMs / 1000 };
      state.base = sample;
    }
    return state;
  }

  /** The guest's figures: a fresh cached answer, the request in flight, or a new one; undefined when the channel is not up. */
  private guestMetrics(state: GuestState, channel: GuestChannel | undefined, now: number): Promise<GuestReportedMetrics | undefined> {
    if (!channel || channel.state().phase !== 'up') return Promise.resolve(undefined);
    if (state.answer && now - state.answer.at < this.cacheMs) return Promise.resolve(state.answer.metrics);
    if (state.pending) return state.pending;
    const pending = this.slots
      .run(() => this.ask(channel))
      .then((metrics) => {
        state.answer = { at: this.opts.clock.now(), metrics };
        return metrics;
      })
      .finally(() => {
        if (state.pending === pending) state.pending = undefined;
      });
    state.pending = pending;
    return pending;
  }

  /** One request, given up after the timeout whatever the channel does (it may never settle). */
  private ask(channel: GuestChannel): Promise<GuestReportedMetrics | undefined> {
    return new Promise((resolve) => {
      const timer = this.opts.clock.setTimeout(() => resolve(undefined), this.timeoutMs);
      const done = (m: GuestReportedMetrics | undefined) => {
        timer.cancel();
        resolve(m);
      };
      let request: Promise<GuestReportedMetrics>;
      try {
        request = channel.metrics(this.timeoutMs);
      } catch {
        return done(undefined);
      }
      request.then(
        (m) => done(sane(m)),
        () => done(undefined),
      );
    });
  }

  /** The answers that came within the timeout (queued requests included); the rest are undefined. */
  private withinTimeout<T>(requests: Promise<T | undefined>[]): Promise<(T | undefined)[]> {
    if (requests.length === 0) return Promise.resolve([]);
    const results: (T | undefined)[] = requests.map(() => undefined);
    return new Promise((resolve) => {
      let left = requests.length;
      // A copy: answers that come after the timeout must not change what the caller already has.
      const timer = this.opts.clock.setTimeout(() => resolve([...results]), this.timeoutMs);
      requests.forEach(
        (p, i) =>
          void p.then((v) => {
            results[i] = v;
            if (--left === 0) {
              timer.cancel();
              resolve([...results]);
            }
          }),
      );
    });
  }

  /** Xen's figures, or undefined when the domain is gone or they cannot be read (that Guest is left out, not the sample). */
  private domainStats(domid: number): DomainStats | undefined {
    try {
      return this.hv.stats(domid);
    } catch {
      return undefined;
    }
  }

  /** Drops what is kept of Guests whose domain is gone (deleted, stopped or replaced). */
  private forgetGone(): void {
    for (const [key, state] of this.guests) if (this.store.get(key)?.guest.status?.domid !== state.domid) this.guests.delete(key);
  }
}

/** The channel's state as usage reports it. */
function channelFigures(state: ChannelState): GuestUsage['channel'] {
  if (state.phase !== 'up') return 'reason' in state ? { phase: state.phase, reason: state.reason } : { phase: state.phase };
  return { phase: 'up', transport: state.transport, ...(state.bulkRefused ? { bulkRefused: state.bulkRefused } : {}) };
}
