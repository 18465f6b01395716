// The domain list, shared by reconciles within 500 ms (xenstore is read once, not per Guest). Every
// create and destroy the reconcile steps make bumps an epoch; a list that began before one of them
// finished is read again, else it might not show it and a Guest could be created twice.
import type { Clock } from '../../lib/clock.js';
import type { DomainInfo, Hypervisor } from '../runtime/hypervisor.js';
import type { ObservedDomains } from '../reconcile/observed-domains.js';

const FRESH_MS = 500;

export class DomainCache implements ObservedDomains {
  private snapshot?: { at: number; domains: DomainInfo[] };
  /** Bumped by every create and destroy this agent makes. */
  private epoch = 0;

  constructor(
    private readonly hv: Pick<Hypervisor, 'list'>,
    private readonly clock: Clock,
  ) {}

  async list(): Promise<DomainInfo[]> {
    const now = this.clock.now();
    if (this.snapshot && now - this.snapshot.at < FRESH_MS) return this.snapshot.domains;
    for (;;) {
      const epoch = this.epoch;
      const domains = await this.hv.list();
      if (epoch !== this.epoch) continue;
      this.snapshot = { at: now, domains };
      return domains;
    }
  }

  /** The next list() reads the hypervisor (a domain event, a resync). */
  invalidate(): void {
    this.snapshot = undefined;
  }

  created(dom: DomainInfo): void {
    this.epoch++;
    this.snapshot?.domains.push(dom);
  }

  removed(domid: number): void {
    this.epoch++;
    if (this.snapshot) this.snapshot.domains = this.snapshot.domains.filter((d) => d.domid !== domid);
  }
}
