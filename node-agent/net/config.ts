// kratanet's configuration: the guests to serve and the host-wide policy. Written by the node agent (or
// by hand for a test or a benchmark); every field is checked and an error names it.
import type { GuestNetConfig, PublishedPort } from './backend.js';
import { parseCidrRule } from './policy.js';
import { parseCidr, parseIpv4, parseIpv6, parseMac } from './wire.js';

export interface KratanetConfig {
  /** The gateway's MAC on every guest link (default 02:4b:00:00:00:01, the address plan's host 1). */
  gatewayMac?: string;
  /** Guests reach dom0's loopback at their gateway address: false (default), true, or these ports. */
  hostLoopback?: boolean | number[];
  /** Guests reach dom0's own addresses. Default false. */
  hostAccess?: boolean;
  /** Isolated from each other (default krata's 10.75.0.0/16 and fdd4:1476:6c7e::/48). */
  guestSubnets?: string[];
  /** CIDRs guests may not reach, besides dom0's own networks (the cluster's pod and Service ranges...). */
  denyCidrs?: string[];
  /** "CIDR[:PORTS]" guests may reach despite denyCidrs and dom0's networks (never another guest). */
  allowCidrs?: string[];
  /** Bytes all guests' flows together may buffer in dom0 (default 1 GiB; each guest also has 256 MiB). */
  hostBudget?: number;
  /** New flows each guest may open a second (default 1000, a burst of twice that; over it they are dropped). */
  flowRate?: number;
  /** The unix socket dom0 dials guests' ports through (dial-service.ts); its directory 0700. None without it. */
  dialSocket?: string;
  guests: GuestNetConfig[];
  /** Host ports several guests share (a GuestSet's replicas): bound once, balanced over the ready members. */
  portGroups?: PortGroupConfig[];
}

/** One published port shared by `members`; each new TCP connection or UDP flow goes to one that is ready. */
export interface PortGroupConfig {
  protocol: 'TCP' | 'UDP';
  hostPort: number;
  hostAddress?: string;
  members: PortGroupMember[];
}

export interface PortGroupMember {
  /** A guest of `guests` (its id). */
  guest: string;
  guestPort: number;
  ready: boolean;
}

export const DEFAULT_GATEWAY_MAC = '02:4b:00:00:00:01';
export const DEFAULT_GUEST_SUBNETS = ['10.75.0.0/16', 'fdd4:1476:6c7e::/48'];
export const DEFAULT_HOST_BUDGET = 1 << 30;
const MIN_HOST_BUDGET = 1 << 20;
const MAX_FLOW_RATE = 1_000_000;
/** sun_path holds 108 bytes with the terminating NUL. */
export const MAX_SOCKET_PATH = 107;

export class ConfigError extends Error {}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

function fail(where: string, field: string, detail: string): never {
  throw new ConfigError(`${where}: ${field}: ${detail}`);
}

function str(where: string, o: Record<string, unknown>, field: string, check?: (s: string) => unknown): string {
  const v = o[field];
  if (typeof v !== 'string' || v === '') fail(where, field, 'must be a non-empty string');
  if (check) {
    try {
      check(v);
    } catch (e) {
      fail(where, field, (e as Error).message);
    }
  }
  return v;
}

function port(where: string, field: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) fail(where, field, 'must be an integer 1-65535');
  return v as number;
}

