// What a Guest's one domain says about it: a running domain is status Running (and, once it has run
// long enough, forgives earlier crashes), Ready as its probes say; an ended one, or one a liveness or
// startup probe stops, is judged by the restart policy: restarted after a CrashLoopBackOff delay, or
// Succeeded / Failed for good. The exit is on record before the domain goes.
import type { GuestProbes } from '../../crds/generated/types.js';
import { metaTime } from '../../crds/meta.js';
import type { Clock } from '../../lib/clock.js';
import type { HandlerResult } from '../../lib/work-queue.js';
import type { DomainInfo } from '../runtime/hypervisor.js';
import type { GuestRecord, GuestStore } from '../store/guest-store.js';
import type { DeleteStep } from './delete.js';
import type { EventRecorder } from './events.js';
import type { Ipam } from './ipam.js';
import { NO_PROBES, type GuestProber, type ProbeVerdict } from './probes.js';
import { clearResources, statusAddresses, type StatusWriter } from './status.js';

const RESTART_BASE_MS = 10_000;
const RESTART_MAX_MS = 300_000;
const RESTART_RESET_MS = 600_000;

/**
 * An ended domain as the exit step sees it; `lost`: status named it but it is gone; `killed`: a probe
 * failed and the domain is to be shut down within its grace period (a failure whatever it exits with).
 */
export type EndedDomain = Pick<DomainInfo, 'domid' | 'createdAt' | 'exit'> & {
  lost?: boolean;
  killed?: NonNullable<ProbeVerdict['kill']>;
};

export class ObserveStep {
  constructor(
    private readonly store: GuestStore,
    private readonly ipam: Ipam,
    private readonly teardown: Pick<DeleteStep, 'destroy' | 'shutdown'>,
    private readonly status: StatusWriter,
    private readonly recorder: EventRecorder,
    private readonly clock: Clock,
    private readonly nodeName: string,
    private readonly probes: GuestProber = NO_PROBES,
  ) {}

  running(key: string, rec: GuestRecord, dom: DomainInfo): HandlerResult | Promise<HandlerResult> {
    const { status } = this;
    const res = this.ipam.get(key);
    const probed = this.probes.observe(key, rec.guest, dom);
    if (probed.kill) return this.kill(key, rec, dom, probed.kill);
    status.set(key, (s) => {
      s.phase = 'Running';
      s.domid = dom.domid;
      s.uuid = dom.uuid;
      s.node = this.nodeName;
      s.startTime ??= metaTime(dom.createdAt);
      delete s.reason;
      delete s.message;
      if (res && rec.guest.spec.network.enabled) s.addresses = statusAddresses(res);
      const lastKill = s.probes?.lastKill;
      // Streaks and probe times alone are no reason to write: a resync of many probed Guests would
      // rewrite (and fsync) every one of them. They are current as of the last result change.
      if (!sameResults(s.probes, probed.status)) {
        if (probed.status || lastKill) s.probes = { ...probed.status, ...(lastKill ? { lastKill } : {}) };
        else delete s.probes;
      }
      if (probed.ready) status.condition(rec, s, 'Ready', 'True', 'Running', `domain ${dom.domid} is running`);
      else status.condition(rec, s, 'Ready', 'False', probed.reason ?? 'ProbesPending', probed.message ?? '');
      // Until its probes first pass the Guest is still coming up: kstatus (Flux, Argo CD) waits for it.
      if (probed.coming) status.condition(rec, s, 'Reconciling', 'True', probed.reason ?? 'ProbesPending', probed.message ?? '');
      else status.condition(rec, s, 'Reconciling', 'False', 'Running', '');
      status.condition(rec, s, 'Stalled', 'False', 'Running', '');
    });
    // A running guest that stays up long enough has its crash count forgiven.
    const ran = this.clock.now() - dom.createdAt;
    if ((rec.internal.failures ?? 0) > 0) {
      if (ran >= RESTART_RESET_MS) this.store.setStatus(key, this.store.get(key)!.guest.status!, { ...rec.internal, failures: 0 });
      else return { requeueAfterMs: RESTART_RESET_MS - ran };
    }
    return;
  }

