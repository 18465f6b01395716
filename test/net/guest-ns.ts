// Network-namespace "guests" for kratanet's tests and the `net` benchmark: a namespace whose kernel
// TCP/IP stack is configured the way guest-init configures a Xen guest (eth0, MTU 1500, 10.75.0.2/16
// via 10.75.0.1, fdd4:1476:6c7e::2/64 via ::1, lo up, offloads at the kernel's defaults), so the
// guest side of a backend is a real Linux stack without booting anything.
//
// createVethGuest: a veth pair, eth0 inside the namespace and `hostIf` in the root namespace, up with
// no addresses, IPv6 off and ARP silenced, so only a userspace backend (AF_PACKET on hostIf) talks to
// the guest. createBareGuest: a namespace with only lo, for slirp4netns and pasta, which make their
// own tap inside (they take the namespace's path or name). createTapGuest: eth0 is a TAP a backend
// made outside, moved in.
//
// Needs root. Names are random per process, so test processes running at once never collide, and a
// guest left behind by a killed process is swept by the next process (of the same PID namespace) to
// create one.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface GuestNsOptions {
  /** Namespace name; also the host interface's name for veth guests (at most 15 characters). Default: unique per process. */
  name?: string;
  /** CIDR. Default 10.75.0.2/16. */
  ipv4?: string;
  /** Default 10.75.0.1. */
  gateway4?: string;
  /** CIDR. Default fdd4:1476:6c7e::2/64. */
  ipv6?: string;
  /** Default fdd4:1476:6c7e::1. */
  gateway6?: string;
  /** Default 1500, on both ends of the veth. */
  mtu?: number;
  /** eth0's MAC. Default: random, locally administered, unicast. */
  mac?: string;
}

export interface ExecResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

export interface ExecOptions {
  /** Kill the command (SIGKILL) and reject after this long. Default 30 s. */
  timeoutMs?: number;
  input?: Buffer;
}

