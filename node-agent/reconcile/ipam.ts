// Address reservations for guests: one IPv4 and one IPv6 address and a MAC per Guest (by uid),
// persisted so that a guest keeps its addresses across agent restarts and domain recreation, and
// released on delete. krata's defaults: 10.75.0.0/16 and fdd4:1476:6c7e::/48, gateway = first host.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../lib/atomic-file.js';
import type { AddressReservation } from '../net/desired.js';

/** One Guest's addresses; kratanet (net/desired.ts) serves them, so the shape is declared there. */
export type Reservation = AddressReservation;

export interface IpamOptions {
  ipv4Subnet?: string;
  ipv6Subnet?: string;
}

function parseV4(cidr: string): { base: number; prefix: number } {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 30 || Number(m[5]) < 8)
    throw new Error(`IPv4 subnet ${JSON.stringify(cidr)} is not a CIDR between /8 and /30`);
  const base = m.slice(1, 5).reduce((a, o) => a * 256 + Number(o), 0);
  const prefix = Number(m[5]);
  return { base: base - (base % 2 ** (32 - prefix)), prefix };
}

function formatV4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

function parseV6Prefix(cidr: string): { groups: string[]; prefix: number } {
  const m = /^([0-9a-f:]+)\/(\d+)$/i.exec(cidr);
  if (!m || Number(m[2]) > 112 || Number(m[2]) % 16 !== 0)
    throw new Error(`IPv6 subnet ${JSON.stringify(cidr)} must be a CIDR with a prefix that is a multiple of 16, at most /112`);
  const [head, tail = ''] = m[1]!.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16).toString(16));
  return { groups: groups.slice(0, Number(m[2]) / 16), prefix: Number(m[2]) };
}

/** RFC 5952 text: the longest run of two or more zero groups becomes "::". */
function compressV6(groups: string[]): string {
  let best = [-1, 0];
  for (let i = 0; i < groups.length;) {
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > best[1]! && j - i >= 2) best = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best[0]! < 0) return groups.join(':');
  return `${groups.slice(0, best[0]).join(':')}::${groups.slice(best[0]! + best[1]!).join(':')}`;
}

export class Ipam {
  private readonly file: string;
  private readonly byKey: Map<string, Reservation>;
  private readonly v4: { base: number; prefix: number };
  private readonly v6: { groups: string[]; prefix: number };

  constructor(stateDir: string, opts: IpamOptions = {}) {
    const dir = join(stateDir, 'network');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = join(dir, 'reservations.json');
    this.v4 = parseV4(opts.ipv4Subnet ?? '10.75.0.0/16');
    this.v6 = parseV6Prefix(opts.ipv6Subnet ?? 'fdd4:1476:6c7e::/48');
    this.byKey = new Map(
      existsSync(this.file) ? Object.entries(JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, Reservation>) : [],
    );
  }

  private v6Address(n: number): string {
    const groups = [...this.v6.groups];
    while (groups.length < 6) groups.push('0');
    groups.push(Math.floor(n / 65536).toString(16), (n % 65536).toString(16));
    return compressV6(groups);
  }

  /** The subnets guests' addresses come from, as CIDRs: IPv4, then IPv6. */
  subnets(): string[] {
    const v6 = [...this.v6.groups];
    while (v6.length < 8) v6.push('0');
    return [`${formatV4(this.v4.base)}/${this.v4.prefix}`, `${compressV6(v6)}/${this.v6.prefix}`];
  }

  get(key: string): Reservation | undefined {
    return this.byKey.get(key);
  }

  /** The Guest's reservation, made (and persisted) on first use; a new uid under the same key gets a new one. */
  reserve(key: string, uid: string): Reservation {
    const old = this.byKey.get(key);
    if (old && old.uid === uid) return old;
    const used = new Set([...this.byKey.entries()].filter(([k]) => k !== key).map(([, r]) => r.ipv4));
    const size = 2 ** (32 - this.v4.prefix);
    for (let host = 2; host < size - 1; host++) {
      const ipv4 = formatV4(this.v4.base + host);
      if (used.has(ipv4)) continue;
      const mac = `02:4b:${[24, 16, 8, 0].map((s) => (Math.floor(host / 2 ** s) % 256).toString(16).padStart(2, '0')).join(':')}`;
      const r: Reservation = {
        uid,
        ipv4,
        ipv6: this.v6Address(host),
        mac,
        prefix4: this.v4.prefix,
        prefix6: 64,
        gateway4: formatV4(this.v4.base + 1),
        gateway6: this.v6Address(1),
      };
      this.byKey.set(key, r);
      this.save();
      return r;
    }
    throw new Error(`no free IPv4 address left in ${formatV4(this.v4.base)}/${this.v4.prefix}`);
  }

  release(key: string): void {
    if (this.byKey.delete(key)) this.save();
  }

  keys(): string[] {
    return [...this.byKey.keys()];
  }

  private save(): void {
    writeFileAtomic(this.file, JSON.stringify(Object.fromEntries(this.byKey), null, 1), 0o600);
  }
}