export function validateConfig(raw: unknown, where = 'config'): KratanetConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(where, '(root)', 'must be an object');
  const o = raw as Record<string, unknown>;
  const known = new Set([
    'gatewayMac',
    'hostLoopback',
    'hostAccess',
    'guestSubnets',
    'denyCidrs',
    'allowCidrs',
    'hostBudget',
    'flowRate',
    'dialSocket',
    'guests',
    'portGroups',
  ]);
  for (const k of Object.keys(o)) if (!known.has(k)) fail(where, k, 'unknown field');
  const cfg: KratanetConfig = { guests: [] };
  if (o.gatewayMac !== undefined) cfg.gatewayMac = str(where, o, 'gatewayMac', parseMac);
  if (o.hostLoopback !== undefined) {
    const h = o.hostLoopback;
    if (typeof h === 'boolean') cfg.hostLoopback = h;
    else if (Array.isArray(h)) cfg.hostLoopback = h.map((x, i) => port(where, `hostLoopback[${i}]`, x));
    else fail(where, 'hostLoopback', 'must be a boolean or a list of ports');
  }
  if (o.hostAccess !== undefined) {
    if (typeof o.hostAccess !== 'boolean') fail(where, 'hostAccess', 'must be a boolean');
    cfg.hostAccess = o.hostAccess;
  }
  if (o.guestSubnets !== undefined) {
    if (!Array.isArray(o.guestSubnets)) fail(where, 'guestSubnets', 'must be a list of CIDRs');
    cfg.guestSubnets = o.guestSubnets.map((s, i) => {
      if (typeof s !== 'string') fail(where, `guestSubnets[${i}]`, 'must be a CIDR');
      try {
        parseCidr(s);
      } catch (e) {
        fail(where, `guestSubnets[${i}]`, (e as Error).message);
      }
      return s;
    });
  }
  for (const field of ['denyCidrs', 'allowCidrs'] as const) {
    const v = o[field];
    if (v === undefined) continue;
    const what = field === 'denyCidrs' ? 'CIDRs' : 'CIDR[:PORTS] rules';
    if (!Array.isArray(v)) fail(where, field, `must be a list of ${what}`);
    cfg[field] = v.map((s, i) => {
      if (typeof s !== 'string') fail(where, `${field}[${i}]`, `must be a string (${what})`);
      try {
        parseCidrRule(s, field === 'allowCidrs');
      } catch (e) {
        fail(where, `${field}[${i}]`, (e as Error).message);
      }
      return s;
    });
  }
  if (o.flowRate !== undefined) {
    const r = o.flowRate;
    if (!Number.isInteger(r) || (r as number) < 1 || (r as number) > MAX_FLOW_RATE)
      fail(where, 'flowRate', `must be a whole number of flows a second, 1-${MAX_FLOW_RATE}`);
    cfg.flowRate = r as number;
  }
  if (o.hostBudget !== undefined) {
    const b = o.hostBudget;
    if (!Number.isSafeInteger(b) || (b as number) < MIN_HOST_BUDGET)
      fail(where, 'hostBudget', `must be a whole number of bytes, at least ${MIN_HOST_BUDGET}`);
    cfg.hostBudget = b as number;
  }
  if (o.dialSocket !== undefined) {
    const p = str(where, o, 'dialSocket');
    if (!p.startsWith('/') || Buffer.byteLength(p) > MAX_SOCKET_PATH)
      fail(where, 'dialSocket', `must be an absolute path of at most ${MAX_SOCKET_PATH} bytes`);
    cfg.dialSocket = p;
  }
  if (!Array.isArray(o.guests)) fail(where, 'guests', 'must be a list');
  const ids = new Set<string>();
  const ifs = new Set<string>();
  o.guests.forEach((g, i) => {
    const at = `guests[${i}]`;
    if (typeof g !== 'object' || g === null) fail(where, at, 'must be an object');
    const r = g as Record<string, unknown>;
    const guest: GuestNetConfig = {
      id: str(where, r, 'id'),
      interface: str(where, r, 'interface', (s) => {
        if (!IFNAME.test(s)) throw new Error('is not an interface name');
      }),
      mac: str(where, r, 'mac', parseMac),
      ipv4: str(where, r, 'ipv4', (s) => {
        if (parseCidr(s).v6) throw new Error('is not an IPv4 CIDR');
      }),
      ipv6: str(where, r, 'ipv6', (s) => {
        if (!parseCidr(s).v6) throw new Error('is not an IPv6 CIDR');
      }),
      gateway4: str(where, r, 'gateway4', parseIpv4),
      gateway6: str(where, r, 'gateway6', parseIpv6),
      ports: [],
    };
    if (r.tap !== undefined) guest.tap = r.tap === true;
    if (ids.has(guest.id)) fail(where, `${at}.id`, `duplicate id ${guest.id}`);
    if (ifs.has(guest.interface)) fail(where, `${at}.interface`, `duplicate interface ${guest.interface}`);
    ids.add(guest.id);
    ifs.add(guest.interface);
    if (r.ports !== undefined) {
      if (!Array.isArray(r.ports)) fail(where, `${at}.ports`, 'must be a list');
      guest.ports = r.ports.map((p, j): PublishedPort => {
        const pat = `${at}.ports[${j}]`;
        if (typeof p !== 'object' || p === null) fail(where, pat, 'must be an object');
        const q = p as Record<string, unknown>;
        const protocol = q.protocol ?? 'TCP';
        if (protocol !== 'TCP' && protocol !== 'UDP') fail(where, `${pat}.protocol`, 'must be TCP or UDP');
        const guestPort = port(where, `${pat}.guestPort`, q.guestPort);
        const out: PublishedPort = {
          protocol,
          guestPort,
          hostPort: q.hostPort === undefined ? guestPort : port(where, `${pat}.hostPort`, q.hostPort),
        };
        if (q.hostAddress !== undefined) out.hostAddress = str(where, q, 'hostAddress');
        return out;
      });
    }
    cfg.guests.push(guest);
  });
  if (o.portGroups !== undefined) cfg.portGroups = portGroups(where, o.portGroups, cfg.guests);
  return cfg;
}

