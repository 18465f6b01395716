// `npm run bench -- net`: kratanet, krata's userspace network backend, against slirp4netns and passt
// (in its namespace mode, pasta), in the same run and the same setup: a guest network namespace at
// MTU 1500 with its offloads at the kernel's defaults, servers on the host's loopback reached through
// the address each backend maps to it (kratanet: the guest's gateway 10.75.0.1 with hostLoopback;
// slirp4netns: 10.0.2.2; pasta: the gateway it is given, 10.75.0.1, mapped to the host by its default
// --map-gw). For each backend:
//   - TCP throughput guest → host and host → guest (iperf3 -R): the receiver's figure;
//   - requests per second for a 100-byte HTTP body: wrk -t1 -c32 in the guest, nginx (one worker) on the host;
//   - CPU seconds per GB: utime + stime of the backend's processes over both throughput runs / GB moved;
//   - peak RSS of the backend (VmHWM).
// Then slirp4netns and pasta again at MTU 65520 (their own defaults), for reference. Needs root.
// KRATA_BENCH_NET_SECONDS sets the length of each iperf3 run (default 9), KRATA_BENCH_NET_JUMBO=0
// skips the MTU 65520 set, KRATA_BENCH_NET_ROUNDS=N measures every backend N times, in turn, and
// reports the medians (the machine's other load then biases no backend in particular), with each round's
// requests/s ratio to slirp4netns and the ratio of the median CPU per request (rps_ratio_vs_slirp4netns_each_round,
// cpu_per_request_ratio_vs_slirp4netns).
// KRATA_BENCH_NET_RPS_ONLY=1 skips the iperf3 runs (requests/s only: the per-connection and per-packet cost).
// KRATA_BENCH_NET_TAP=1 also measures kratanet over a TAP (kratanet_tap_* in the JSON, for reference, not
// a goal): the transport slirp4netns and pasta use, where a frame to the guest skips the veth's
// transmit, backlog and softirq; krata's guests are packet sockets on interfaces (Xen vifs), as the
// veth stands in for.
// KRATA_BENCH_PROFILE=DIR runs kratanet with --cpu-prof --cpu-prof-dir=DIR (stopped with SIGTERM, so
// the profile is written); KRATA_BENCH_SYSCALLS=PREFIX counts each backend's syscalls during its wrk run
// (perf stat on the syscall tracepoints, all its threads; counts in PREFIX.NAME, per request on stderr).
// KRATA_BENCH_KRATANET_NODE_ARGS='--flag ...' starts kratanet's node with those flags (V8 tuning trials).
// KRATA_BENCH_NET_VARIANT=NAME=VALUE also measures a second kratanet (kratanet_variant) with NAME=VALUE in
// its environment, right after the first in every round: an A/B trial of a change behind a temporary
// switch. The pair runs seconds apart, so drift in the machine's load between rounds falls on both, and
// swaps places every other round (roundOrder): run an even number of rounds. In the JSON:
// kratanet_variant_*, rps_ratio_variant_vs_kratanet[_each_round].
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/free-port.js';
import {
  createBareGuest,
  createTapGuest,
  createVethGuest,
  GUEST_DEFAULTS,
  randomMac,
  type GuestNs,
  type VethGuest,
} from '../test/net/guest-ns.js';

const SECONDS = Number(process.env.KRATA_BENCH_NET_SECONDS ?? 9);
const WRK_SECONDS = 8;
const ROUNDS = Math.max(1, Number(process.env.KRATA_BENCH_NET_ROUNDS ?? 1));
const RPS_ONLY = process.env.KRATA_BENCH_NET_RPS_ONLY === '1';
const TAP = process.env.KRATA_BENCH_NET_TAP === '1';
const PROFILE_DIR = process.env.KRATA_BENCH_PROFILE;
const VARIANT = variantEnv(process.env.KRATA_BENCH_NET_VARIANT);
const SYSCALLS_FILE = process.env.KRATA_BENCH_SYSCALLS;
const WRK_CONNECTIONS = 32;
const BODY_BYTES = 100;
const MTU = 1500;
const JUMBO_MTU = 65520;
const READY_TIMEOUT_MS = 20_000;
// ≥ slirp4netns's throughput, within 2× of passt's; requests/s (per-connection and per-packet cost) ≥ slirp4netns's
const GOALS = { vs_slirp4netns: 1, vs_passt: 0.5, rps_vs_slirp4netns: 1 };
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, digits: number) => Number(x.toFixed(digits));

// --- processes ------------------------------------------------------------------------------------

/** Host-side processes we started, each leading its own process group (nginx's worker, a backend's helpers). */
const groups = new Set<ChildProcess>();

/**
 * The backends in the order a round measures them: as configured, except that kratanet and its variant
 * swap places every other round (A B, B A, ...), as the slot after another backend's teardown is not a
 * neutral one (an A/A trial here: the second kratanet 1.04-1.06× the first, two rounds of two).
 */
