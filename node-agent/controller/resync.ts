// The periodic resync: every Guest and every krata domain is compared again, and the host is cleaned
// of what belongs to no Guest. The first resync queues everything; later ones only the keys whose
// stored status does not match what runs (a full comparison, so still level-triggered, but a host of
// steady guests costs one list).
import { domainGuestKey } from '../reconcile/identity.js';
import type { Guest, GuestStatus } from '../../crds/generated/types.js';
import type { Clock } from '../../lib/clock.js';
import type { DeleteStep } from '../reconcile/delete.js';
import { desiredTargets, recordedAsApplied } from '../reconcile/resize.js';
import type { SpecHashes } from '../reconcile/identity.js';
import type { DomainInfo } from '../runtime/hypervisor.js';
import type { GuestStore } from '../store/guest-store.js';
import type { DomainCache } from './domain-cache.js';
import type { Source, SourceSink } from './sources.js';

export class PeriodicResync implements Source {
  private timer?: { cancel(): void };
  private sink?: SourceSink;
  private firstDone = false;
  private stopped = false;

  constructor(
    private readonly store: Pick<GuestStore, 'keys' | 'get'>,
    private readonly cache: DomainCache,
    private readonly hashes: SpecHashes,
    private readonly cleanup: Pick<DeleteStep, 'cleanupHost'>,
    private readonly clock: Clock,
    private readonly periodMs = 15_000,
  ) {}

  /** A resync now, and every period after the last one ended. */
  start(sink: SourceSink): () => void {
    this.sink = sink;
    sink.background(this.resync(), 'ResyncFailed');
    return () => this.stop();
  }

  private stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  async resync(): Promise<void> {
    const sink = this.sink;
    if (!sink) throw new Error('resync before the controller runs');
    this.timer?.cancel();
    try {
      this.cache.invalidate();
      const domains = await this.cache.list();
      const byKey = new Map<string, DomainInfo[]>();
      for (const d of domains) byKey.set(domainGuestKey(d), [...(byKey.get(domainGuestKey(d)) ?? []), d]);
      for (const key of new Set([...this.store.keys(), ...byKey.keys()])) {
        if (!this.firstDone || !this.inSync(key, byKey.get(key) ?? [])) sink.add(key);
      }
      this.firstDone = true;
      await this.cleanup.cleanupHost();
    } finally {
      if (!this.stopped) this.timer = this.clock.setTimeout(() => sink.background(this.resync(), 'ResyncFailed'), this.periodMs);
    }
  }

  /** Nothing to do: a running Guest whose status already describes its one running domain, or a finished one. */
  private inSync(key: string, doms: DomainInfo[]): boolean {
    const rec = this.store.get(key);
    if (!rec || rec.guest.metadata.deletionTimestamp) return false;
    const s = rec.guest.status ?? {};
    const gen = rec.guest.metadata.generation ?? 1;
    if (s.observedGeneration !== gen || (rec.internal.failures ?? 0) > 0) return false;
    if (doms.length === 0) return s.phase === 'Succeeded' || s.phase === 'Failed';
    const d = doms[0]!;
    return (
      doms.length === 1 &&
      s.phase === 'Running' &&
      s.domid === d.domid &&
      d.state === 'running' &&
      !d.exit &&
      d.guest.uid === rec.guest.metadata.uid &&
      d.guest.specHash === this.hashes.of(rec.guest) &&
      resourcesRecorded(s, d, rec.guest)
    );
  }
}

/** Live resources: status records the spec's targets as applied to this domain (a bad quantity: the reconcile says so). */
function resourcesRecorded(s: GuestStatus, d: DomainInfo, g: Guest): boolean {
  try {
    return recordedAsApplied(s, d, desiredTargets(g));
  } catch {
    return false;
  }
}
