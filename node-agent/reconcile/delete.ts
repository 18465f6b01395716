// The delete and cleanup step: domains go (shut down within a grace period, or destroyed), and with a
// deleted Guest everything it held: its address reservation, its pull, its record. Also what belongs
// to no Guest: domains left by one deleted while the agent was down, devices left by a crash.
import type { DomainInfo, Hypervisor } from '../runtime/hypervisor.js';
import type { GuestRecord, GuestStore } from '../store/guest-store.js';
import type { EventRecorder } from './events.js';
import type { Ipam } from './ipam.js';
import type { ObservedDomains } from './observed-domains.js';
import type { ImagePulls } from './pulls.js';
import type { StatusWriter } from './status.js';
import { faultPoint } from '../../lib/fault-points.js';

/** guest-init kills the process at the grace period and powers off: give it this long to do so. */
const POWEROFF_MARGIN_MS = 5_000;

export class DeleteStep {
  constructor(
    private readonly store: GuestStore,
    private readonly hv: Pick<Hypervisor, 'shutdown' | 'destroy' | 'cleanupOrphans'>,
    private readonly domains: ObservedDomains,
    private readonly pulls: ImagePulls,
    private readonly ipam: Ipam,
    private readonly status: StatusWriter,
    private readonly recorder: EventRecorder,
  ) {}

  /** Asks the domain to power off within `graceMs` (plus guest-init's margin), else destroys it. */
  async shutdown(domid: number, graceMs: number): Promise<'graceful' | 'forced'> {
    const how = await this.hv.shutdown(domid, graceMs + POWEROFF_MARGIN_MS);
    this.domains.removed(domid);
    return how;
  }

  async destroy(domid: number): Promise<void> {
    await this.hv.destroy(domid);
    this.domains.removed(domid);
  }

  /** A Guest marked for deletion: its domains stop within its grace period, then all it held goes. */
  async finalize(key: string, rec: GuestRecord, domains: DomainInfo[]): Promise<void> {
    const grace = (rec.guest.metadata.deletionGracePeriodSeconds ?? rec.guest.spec.terminationGracePeriodSeconds) * 1000;
    this.status.set(key, (s) => {
      s.phase = 'Terminating';
      this.status.condition(rec, s, 'Ready', 'False', 'Terminating', 'the guest is being deleted');
    });
    for (const d of domains) {
      this.recorder.normal(key, 'Killing', `stopping domain ${d.domid} (grace period ${grace / 1000} s)`);
      const how = await this.shutdown(d.domid, grace);
      if (how === 'forced') {
        this.recorder.warning(key, 'ForcedStop', `domain ${d.domid} did not stop within ${grace / 1000} s and was destroyed`);
      }
    }
    faultPoint('teardown.domains-stopped'); // a Guest being deleted that holds no domain
    this.ipam.release(key);
    this.pulls.drop(key); // a pull still running is not waited for; its result is dropped
    faultPoint('teardown.address-released'); // the record of a deleted Guest whose address is free
    this.store.remove(key);
    this.recorder.forget(key);
  }

  /** Domains under a key no Guest has (deleted while the agent was down, or left by a crash). */
  async removeOrphans(key: string, domains: DomainInfo[]): Promise<void> {
    for (const d of domains) {
      await this.destroy(d.domid);
      this.recorder.host('OrphanRemoved', `destroyed domain ${d.domid} (${d.name}): no Guest ${key}`);
    }
    if (!this.store.get(key)) this.ipam.release(key);
    this.pulls.drop(key);
  }

  /** Host-wide, at each resync: devices that belong to no domain. */
  async cleanupHost(): Promise<void> {
    for (const o of await this.hv.cleanupOrphans()) this.recorder.host('OrphanRemoved', `removed ${o}, which belonged to no domain`);
  }
}