/** A network namespace with only lo (up). */
export interface GuestNs {
  /** The namespace's name (`ip netns`). */
  readonly ns: string;
  /** /run/netns/NAME: what slirp4netns --netns-type=path and pasta --netns take. */
  readonly path: string;
  /** Runs `ip netns exec NS cmd...` to completion; resolves with its exit code (never rejects on a non-zero one). */
  exec(cmd: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** `ip netns exec NS cmd...`, stdio piped; destroy() kills it. */
  spawn(cmd: string[]): ChildProcess;
  /** Kills every process in the namespace, deletes it (and the veth); idempotent. */
  destroy(): Promise<void>;
}

/** A namespace whose eth0 is one end of a veth pair; the other end, hostIf, is in the root namespace. */
export interface VethGuest extends GuestNs {
  /** The veth's host end: up, no addresses, IPv6 disabled, answers no ARP. */
  readonly hostIf: string;
  /** eth0's MAC. */
  readonly mac: string;
  readonly ipv4: string;
  readonly gateway4: string;
  readonly ipv6: string;
  readonly gateway6: string;
  readonly mtu: number;
}

export const GUEST_DEFAULTS = {
  ipv4: '10.75.0.2/16',
  gateway4: '10.75.0.1',
  ipv6: 'fdd4:1476:6c7e::2/64',
  gateway6: 'fdd4:1476:6c7e::1',
  mtu: 1500,
} as const;

// kt + 8 random base-36 characters fixed per process + a counter: at most 15 characters (IFNAMSIZ - 1)
// for the first 36^5 guests. Random rather than the PID: sessions in other PID namespaces share
// /run/netns and the root network namespace with us, and their PIDs can equal ours.
const PREFIX = `kt${randomBytes(8).reduce((acc, x) => acc + (x % 36).toString(36), '')}`;
let counter = 0;
const live = new Set<Guest>();
let swept = false;

/**
 * Who owns a guest: OWNERS/NAME holds "PIDNS PID STARTTIME" of the process that created it, so a later
 * process can tell a guest left behind by a dead one (same PID namespace, PID gone or reused) from
 * one a live process, maybe in another PID namespace, still uses.
 */
const OWNERS = '/run/krata-test-netns';

function selfIdentity(): string {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  return `${readlinkSync('/proc/self/ns/pid')} ${process.pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
}

function claim(name: string): void {
  mkdirSync(OWNERS, { recursive: true });
  writeFileSync(join(OWNERS, name), selfIdentity());
}

function release(name: string): void {
  rmSync(join(OWNERS, name), { force: true });
}

/** Whether the owner recorded for `name` is in our PID namespace and no longer running. */
function ownerDead(name: string): boolean {
  let pidns: string | undefined, pid: string | undefined, start: string | undefined;
  try {
    [pidns, pid, start] = readFileSync(join(OWNERS, name), 'utf8').trim().split(' ');
  } catch {
    return false; // not ours to judge
  }
  if (pidns !== readlinkSync('/proc/self/ns/pid')) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] !== start; // PID reused by another process
  } catch {
    return true;
  }
}

function ip(args: string[], input?: string): string {
  return execFileSync('ip', args, {
    input,
    encoding: 'utf8',
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    timeout: 10_000,
  });
}

function uniqueName(): string {
  return `${PREFIX}${(counter++).toString(36)}`;
}

/** Deletes namespaces and host interfaces that a process no longer running left behind. */
function sweepStale(): void {
  if (swept) return;
  swept = true;
  try {
    if (!existsSync(OWNERS)) return;
    for (const name of readdirSync(OWNERS)) {
      if (!ownerDead(name)) continue;
      killAndDelete(name);
      deleteLink(name);
      release(name);
    }
  } catch {
    // best effort: a sweep must never stop a test
  }
}

function nsPids(ns: string): number[] {
  try {
    return ip(['netns', 'pids', ns]).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Synchronous, so it also works from an 'exit' handler. */
function killAndDelete(ns: string): void {
  for (let i = 0; i < 3; i++) {
    const pids = nsPids(ns).filter((p) => p !== process.pid);
    if (!pids.length) break;
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    execFileSync('sleep', ['0.05']);
  }
  if (existsSync(`/run/netns/${ns}`)) {
    try {
      ip(['netns', 'delete', ns]);
    } catch {
      // raced with another delete
    }
  }
}

function deleteLink(name: string): void {
  if (!existsSync(`/sys/class/net/${name}`)) return;
  try {
    ip(['link', 'delete', name]);
  } catch {
    // gone with its peer's namespace
  }
}

/** A random MAC, unicast and locally administered. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfc) | 0x02; // unicast, locally administered
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

class Guest implements GuestNs {
  readonly path: string;
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;

  constructor(
    readonly ns: string,
    private readonly hostLink?: string,
  ) {
    this.path = `/run/netns/${ns}`;
  }

  spawn(cmd: string[]): ChildProcess {
    if (this.destroyed) throw new Error(`guest ${this.ns} is destroyed`);
    const child = spawn('ip', ['netns', 'exec', this.ns, ...cmd], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  exec(cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const child = this.spawn(cmd);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.stdin!.on('error', () => {}); // a command that exits without reading its input
    child.stdin!.end(opts.input);
    const timeoutMs = opts.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(
          new Error(
            `in ${this.ns}: ${cmd.join(' ')} timed out after ${timeoutMs} ms; stderr: ${Buffer.concat(err).toString('utf8').slice(-2000)}`,
          ),
        );
      }, timeoutMs);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
      });
    });
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    for (const c of this.children) c.kill('SIGKILL');
    killAndDelete(this.ns);
    if (this.hostLink) deleteLink(this.hostLink); // normally gone with its peer already
    release(this.ns);
  }

  async destroy(): Promise<void> {
    this.destroySync();
  }
}

class Veth extends Guest implements VethGuest {
  constructor(
    ns: string,
    readonly hostIf: string,
    readonly mac: string,
    readonly ipv4: string,
    readonly gateway4: string,
    readonly ipv6: string,
    readonly gateway6: string,
    readonly mtu: number,
    /** Whether hostIf is the guest's to delete (a veth's end; a TAP goes with its backend's fd). */
    ownsHostIf = true,
  ) {
    super(ns, ownsHostIf ? hostIf : undefined);
  }
}

let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  // Last resort for a test that forgot destroy() or a process that is exiting: never leave namespaces behind.
  process.once('exit', () => {
    for (const g of [...live]) g.destroySync();
  });
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name))
    throw new Error(`guest name ${JSON.stringify(name)}: 1-15 of [A-Za-z0-9_.-] (it names an interface)`);
}

/** `ip netns add` under the given name, or a fresh unique one (retried should a name be taken). */
function addNamespace(name: string | undefined): string {
  sweepStale();
  hookExit();
  if (name !== undefined) checkName(name);
  for (let attempt = 0; ; attempt++) {
    const n = name ?? uniqueName();
    try {
      ip(['netns', 'add', n]);
      claim(n);
      return n;
    } catch (e) {
      if (name !== undefined || attempt >= 5 || !/exists/i.test(String((e as { stderr?: unknown }).stderr ?? e))) throw e;
    }
  }
}

/** The options with their defaults, and eth0's MAC. */
function guestConfig(opts: GuestNsOptions): { cfg: typeof GUEST_DEFAULTS & GuestNsOptions; mac: string } {
  const cfg = {
    ...GUEST_DEFAULTS,
    ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)),
  } as typeof GUEST_DEFAULTS & GuestNsOptions;
  return { cfg, mac: opts.mac ?? randomMac() };
}

/** In namespace `ns`: lo up, then `first` (ip commands), then eth0 up with the guest's addresses and default routes. */
function upEth0(ns: string, cfg: typeof GUEST_DEFAULTS, first: string[] = []): void {
  ip(
    ['-n', ns, '-batch', '-'],
    [
      'link set lo up',
      ...first,
      'link set eth0 up',
      `addr add ${cfg.ipv4} dev eth0`,
      `addr add ${cfg.ipv6} dev eth0 nodad`,
      `route add default via ${cfg.gateway4} dev eth0`,
      `route add ::/0 via ${cfg.gateway6} dev eth0`,
      '',
    ].join('\n'),
  );
}

/** A namespace with only lo, up. */
export async function createBareGuest(opts: Pick<GuestNsOptions, 'name'> = {}): Promise<GuestNs> {
  const name = addNamespace(opts.name);
  const g = new Guest(name);
  live.add(g);
  try {
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (e) {
    g.destroySync();
    throw e;
  }
  return g;
}

/**
 * A namespace configured like a krata guest whose eth0 is `tap`: a TAP device a userspace backend made in
 * the root namespace and holds open, moved in (its fd keeps working). hostIf is the TAP's name before the
 * move; it goes with the backend's fd or the namespace.
 */
export async function createTapGuest(tap: string, opts: GuestNsOptions = {}): Promise<VethGuest> {
  const { cfg, mac } = guestConfig(opts);
  const name = addNamespace(opts.name);
  const g = new Veth(name, tap, mac, cfg.ipv4, cfg.gateway4, cfg.ipv6, cfg.gateway6, cfg.mtu, false);
  live.add(g);
  try {
    ip(['link', 'set', tap, 'netns', name]);
    upEth0(name, cfg, [`link set ${tap} down`, `link set ${tap} name eth0`, `link set eth0 address ${mac} mtu ${cfg.mtu}`]);
  } catch (e) {
    g.destroySync();
    throw e;
  }
  return g;
}

/** A namespace configured like a krata guest, its eth0 one end of a veth whose other end (hostIf) stays in the root namespace. */
export async function createVethGuest(opts: GuestNsOptions = {}): Promise<VethGuest> {
  const { cfg, mac } = guestConfig(opts);
  const name = addNamespace(opts.name);
  const g = new Veth(name, name, mac, cfg.ipv4, cfg.gateway4, cfg.ipv6, cfg.gateway6, cfg.mtu);
  live.add(g);
  try {
    ip([
      'link',
      'add',
      name,
      'mtu',
      String(cfg.mtu),
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'address',
      mac,
      'mtu',
      String(cfg.mtu),
      'netns',
      name,
    ]);
    // The host end belongs to the userspace backend alone: no IPv6 (no link-local, no RS/NS), no ARP
    // replies for the host's own addresses, no forwarding of what arrives on it. Set before it goes up.
    writeFileSync(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, '1');
    writeFileSync(`/proc/sys/net/ipv4/conf/${name}/arp_ignore`, '8');
    writeFileSync(`/proc/sys/net/ipv4/conf/${name}/forwarding`, '0');
    ip(['link', 'set', name, 'up']);
    upEth0(name, cfg);
  } catch (e) {
    g.destroySync();
    throw e;
  }
  return g;
}
