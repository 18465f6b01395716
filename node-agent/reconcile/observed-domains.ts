// The observed state the decisions read: krata's domains as the hypervisor lists them, through a
// cache the controller keeps (controller/domain-cache.ts). Steps that create or remove a domain say
// so, so that a list read before they finished cannot make a Guest be created twice.
import type { DomainInfo } from '../runtime/hypervisor.js';

export interface ObservedDomains {
  /** krata's domains, possibly shared with other reconciles of the last moment. */
  list(): Promise<DomainInfo[]>;
  /** A domain this agent just created. */
  created(dom: DomainInfo): void;
  /** A domain this agent just shut down or destroyed. */
  removed(domid: number): void;
}