function roundOrder<T extends { key: string }>(configs: T[], round: number): T[] {
  const a = configs.findIndex((c) => c.key === 'kratanet');
  const b = configs.findIndex((c) => c.key === 'kratanet_variant');
  if (a < 0 || b < 0 || round % 2 === 0) return configs;
  const order = [...configs];
  [order[a], order[b]] = [order[b]!, order[a]!];
  return order;
}

/** KRATA_BENCH_NET_VARIANT's NAME=VALUE as an environment entry. */
function variantEnv(text: string | undefined): [string, string] | undefined {
  if (!text) return undefined;
  const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(text);
  if (!m) throw new Error(`KRATA_BENCH_NET_VARIANT must be NAME=VALUE, not ${JSON.stringify(text)}`);
  return [m[1]!, m[2]!];
}

function startGroup(
  cmd: string,
  args: string[],
  stdio: Array<'ignore' | 'pipe'> = ['ignore', 'pipe', 'pipe'],
  env: NodeJS.ProcessEnv = process.env,
): ChildProcess {
  const child = spawn(cmd, args, { stdio, detached: true, env });
  groups.add(child);
  child.once('exit', () => groups.delete(child));
  child.once('error', () => groups.delete(child));
  return child;
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/** Stops the group; `gentle`: SIGTERM to the leader first (so a profile or strace summary is written), SIGKILL after 10 s. */
async function stopGroup(child: ChildProcess, gentle = false): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  if (gentle && child.pid !== undefined) {
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      // gone already
    }
    await Promise.race([exited, sleep(10_000)]);
  }
  killGroup(child);
  await Promise.race([exited, sleep(3_000)]);
  groups.delete(child);
}

/** The last ~4 KB a process wrote on a stream, for error messages. */
function capture(stream: NodeJS.ReadableStream | null | undefined): () => string {
  let buf = '';
  stream?.on('data', (d: Buffer) => {
    buf = (buf + d.toString('utf8')).slice(-4096);
  });
  return () => buf.trim();
}

/** The process and all its descendants, from /proc/PID/task/TID/children. */
function tree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const tid of readdirSync(`/proc/${out[i]}/task`)) {
        const kids = readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').trim();
        if (kids) out.push(...kids.split(' ').map(Number));
      }
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** CPU seconds the process tree used so far: utime + stime, plus cutime + cstime of children it reaped. */
function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of tree(pid)) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8')
        .replace(/^.*\) /, '')
        .split(' ');
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]); // fields 14-17 of stat
    } catch {
      // exited meanwhile
    }
  }
  return ticks / CLK_TCK;
}

