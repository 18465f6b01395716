// The decisions, in controller-runtime's mould: one idempotent, level-triggered `reconcile(key)` that
// compares a Guest's desired state (the store) with what runs (the domain list, which xenstore backs)
// and takes one step towards the desired state, recording what it did in status. It knows nothing of
// queues, events or timers (controller/ runs it); the steps live beside it: create.ts, delete.ts,
// observe.ts.
import { domainGuestKey } from './identity.js';
import type { Clock } from '../../lib/clock.js';
import type { HandlerResult } from '../../lib/work-queue.js';
import type { DomainInfo } from '../runtime/hypervisor.js';
import type { GuestRecord, GuestStore } from '../store/guest-store.js';
import type { CreateStep } from './create.js';
import type { DeleteStep } from './delete.js';
import type { EventRecorder } from './events.js';
import type { HostPortGuard } from './host-ports.js';
import type { SpecHashes } from './identity.js';
import type { ObservedDomains } from './observed-domains.js';
import type { ObserveStep } from './observe.js';
import { LaunchPhases } from './launch-phases.js';
import type { PhaseTimer } from '../../lib/phase-timer.js';
import { NO_PROBES, type GuestProber } from './probes.js';
import type { ResizeStep } from './resize.js';
import { clearResources, isStalled, Stalled, WaitFor, type StatusWriter } from './status.js';

/** What a controller runs: controller-runtime's Reconciler interface. */
export interface Reconciler {
  /** One step for the Guest `key` ("<namespace>/<name>"); a throw is retried with back-off. */
  reconcile(key: string): Promise<HandlerResult>;
}

/** How soon a Guest whose domain was just created is looked at again (running, probes, resources). */
export const CREATED_OBSERVE_MS = 100;

/** How soon a Guest waiting for a host port another Guest holds looks again. */
export const PORT_RETRY_MS = 5_000;

export class GuestReconciler implements Reconciler {
  constructor(
    private readonly store: GuestStore,
    private readonly domains: ObservedDomains,
    private readonly hashes: SpecHashes,
    private readonly ports: HostPortGuard,
    private readonly creator: CreateStep,
    private readonly deleter: DeleteStep,
    private readonly observer: ObserveStep,
    private readonly resizer: ResizeStep,
    private readonly status: StatusWriter,
    private readonly recorder: EventRecorder,
    private readonly clock: Clock,
    private readonly probes: GuestProber = NO_PROBES,
    /** Times the reconciles that start a domain (only those report). */
    private readonly launches: LaunchPhases = new LaunchPhases(),
  ) {}

  async reconcile(key: string): Promise<HandlerResult> {
    const timer = this.launches.begin(key);
    const rec = this.store.get(key);
    const domains = (await this.domains.list()).filter((d) => domainGuestKey(d) === key);
    timer.mark('domain list');
    // Probes run only while observe() sees the Guest's domain running; every other path ends them.
    if (!rec || rec.guest.metadata.deletionTimestamp) this.probes.stop(key);
    if (!rec) return this.deleter.removeOrphans(key, domains);
    if (rec.guest.metadata.deletionTimestamp) return this.deleter.finalize(key, rec, domains);
    const hash = this.hashes.of(rec.guest);
    const uid = rec.guest.metadata.uid!;
    for (const d of domains) {
      if (d.guest.uid === uid && d.guest.specHash === hash) continue;
      const why = d.guest.uid !== uid ? 'it belongs to an earlier Guest of this name' : 'the spec changed';
      this.probes.stop(key);
      this.recorder.normal(key, 'Killing', `stopping domain ${d.domid}: ${why}`);
      this.status.set(key, (s) => {
        s.phase = 'Creating';
        if (s.domid === d.domid) {
          delete s.domid;
          clearResources(s);
        }
        s.reason = d.guest.uid !== uid ? 'Replaced' : 'SpecChanged';
        s.message = `recreating the domain: ${why}`;
        this.status.condition(rec, s, 'Ready', 'False', s.reason, s.message);
      });
      await this.deleter.shutdown(d.domid, rec.guest.spec.terminationGracePeriodSeconds * 1000);
    }
    let current = domains.filter((d) => d.guest.uid === uid && d.guest.specHash === hash);
    // A paused domain is a build an earlier agent did not finish (krata never pauses guests).
    for (const d of current.filter((x) => x.state === 'paused')) {
      this.recorder.warning(key, 'IncompleteDomain', `destroying domain ${d.domid}: left paused by an interrupted create`);
      await this.deleter.destroy(d.domid);
    }
    current = current.filter((d) => d.state !== 'paused');
    // One domain per Guest: keep the one status names (else the newest), destroy the rest.
    if (current.length > 1) {
      const newest = current.reduce((a, b) => (b.createdAt > a.createdAt ? b : a));
      const keep = current.find((d) => d.domid === rec.guest.status?.domid) ?? newest;
      for (const d of current.filter((x) => x !== keep)) {
        this.recorder.warning(key, 'DuplicateDomain', `destroying domain ${d.domid}: domain ${keep.domid} already runs this Guest`);
        await this.deleter.destroy(d.domid);
      }
      current = [keep];
    }
    const dom: DomainInfo | undefined = current[0];
    if (dom && dom.state !== 'shutdown' && dom.state !== 'crashed' && !dom.exit) {
      const observed = await this.observer.running(key, rec, dom);
      // A domain its probes just had killed is not resized.
      if (this.store.get(key)?.guest.status?.domid !== dom.domid) return observed;
      return sooner(observed, await this.resizer.reconcile(key, dom));
    }
    this.probes.stop(key);
    if (dom) return this.observer.exited(key, rec, dom);
    // Status says a domain runs, but none does: it was destroyed behind krata's back, or the host
    // rebooted. That is the process ending without a report; the restart policy decides.
    const latest = this.store.get(key) ?? rec;
    const st = latest.guest.status;
    if (st?.phase === 'Running' && st.domid !== undefined) {
      const createdAt = Date.parse(st.startTime ?? '') || this.clock.now();
      return this.observer.exited(key, latest, { domid: st.domid, createdAt, lost: true });
    }
    return this.startIfDue(key, latest, timer);
  }