  /** A liveness or startup probe failed: the domain stops within its grace period, counted as a failed exit. */
  private kill(key: string, rec: GuestRecord, dom: DomainInfo, why: NonNullable<ProbeVerdict['kill']>): Promise<HandlerResult> {
    this.probes.stop(key);
    const then = rec.guest.spec.restartPolicy !== 'Never' ? 'will be restarted' : 'will not be restarted (restartPolicy Never)';
    this.recorder.normal(key, 'Killing', `domain ${dom.domid} failed ${why.probe.toLowerCase()} probe, ${then}`);
    return this.exited(key, rec, { domid: dom.domid, createdAt: dom.createdAt, killed: why });
  }

  async exited(key: string, rec: GuestRecord, dom: EndedDomain): Promise<HandlerResult> {
    const { status } = this;
    this.probes.stop(key);
    const exit = dom.lost ? { initError: 'the domain disappeared without reporting an exit' } : (dom.exit ?? {});
    const policy = rec.guest.spec.restartPolicy;
    // The kubelet restarts a container its liveness probe killed unless the policy is Never.
    const failed = dom.killed !== undefined || exit.signal !== undefined || exit.initError !== undefined || (exit.exitCode ?? 1) !== 0;
    const restart = policy === 'Always' || (policy === 'OnFailure' && failed);
    const what = dom.killed
      ? `stopped: ${dom.killed.message}`
      : dom.lost
        ? exit.initError!
        : exit.initError !== undefined
          ? `guest-init failed: ${exit.initError}`
          : exit.signal !== undefined
            ? `killed by signal ${exit.signal}`
            : exit.exitCode !== undefined
              ? `exited with code ${exit.exitCode}`
              : 'the domain stopped without reporting an exit';
    if (!dom.killed) this.recorder[failed ? 'warning' : 'normal'](key, failed ? 'Failed' : 'Completed', `domain ${dom.domid}: ${what}`);
    const now = this.clock.now();
    const ranMs = now - dom.createdAt;
    const crashes = ranMs >= RESTART_RESET_MS ? 0 : (rec.internal.failures ?? 0);
    const delay = Math.min(RESTART_BASE_MS * 2 ** crashes, RESTART_MAX_MS);
    status.set(
      key,
      (s) => {
        delete s.domid;
        clearResources(s);
        delete s.exitCode;
        delete s.signal;
        // The probes' results describe the domain that ended; the kill, if any, stays on record.
        const lastKill = dom.killed
          ? { probe: dom.killed.probe, domid: dom.domid, message: dom.killed.message.slice(0, 1024), time: metaTime(now) }
          : s.probes?.lastKill;
        if (lastKill) s.probes = { lastKill };
        else delete s.probes;
        if (exit.exitCode !== undefined) s.exitCode = exit.exitCode;
        if (exit.signal !== undefined) s.signal = exit.signal;
        s.finishTime = metaTime(now);
        if (restart) {
          s.phase = 'Pending';
          s.restartCount = (s.restartCount ?? 0) + 1;
          s.reason = 'CrashLoopBackOff';
          s.message = `back-off ${Math.round(delay / 1000)}s restarting: ${what}`;
          status.condition(rec, s, 'Ready', 'False', 'CrashLoopBackOff', s.message);
          status.condition(rec, s, 'Reconciling', 'True', 'CrashLoopBackOff', s.message);
        } else {
          s.phase = failed ? 'Failed' : 'Succeeded';
          s.reason = failed ? 'Error' : 'Completed';
          s.message = what;
          status.condition(rec, s, 'Ready', 'False', s.reason, what);
          status.condition(rec, s, 'Reconciling', 'False', s.reason, '');
          // A failure that will not be retried needs someone to act: kstatus (Flux) reads Stalled.
          if (failed) status.condition(rec, s, 'Stalled', 'True', s.reason, what);
        }
      },
      restart ? { ...rec.internal, failures: crashes + 1, notBefore: now + delay } : rec.internal,
    );
    // The exit is on record before the domain goes: a crash in between cannot lose it.
    if (dom.killed) await this.teardown.shutdown(dom.domid, rec.guest.spec.terminationGracePeriodSeconds * 1000);
    else if (!dom.lost) {
      await this.teardown.destroy(dom.domid);
    }
    return restart ? { requeueAfterMs: delay } : undefined;
  }
}

/** Whether two status.probes say the same: each probe's result and message (lastKill is kept apart). */
function sameResults(a: GuestProbes | undefined, b: ProbeVerdict['status']): boolean {
  for (const k of ['startup', 'readiness', 'liveness'] as const) {
    const x = a?.[k];
    const y = b?.[k];
    if (x?.result !== y?.result || x?.message !== y?.message) return false;
  }
  return true;
}