/** Peak RSS (VmHWM) of the tree's processes, summed, in MB. */
function peakRssMb(pid: number): number {
  let kb = 0;
  for (const p of tree(pid)) {
    try {
      kb += Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return kb / 1024;
}

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, child?: ChildProcess, log?: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await ok())) {
    if (child && (child.exitCode !== null || child.signalCode !== null))
      throw new Error(`${what}: exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${log?.() ?? ''}`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${READY_TIMEOUT_MS} ms:\n${log?.() ?? ''}`);
    await sleep(50);
  }
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

// --- the host's servers ---------------------------------------------------------------------------

interface Servers {
  iperfPort: number;
  httpPort: number;
}

async function startIperf(port: number): Promise<ChildProcess> {
  const child = startGroup('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(port)]);
  const log = capture(child.stderr);
  capture(child.stdout);
  await waitFor('iperf3 -s', () => tcpOpen(port), child, log);
  return child;
}

/** nginx-light with its own configuration: one worker, a 100-byte body from memory, no logs, endless keep-alive. */
async function startNginx(dir: string, port: number): Promise<ChildProcess> {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const body = 'x'.repeat(BODY_BYTES - 1) + '\n';
  const conf = `
worker_processes 1;
user nobody nogroup;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:${port};
    location / { default_type text/plain; return 200 "${body.trimEnd()}\\n"; }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = startGroup('nginx', ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', 'daemon off;']);
  const log = capture(child.stderr);
  await waitFor(
    'nginx',
    () => tcpOpen(port),
    child,
    () => `${log()}\n${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''}`,
  );
  return child;
}

// --- backends -------------------------------------------------------------------------------------

interface Backend {
  /** As in the JSON keys: kratanet, slirp4netns, passt. */
  name: string;
  mtu: number;
  guest: GuestNs;
  /** The address the guest reaches the host's loopback at. */
  hostAddr: string;
  /** The backend's main process. */
  pid: number;
  describe: string;
  /** Checks after the measurements (that the backend is still the one answering). */
  check?(): void;
  stop(): Promise<void>;
}

/** A guest interface (not lo) with `addr` and state UP. */
async function guestHasAddr(g: GuestNs, addr: string): Promise<boolean> {
  const r = await g.exec(['ip', '-j', 'addr', 'show']);
  if (r.code !== 0) return false;
  const links = JSON.parse(r.stdout.toString('utf8')) as Array<{ ifname: string; flags: string[]; addr_info: Array<{ local: string }> }>;
  return links.some((l) => l.ifname !== 'lo' && l.flags.includes('UP') && l.addr_info.some((a) => a.local === addr));
}

async function setMtuChecked(g: GuestNs, ifname: string, mtu: number): Promise<void> {
  const r = await g.exec(['ip', '-j', 'link', 'show', ifname]);
  const [link] = JSON.parse(r.stdout.toString('utf8')) as Array<{ mtu: number }>;
  if (link?.mtu !== mtu) throw new Error(`${g.ns}: ${ifname} has MTU ${link?.mtu}, expected ${mtu}`);
}

async function startSlirp(mtu: number): Promise<Backend> {
  const guest = await createBareGuest();
  try {
    // --netns-type=path: no process has to be held in the namespace. Host loopback stays enabled:
    // 10.0.2.2 is the host's 127.0.0.1.
    const child = startGroup(
      'slirp4netns',
      ['--configure', `--mtu=${mtu}`, '--ready-fd=3', '--netns-type=path', guest.path, 'tap0'],
      ['ignore', 'pipe', 'pipe', 'pipe'],
    );
    const log = capture(child.stderr);
    capture(child.stdout);
    let ready = false;
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => (ready ||= d.toString().includes('1')));
    await waitFor('slirp4netns', () => ready && guestHasAddr(guest, '10.0.2.100'), child, log);
    await setMtuChecked(guest, 'tap0', mtu);
    return {
      name: 'slirp4netns',
      mtu,
      guest,
      hostAddr: '10.0.2.2',
      pid: child.pid!,
      describe: `slirp4netns ${version('slirp4netns')} --configure --mtu=${mtu} (host loopback enabled: 10.0.2.2 → 127.0.0.1)`,
      stop: async () => {
        await stopGroup(child);
        await guest.destroy();
      },
    };
  } catch (e) {
    await guest.destroy();
    throw e;
  }
}

interface Route {
  dst: string;
  dev: string;
}

/**
 * pasta copies the host's addresses and routes unless told otherwise; we give it the guest's (the
 * same as kratanet's guest: 10.75.0.2/16 via 10.75.0.1), so the gateway address is the one --map-gw
 * (on by default) maps to the host. It still needs a host interface as its template and for
 * outbound traffic: the default route's, else the first one up with an address (-i). IPv6 only when
 * the host has a default IPv6 route.
 */
function pastaArgs(mtu: number, netns: string): string[] {
  const routes = (family: string) =>
    JSON.parse(execFileSync('ip', ['-j', family, 'route', 'show', 'default'], { encoding: 'utf8' })) as Route[];
  const v4 = routes('-4')[0];
  const v6 = routes('-6')[0];
  const args = ['-f', '-q', '--config-net', '-m', String(mtu), '-I', 'eth0', '-a', '10.75.0.2', '-n', '16', '-g', '10.75.0.1'];
  if (!v4) {
    const links = JSON.parse(execFileSync('ip', ['-j', '-4', 'addr', 'show', 'up'], { encoding: 'utf8' })) as Array<{
      ifname: string;
      addr_info: unknown[];
    }>;
    const ifname = links.find((l) => l.ifname !== 'lo' && l.addr_info.length)?.ifname;
    if (!ifname) throw new Error('pasta needs a host interface with an IPv4 address, and this machine has none but lo');
    args.push('-i', ifname);
  }
  if (v6) args.push('-a', 'fdd4:1476:6c7e::2', '-g', 'fdd4:1476:6c7e::1');
  else args.push('-4');
  // No port forwarding in either direction (the defaults, "auto", would bind ports on the host).
  // --runas 0:0: this version otherwise drops to nobody first and then cannot join the namespace
  // ("Couldn't switch to pasta namespaces").
  args.push('-t', 'none', '-u', 'none', '-T', 'none', '-U', 'none', '--runas', '0:0', '--netns', netns);
  return args;
}

async function startPasta(mtu: number): Promise<Backend> {
  const guest = await createBareGuest();
  try {
    const args = pastaArgs(mtu, guest.ns);
    const child = startGroup('pasta', args);
    const log = capture(child.stderr);
    capture(child.stdout);
    await waitFor('pasta', () => guestHasAddr(guest, '10.75.0.2'), child, log);
    await setMtuChecked(guest, 'eth0', mtu);
    return {
      name: 'passt',
      mtu,
      guest,
      hostAddr: '10.75.0.1',
      pid: child.pid!,
      describe: `pasta (passt ${version('passt')}) ${args.slice(0, -1).join(' ')} NS (gateway 10.75.0.1 → 127.0.0.1)`,
      stop: async () => {
        await stopGroup(child);
        await guest.destroy();
      },
    };
  } catch (e) {
    await guest.destroy();
    throw e;
  }
}

/** The figures must be kratanet's, not the host kernel's: the veth's host end keeps no addresses. */
function hostIfSilent(hostIf: string): void {
  const [link] = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show', 'dev', hostIf], { encoding: 'utf8' })) as Array<{
    addr_info: Array<{ local: string }>;
  }>;
  if (link?.addr_info.length)
    throw new Error(
      `kratanet: ${hostIf} has addresses (${link.addr_info.map((a) => a.local).join(', ')}): the host stack would answer for the guest`,
    );
}

