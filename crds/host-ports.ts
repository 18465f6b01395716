// Host ports: which ports on the node a Guest's spec publishes, and the allowed-range lists that admins
// set (XenHost spec.guestPolicy.hostPorts for the operator, --host-ports for the node agent).
import type { Guest, PortRange } from './generated/types.js';

/** What a host allows when nobody said otherwise: unprivileged ports only. */
export const DEFAULT_HOST_PORTS: readonly PortRange[] = [{ from: 1024, to: 65535 }];

/**
 * Which of two Guests keeps a host port both want: the older (creation time, then the key, so equal
 * times decide the same way every time). The agent's start check and kratanet's bindings both use it,
 * so they never disagree about the winner. Negative when `a` is older.
 */
export function olderFirst(a: { key: string; guest: Guest }, b: { key: string; guest: Guest }): number {
  const created = (g: Guest) => Date.parse(g.metadata.creationTimestamp ?? '') || Number.MAX_SAFE_INTEGER;
  return created(a.guest) - created(b.guest) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

/**
 * Who may share a Guest's host ports on one host: the replicas of one GuestSet (same namespace, same
 * controller ownerReference uid) publish a port once, balanced over the ready ones. Undefined: nobody.
 */
export function portSharer(g: Guest): string | undefined {
  const owner = g.metadata.ownerReferences?.find((o) => o.controller === true && o.kind === 'GuestSet');
  return owner?.uid ? `${g.metadata.namespace ?? ''}/${owner.uid}` : undefined;
}

export interface HostPortUse {
  /** "TCP/8080": what two Guests on one host may not both publish. */
  key: string;
  port: number;
  /** The field that asks for it, e.g. spec.network.ports[0].hostPort. */
  field: string;
}

/** The host ports a Guest publishes (hostPort, else containerPort; nothing without the network). */
export function hostPortsOf(g: Guest): HostPortUse[] {
  if (g.spec.network?.enabled === false) return [];
  return (g.spec.network?.ports ?? []).map((p, i) => {
    const port = p.hostPort ?? p.containerPort;
    return {
      key: `${p.protocol ?? 'TCP'}/${port}`,
      port,
      field: `spec.network.ports[${i}].${p.hostPort === undefined ? 'containerPort' : 'hostPort'}`,
    };
  });
}

export function portAllowed(port: number, ranges: readonly PortRange[]): boolean {
  return ranges.some((r) => port >= r.from && port <= r.to);
}

/** The first of the ports that `ranges` do not allow. */
export function disallowedPort(ports: HostPortUse[], ranges: readonly PortRange[]): HostPortUse | undefined {
  return ports.find((x) => !portAllowed(x.port, ranges));
}

/** "80, 1024-65535", or "none". */
export function formatRanges(ranges: readonly PortRange[]): string {
  return ranges.length ? ranges.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`)).join(', ') : 'none';
}

/** "80,443,1024-65535" or "none" (a flag's value) as ranges; a clear error naming `what` otherwise. */
export function parsePortRanges(text: string, what: string): PortRange[] {
  if (text.trim() === 'none') return [];
  return text.split(',').map((part) => {
    const m = /^\s*(\d{1,5})(?:\s*-\s*(\d{1,5}))?\s*$/.exec(part);
    const from = Number(m?.[1]);
    const to = m?.[2] === undefined ? from : Number(m[2]);
    if (!m || from < 1 || to > 65535 || to < from)
      throw new Error(
        `${what}: ${JSON.stringify(part.trim())} is not a port or a range FROM-TO of ports 1-65535 (e.g. 1024-65535, or "none")`,
      );
    return { from, to };
  });
}
