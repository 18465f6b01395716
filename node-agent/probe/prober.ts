// The node's prober: for each Guest with a running domain, one ProbeWorker per probe its spec names,
// as the kubelet's probe manager keeps them per container. The startup probe runs first (and stops
// once it succeeds); readiness and liveness start only then. The reconcile step reads the verdict
// (reconcile/probes.ts's GuestProber) and is queued whenever a result moves (onChange); a new domain,
// a changed probe or stop() replaces or ends the workers, so nothing runs for a domain that is gone.
import type { Guest, GuestSpec, Probe } from '../../crds/generated/types.js';
import type { Clock } from '../../lib/clock.js';
import type { GuestChannel } from '../channel/types.js';
import type { GuestDialer } from '../net/guest-dialer.js';
import { execHandler, httpGetHandler, tcpSocketHandler, type ProbeHandler } from './handlers.js';
import { ProbeWorker, type ProbeKind, type ProbeResult } from './worker.js';

/** Where probe Events go (the agent's EventRecorder). */
export interface ProbeEvents {
  warning(key: string, reason: string, message: string): void;
}

export interface ProberDeps {
  channel(domid: number): GuestChannel | undefined;
  /** Reaches guest ports for tcpSocket and httpGet; without one those probes fail saying so. */
  dialer?: GuestDialer;
  clock: Clock;
  events: ProbeEvents;
  /** Each attempt's duration (benchmark, metrics). */
  timed?: (kind: ProbeKind, ms: number) => void;
}

/** What the reconcile step reads (structurally reconcile/probes.ts's ProbeVerdict). */
export interface Verdict {
  started: boolean;
  ready: boolean;
  reason?: string;
  message?: string;
  coming?: boolean;
  kill?: { probe: 'Liveness' | 'Startup'; message: string };
  status?: {
    startup?: ReturnType<ProbeWorker['status']>;
    readiness?: ReturnType<ProbeWorker['status']>;
    liveness?: ReturnType<ProbeWorker['status']>;
  };
}

const FIELDS = { Startup: 'startupProbe', Readiness: 'readinessProbe', Liveness: 'livenessProbe' } as const;
const KINDS: ProbeKind[] = ['Startup', 'Readiness', 'Liveness'];

/** The probes of one Guest's one domain. */
class DomainProbes {
  readonly workers = new Map<ProbeKind, { worker: ProbeWorker; spec: string }>();
  started: boolean;
  /** Ready at least once: a later failure is the application failing, not the domain coming up. */
  wasReady = false;
  /** The startup probe's last word, kept once its worker has stopped. */
  startup?: NonNullable<Verdict['status']>['startup'];
  kill?: Verdict['kill'];

  constructor(
    readonly domid: number,
    readonly createdAt: number,
    /** Seeded from status after an agent restart: a domain that had started need not start again. */
    started: boolean,
  ) {
    this.started = started;
  }

  stop(): void {
    for (const { worker } of this.workers.values()) worker.stop();
    this.workers.clear();
  }
}

export class Prober {
  private readonly guests = new Map<string, DomainProbes>();
  private readonly listeners = new Set<(key: string) => void>();

  constructor(private readonly deps: ProberDeps) {}