function kratanetMain(): string {
  return fileURLToPath(new URL('../node-agent/net/main.js', import.meta.url));
}

/**
 * kratanet on a veth (its host end read and written through AF_PACKET, as a Xen vif), or with `tap` on a
 * TAP it makes, moved into the guest; with `variant`, on a veth with that variable in its environment.
 */
async function startKratanet(work: string, tap = false, variant?: [string, string]): Promise<Backend> {
  // A TAP must exist before it can be moved in: kratanet makes it, the guest takes it once kratanet is ready.
  const tapName = `kbt${randomBytes(4).toString('hex')}`;
  const mac = randomMac();
  let guest: VethGuest | undefined = tap ? undefined : await createVethGuest({ mtu: MTU });
  try {
    const addrs = guest ?? { ...GUEST_DEFAULTS, mac };
    const config = {
      hostLoopback: true,
      guests: [
        {
          id: 'bench',
          interface: guest ? guest.hostIf : tapName,
          ...(tap ? { tap: true } : {}),
          mac: addrs.mac,
          ipv4: addrs.ipv4,
          ipv6: addrs.ipv6,
          gateway4: addrs.gateway4,
          gateway6: addrs.gateway6,
          ports: [],
        },
      ],
    };
    const file = join(work, 'kratanet.json');
    writeFileSync(file, JSON.stringify(config, null, 2));
    const child = startGroup(
      process.execPath,
      [
        ...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []),
        ...(process.env.KRATA_BENCH_KRATANET_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
        kratanetMain(),
        '--config',
        file,
      ],
      undefined,
      variant ? { ...process.env, [variant[0]]: variant[1] } : process.env,
    );
    const log = capture(child.stderr);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out = (out + d.toString('utf8')).slice(-4096);
    });
    try {
      await waitFor(
        'kratanet',
        () => /^kratanet ready$/m.test(out),
        child,
        () => `${out}\n${log()}`,
      );
      guest ??= await createTapGuest(tapName, { mac, mtu: MTU });
    } catch (e) {
      await stopGroup(child, false);
      throw e;
    }
    const g = guest;
    if (!tap) hostIfSilent(g.hostIf);
    return {
      name: tap ? 'kratanet_tap' : variant ? 'kratanet_variant' : 'kratanet',
      mtu: MTU,
      guest: g,
      hostAddr: g.gateway4,
      pid: child.pid!,
      describe:
        `${variant ? `${variant[0]}=${variant[1]} ` : ''}node ${kratanetMain()} --config FILE ` +
        `(${tap ? `TAP ${tapName}, moved into NS` : `veth ${g.hostIf}`}, ` +
        `hostLoopback: gateway ${g.gateway4} → 127.0.0.1)`,
      check: () => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`kratanet exited (${child.exitCode ?? child.signalCode}) during the bench:\n${out}\n${log()}`);
        if (!tap) hostIfSilent(g.hostIf);
      },
      stop: async () => {
        await stopGroup(child, PROFILE_DIR !== undefined);
        await g.destroy();
      },
    };
  } catch (e) {
    await guest?.destroy();
    throw e;
  }
}

/** The Debian package's version: the tools' own --version output is not reliable (pasta: "unknown version"). */
function version(pkg: string): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f', '${Version}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '(version unknown)';
  }
}

// --- measuring ------------------------------------------------------------------------------------

interface Figures {
  mbit_s_to_host: number;
  mbit_s_to_guest: number;
  mbit_s: number;
  rps: number;
  cpu_s_per_gb: number;
  /** The backend's CPU (utime + stime) over the wrk run, per request. */
  cpu_us_per_request: number;
  peak_rss_mb: number;
  http_errors: number;
  /** TCP retransmits the senders counted, both runs. */
  retransmits: number;
}

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bytes: number; bits_per_second: number }; sum_sent?: { retransmits?: number } };
}

