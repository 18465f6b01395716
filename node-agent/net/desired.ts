// The network kratanet should serve, derived from the node agent's state: every Guest that wants the
// network, has an address reservation and has a domain (so a vif exists, or is about to). A Guest being
// deleted keeps its network until its domain is gone. A host port two Guests publish goes to the older,
// except that the replicas of one GuestSet share theirs (a port group, balanced over the Ready ones; the
// group holds the port as its oldest member would).
// It reads the agent's store and address plan through the small views below: net/ imports nothing else
// of the agent.
import type { Guest } from '../../crds/generated/types.js';
import type { GuestNetConfig, PublishedPort } from './backend.js';
import type { KratanetConfig, PortGroupConfig } from './config.js';
import { parseCidrRule } from './policy.js';
import { olderFirst, portSharer } from '../../crds/host-ports.js';

export interface DesiredNetworkOptions {
  /** Guests reach dom0's loopback at their gateway address: false (default), true, or these ports. */
  hostLoopback?: boolean | number[];
  /** Guests reach dom0's own addresses. Default false. */
  hostAccess?: boolean;
  gatewayMac?: string;
  /** The address published host ports are bound on (--host-port-address); default all addresses. */
  hostAddress?: string;
  /** Passed to kratanet as they are (see KratanetConfig). */
  denyCidrs?: string[];
  allowCidrs?: string[];
  hostBudget?: number;
  /** kratanet's dial socket (the agent's GuestDialer connects to it); none without it. */
  dialSocket?: string;
}

/**
 * The node agent's --deny-cidr, --allow-cidr and --network-budget (MiB), checked: a bad one is a usage
 * error naming the flag. The guests' --nameserver addresses are allowed on port 53 (a cluster DNS
 * Service or a resolver on the node's subnet would otherwise be denied).
 */
export function egressFlags(
  deny: string[] = [],
  allow: string[] = [],
  budgetMiB?: string,
  nameservers: string[] = [],
): Pick<DesiredNetworkOptions, 'denyCidrs' | 'allowCidrs' | 'hostBudget'> {
  const check = (flag: string, list: string[], ports: boolean) => {
    for (const s of list) {
      try {
        parseCidrRule(s, ports);
      } catch (e) {
        throw new Error(`${flag}: ${(e as Error).message}`, { cause: e });
      }
    }
  };
  check('--deny-cidr', deny, false);
  check('--allow-cidr', allow, true);
  const dns = nameservers.map((ns) => `${ns}/${ns.includes(':') ? 128 : 32}:53`);
  check('--nameserver', dns, true);
  const out: Pick<DesiredNetworkOptions, 'denyCidrs' | 'allowCidrs' | 'hostBudget'> = { denyCidrs: deny, allowCidrs: [...allow, ...dns] };
  if (budgetMiB !== undefined) {
    if (!/^\d{1,7}$/.test(budgetMiB) || Number(budgetMiB) < 1)
      throw new Error(`--network-budget: ${JSON.stringify(budgetMiB)} is not a whole number of MiB (at least 1)`);
    out.hostBudget = Number(budgetMiB) * (1 << 20);
  }
  return out;
}

/** A published port left out: `guest` asked for it, `holder` (older) has it. */
export interface PortConflict {
  guest: string;
  holder: string;
  protocol: 'TCP' | 'UDP';
  hostPort: number;
}

/** The Guests the agent holds, by key (the agent's GuestStore). */
export interface GuestsView {
  keys(): string[];
  get(key: string): { guest: Guest } | undefined;
}

/** A Guest's address reservation, as the agent's Ipam keeps it. */
export interface AddressReservation {
  uid: string;
  ipv4: string;
  ipv6: string;
  mac: string;
  prefix4: number;
  prefix6: number;
  gateway4: string;
  gateway6: string;
}

/** What the Ipam tells about its address plan (its reservations and subnets). */
export interface IpamView {
  get(key: string): AddressReservation | undefined;
  subnets(): string[];
}

export function describeConflict(c: PortConflict): string {
  return `guest ${c.guest}: host port ${c.protocol}/${c.hostPort} is not published: guest ${c.holder} (older) publishes it`;
}