function portGroups(where: string, raw: unknown, guests: GuestNetConfig[]): PortGroupConfig[] {
  if (!Array.isArray(raw)) fail(where, 'portGroups', 'must be a list');
  const ids = new Set(guests.map((g) => g.id));
  // A host port is published once: by one guest or by one group.
  const taken = new Set(guests.flatMap((g) => (g.ports ?? []).map((p) => `${p.protocol}/${p.hostPort}`)));
  return raw.map((g, i): PortGroupConfig => {
    const at = `portGroups[${i}]`;
    if (typeof g !== 'object' || g === null || Array.isArray(g)) fail(where, at, 'must be an object');
    const r = g as Record<string, unknown>;
    for (const k of Object.keys(r))
      if (!['protocol', 'hostPort', 'hostAddress', 'members'].includes(k)) fail(where, `${at}.${k}`, 'unknown field');
    const protocol = r.protocol ?? 'TCP';
    if (protocol !== 'TCP' && protocol !== 'UDP') fail(where, `${at}.protocol`, 'must be TCP or UDP');
    const out: PortGroupConfig = { protocol, hostPort: port(where, `${at}.hostPort`, r.hostPort), members: [] };
    if (r.hostAddress !== undefined) out.hostAddress = str(where, r, 'hostAddress');
    const key = `${protocol}/${out.hostPort}`;
    if (taken.has(key)) fail(where, `${at}.hostPort`, `${key} is published twice`);
    taken.add(key);
    if (!Array.isArray(r.members) || r.members.length === 0) fail(where, `${at}.members`, 'must be a non-empty list');
    const seen = new Set<string>();
    r.members.forEach((m, j) => {
      const mat = `${at}.members[${j}]`;
      if (typeof m !== 'object' || m === null) fail(where, mat, 'must be an object');
      const q = m as Record<string, unknown>;
      const guest = str(where, q, 'guest');
      if (!ids.has(guest)) fail(where, `${mat}.guest`, `${guest} is not in guests`);
      if (seen.has(guest)) fail(where, `${mat}.guest`, `duplicate member ${guest}`);
      seen.add(guest);
      if (typeof q.ready !== 'boolean') fail(where, `${mat}.ready`, 'must be a boolean');
      out.members.push({ guest, guestPort: port(where, `${mat}.guestPort`, q.guestPort), ready: q.ready });
    });
    return out;
  });
}
