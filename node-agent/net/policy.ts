// Where a guest's flow may go (documented in ARCHITECTURE.md, "kratanet"):
// - the gateway address stands for dom0's loopback, reachable only when hostLoopback is allowed
//   (optionally only some ports);
// - other guests (addresses in the guest subnets) are unreachable: guests are isolated from each other;
// - dom0's own addresses, loopback, unspecified, multicast and broadcast are unreachable unless
//   hostAccess is allowed;
// - everything else is reached from dom0 sockets.
import { networkInterfaces } from 'node:os';
import { formatIpv4, formatIpv6, ipv4InPrefix, ipv6InPrefix, parseIpv4, parseIpv6 } from './wire.js';

export interface PolicyOptions {
  /** Gateway address → dom0 loopback: false (default), true, or the ports allowed. */
  hostLoopback?: boolean | number[];
  /** dom0's own non-loopback addresses (its services) reachable from guests. Default false. */
  hostAccess?: boolean;
  /** Guest subnets (CIDR): isolated from each other. */
  guestSubnets: string[];
}

/** `loopback`: the gateway address, mapped to dom0's loopback. */
export type Verdict = { allow: true; host: string; loopback?: boolean } | { allow: false; reason: string };

const LOCAL_REFRESH_MS = 10_000;

export class Policy {
  private readonly v4Nets: { net: number; prefix: number }[] = [];
  private readonly v6Nets: { net: Buffer; prefix: number }[] = [];
  private local4 = new Set<number>();
  private local6 = new Set<string>();
  private localAt = 0;

  constructor(readonly opts: PolicyOptions) {
    for (const cidr of opts.guestSubnets) {
      const [addr, prefix] = cidr.split('/') as [string, string];
      if (addr.includes(':')) this.v6Nets.push({ net: parseIpv6(addr), prefix: Number(prefix) });
      else this.v4Nets.push({ net: parseIpv4(addr), prefix: Number(prefix) });
    }
  }

  private loopbackAllowed(port: number): boolean {
    const l = this.opts.hostLoopback;
    return l === true || (Array.isArray(l) && l.includes(port));
  }

  private refreshLocal(): void {
    const now = Date.now();
    if (now - this.localAt < LOCAL_REFRESH_MS) return;
    this.localAt = now;
    const l4 = new Set<number>();
    const l6 = new Set<string>();
    for (const addrs of Object.values(networkInterfaces())) {
      for (const a of addrs ?? []) {
        if (a.family === 'IPv4') l4.add(parseIpv4(a.address));
        else l6.add(parseIpv6(a.address.split('%')[0]!).toString('latin1'));
      }
    }
    this.local4 = l4;
    this.local6 = l6;
  }

  /** Destination of a guest flow to `ip` (IPv4 number) and `port`; `gateway` is the guest's gateway. */
  v4(ip: number, port: number, gateway: number): Verdict {
    if (ip === gateway) return this.loopbackAllowed(port) ? { allow: true, host: '127.0.0.1', loopback: true } : { allow: false, reason: 'host loopback not allowed' };
    for (const n of this.v4Nets) if (ipv4InPrefix(ip, n.net, n.prefix)) return { allow: false, reason: 'guest-to-guest' };
    const first = ip >>> 24;
    if (first === 0 || first === 127 || first >= 224) return { allow: false, reason: 'special address' };
    // Link-local (cloud metadata services answer there, trusting dom0) and IETF protocol assignments.
    if (ip >>> 16 === 0xa9fe || ip >>> 8 === 0xc00000) return { allow: false, reason: 'link-local or reserved' };
    this.refreshLocal();
    if (this.local4.has(ip) && !this.opts.hostAccess) return { allow: false, reason: "dom0's own address" };
    return { allow: true, host: formatIpv4(ip) };
  }

  /** Destination of a guest flow to the IPv6 address at buf[off..off+16). */
  v6(buf: Buffer, off: number, port: number, gateway: Buffer): Verdict {
    let same = true;
    for (let i = 0; i < 16; i++) if (buf[off + i] !== gateway[i]) same = false;
    if (same) return this.loopbackAllowed(port) ? { allow: true, host: '::1', loopback: true } : { allow: false, reason: 'host loopback not allowed' };
    for (const n of this.v6Nets) if (ipv6InPrefix(buf, off, n.net, n.prefix)) return { allow: false, reason: 'guest-to-guest' };
    const b0 = buf[off]!;
    if (b0 === 0xff || (b0 === 0xfe && (buf[off + 1]! & 0xc0) === 0x80)) return { allow: false, reason: 'multicast or link-local' };
    let zeroHead = true;
    for (let i = 0; i < 15; i++) if (buf[off + i] !== 0) zeroHead = false;
    if (zeroHead) return { allow: false, reason: 'special address' }; // :: and ::1
    // IPv4-mapped addresses would reach IPv4 space around the IPv4 rules.
    let mapped = buf[off + 10] === 0xff && buf[off + 11] === 0xff;
    for (let i = 0; i < 10; i++) if (buf[off + i] !== 0) mapped = false;
    if (mapped) return { allow: false, reason: 'IPv4-mapped address' };
    this.refreshLocal();
    const key = buf.toString('latin1', off, off + 16);
    if (this.local6.has(key) && !this.opts.hostAccess) return { allow: false, reason: "dom0's own address" };
    return { allow: true, host: formatIpv6(buf, off) };
  }
}