  /** Calls `cb` with the Guest's key whenever one of its results moves; returns the unsubscribe. */
  onChange(cb: (key: string) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  observe(key: string, guest: Guest, dom: { domid: number; createdAt: number }): Verdict {
    let d = this.guests.get(key);
    if (d && d.domid !== dom.domid) {
      d.stop();
      d = undefined;
    }
    if (!d) {
      const st = guest.status;
      // After an agent restart: a domain whose startup probe succeeded does not start again.
      d = new DomainProbes(dom.domid, dom.createdAt, st?.domid === dom.domid && st.probes?.startup?.result === 'Success');
      this.guests.set(key, d);
    }
    this.sync(key, guest, d);
    const v = this.verdict(guest.spec, d);
    if (v.ready) d.wasReady = true;
    else if (!d.wasReady && !v.kill) v.coming = true;
    return v;
  }

  stop(key: string): void {
    this.guests.get(key)?.stop();
    this.guests.delete(key);
  }

  /** Every worker ends (the agent stops). */
  stopAll(): void {
    for (const key of [...this.guests.keys()]) this.stop(key);
  }

  /** Guests being probed now. */
  get size(): number {
    return this.guests.size;
  }

  /** Workers match the spec: a probe added, removed or changed gets a new worker; the others keep their counts. */
  private sync(key: string, guest: Guest, d: DomainProbes): void {
    if (d.kill) return; // the domain is being stopped: nothing more to ask it
    const spec = guest.spec;
    if (!spec.startupProbe) d.started = true;
    for (const kind of KINDS) {
      const probe = spec[FIELDS[kind]];
      const wanted = probe && (kind === 'Startup' ? !d.started : d.started) ? probe : undefined;
      const have = d.workers.get(kind);
      const json = wanted ? JSON.stringify([wanted, wanted.tcpSocket || wanted.httpGet ? spec.network.ports : null]) : '';
      if (have && have.spec === json) continue;
      if (have && kind === 'Startup') d.startup = have.worker.status();
      have?.worker.stop();
      d.workers.delete(kind);
      if (!wanted) continue;
      const worker = this.worker(key, guest, d, kind, wanted);
      d.workers.set(kind, { worker, spec: json });
      worker.start(d.createdAt);
    }
  }

  private worker(key: string, guest: Guest, d: DomainProbes, kind: ProbeKind, probe: Probe): ProbeWorker {
    const initial: ProbeResult = kind === 'Readiness' ? 'Failure' : 'Unknown';
    const handler = this.handler(key, guest, d.domid, probe);
    const worker: ProbeWorker = new ProbeWorker(
      kind,
      probe,
      handler,
      this.deps.clock,
      {
        failed: (message) => this.deps.events.warning(key, 'Unhealthy', `${kind} probe failed: ${message}`),
        changed: (result) => {
          if (this.guests.get(key) !== d) return;
          if (kind === 'Startup' && result === 'Success') {
            d.started = true;
            worker.stop(); // the startup probe has done its job; readiness and liveness start on the next observe
          }
          if (kind !== 'Readiness' && result === 'Failure') {
            const msg = worker.status().message ?? 'failed';
            d.kill = { probe: kind, message: `${kind.toLowerCase()} probe failed ${probe.failureThreshold} times in a row: ${msg}` };
            d.stop();
          }
          this.changed(key);
        },
        ...(this.deps.timed ? { timed: (ms: number) => this.deps.timed!(kind, ms) } : {}),
      },
      initial,
    );
    return worker;
  }

  private handler(key: string, guest: Guest, domid: number, probe: Probe): ProbeHandler {
    const { dialer } = this.deps;
    if (probe.exec) return execHandler(() => this.deps.channel(domid), probe.exec.command);
    const port = (p: number | string) => resolvePort(guest.spec, p);
    if (probe.tcpSocket) return tcpSocketHandler(dialer, key, port(probe.tcpSocket.port));
    if (probe.httpGet) {
      const host = () => guest.status?.addresses?.ipv4 ?? guest.spec.hostname ?? guest.metadata.name;
      return httpGetHandler(dialer, key, port(probe.httpGet.port), probe.httpGet, host);
    }
    return async () => ({ ok: false, message: 'the probe names no handler' });
  }

  private verdict(spec: GuestSpec, d: DomainProbes): Verdict {
    const status: NonNullable<Verdict['status']> = {};
    for (const kind of KINDS) {
      const w = d.workers.get(kind)?.worker;
      const field = kind.toLowerCase() as 'startup' | 'readiness' | 'liveness';
      if (w) status[field] = w.status();
      else if (kind === 'Startup' && spec.startupProbe && d.started)
        status.startup = d.startup ?? { result: 'Success', consecutiveSuccesses: 1, consecutiveFailures: 0 };
    }
    const has = spec.startupProbe || spec.readinessProbe || spec.livenessProbe;
    const v: Verdict = { started: d.started, ready: false, ...(has ? { status } : {}) };
    if (d.kill) return { ...v, kill: d.kill, reason: `${d.kill.probe}ProbeFailed`, message: d.kill.message };
    if (!d.started) return { ...v, reason: 'ProbesPending', message: 'the startup probe has not succeeded yet' };
    const readiness = d.workers.get('Readiness')?.worker;
    if (!readiness) return { ...v, ready: true };
    const r = readiness.status();
    if (r.result === 'Success') return { ...v, ready: true };
    if (r.lastProbeTime === undefined) return { ...v, reason: 'ProbesPending', message: 'the readiness probe has not run yet' };
    return { ...v, reason: 'ReadinessProbeFailed', message: `readiness probe failed: ${r.message ?? 'not passing yet'}` };
  }

  private changed(key: string): void {
    for (const cb of [...this.listeners]) cb(key);
  }
}

/** A probe's port: a number, or the containerPort of the spec.network.ports entry of that name (semantics.ts checked it exists). */
export function resolvePort(spec: GuestSpec, port: number | string): number {
  if (typeof port === 'number') return port;
  return spec.network.ports?.find((p) => p.name === port && p.protocol === 'TCP')?.containerPort ?? 0;
}
