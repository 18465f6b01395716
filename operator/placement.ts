// Placement: which XenHost a Guest runs on. Pure: the controller gives it the Guest and a view of every
// host (readiness from heartbeats, allocatable from the XenHost, allocated from the Guests placed there,
// including placements not yet visible in the API), and records the answer in status.node.
import type { Guest } from '../crds/generated/types.js';
import { quantityValue } from '../crds/quantity.js';

export interface HostView {
  name: string;
  labels: Record<string, string>;
  unschedulable: boolean;
  /** The agent's heartbeat is current. */
  ready: boolean;
  allocatable: { cpus: number; memoryMiB: number };
  allocated: { cpus: number; memoryMiB: number };
}

export type PlacementReason = 'NoHosts' | 'NodeNotFound' | 'Unschedulable';
export type Placement = { host: string } | { reason: PlacementReason; message: string };

const MiB = 1024n * 1024n;

/** What a Guest holds on its host: its maximums, since it may grow to them without a restart. */
export function guestRequest(g: Guest): { cpus: number; memoryMiB: number } {
  const r = g.spec.resources;
  const mem = quantityValue(r.maxMemory ?? r.memory) ?? 0n;
  return { cpus: r.maxCpus ?? r.cpus, memoryMiB: Number((mem + MiB - 1n) / MiB) };
}

/**
 * nodeName pins (like a Pod's: no capacity check; the agent refuses what does not fit and says so).
 * Otherwise: ready, schedulable hosts whose labels match nodeSelector and that have room; of those the
 * least allocated (memory first, then vCPUs), so guests spread; ties go to the name, so the choice is
 * deterministic. Unplaceable Guests get a Kubernetes-style reason: "0/5 hosts are available: ...".
 */
export function place(guest: Guest, hosts: HostView[]): Placement {
  const pin = guest.spec.nodeName;
  if (pin) {
    return hosts.some((h) => h.name === pin) ? { host: pin } : { reason: 'NodeNotFound', message: `XenHost ${pin} (spec.nodeName) does not exist` };
  }
  if (hosts.length === 0) return { reason: 'NoHosts', message: 'no XenHosts: no node agent has registered yet' };
  const want = guestRequest(guest);
  const selector = Object.entries(guest.spec.nodeSelector ?? {});
  const misses = new Map<string, number>();
  const miss = (why: string) => misses.set(why, (misses.get(why) ?? 0) + 1);
  let best: HostView | undefined;
  let bestScore = Infinity;
  for (const h of hosts) {
    if (!h.ready) miss('not ready');
    else if (h.unschedulable) miss('unschedulable');
    else if (!selector.every(([k, v]) => h.labels[k] === v)) miss("didn't match nodeSelector");
    else if (h.allocated.memoryMiB + want.memoryMiB > h.allocatable.memoryMiB) miss('insufficient memory');
    else if (h.allocated.cpus + want.cpus > h.allocatable.cpus) miss('insufficient cpus');
    else {
      const mem = (h.allocated.memoryMiB + want.memoryMiB) / Math.max(h.allocatable.memoryMiB, 1);
      const cpu = (h.allocated.cpus + want.cpus) / Math.max(h.allocatable.cpus, 1);
      const score = mem * 1000 + cpu;
      if (score < bestScore || (score === bestScore && best && h.name < best.name)) {
        best = h;
        bestScore = score;
      }
    }
  }
  if (best) return { host: best.name };
  const parts = [...misses].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([why, n]) => `${n} ${why}`);
  return { reason: 'Unschedulable', message: `0/${hosts.length} hosts are available: ${parts.join(', ')}` };
}
