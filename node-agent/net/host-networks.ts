// What dom0 is part of, as the kernel says it: its own addresses, the subnets its interfaces are
// attached to, and every network its main routing table reaches by something other than a default
// route (CNI pod routes, other nodes' pod blocks, tunnels, VPNs, Docker bridges...). Guests may reach
// none of these unless an allow rule says so: they are the cluster and the node's neighbours, not "the
// outside world", which dom0 reaches through its default route.
import { readFileSync } from 'node:fs';
import { endianness, networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { networkOf } from './prefix-table.js';
import { formatIpv4, formatIpv6 } from './wire.js';

export interface HostNetwork {
  cidr: string;
  /** Where it comes from, for verdict reasons: "10.0.2.0/24 on eth0 (attached)". */
  label: string;
}

export interface HostView {
  /** dom0's own addresses. */
  addrs: string[];
  nets: HostNetwork[];
}

const RTF_CACHE = 0x01000000;

/** /proc/net/route: every IPv4 route of the main table but the default (mask 0). */
export function parseRoutes4(text: string, le = endianness() === 'LE'): HostNetwork[] {
  const out: HostNetwork[] = [];
  const word = (hex: string): number => {
    // The kernel prints the network-order word as a host-order number.
    const b = Buffer.alloc(4);
    if (le) b.writeUInt32LE(parseInt(hex, 16) >>> 0);
    else b.writeUInt32BE(parseInt(hex, 16) >>> 0);
    return b.readUInt32BE(0);
  };
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !/^[0-9A-Fa-f]{8}$/.test(f[1]!) || !/^[0-9A-Fa-f]{8}$/.test(f[7]!)) continue;
    const mask = word(f[7]!);
    if (mask === 0) continue;
    const prefix = Math.clz32(~mask >>> 0); // masks are contiguous: the leading ones
    out.push({ cidr: `${formatIpv4((word(f[1]!) & mask) >>> 0)}/${prefix}`, label: `on ${f[0]} (route)` });
  }
  return out;
}

/** /proc/net/ipv6_route: every IPv6 route but defaults (length 0) and cached exceptions. */
export function parseRoutes6(text: string): HostNetwork[] {
  const out: HostNetwork[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^[0-9a-f]{32}$/i.test(f[0]!)) continue;
    const prefix = parseInt(f[1]!, 16);
    const flags = parseInt(f[8]!, 16);
    if (!(prefix > 0 && prefix <= 128) || flags & RTF_CACHE) continue;
    out.push({ cidr: `${formatIpv6(Buffer.from(f[0]!, 'hex'))}/${prefix}`, label: `on ${f[9]} (route)` });
  }
  return out;
}

/** The addresses of dom0's interfaces that are up, and the subnets they are attached to. */
export function interfaceNetworks(ifaces: NodeJS.Dict<NetworkInterfaceInfo[]>): HostView {
  const view: HostView = { addrs: [], nets: [] };
  for (const [name, addrs] of Object.entries(ifaces)) {
    for (const a of addrs ?? []) {
      const address = a.address.split('%')[0]!;
      view.addrs.push(address);
      if (!a.cidr) continue;
      try {
        view.nets.push({ cidr: networkOf(`${address}/${a.cidr.split('/')[1]}`), label: `on ${name} (attached)` });
      } catch {
        // not an address we can read (never seen): its routes still count
      }
    }
  }
  return view;
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return ''; // no IPv6 in this kernel, or no /proc: the interface list still counts
  }
}

/** dom0's addresses and networks, read now. */
export function readHostView(): HostView {
  const view = interfaceNetworks(networkInterfaces());
  view.nets.push(...parseRoutes4(readOr('/proc/net/route')), ...parseRoutes6(readOr('/proc/net/ipv6_route')));
  return view;
}
