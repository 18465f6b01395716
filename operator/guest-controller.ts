// The Guest controller: one idempotent, level-triggered reconcile(key) in controller-runtime's shape.
// Each pass reads the Guest from the informer's cache and the agent's latest report, then moves the
// world one step: finalizer, placement (recorded in status.node before any host hears of the Guest,
// so a crash cannot place it twice; status is the operator's: tenants cannot write it, and the API
// server drops it from creates), the host's desired record in Redis, the status the user sees, and
// Events for placement, phase changes and failures. Spec is never written.
import type { StatusReport } from '../contracts/redis/contract.js';
import { fieldOf } from '../contracts/redis/contract.js';
import { formatPath, validateObject } from '../crds/validate.js';
import type { Guest, GuestStatus, XenHost } from '../crds/generated/types.js';
import { WorkQueue, type HandlerResult } from '../lib/work-queue.js';
import { timed, type ReconcileObserver } from '../lib/reconcile-metrics.js';
import { systemClock } from '../lib/clock.js';
import { desiredRecord, type DesiredPublisher } from './desired-publisher.js';
import type { PullTokenIssuer } from './pull-tokens.js';
import { deriveStatus, statusChanged } from './guest-status.js';
import type { HostTracker } from './host-tracker.js';
import type { KubeClient } from './kube/client.js';
import { keyOf, type Informer } from './kube/informer.js';
import { hostPortsOf, portSharer } from '../crds/host-ports.js';
import { guestRequest, place } from './placement.js';
import { controllerOf } from '../workloads/guestset/controller.js';
import type { StatusReports } from './status-reports.js';
import { metaTime } from '../crds/meta.js';

export const FINALIZER = 'krata.dev/guest-cleanup';
/** Set to "true" on a Guest being deleted to drop it without waiting for its host (the host may keep a domain). */
export const FORCE_DELETE_ANNOTATION = 'krata.dev/force-delete';

export interface GuestControllerOptions {
  /** Re-place a Guest whose host has not reported for this long (0: never). */
  rescheduleAfterMs: number;
  /** Let a Guest being deleted go when its host has not reported for this long (0: never). */
  forceDeleteAfterMs: number;
  workers: number;
  /** How long a transient status (Creating) waits for the next report before it is written. */
  settleMs?: number;
  log?: (msg: string, err?: unknown) => void;
  /** Pull tokens for Guests that name imagePullSecrets (without it, records carry none). */
  pullTokens?: PullTokenIssuer;
  /** Told each reconcile's duration and error (krata_reconcile_*{controller="guest"}). */
  observe?: ReconcileObserver;
}

const finished = (s: GuestStatus | undefined) => s?.phase === 'Succeeded' || s?.phase === 'Failed';

export class GuestController {
  readonly queue: WorkQueue;
  /** Placements made by this process that the cache may not show yet: key → host and uid. */
  private readonly assigned = new Map<string, { host: string; uid: string }>();
  /** What each placed Guest holds on its host, for placement's arithmetic: key → host, request and host ports. */
  private readonly holds = new Map<string, { host: string; cpus: number; memoryMiB: number; ports: string[]; holder: string }>();
  private readonly allocation = new Map<string, { cpus: number; memoryMiB: number }>();
  /**
   * host → host port ("TCP/80") → holder → how many placed Guests publish it. A holder is a Guest, or
   * a GuestSet whose replicas share the port on a host (the node balances it over the ready ones).
   */
  private readonly portUse = new Map<string, Map<string, Map<string, number>>>();
  /** Last unschedulable reason reported per key (one FailedScheduling Event per change, not per retry). */
  private readonly unschedulable = new Map<string, string>();
  /** Since when a transient status has been waiting to be written (ms). */
  private readonly pendingSince = new Map<string, number>();

  constructor(
    private readonly kube: KubeClient,
    private readonly guests: Informer<Guest>,
    private readonly hosts: Informer<XenHost>,
    private readonly tracker: HostTracker,
    private readonly publisher: DesiredPublisher,
    private readonly reports: StatusReports,
    private readonly opts: GuestControllerOptions,
  ) {
    this.queue = new WorkQueue(
      timed((key) => this.reconcile(key), opts.observe),
      { concurrency: opts.workers, clock: systemClock, baseDelayMs: 200, maxDelayMs: 60_000 },
      (key, err, retry) => opts.log?.(`reconcile ${key} failed; retrying in ${retry} ms`, err),
    );
  }