  /** No domain: start one unless the Guest ended for good, is Stalled, backs off, or waits for a port. */
  private async startIfDue(key: string, rec: GuestRecord, timer: PhaseTimer): Promise<HandlerResult> {
    const { status } = this;
    const s = rec.guest.status ?? {};
    const gen = rec.guest.metadata.generation ?? 1;
    // A process that ended for good stays ended, until the spec changes.
    if ((s.phase === 'Succeeded' || s.phase === 'Failed') && s.observedGeneration === gen) return;
    if (s.reason && isStalled(rec) && s.observedGeneration === gen) return;
    const wait = (rec.internal.notBefore ?? 0) - this.clock.now();
    if (wait > 0) return { requeueAfterMs: wait };
    const ports = this.ports.claim(key, rec.guest);
    if ('reason' in ports && ports.reason === 'HostPortConflict') {
      this.recorder.warning(key, ports.reason, ports.message);
      status.set(key, (st) => {
        st.phase = 'Pending';
        st.reason = ports.reason;
        st.message = ports.message;
        status.condition(rec, st, 'Ready', 'False', ports.reason, ports.message);
        status.condition(rec, st, 'Reconciling', 'True', ports.reason, ports.message);
      });
      return { requeueAfterMs: PORT_RETRY_MS };
    }
    try {
      if ('reason' in ports) throw new Stalled(ports.reason, ports.message);
      const domid = await this.creator.create(key, rec, timer);
      if (domid !== undefined) this.launches.finish(key, timer, domid);
      else this.launches.park(key, timer);
    } catch (e) {
      if (e instanceof WaitFor) return { requeueAfterMs: e.afterMs };
      if (e instanceof Stalled) {
        this.recorder.warning(key, e.reason, e.message);
        status.set(key, (st) => {
          st.phase = 'Failed';
          st.reason = e.reason;
          st.message = e.message;
          status.condition(rec, st, 'Stalled', 'True', e.reason, e.message);
          status.condition(rec, st, 'Reconciling', 'False', e.reason, e.message);
          status.condition(rec, st, 'Ready', 'False', e.reason, e.message);
        });
        return;
      }
      throw e;
    } finally {
      if ('release' in ports) ports.release();
    }
    // The new domain is observed at once: its probes start and status.resources records its targets.
    return { requeueAfterMs: CREATED_OBSERVE_MS };
  }
}

/** The earlier of two requeues (none when neither asks). */
function sooner(a: HandlerResult, b: HandlerResult): HandlerResult {
  const ms = [a?.requeueAfterMs, b?.requeueAfterMs].filter((x): x is number => x !== undefined);
  return ms.length ? { requeueAfterMs: Math.min(...ms) } : undefined;
}
