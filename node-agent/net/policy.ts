// Where a guest's flow may go (documented in node-agent/net/README.md), checked in this order:
// 1. the gateway address stands for dom0's loopback, reachable only when hostLoopback is allowed
//    (optionally only some ports);
// 2. other guests (addresses in the guest subnets) are unreachable: guests are isolated from each other;
// 3. loopback, unspecified, multicast, broadcast, link-local (cloud metadata), IETF-reserved and
//    IPv4-mapped addresses are unreachable; an IPv6 address carrying an IPv4 one (NAT64, 6to4, Teredo,
//    IPv4-compatible/translated: embedded-ipv4.ts) is unreachable if the IPv4 rules refuse the IPv4
//    address (with the guest's port), then goes on through the IPv6 rules;
// 4. dom0's own addresses are unreachable unless hostAccess is allowed;
// 5. an allow rule (CIDR, optionally ports) opens its destinations past 6 and 7;
// 6. deny rules (the cluster's pod and Service ranges, other nodes' networks...) are unreachable;
// 7. every network dom0 is part of is unreachable: the subnets its interfaces are attached to and every
//    destination its routing table reaches other than by a default route (host-networks.ts);
// 8. everything else (the world, behind dom0's default route) is reached from dom0 sockets.
// A guest's flows leave dom0 with dom0's own source address, so anything that trusts the node's address
// must be out of a guest's reach by default: hence 6 and 7 (issue 16).
import { embeddedIpv4 } from './embedded-ipv4.js';
import { readHostView, type HostView } from './host-networks.js';
import { PrefixTable } from './prefix-table.js';
import { formatIpv4, formatIpv6, ipv4InPrefix, ipv6InPrefix, parseCidr, parseIpv4, parseIpv6 } from './wire.js';

export interface PolicyOptions {
  /** Gateway address → dom0 loopback: false (default), true, or the ports allowed. */
  hostLoopback?: boolean | number[];
  /** dom0's own non-loopback addresses (its services) reachable from guests. Default false. */
  hostAccess?: boolean;
  /** Guest subnets (CIDR): isolated from each other. */
  guestSubnets: string[];
  /** Unreachable CIDRs besides dom0's own networks (the cluster's pod and Service ranges...). */
  denyCidrs?: string[];
  /** "CIDR[:PORTS]" (PORTS: P or P-Q, comma-separated): reachable despite denyCidrs and dom0's networks. */
  allowCidrs?: string[];
  /** dom0's addresses and networks (default: read from the kernel), re-read every 10 s. */
  hostView?: () => HostView;
}

/** `loopback`: the gateway address, mapped to dom0's loopback. */
export type Verdict = { allow: true; host: string; loopback?: boolean } | { allow: false; reason: string };

export interface CidrRule {
  text: string;
  v6: boolean;
  net4: number;
  net6: Buffer;
  prefix: number;
  /** Port ranges (inclusive); null: every port (and ICMP echo). */
  ports: [number, number][] | null;
}

/** Parses "CIDR" or "CIDR:PORTS" (PORTS: P or P-Q, comma-separated; with ports: TCP and UDP only). */
export function parseCidrRule(text: string, withPorts = true): CidrRule {
  const m = /^([^/]+\/\d{1,3})(?::(.*))?$/.exec(text);
  if (!m) throw new Error(`${JSON.stringify(text)} is not CIDR${withPorts ? '[:PORTS]' : ''}`);
  if (m[2] !== undefined && !withPorts) throw new Error(`${JSON.stringify(text)}: no ports here, only a CIDR`);
  const c = parseCidr(m[1]!);
  let ports: [number, number][] | null = null;
  if (m[2] !== undefined) {
    ports = m[2].split(',').map((r) => {
      const p = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(r);
      const lo = Number(p?.[1]);
      const hi = p?.[2] === undefined ? lo : Number(p[2]);
      if (!p || lo < 1 || hi > 65535 || hi < lo)
        throw new Error(`${JSON.stringify(text)}: ports ${JSON.stringify(r)}: want P or P-Q within 1-65535`);
      return [lo, hi];
    });
  }
  return {
    text,
    v6: c.v6,
    net4: c.v6 ? 0 : parseIpv4(c.address),
    net6: c.v6 ? parseIpv6(c.address) : Buffer.alloc(16),
    prefix: c.prefix,
    ports,
  };
}

const LOCAL_REFRESH_MS = 10_000;

export class Policy {
  private readonly guests4: { net: number; prefix: number }[] = [];
  private readonly guests6: { net: Buffer; prefix: number }[] = [];
  private readonly deny: CidrRule[];
  private readonly allowRules: CidrRule[];
  private readonly hostView: () => HostView;
  private local4 = new Set<number>();
  private local6 = new Set<string>();
  private nodeNets = new PrefixTable<string>();
  private localAt = -Infinity;

  constructor(readonly opts: PolicyOptions) {
    for (const cidr of opts.guestSubnets) {
      const [addr, prefix] = cidr.split('/') as [string, string];
      if (addr.includes(':')) this.guests6.push({ net: parseIpv6(addr), prefix: Number(prefix) });
      else this.guests4.push({ net: parseIpv4(addr), prefix: Number(prefix) });
    }
    this.deny = (opts.denyCidrs ?? []).map((c) => parseCidrRule(c, false));
    this.allowRules = (opts.allowCidrs ?? []).map((c) => parseCidrRule(c));
    this.hostView = opts.hostView ?? readHostView;
  }