  /**
   * The node a Guest is on: status.node (only the operator writes status), or a (re)placement this
   * process made that the cache lags behind. Never an annotation: users write those, at create time too.
   */
  nodeOf(g: Guest): string | undefined {
    const a = this.assigned.get(keyOf(g));
    if (a && a.uid === g.metadata.uid) return a.host || undefined;
    return g.status?.node || undefined;
  }

  /** Keeps the per-host allocation current; called for every Guest the cache shows and every placement. */
  track(g: Guest | undefined, key: string): void {
    const old = this.holds.get(key);
    const host = g && !finished(g.status) ? this.nodeOf(g) : undefined;
    const req = g && host ? { ...guestRequest(g), ports: hostPortsOf(g).map((p) => p.key), holder: portHolder(g, key) } : undefined;
    if (
      old &&
      host === old.host &&
      req &&
      req.cpus === old.cpus &&
      req.memoryMiB === old.memoryMiB &&
      req.ports.join() === old.ports.join() &&
      req.holder === old.holder
    )
      return;
    if (old) this.adjust(old.host, -old.cpus, -old.memoryMiB, old.ports, old.holder, -1);
    if (host && req) {
      this.holds.set(key, { host, ...req });
      this.adjust(host, req.cpus, req.memoryMiB, req.ports, req.holder, 1);
    } else this.holds.delete(key);
  }

  private adjust(host: string, cpus: number, memoryMiB: number, ports: string[], holder: string, sign: 1 | -1): void {
    const a = this.allocation.get(host) ?? { cpus: 0, memoryMiB: 0 };
    a.cpus += cpus;
    a.memoryMiB += memoryMiB;
    this.allocation.set(host, a);
    const use = this.portUse.get(host) ?? new Map<string, Map<string, number>>();
    for (const p of ports) {
      const holders = use.get(p) ?? new Map<string, number>();
      const n = (holders.get(holder) ?? 0) + sign;
      if (n > 0) holders.set(holder, n);
      else holders.delete(holder);
      if (holders.size) use.set(p, holders);
      else use.delete(p);
    }
    this.portUse.set(host, use);
  }

  /** Where the other Guests of `g`'s GuestSet (same controller uid) are placed: how many on each host. */
  private siblingsByHost(g: Guest): Map<string, number> {
    const owner = controllerOf(g);
    const count = new Map<string, number>();
    if (owner?.kind !== 'GuestSet') return count;
    for (const other of this.guests.list()) {
      if (other.metadata.uid === g.metadata.uid || controllerOf(other)?.uid !== owner.uid || finished(other.status)) continue;
      const host = this.nodeOf(other);
      if (host) count.set(host, (count.get(host) ?? 0) + 1);
    }
    return count;
  }

  /**
   * Host ports that Guests placed on `host` publish (the NodePorts filter of Kubernetes' scheduler),
   * except those only `g`'s own GuestSet holds there: its replicas share them.
   */
  usedPorts(host: string, g?: Guest): ReadonlySet<string> {
    const mine = g ? portHolder(g, keyOf(g)) : undefined;
    const used = new Set<string>();
    for (const [port, holders] of this.portUse.get(host) ?? []) if ([...holders.keys()].some((h) => h !== mine)) used.add(port);
    return used;
  }

  allocated(host: string): { cpus: number; memoryMiB: number } {
    return this.allocation.get(host) ?? { cpus: 0, memoryMiB: 0 };
  }

  /** Every placed Guest's record, by host: what Redis should hold (for a republish). */
  desiredState(): Map<string, Map<string, ReturnType<typeof desiredRecord>>> {
    const want = new Map<string, Map<string, ReturnType<typeof desiredRecord>>>();
    for (const g of this.guests.list()) {
      const host = this.nodeOf(g);
      if (!host || !g.metadata.finalizers?.includes(FINALIZER)) continue;
      if (!want.has(host)) want.set(host, new Map());
      want.get(host)!.set(keyOf(g), desiredRecord(g, this.opts.pullTokens?.cached(g)));
    }
    return want;
  }