/** One iperf3 run from the guest; `reverse`: host → guest. The receiver's figure, and bytes moved. */
async function iperf(
  b: Backend,
  port: number,
  reverse: boolean,
): Promise<{ mbit_s: number; bytes: number; cpu_s: number; retransmits: number }> {
  const cmd = ['iperf3', '-c', b.hostAddr, '-p', String(port), '-t', String(SECONDS), '-J', ...(reverse ? ['-R'] : [])];
  const cpu0 = cpuSeconds(b.pid);
  const r = await b.guest.exec(cmd, { timeoutMs: (SECONDS + 30) * 1000 });
  const cpu1 = cpuSeconds(b.pid);
  let j: IperfJson;
  try {
    j = JSON.parse(r.stdout.toString('utf8')) as IperfJson;
  } catch {
    throw new Error(`${b.name}: ${cmd.join(' ')} failed (exit ${r.code}): ${r.stderr || r.stdout.toString().slice(0, 2000)}`);
  }
  const sum = j.end?.sum_received;
  if (r.code !== 0 || j.error || !sum) throw new Error(`${b.name}: ${cmd.join(' ')} failed (exit ${r.code}): ${j.error ?? r.stderr}`);
  return { mbit_s: sum.bits_per_second / 1e6, bytes: sum.bytes, cpu_s: cpu1 - cpu0, retransmits: j.end?.sum_sent?.retransmits ?? 0 };
}