/** The configuration for kratanet; the host ports left out (two Guests publish them) are added to `conflicts`. */
export function desiredNetwork(
  store: GuestsView,
  ipam: IpamView,
  opts: DesiredNetworkOptions = {},
  conflicts: PortConflict[] = [],
): KratanetConfig {
  const candidates: { key: string; guest: Guest; net: GuestNetConfig }[] = [];
  for (const key of store.keys()) {
    const guest = store.get(key)?.guest;
    if (!guest?.spec.network?.enabled) continue;
    const domid = guest.status?.domid;
    if (domid === undefined) continue;
    const r = ipam.get(key);
    // A reservation of an earlier Guest of this name is not this one's (the reconciler replaces it).
    if (!r || (guest.metadata.uid !== undefined && r.uid !== guest.metadata.uid)) continue;
    candidates.push({
      key,
      guest,
      net: {
        id: key,
        interface: `vif${domid}.0`,
        mac: r.mac,
        ipv4: `${r.ipv4}/${r.prefix4}`,
        ipv6: `${r.ipv6}/${r.prefix6}`,
        gateway4: r.gateway4,
        gateway6: r.gateway6,
        ports: [],
      },
    });
  }
  // Older first: the older Guest keeps a port both ask for.
  candidates.sort(olderFirst);
  const taken = new Map<string, { holder: string; sharer?: string; group?: PortGroupConfig }>();
  const groups: PortGroupConfig[] = [];
  for (const c of candidates) {
    const sharer = portSharer(c.guest);
    for (const p of c.guest.spec.network.ports ?? []) {
      const protocol = p.protocol ?? 'TCP';
      const hostPort = p.hostPort ?? p.containerPort;
      const at = `${protocol}/${hostPort}`;
      const held = taken.get(at);
      const member = { guest: c.key, guestPort: p.containerPort, ready: isReady(c.guest) };
      if (held?.group && held.sharer === sharer) {
        if (!held.group.members.some((m) => m.guest === c.key)) held.group.members.push(member);
        continue;
      }
      if (held !== undefined) {
        conflicts.push({ guest: c.key, holder: held.holder, protocol, hostPort });
        continue;
      }
      if (sharer !== undefined) {
        const group: PortGroupConfig = {
          protocol,
          hostPort,
          ...(opts.hostAddress ? { hostAddress: opts.hostAddress } : {}),
          members: [member],
        };
        groups.push(group);
        taken.set(at, { holder: c.key, sharer, group });
        continue;
      }
      taken.set(at, { holder: c.key });
      c.net.ports!.push({
        protocol,
        guestPort: p.containerPort,
        hostPort,
        ...(opts.hostAddress ? { hostAddress: opts.hostAddress } : {}),
      } satisfies PublishedPort);
    }
  }
  // The configuration in a stable order (by key), so an unchanged state gives an identical config.
  const guests = candidates.map((c) => c.net).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const config: KratanetConfig = {
    hostLoopback: opts.hostLoopback ?? false,
    hostAccess: opts.hostAccess ?? false,
    guestSubnets: ipam.subnets(),
    guests,
  };
  if (groups.length) {
    for (const g of groups) g.members.sort((a, b) => (a.guest < b.guest ? -1 : a.guest > b.guest ? 1 : 0));
    config.portGroups = groups.sort((a, b) => a.protocol.localeCompare(b.protocol) || a.hostPort - b.hostPort);
  }
  if (opts.gatewayMac) config.gatewayMac = opts.gatewayMac;
  if (opts.denyCidrs?.length) config.denyCidrs = opts.denyCidrs;
  if (opts.allowCidrs?.length) config.allowCidrs = opts.allowCidrs;
  if (opts.hostBudget !== undefined) config.hostBudget = opts.hostBudget;
  if (opts.dialSocket !== undefined) config.dialSocket = opts.dialSocket;
  return config;
}

/** A port group's member takes new connections while its Ready condition is True and it is not being deleted. */
function isReady(g: Guest): boolean {
  return !g.metadata.deletionTimestamp && g.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}