  private loopbackAllowed(port: number): boolean {
    const l = this.opts.hostLoopback;
    return l === true || (Array.isArray(l) && l.includes(port));
  }

  private refreshLocal(): void {
    const now = Date.now();
    if (now - this.localAt < LOCAL_REFRESH_MS) return;
    this.localAt = now;
    const view = this.hostView();
    const l4 = new Set<number>();
    const l6 = new Set<string>();
    for (const a of view.addrs) {
      if (a.includes(':')) l6.add(parseIpv6(a).toString('latin1'));
      else l4.add(parseIpv4(a));
    }
    const nets = new PrefixTable<string>();
    for (const n of view.nets) {
      try {
        nets.add(n.cidr, `${n.cidr} ${n.label}`);
      } catch {
        // not a prefix we can read: skipped rather than trusted
      }
    }
    this.local4 = l4;
    this.local6 = l6;
    this.nodeNets = nets;
  }

  private static portOk(r: CidrRule, port: number): boolean {
    return r.ports === null || r.ports.some(([lo, hi]) => port >= lo && port <= hi);
  }

  /** Destination of a guest flow to `ip` (IPv4 number) and `port` (0: ICMP echo); `gateway` is the guest's gateway. */
  v4(ip: number, port: number, gateway: number): Verdict {
    if (ip === gateway)
      return this.loopbackAllowed(port)
        ? { allow: true, host: '127.0.0.1', loopback: true }
        : { allow: false, reason: 'host loopback not allowed' };
    for (const n of this.guests4) if (ipv4InPrefix(ip, n.net, n.prefix)) return { allow: false, reason: 'guest-to-guest' };
    const first = ip >>> 24;
    if (first === 0 || first === 127 || first >= 224) return { allow: false, reason: 'special address' };
    // Link-local (cloud metadata services answer there, trusting dom0) and IETF protocol assignments.
    if (ip >>> 16 === 0xa9fe || ip >>> 8 === 0xc00000) return { allow: false, reason: 'link-local or reserved' };
    this.refreshLocal();
    if (this.local4.has(ip))
      return this.opts.hostAccess ? { allow: true, host: formatIpv4(ip) } : { allow: false, reason: "dom0's own address" };
    for (const r of this.allowRules)
      if (!r.v6 && ipv4InPrefix(ip, r.net4, r.prefix) && Policy.portOk(r, port)) return { allow: true, host: formatIpv4(ip) };
    for (const r of this.deny) if (!r.v6 && ipv4InPrefix(ip, r.net4, r.prefix)) return { allow: false, reason: `deny-cidr ${r.text}` };
    const net = this.nodeNets.match4(ip);
    if (net !== undefined) return { allow: false, reason: `node network ${net}` };
    return { allow: true, host: formatIpv4(ip) };
  }

  /** Destination of a guest flow to the IPv6 address at buf[off..off+16). */
  v6(buf: Buffer, off: number, port: number, gateway: Buffer): Verdict {
    let same = true;
    for (let i = 0; i < 16; i++) if (buf[off + i] !== gateway[i]) same = false;
    if (same)
      return this.loopbackAllowed(port)
        ? { allow: true, host: '::1', loopback: true }
        : { allow: false, reason: 'host loopback not allowed' };
    for (const n of this.guests6) if (ipv6InPrefix(buf, off, n.net, n.prefix)) return { allow: false, reason: 'guest-to-guest' };
    const b0 = buf[off]!;
    if (b0 === 0xff || (b0 === 0xfe && (buf[off + 1]! & 0xc0) === 0x80)) return { allow: false, reason: 'multicast or link-local' };
    let zeroHead = true;
    for (let i = 0; i < 15; i++) if (buf[off + i] !== 0) zeroHead = false;
    if (zeroHead) return { allow: false, reason: 'special address' }; // :: and ::1
    // IPv4-mapped addresses would reach IPv4 space around the IPv4 rules.
    let mapped = buf[off + 10] === 0xff && buf[off + 11] === 0xff;
    for (let i = 0; i < 10; i++) if (buf[off + i] !== 0) mapped = false;
    if (mapped) return { allow: false, reason: 'IPv4-mapped address' };
    // So would NAT64, 6to4 and the like, when dom0 routes them: the IPv4 verdict applies as well. No
    // IPv4 gateway here (-1): the guest's IPv4 gateway is in a guest subnet, refused as such.
    for (const e of embeddedIpv4(buf, off)) {
      const v = this.v4(e.ip, port, -1);
      if (!v.allow) return { allow: false, reason: `${e.form} ${formatIpv4(e.ip)}: ${v.reason}` };
    }
    this.refreshLocal();
    const key = buf.toString('latin1', off, off + 16);
    if (this.local6.has(key))
      return this.opts.hostAccess ? { allow: true, host: formatIpv6(buf, off) } : { allow: false, reason: "dom0's own address" };
    for (const r of this.allowRules)
      if (r.v6 && ipv6InPrefix(buf, off, r.net6, r.prefix) && Policy.portOk(r, port)) return { allow: true, host: formatIpv6(buf, off) };
    for (const r of this.deny) if (r.v6 && ipv6InPrefix(buf, off, r.net6, r.prefix)) return { allow: false, reason: `deny-cidr ${r.text}` };
    const net = this.nodeNets.match6(buf, off);
    if (net !== undefined) return { allow: false, reason: `node network ${net}` };
    return { allow: true, host: formatIpv6(buf, off) };
  }
}