  /** Guests on `host` (to react to its readiness) and Guests waiting for placement (a host may fit now). */
  enqueueForHost(host: string): void {
    for (const g of this.guests.list()) {
      const node = this.nodeOf(g);
      if (node === host || !node) this.queue.add(keyOf(g));
    }
  }

  async reconcile(key: string): Promise<HandlerResult> {
    const g = this.guests.get(key);
    if (!g) return this.forgetGone(key);
    this.track(g, key);
    const uid = g.metadata.uid!;
    const [namespace, name] = [g.metadata.namespace ?? 'default', g.metadata.name];
    const a = this.assigned.get(key);
    if (a && (a.uid !== uid || (g.status?.node ?? '') === a.host)) this.assigned.delete(key);
    let node = this.nodeOf(g);

    // The API server checks the schema; what it cannot (no CEL in 1.20: memory ≤ maxMemory, ...) is
    // checked here with the validator kratactl and the agents use. Such a Guest is never placed.
    const invalid = validateObject(g).errors;
    if (invalid.length) return this.refuse(g, key, node, invalid.map((e) => `${formatPath(e.path)}: ${e.message}`).join('; '));

    if (g.metadata.deletionTimestamp) return this.finalize(g, key, node);

    // Re-placement off a host that is gone or has stopped reporting for too long.
    if (node && !g.spec.nodeName && !finished(g.status)) {
      const hostGone = !this.hosts.get(node);
      const silent = this.opts.rescheduleAfterMs > 0 && this.tracker.notReadyForMs(node) >= this.opts.rescheduleAfterMs;
      if (hostGone || silent) {
        const why = hostGone
          ? `XenHost ${node} was deleted`
          : `${node} has not reported for ${Math.round(this.tracker.notReadyForMs(node) / 1000)} s`;
        await this.publisher.set(node, namespace, name, undefined, uid);
        await this.reports.forget(node, key);
        void this.kube.createEvent(this.event(g, 'Warning', 'Rescheduling', `${why}; placing the guest again`));
        node = undefined;
        this.assigned.set(key, { host: '', uid });
        this.track(g, key);
      }
    }
    let unschedulable: { reason: string; message: string } | undefined;
    let placed = false;
    if (!node) {
      const p = place(
        g,
        this.tracker.views(
          (h) => this.allocated(h),
          (h) => this.usedPorts(h, g),
        ),
        this.siblingsByHost(g),
      );
      if ('host' in p) {
        node = p.host;
        placed = true;
        // Counted at once (no await since place()): a Guest placed by another worker meanwhile sees
        // this one's memory, vCPUs and host ports. Undone below if the placement cannot be recorded.
        this.assigned.set(key, { host: node, uid });
        this.unschedulable.delete(key);
        this.track(g, key);
      } else {
        unschedulable = { reason: p.reason, message: p.message };
        const said = `${p.reason}:${p.message}`;
        if (this.unschedulable.get(key) !== said) {
          this.unschedulable.set(key, said);
          void this.kube.createEvent(this.event(g, 'Warning', 'FailedScheduling', p.message));
        }
      }
    }

    // The finalizer first, then the placement in status.node: both are durable before any host hears of
    // the Guest, so a crash between steps cannot place it twice. The status write is preconditioned on
    // the resourceVersion placement saw, so a placement made from a stale cache fails (and is retried).
    let cur = g;
    try {
      if (!g.metadata.finalizers?.includes(FINALIZER)) {
        cur = await this.kube.patchGuestMetadata(
          namespace,
          name,
          { finalizers: [...(g.metadata.finalizers ?? []), FINALIZER] },
          g.metadata.resourceVersion!,
        );
      }
      // (Not when this process recorded it already and the cache has yet to show it.)
      const recorded = !placed && this.assigned.get(key)?.host === node;
      if (node && cur.status?.node !== node && !recorded) {
        const next = deriveStatus({
          guest: cur,
          node,
          report: this.reports.from(node, key),
          hostReady: this.tracker.ready(node),
          now: metaTime(Date.now()),
        });
        cur = await this.kube.applyGuestStatus(namespace, name, next, { uid, resourceVersion: cur.metadata.resourceVersion! });
        this.pendingSince.delete(key);
      }
    } catch (e) {
      if (placed) {
        this.assigned.delete(key);
        this.track(g, key);
      }
      throw e;
    }
    // No Event for a placement: status.node and Scheduled=True say it, and the Started (or failure)
    // Event names the host; at 10,000 Guests an Event each is a fifth of all API writes.
    // A Guest that may still pull (not finished) carries fresh pull tokens; renewing one requeues it.
    const pull = node && !finished(g.status) ? await this.opts.pullTokens?.forGuest(g) : undefined;
    if (node) await this.publisher.set(node, namespace, name, desiredRecord(g, pull?.auth), uid);

    const report = node ? this.reports.from(node, key) : undefined;
    const next = deriveStatus({
      guest: cur,
      node,
      unschedulable,
      report,
      hostReady: node ? this.tracker.ready(node) : false,
      now: metaTime(Date.now()),
    });
    let requeue: number | undefined = unschedulable ? 30_000 : pull?.renewInMs;
    // A silent host sends no events: come back when re-placement is due.
    if (node && !this.tracker.ready(node) && this.opts.rescheduleAfterMs > 0)
      requeue = Math.max(1000, this.opts.rescheduleAfterMs - this.tracker.notReadyForMs(node) + 1000);
    if (statusChanged(cur.status, next)) {
      // A transient status (waiting for the agent, Creating) is written only if it lasts: a report that
      // follows soon replaces it, and a Guest that starts at once costs one status write, not three.
      const transient =
        (next.phase === 'Pending' && !unschedulable && next.conditions?.some((c) => c.type === 'Ready' && c.reason === 'WaitingForHost')) ||
        next.phase === 'Creating';
      const now = Date.now();
      const since = this.pendingSince.get(key) ?? now;
      this.pendingSince.set(key, since);
      const settle = this.opts.settleMs ?? 2000;
      if (transient && now - since < settle) requeue = settle - (now - since);
      else {
        await this.writeStatus(cur, next);
        this.pendingSince.delete(key);
      }
    } else this.pendingSince.delete(key);
    return requeue === undefined ? undefined : { requeueAfterMs: requeue };
  }

