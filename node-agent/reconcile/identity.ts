// A Guest's identity on the hypervisor: the domain name it runs under and the hash of the spec
// fields its domain was built from (a different hash means a new domain).
import type { DomainInfo } from '../runtime/hypervisor.js';
import { guestKey } from '../store/guest-store.js';
import { createHash } from 'node:crypto';
import type { Guest } from '../../crds/generated/types.js';

/** Longest domain name krata gives (xl prints names in a column; hostnames stop at 63 too). */
export const MAX_DOMAIN_NAME = 63;

/**
 * The Xen domain name of a Guest: "krata.<namespace>.<name>". A namespace is a DNS label (no dot), so
 * the first dot after "krata." ends it and no two Guests share a name ("a-b/c" and "a/b-c" were both
 * krata-a-b-c once). Too long for that, it is "krata-<uid>", which no readable name can equal.
 */
export function domainName(namespace: string, name: string, uid: string): string {
  const readable = `krata.${namespace}.${name}`;
  return readable.length <= MAX_DOMAIN_NAME ? readable : `krata-${uid}`;
}

/** The spec fields a domain is built from: a change means a new domain (cpus/memory apply live, probes are the agent's). */
export function specHash(g: Guest): string {
  const { resources, nodeSelector: _n, readinessProbe: _r, livenessProbe: _l, startupProbe: _s, ...rest } = g.spec;
  const stable = {
    ...rest,
    resources: { maxCpus: resources.maxCpus ?? resources.cpus, maxMemory: resources.maxMemory ?? resources.memory },
  };
  return createHash('sha256').update(JSON.stringify(stable)).digest('hex').slice(0, 16);
}

/** Spec hashes computed once per uid and generation (a resync compares every Guest). */
export class SpecHashes {
  private readonly hashes = new Map<string, string>();

  of(g: Guest): string {
    const k = `${g.metadata.uid}/${g.metadata.generation}`;
    let h = this.hashes.get(k);
    if (!h) {
      if (this.hashes.size > 10_000) this.hashes.clear();
      h = specHash(g);
      this.hashes.set(k, h);
    }
    return h;
  }
}

/** The store key (namespace/name) of the Guest a domain runs. */
export const domainGuestKey = (d: DomainInfo): string => guestKey(d.guest.namespace, d.guest.name);
