// Live resources: a running domain follows resources.cpus and resources.memory without a restart (a
// change of maxCpus or maxMemory changes the spec hash and recreates the domain instead). The targets
// go to the hypervisor (xenstore: vCPU availability, balloon target) when status does not already
// record them for this domain; then what Xen observes of the guest (vCPUs online, pages held) is
// compared with them, recorded in status.resources and the ResourcesApplied condition, and looked at
// again shortly while the guest has not followed (bounded: the guest decides when it does).
import type { Guest, GuestResourceStatus, GuestStatus } from '../../crds/generated/types.js';
import { metaTime } from '../../crds/meta.js';
import { formatBytes } from '../../crds/quantity.js';
import type { Clock } from '../../lib/clock.js';
import type { HandlerResult } from '../../lib/work-queue.js';
import type { DomainInfo, DomainStats, Hypervisor, ResourceTargets } from '../runtime/hypervisor.js';
import type { GuestStore } from '../store/guest-store.js';
import { mib } from './create.js';
import type { EventRecorder } from './events.js';
import type { StatusWriter } from './status.js';

/** How soon a guest that has not followed its targets is looked at again, and for how long. */
export const RESIZE_RECHECK_MS = 2_000;
export const RESIZE_RECHECK_WINDOW_MS = 120_000;

const MiB = 1024 * 1024;

/** The targets a Guest's spec asks of its running domain (rounded as create.ts rounds them). */
export function desiredTargets(g: Guest): ResourceTargets {
  return { vcpus: g.spec.resources.cpus, memoryMiB: mib(g.spec.resources.memory, 512) };
}

const memoryQuantity = (memoryMiB: number) => formatBytes(BigInt(Math.round(memoryMiB * 1024)) * 1024n);
const mebibytes = (bytes: number) => `${Math.round(bytes / MiB)}Mi`;

/** Whether status already records `want` as applied to `dom` (then nothing needs writing). */
export function recordedAsApplied(s: GuestStatus | undefined, dom: Pick<DomainInfo, 'domid' | 'uuid'>, want: ResourceTargets): boolean {
  const r = s?.resources;
  return s?.domid === dom.domid && s.uuid === dom.uuid && r?.cpus === want.vcpus && r.memory === memoryQuantity(want.memoryMiB);
}

/** How far Xen's figures may be from the balloon target and still count as there: max(4 MiB, 3 %). */
export function memoryTolerance(memoryMiB: number): number {
  return Math.max(4 * MiB, memoryMiB * MiB * 0.03);
}

/** status.resources for `want` and Xen's figures: a reason and message while the guest has not followed. */
export function resourceStatus(want: ResourceTargets, stats: DomainStats | undefined, lastResizeTime?: string): GuestResourceStatus {
  const r: GuestResourceStatus = { cpus: want.vcpus, memory: memoryQuantity(want.memoryMiB) };
  if (lastResizeTime) r.lastResizeTime = lastResizeTime;
  if (!stats) return r;
  r.vcpusOnline = stats.vcpusOnline;
  r.memoryActual = mebibytes(stats.memoryBytes);
  const pending: string[] = [];
  if (stats.vcpusOnline !== want.vcpus) {
    r.reason = 'VcpusPending';
    const plural = want.vcpus === 1 ? '' : 's';
    pending.push(
      stats.vcpusOnline < want.vcpus
        ? `${stats.vcpusOnline} of ${want.vcpus} vCPU${plural} online: the guest has not brought the rest online yet`
        : `${stats.vcpusOnline} vCPUs online, ${want.vcpus} asked: the guest has not taken the rest offline yet`,
    );
  }
  const gap = stats.memoryBytes - want.memoryMiB * MiB;
  if (Math.abs(gap) > memoryTolerance(want.memoryMiB)) {
    r.reason = 'BalloonPending';
    pending.unshift(
      `the guest holds ${r.memoryActual} of its ${r.memory} target: ` +
        (gap > 0 ? 'it has not ballooned yet' : 'it has not taken the memory back yet'),
    );
  }
  if (pending.length) r.message = pending.join('; ');
  return r;
}

export class ResizeStep {
  constructor(
    private readonly store: GuestStore,
    private readonly hv: Pick<Hypervisor, 'resize' | 'stats'>,
    private readonly status: StatusWriter,
    private readonly recorder: EventRecorder,
    private readonly clock: Clock,
  ) {}

  /** One step for a running domain: its targets applied if they are not, and status saying where the guest is. */
  async reconcile(key: string, dom: DomainInfo): Promise<HandlerResult> {
    const rec = this.store.get(key);
    if (!rec || dom.state !== 'running') return;
    const want = desiredTargets(rec.guest);
    let resizedAt = rec.guest.status?.resources?.lastResizeTime;
    if (!recordedAsApplied(rec.guest.status, dom, want)) {
      // Idempotent: after an agent restart, or status lost, this writes nothing when xenstore holds the targets.
      const result = await this.hv.resize(dom.domid, want);
      if (result.changed) {
        resizedAt = metaTime(this.clock.now());
        this.recorder.normal(key, 'Resized', `domain ${dom.domid}: ${describeChange(result.before, want)}`);
      }
    }
    const r = resourceStatus(want, this.hv.stats(dom.domid), resizedAt);
    const { status } = this;
    status.set(key, (s) => {
      if (s.domid !== dom.domid) return;
      s.resources = r;
      if (r.reason) status.condition(rec, s, 'ResourcesApplied', 'False', r.reason, r.message ?? '');
      else status.condition(rec, s, 'ResourcesApplied', 'True', 'Applied', `${r.cpus} vCPU${r.cpus === 1 ? '' : 's'}, memory ${r.memory}`);
    });
    if (!r.reason) return;
    // The guest follows in its own time: look again soon, for a while after the domain started or resized.
    const since = Math.max(dom.createdAt, Date.parse(resizedAt ?? '') || 0);
    return this.clock.now() - since < RESIZE_RECHECK_WINDOW_MS ? { requeueAfterMs: RESIZE_RECHECK_MS } : undefined;
  }
}

/** "vCPUs 1 → 2, memory 128Mi → 96Mi": what changed. */
export function describeChange(before: Partial<ResourceTargets>, after: ResourceTargets): string {
  const parts: string[] = [];
  if (before.vcpus !== after.vcpus) parts.push(`vCPUs ${before.vcpus ?? '?'} → ${after.vcpus}`);
  if (before.memoryMiB !== after.memoryMiB)
    parts.push(`memory ${before.memoryMiB !== undefined ? memoryQuantity(before.memoryMiB) : '?'} → ${memoryQuantity(after.memoryMiB)}`);
  return parts.join(', ') || 'targets rewritten';
}