/** wrk from the guest: requests per second, and errors (socket errors, non-2xx). */
async function wrk(b: Backend, port: number, seconds: number): Promise<{ rps: number; errors: number; text: string }> {
  const cmd = ['wrk', '-t1', `-c${WRK_CONNECTIONS}`, `-d${seconds}s`, `http://${b.hostAddr}:${port}/`];
  const r = await b.guest.exec(cmd, { timeoutMs: (seconds + 30) * 1000 });
  const text = r.stdout.toString('utf8');
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
  if (r.code !== 0 || !Number.isFinite(rps)) throw new Error(`${b.name}: ${cmd.join(' ')} failed (exit ${r.code}):\n${text}${r.stderr}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const errors =
    Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0) + (sock ? sock.slice(1).reduce((n, x) => n + Number(x), 0) : 0);
  return { rps, errors, text };
}

async function measure(b: Backend, s: Servers): Promise<Figures> {
  // Warm-up, and the check that the host's loopback is reachable at all through the backend.
  const warm = await wrk(b, s.httpPort, 1);
  if (warm.rps <= 0) throw new Error(`${b.name}: no HTTP response through ${b.hostAddr}:\n${warm.text}`);
  const none = { mbit_s: 0, bytes: 1, cpu_s: 0, retransmits: 0 };
  const up = RPS_ONLY ? none : await iperf(b, s.iperfPort, false);
  if (!RPS_ONLY) console.error(`  ${b.name} (MTU ${b.mtu}): guest → host ${up.mbit_s.toFixed(0)} Mbit/s (${up.retransmits} retransmits)`);
  const down = RPS_ONLY ? none : await iperf(b, s.iperfPort, true);
  if (!RPS_ONLY)
    console.error(`  ${b.name} (MTU ${b.mtu}): host → guest ${down.mbit_s.toFixed(0)} Mbit/s (${down.retransmits} retransmits)`);
  const cpu0 = cpuSeconds(b.pid);
  const trace = SYSCALLS_FILE ? await syscallsStart(b, `${SYSCALLS_FILE}.${b.name}`) : undefined;
  const frames0 = await guestFrames(b.guest);
  const http = await wrk(b, s.httpPort, WRK_SECONDS);
  const frames1 = await guestFrames(b.guest);
  if (trace) await syscallsStop(trace, http.rps * WRK_SECONDS);
  const perRequest = (n: number) => (n / (http.rps * WRK_SECONDS)).toFixed(2);
  console.error(
    `  ${b.name}: frames per request: ${perRequest(frames1.tx - frames0.tx)} guest → backend, ` +
      `${perRequest(frames1.rx - frames0.rx)} backend → guest`,
  );
  const cpuUsPerRequest = ((cpuSeconds(b.pid) - cpu0) / (http.rps * WRK_SECONDS)) * 1e6;
  console.error(
    `  ${b.name} (MTU ${b.mtu}): ${http.rps.toFixed(0)} requests/s (${http.errors} errors), ` +
      `${cpuUsPerRequest.toFixed(1)} CPU µs per request`,
  );
  const gb = (up.bytes + down.bytes) / 1e9;
  return {
    mbit_s_to_host: round(up.mbit_s, 1),
    mbit_s_to_guest: round(down.mbit_s, 1),
    mbit_s: round((up.mbit_s + down.mbit_s) / 2, 1),
    rps: round(http.rps, 0),
    cpu_s_per_gb: RPS_ONLY ? 0 : round((up.cpu_s + down.cpu_s) / gb, 2),
    cpu_us_per_request: round(cpuUsPerRequest, 1),
    peak_rss_mb: round(peakRssMb(b.pid), 1),
    http_errors: http.errors,
    retransmits: up.retransmits + down.retransmits,
  };
}

function line(name: string, mtu: number, f: Figures, what = ''): string {
  return (
    `${name.padEnd(11)} MTU ${String(mtu).padEnd(5)}  guest→host ${f.mbit_s_to_host.toFixed(0).padStart(6)} ` +
    `Mbit/s  host→guest ${f.mbit_s_to_guest.toFixed(0).padStart(6)} Mbit/s  ` +
    `${f.rps.toFixed(0).padStart(6)} req/s (${f.cpu_us_per_request.toFixed(1)} CPU µs each)  ` +
    `${f.cpu_s_per_gb.toFixed(2).padStart(6)} CPU s/GB  peak RSS ${f.peak_rss_mb.toFixed(1)} MB  ${f.retransmits} retransmits${what}`
  );
}

/** Frames the guest's interfaces (all but lo) sent and received so far. */
async function guestFrames(g: GuestNs): Promise<{ tx: number; rx: number }> {
  const r = await g.exec(['ip', '-s', '-j', 'link', 'show']);
  const links = JSON.parse(r.stdout.toString('utf8')) as Array<{
    ifname: string;
    stats64: { rx: { packets: number }; tx: { packets: number } };
  }>;
  let tx = 0;
  let rx = 0;
  for (const l of links) {
    if (l.ifname === 'lo') continue;
    tx += l.stats64.tx.packets;
    rx += l.stats64.rx.packets;
  }
  return { tx, rx };
}

const SYSCALLS = ['sendmmsg', 'recvmmsg', 'write', 'writev', 'read', 'readv', 'sendto', 'recvfrom', 'sendmsg', 'recvmsg'];
const WAITS = ['epoll_wait', 'epoll_pwait', 'poll', 'ppoll', 'futex'];

/** perf stat counting the backend's syscalls (all threads), by name: a tracepoint count, cheap enough not to change the figures. */
async function syscallsStart(b: Backend, file: string): Promise<{ child: ChildProcess; file: string; name: string }> {
  const events = ['raw_syscalls:sys_enter', ...[...SYSCALLS, ...WAITS].map((n) => `syscalls:sys_enter_${n}`)];
  const child = startGroup('perf', ['stat', '-x', ',', '-o', file, ...events.flatMap((e) => ['-e', e]), '-p', tree(b.pid).join(',')]);
  await sleep(300); // attached
  return { child, file, name: b.name };
}

/** Stops perf (SIGINT: it writes its counts) and prints the syscalls per request. */
async function syscallsStop(t: { child: ChildProcess; file: string; name: string }, requests: number): Promise<void> {
  const exited = new Promise((resolve) => t.child.once('exit', resolve));
  t.child.kill('SIGINT');
  await Promise.race([exited, sleep(10_000)]);
  await stopGroup(t.child);
  const text = existsSync(t.file) ? readFileSync(t.file, 'utf8') : '';
  const counts = new Map(
    [...text.matchAll(/^(\d+),[^,]*,(?:raw_)?syscalls:sys_enter_?(\w*)/gm)].map((m) => [m[2] || 'total', Number(m[1]) / requests]),
  );
  const each = [...counts]
    .filter(([n, c]) => n !== 'total' && c >= 0.01)
    .sort((x, y) => y[1] - x[1])
    .map(([n, c]) => `${n} ${c.toFixed(2)}`);
  console.error(
    `  ${t.name}: ${(counts.get('total') ?? NaN).toFixed(2)} syscalls per request (${each.join(', ')}); perf stat in ${t.file}`,
  );
}

/** Starts a backend, measures it, stops it. */
async function run(start: () => Promise<Backend>, s: Servers, describe: Set<string>): Promise<Figures> {
  const b = await start();
  try {
    describe.add(`${b.name} at MTU ${b.mtu}: ${b.describe.replaceAll(b.guest.ns, 'NS')}`);
    const f = await measure(b, s);
    b.check?.();
    console.log(line(b.name, b.mtu, f, ROUNDS > 1 ? '  (one round)' : ''));
    return f;
  } finally {
    await b.stop();
  }
}

/** Per figure, the median over rounds (peak RSS: the largest). */
function combine(fs: Figures[]): Figures {
  const med = (k: keyof Figures) => {
    const xs = fs.map((f) => f[k]).sort((x, y) => x - y);
    const mid = xs.length >> 1;
    return xs.length % 2 ? xs[mid]! : round((xs[mid - 1]! + xs[mid]!) / 2, 1);
  };
  return {
    mbit_s_to_host: med('mbit_s_to_host'),
    mbit_s_to_guest: med('mbit_s_to_guest'),
    mbit_s: med('mbit_s'),
    rps: med('rps'),
    cpu_s_per_gb: med('cpu_s_per_gb'),
    cpu_us_per_request: med('cpu_us_per_request'),
    peak_rss_mb: Math.max(...fs.map((f) => f.peak_rss_mb)),
    http_errors: fs.reduce((n, f) => n + f.http_errors, 0),
    retransmits: med('retransmits'),
  };
}

function prefixed(prefix: string, f: Figures | undefined): Record<string, number | null> {
  const keys: Array<keyof Figures> = [
    'mbit_s',
    'mbit_s_to_host',
    'mbit_s_to_guest',
    'rps',
    'cpu_us_per_request',
    'cpu_s_per_gb',
    'peak_rss_mb',
    'retransmits',
  ];
  return Object.fromEntries(keys.map((k) => [`${prefix}${k}`, f ? f[k] : null]));
}

export async function netBench(): Promise<Record<string, unknown>> {
  if (process.getuid?.() !== 0) throw new Error('the net bench needs root (network namespaces, veth, nginx)');
  for (const tool of ['iperf3', 'wrk', 'nginx', 'slirp4netns', 'pasta']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is missing: run scripts/install-deps`);
    }
  }
  const work = mkdtempSync(join(tmpdir(), 'krata-bench-net-'));
  const onSignal = () => {
    for (const c of [...groups]) killGroup(c);
    rmSync(work, { recursive: true, force: true });
    process.exit(130); // test/net/guest-ns's exit hook deletes the namespaces
  };
  const onExit = () => {
    for (const c of [...groups]) killGroup(c);
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal).once('exit', onExit);
  const servers: ChildProcess[] = [];
  try {
    const s: Servers = { iperfPort: await freePort(), httpPort: await freePort() };
    servers.push(await startIperf(s.iperfPort), await startNginx(join(work, 'nginx'), s.httpPort));
    const describe = new Set<string>();
    const load = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
    if (load > 0.5) console.error(`warning: load average ${load} before the bench: other work on this machine makes the figures noisy`);

    // kratanet first in every round: if it is broken, fail before spending a minute on the baselines.
    const configs: Array<{ key: string; mtu: number; start: () => Promise<Backend> }> = [];
    let skipped: string | undefined;
    if (existsSync(kratanetMain())) {
      configs.push({ key: 'kratanet', mtu: MTU, start: () => startKratanet(work) });
      if (VARIANT) configs.push({ key: 'kratanet_variant', mtu: MTU, start: () => startKratanet(work, false, VARIANT) });
      if (TAP) configs.push({ key: 'kratanet_tap', mtu: MTU, start: () => startKratanet(work, true) });
    } else {
      skipped = `${kratanetMain()} does not exist (build node-agent/net first): kratanet NOT measured`;
      console.log(`kratanet    SKIPPED: ${skipped}`);
    }
    configs.push({ key: 'slirp4netns', mtu: MTU, start: () => startSlirp(MTU) }, { key: 'passt', mtu: MTU, start: () => startPasta(MTU) });
    if (process.env.KRATA_BENCH_NET_JUMBO !== '0') {
      configs.push(
        { key: `slirp4netns_mtu${JUMBO_MTU}`, mtu: JUMBO_MTU, start: () => startSlirp(JUMBO_MTU) },
        { key: `passt_mtu${JUMBO_MTU}`, mtu: JUMBO_MTU, start: () => startPasta(JUMBO_MTU) },
      );
    }
    const samples = new Map<string, Figures[]>(configs.map((c) => [c.key, []]));
    for (let round = 0; round < ROUNDS; round++) {
      if (ROUNDS > 1) console.error(`round ${round + 1} of ${ROUNDS}`);
      for (const c of roundOrder(configs, round)) samples.get(c.key)!.push(await run(c.start, s, describe));
    }
    const fig = new Map([...samples].map(([k, fs]) => [k, combine(fs)]));
    if (ROUNDS > 1)
      for (const c of configs) console.log(line(c.key.replace(/_mtu\d+$/, ''), c.mtu, fig.get(c.key)!, `  (median of ${ROUNDS})`));
    const ours = fig.get('kratanet');
    const slirp = fig.get('slirp4netns')!;
    const passt = fig.get('passt')!;
    const jumbo = Object.fromEntries(
      configs.filter((c) => c.mtu === JUMBO_MTU).flatMap((c) => Object.entries(prefixed(`${c.key}_`, fig.get(c.key)))),
    );

    // Not measured (kratanet skipped, or no iperf3 runs with KRATA_BENCH_NET_RPS_ONLY): null.
    const ratio = (a: number | undefined, b: number) => (a === undefined || !b ? null : round(a / b, 2));
    const vsSlirp = ratio(ours?.mbit_s, slirp.mbit_s);
    const vsPasst = ratio(ours?.mbit_s, passt.mbit_s);
    const goalsMet = vsSlirp !== null && vsPasst !== null ? vsSlirp >= GOALS.vs_slirp4netns && vsPasst >= GOALS.vs_passt : null;
    const goal = (r: number | null, want: number, text: string) =>
      console.log(`goal: ${text}: ${r === null ? 'not measured' : `${r}× (${r >= want ? 'met' : 'NOT met'})`}`);
    goal(vsSlirp, GOALS.vs_slirp4netns, 'kratanet throughput ≥ slirp4netns (ratio ≥ 1)');
    goal(vsPasst, GOALS.vs_passt, 'kratanet throughput within 2× of passt (ratio ≥ 0.5)');
    const rpsVsSlirp = ratio(ours?.rps, slirp.rps);
    goal(rpsVsSlirp, GOALS.rps_vs_slirp4netns, 'kratanet HTTP requests/s ≥ slirp4netns (ratio ≥ 1)');
    // Each round's own ratio (the two ran seconds apart) and CPU per request, which the machine's other
    // load moves less than requests/s: how far the median stands from 1 against the spread.
    const roundRatios = (a: string, b: string) => samples.get(a)!.map((f, i) => ratio(f.rps, samples.get(b)![i]!.rps));
    const rpsRounds = ours ? roundRatios('kratanet', 'slirp4netns') : [];
    const cpuVsSlirp = ratio(ours?.cpu_us_per_request, slirp.cpu_us_per_request);
    if (ours && ROUNDS > 1)
      console.log(`      requests/s each round: ${rpsRounds.join(' ')}× slirp4netns; CPU per request ${cpuVsSlirp}× its`);
    const overTap = fig.get('kratanet_tap');
    const tapFigures = overTap
      ? { ...prefixed('kratanet_tap_', overTap), rps_ratio_tap_vs_slirp4netns: ratio(overTap.rps, slirp.rps) }
      : {};
    if (overTap)
      console.log(`reference: kratanet over a TAP (slirp4netns's transport): ${ratio(overTap.rps, slirp.rps)}× slirp4netns's requests/s`);
    const variant = fig.get('kratanet_variant');
    const variantRounds = variant ? roundRatios('kratanet_variant', 'kratanet') : [];
    const variantFigures = variant
      ? {
          ...prefixed('kratanet_variant_', variant),
          rps_ratio_variant_vs_kratanet: ratio(variant.rps, ours!.rps),
          rps_ratio_variant_vs_kratanet_each_round: variantRounds,
        }
      : {};
    if (variant)
      console.log(
        `variant ${VARIANT![0]}=${VARIANT![1]}: ${ratio(variant.rps, ours!.rps)}× kratanet's requests/s ` +
          `(rounds ${variantRounds.join(' ')}), CPU per request ${ratio(variant.cpu_us_per_request, ours!.cpu_us_per_request)}× its`,
      );
    // The headline is the mean of both directions: a fast direction can hide a slow one, so each is shown too.
    const perDirection: Record<string, number | null> = {};
    for (const dir of ['to_host', 'to_guest'] as const) {
      const k = `mbit_s_${dir}` as const;
      perDirection[`ratio_vs_slirp4netns_${dir}`] = ratio(ours?.[k], slirp[k]);
      perDirection[`ratio_vs_passt_${dir}`] = ratio(ours?.[k], passt[k]);
      console.log(
        `      ${dir === 'to_host' ? 'guest → host' : 'host → guest'}: ${perDirection[`ratio_vs_slirp4netns_${dir}`] ?? '-'}× ` +
          `slirp4netns, ${perDirection[`ratio_vs_passt_${dir}`] ?? '-'}× passt`,
      );
    }
    const eachMet = ours
      ? ['to_host', 'to_guest'].every(
          (d) =>
            perDirection[`ratio_vs_slirp4netns_${d}`]! >= GOALS.vs_slirp4netns && perDirection[`ratio_vs_passt_${d}`]! >= GOALS.vs_passt,
        )
      : null;
    const httpErrors = [ours, slirp, passt, overTap].reduce((n, f) => n + (f?.http_errors ?? 0), 0);
    return {
      bench: 'net',
      ...prefixed('', ours),
      ...prefixed('slirp4netns_', slirp),
      ...prefixed('passt_', passt),
      ratio_vs_slirp4netns: vsSlirp,
      ratio_vs_passt: vsPasst,
      rps_ratio_vs_slirp4netns: rpsVsSlirp,
      rps_ratio_vs_passt: ratio(ours?.rps, passt.rps),
      rps_ratio_vs_slirp4netns_each_round: rpsRounds,
      cpu_per_request_ratio_vs_slirp4netns: cpuVsSlirp,
      goals: GOALS,
      goals_met: goalsMet,
      ...perDirection,
      goals_met_each_direction: eachMet,
      ...(skipped ? { kratanet: `skipped: ${skipped}` } : {}),
      mtu: MTU,
      ...jumbo,
      ...tapFigures,
      ...variantFigures,
      http_errors: httpErrors,
      iperf3_seconds: SECONDS,
      wrk: `wrk -t1 -c${WRK_CONNECTIONS} -d${WRK_SECONDS}s, ${BODY_BYTES}-byte body from nginx (1 worker) on 127.0.0.1`,
      cpu_note: "backend's process tree, utime + stime (+ reaped children), over both iperf3 runs, per GB received",
      rounds: ROUNDS,
      load_average_before: load,
      setup: [...describe],
    };
  } finally {
    process.removeListener('SIGINT', onSignal).removeListener('SIGTERM', onSignal).removeListener('exit', onExit);
    for (const c of servers) await stopGroup(c);
    for (const c of [...groups]) await stopGroup(c);
    rmSync(work, { recursive: true, force: true });
  }
}