  /** An invalid spec: Stalled with the reasons, nothing placed; deleting it needs no host unless one holds it. */
  private async refuse(g: Guest, key: string, node: string | undefined, message: string): Promise<HandlerResult> {
    const [namespace, name] = [g.metadata.namespace ?? 'default', g.metadata.name];
    const published = node !== undefined && this.publisher.published(node, fieldOf(namespace, name)) !== undefined;
    if (g.metadata.deletionTimestamp) {
      // Its host skips the invalid record (it keeps running the last valid one); removing the record is
      // what makes it stop that, once it reads the hash.
      if (published) {
        await this.publisher.set(node!, namespace, name, undefined, g.metadata.uid!);
        await this.reports.forget(node!, key);
      }
      if (g.metadata.finalizers?.includes(FINALIZER))
        await this.kube.setGuestFinalizers(
          namespace,
          name,
          g.metadata.finalizers.filter((f) => f !== FINALIZER),
          g.metadata.resourceVersion!,
        );
      return;
    }
    const generation = g.metadata.generation ?? 1;
    const now = metaTime(Date.now());
    const keep = (type: string, status: string) =>
      g.status?.conditions?.find((c) => c.type === type && c.status === status)?.lastTransitionTime ?? now;
    const next: GuestStatus = {
      phase: 'Pending',
      observedGeneration: generation,
      // A placed Guest keeps its placement: status.node is where it is recorded.
      ...(node ? { node } : {}),
      reason: 'InvalidSpec',
      message,
      conditions: [
        {
          type: 'Ready',
          status: 'False',
          observedGeneration: generation,
          lastTransitionTime: keep('Ready', 'False'),
          reason: 'InvalidSpec',
          message,
        },
        {
          type: 'Stalled',
          status: 'True',
          observedGeneration: generation,
          lastTransitionTime: keep('Stalled', 'True'),
          reason: 'InvalidSpec',
          message,
        },
      ],
    };
    if (statusChanged(g.status, next)) await this.writeStatus(g, next);
    return;
  }

