// Placement: which XenHost a Guest runs on. Pure: the controller gives it the Guest and a view of every
// host (readiness from heartbeats, allocatable and the admin's guest policy from the XenHost, allocated
// memory, vCPUs and host ports from the Guests placed there, including placements not yet visible in the
// API), and records the answer in status.node, which tenants cannot write.
import type { Guest, PortRange } from '../crds/generated/types.js';
import { disallowedPort, formatRanges, hostPortsOf } from '../crds/host-ports.js';
import { quantityValue } from '../crds/quantity.js';

export interface HostView {
  name: string;
  labels: Record<string, string>;
  unschedulable: boolean;
  /** The agent's heartbeat is current. */
  ready: boolean;
  allocatable: { cpus: number; memoryMiB: number };
  allocated: { cpus: number; memoryMiB: number };
  /** The XenHost's spec.guestPolicy (defaults filled in). */
  policy: HostPolicy;
  /** Host ports ("TCP/8080") that Guests placed here publish. */
  usedPorts: ReadonlySet<string>;
}

export interface HostPolicy {
  allowNodeName: boolean;
  hostPorts: PortRange[];
}

export type PlacementReason = 'NoHosts' | 'NodeNotFound' | 'Unschedulable' | 'NodeNameNotAllowed' | 'HostPortNotAllowed';
export type Placement = { host: string } | { reason: PlacementReason; message: string };
/** Refusals by the admins' policy: no retry helps until the spec or the policy changes (kstatus Stalled). */
export const POLICY_REASONS: ReadonlySet<string> = new Set<PlacementReason>(['NodeNameNotAllowed', 'HostPortNotAllowed']);

const MiB = 1024n * 1024n;

/** What a Guest holds on its host: its maximums, which its domain is built with (maxCpus vCPUs, maxMemory). */
export function guestRequest(g: Guest): { cpus: number; memoryMiB: number } {
  const r = g.spec.resources;
  const mem = quantityValue(r.maxMemory ?? r.memory) ?? 0n;
  return { cpus: r.maxCpus ?? r.cpus, memoryMiB: Number((mem + MiB - 1n) / MiB) };
}

/**
 * Hosts whose policy allows the Guest's host ports, that are ready and schedulable, whose labels match
 * nodeSelector, where those ports are free and that have room; of those the one with the fewest `siblings`
 * (Guests of the same GuestSet already there: a set's replicas spread across hosts, as the scheduler
 * spreads a ReplicaSet's Pods by default), then the least allocated (memory first, then vCPUs), so guests
 * spread; ties go to the name, so the choice is deterministic. nodeName only narrows
 * the choice to that host (if its policy allows pinning); every other rule still applies. Unplaceable
 * Guests get a Kubernetes-style reason: "0/5 hosts are available: ...".
 */
export function place(guest: Guest, hosts: HostView[], siblings: ReadonlyMap<string, number> = new Map()): Placement {
  const pin = guest.spec.nodeName;
  if (pin) {
    const h = hosts.find((x) => x.name === pin);
    if (!h) return { reason: 'NodeNotFound', message: `XenHost ${pin} (spec.nodeName) does not exist` };
    if (!h.policy.allowNodeName)
      return {
        reason: 'NodeNameNotAllowed',
        message: `XenHost ${pin} does not allow Guests to name it in spec.nodeName (its spec.guestPolicy.allowNodeName is false)`,
      };
  }
  if (hosts.length === 0) return { reason: 'NoHosts', message: 'no XenHosts: no node agent has registered yet' };
  const want = guestRequest(guest);
  const ports = hostPortsOf(guest);
  const selector = Object.entries(guest.spec.nodeSelector ?? {});
  const misses = new Map<string, number>();
  const miss = (why: string) => misses.set(why, (misses.get(why) ?? 0) + 1);
  let policyMisses = 0;
  let candidates = 0;
  let best: HostView | undefined;
  let bestScore = Infinity;
  for (const h of hosts) {
    if (pin && h.name !== pin) {
      miss("didn't match spec.nodeName");
      continue;
    }
    candidates++;
    const notAllowed = disallowedPort(ports, h.policy.hostPorts);
    const inUse = ports.find((p) => h.usedPorts.has(p.key));
    // The policy first: it does not change as hosts come and go, so it decides whether waiting helps.
    if (notAllowed) {
      policyMisses++;
      miss(`didn't allow host port ${notAllowed.key} of ${notAllowed.field} (allowed: ${formatRanges(h.policy.hostPorts)})`);
    } else if (!h.ready) miss('not ready');
    else if (h.unschedulable) miss('unschedulable');
    else if (!selector.every(([k, v]) => h.labels[k] === v)) miss("didn't match nodeSelector");
    else if (inUse) miss(`host port ${inUse.key} in use`);
    else if (h.allocated.memoryMiB + want.memoryMiB > h.allocatable.memoryMiB) miss('insufficient memory');
    else if (h.allocated.cpus + want.cpus > h.allocatable.cpus) miss('insufficient cpus');
    else {
      const mem = (h.allocated.memoryMiB + want.memoryMiB) / Math.max(h.allocatable.memoryMiB, 1);
      const cpu = (h.allocated.cpus + want.cpus) / Math.max(h.allocatable.cpus, 1);
      const score = (siblings.get(h.name) ?? 0) * 1e9 + mem * 1000 + cpu;
      if (score < bestScore || (score === bestScore && best && h.name < best.name)) {
        best = h;
        bestScore = score;
      }
    }
  }
  if (best) return { host: best.name };
  const parts = [...misses].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([why, n]) => `${n} ${why}`);
  // Every host it may go to refuses it by policy: only a spec or policy change helps.
  const reason = candidates > 0 && policyMisses === candidates ? 'HostPortNotAllowed' : 'Unschedulable';
  return { reason, message: `0/${hosts.length} hosts are available: ${parts.join(', ')}` };
}