  private async writeStatus(g: Guest, next: GuestStatus): Promise<void> {
    const [namespace, name] = [g.metadata.namespace ?? 'default', g.metadata.name];
    await this.kube.applyGuestStatus(namespace, name, next, { uid: g.metadata.uid! });
    const before = g.status?.phase;
    const warn =
      next.reason &&
      next.reason !== g.status?.reason &&
      ['Pending', 'Failed', 'Unknown'].includes(next.phase ?? '') &&
      next.reason !== 'WaitingForHost';
    if (before !== next.phase || warn) {
      const e = phaseEvent(next);
      if (e) void this.kube.createEvent(this.event(g, e.type, e.reason, e.message));
    }
    for (const e of probeEvents(g.status, next)) void this.kube.createEvent(this.event(g, e.type, e.reason, e.message));
  }

  /** Deletion: the host tears the Guest down and reports it gone; then the finalizer goes. */
  private async finalize(g: Guest, key: string, node: string | undefined): Promise<HandlerResult> {
    if (!g.metadata.finalizers?.includes(FINALIZER)) return;
    const [namespace, name] = [g.metadata.namespace ?? 'default', g.metadata.name];
    const uid = g.metadata.uid!;
    if (node) {
      const report: StatusReport | undefined = this.reports.from(node, key);
      const gone = report?.uid === uid && report.status === null;
      const hostGone = !this.hosts.get(node);
      const silentMs = this.tracker.notReadyForMs(node);
      const forced = g.metadata.annotations?.[FORCE_DELETE_ANNOTATION] === 'true';
      const timedOut = this.opts.forceDeleteAfterMs > 0 && silentMs >= this.opts.forceDeleteAfterMs;
      if (!gone && !hostGone && !forced && !timedOut) {
        await this.publisher.set(node, namespace, name, desiredRecord(g), uid);
        const next = deriveStatus({ guest: g, node, report, hostReady: this.tracker.ready(node), now: metaTime(Date.now()) });
        if (report?.uid === uid && report.status && statusChanged(g.status, next)) await this.writeStatus(g, next);
        // Rechecked for the force-delete timeout; a report ends the wait sooner.
        return { requeueAfterMs: 15_000 };
      }
      if (!gone) {
        const why = hostGone
          ? `XenHost ${node} no longer exists`
          : forced
            ? `annotation ${FORCE_DELETE_ANNOTATION}`
            : `${node} has not reported for ${Math.round(silentMs / 1000)} s`;
        void this.kube.createEvent(
          this.event(
            g,
            'Warning',
            'ForceDeleted',
            `${why}: removed without confirmation from the host; if ${node} comes back, its agent removes the domain`,
          ),
        );
      }
      await this.publisher.set(node, namespace, name, undefined, uid);
      await this.reports.forget(node, key);
    }
    await this.kube.setGuestFinalizers(
      namespace,
      name,
      (g.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
      g.metadata.resourceVersion!,
    );
    return;
  }

  /** The object is gone (deleted, or its finalizer removed by hand): its host must forget it too. */
  private async forgetGone(key: string): Promise<HandlerResult> {
    this.track(undefined, key);
    this.assigned.delete(key);
    this.unschedulable.delete(key);
    this.pendingSince.delete(key);
    const [namespace, name] = key.split('/') as [string, string];
    for (const host of this.publisher.hosts()) {
      const json = this.publisher.published(host, fieldOf(namespace, name));
      if (json === undefined) continue;
      const uid = (JSON.parse(json) as { uid: string }).uid;
      await this.publisher.set(host, namespace, name, undefined, uid);
      await this.reports.forget(host, key);
    }
    // Reports from hosts that no longer hold a record (a host back after a forced deletion).
    for (const { host } of this.reports.get(key)) await this.reports.forget(host, key);
    return;
  }

  private event(g: Guest, type: 'Normal' | 'Warning', reason: string, message: string) {
    return {
      namespace: g.metadata.namespace ?? 'default',
      involved: {
        kind: 'Guest',
        apiVersion: g.apiVersion,
        namespace: g.metadata.namespace ?? 'default',
        name: g.metadata.name,
        uid: g.metadata.uid!,
        resourceVersion: g.metadata.resourceVersion,
      },
      type,
      reason,
      message,
    };
  }
}

/** The Event a status change deserves, like the kubelet's (Started, Killing, BackOff, Failed ...). */
export function phaseEvent(s: GuestStatus): { type: 'Normal' | 'Warning'; reason: string; message: string } | undefined {
  const msg = s.message ? `: ${s.message}` : '';
  switch (s.phase) {
    case 'Running':
      return { type: 'Normal', reason: 'Started', message: `running on ${s.node}${s.domid !== undefined ? ` as domain ${s.domid}` : ''}` };
    case 'Creating':
      return { type: 'Normal', reason: 'Creating', message: `preparing the image, network and domain on ${s.node}` };
    case 'Succeeded':
      return { type: 'Normal', reason: 'Completed', message: `the process exited with status ${s.exitCode ?? 0}` };
    case 'Failed':
      return { type: 'Warning', reason: s.reason ?? 'Failed', message: `the guest failed${msg}` };
    case 'Terminating':
      return { type: 'Normal', reason: 'Killing', message: `stopping the guest on ${s.node}` };
    case 'Unknown':
      return { type: 'Warning', reason: 'NodeNotReady', message: `the node agent on ${s.node} is not reporting` };
    case 'Pending':
      return s.reason && s.reason !== 'Pending' && s.reason !== 'WaitingForHost'
        ? { type: 'Warning', reason: s.reason, message: s.message ?? s.reason }
        : undefined;
    default:
      return undefined;
  }
}

const PROBE_KINDS = [
  ['startup', 'Startup'],
  ['readiness', 'Readiness'],
  ['liveness', 'Liveness'],
] as const;

/**
 * The kubelet's probe Events, from what the agent's status says of its probes: Unhealthy when a probe
 * is failing anew (or fails again, or says something new), Killing (with the failure as Unhealthy)
 * when a liveness or startup probe stopped a domain since the last status.
 */
export function probeEvents(
  before: GuestStatus | undefined,
  next: GuestStatus,
): { type: 'Normal' | 'Warning'; reason: string; message: string }[] {
  const out: { type: 'Normal' | 'Warning'; reason: string; message: string }[] = [];
  for (const [field, label] of PROBE_KINDS) {
    const a = before?.probes?.[field];
    const b = next.probes?.[field];
    if (b?.result !== 'Failure' || b.lastProbeTime === undefined) continue;
    if (a?.result === 'Failure' && a.message === b.message && (b.consecutiveFailures ?? 0) <= (a.consecutiveFailures ?? 0)) continue;
    out.push({ type: 'Warning', reason: 'Unhealthy', message: `${label} probe failed: ${b.message ?? 'failed'}` });
  }
  const kill = next.probes?.lastKill;
  if (kill && kill.time !== before?.probes?.lastKill?.time) {
    const then = next.phase === 'Failed' ? 'will not be restarted' : 'will be restarted';
    const text = kill.message ?? `${kill.probe.toLowerCase()} probe failed`;
    out.push({ type: 'Warning', reason: 'Unhealthy', message: text.charAt(0).toUpperCase() + text.slice(1) });
    out.push({
      type: 'Normal',
      reason: 'Killing',
      message: `domain ${kill.domid ?? '?'} failed ${kill.probe.toLowerCase()} probe, ${then}`,
    });
  }
  return out;
}

/** Who holds a Guest's host ports on its host: its GuestSet (replicas share them) or the Guest itself. */
function portHolder(g: Guest, key: string): string {
  const sharer = portSharer(g);
  return sharer ? `set:${sharer}` : `guest:${key}`;
}
