// The guest namespaces kratanet's tests and benchmark stand on: eth0 configured as guest-init
// configures a Xen guest, the host end of the veth silent, guests isolated from each other and from
// the root namespace, and nothing left behind by destroy(). Needs root.
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { createBareGuest, createVethGuest, GUEST_DEFAULTS, type GuestNs, type VethGuest } from './guest-ns.js';

const TIMEOUT = { timeout: 60_000 };

interface AddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  scope: string;
  tentative?: boolean;
  dadfailed?: boolean;
}
interface Link {
  ifname: string;
  mtu: number;
  operstate: string;
  flags: string[];
  address: string;
  addr_info: AddrInfo[];
}
interface Route {
  dst: string;
  gateway?: string;
  dev: string;
}

async function json<T>(g: GuestNs, cmd: string[]): Promise<T> {
  const r = await g.exec(cmd);
  assert.equal(r.code, 0, `${cmd.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout.toString('utf8')) as T;
}

/** Whether a TCP connection from inside `g` to host:port is accepted within 3 s. */
async function canConnect(g: GuestNs, host: string, port: number): Promise<boolean> {
  const r = await g.exec(['timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`], { timeoutMs: 10_000 });
  return r.code === 0;
}

/** Whether a TCP connection from the root namespace to host:port is accepted within 2 s (the control). */
function rootCanConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 2_000 });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('timeout', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(false));
  });
}

/** A TCP listener on every address of `g`, on `port`. */
async function listenIn(g: GuestNs, port: number): Promise<ChildProcess> {
  const child = g.spawn([
    process.execPath,
    '-e',
    `require('net').createServer((s) => s.on('error', () => {}).end('hi')).listen(${port}, '::', () => console.log('listening'))`,
  ]);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`listener in ${g.ns} exited (${code})`)));
  });
  return child;
}

/** Whether `pid` has exited (a zombie waiting for init counts) within 2 s. */
async function goneOrZombie(pid: number): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return true;
    }
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const B = { ipv4: '10.75.0.3/16', ipv6: 'fdd4:1476:6c7e::3/64', mac: '02:4b:52:00:00:03' };
let a: VethGuest;
let b: VethGuest;
let bare: GuestNs;
let rootServer: Server;
let rootPort: number;

before(async () => {
  a = await createVethGuest();
  b = await createVethGuest(B);
  bare = await createBareGuest();
  rootServer = createServer((s) => s.on('error', () => {}).end('root'));
  await new Promise<void>((resolve) => rootServer.listen(0, '::', resolve)); // every root address, v4 and v6
  rootPort = (rootServer.address() as { port: number }).port;
});

after(async () => {
  await a?.destroy();
  await b?.destroy();
  await bare?.destroy();
  rootServer?.close();
});

test('names are unique and short enough for an interface', TIMEOUT, () => {
  const names = [a.ns, b.ns, bare.ns, a.hostIf, b.hostIf];
  assert.equal(new Set([a.ns, b.ns, bare.ns]).size, 3);
  assert.notEqual(a.hostIf, b.hostIf);
  for (const n of names) assert.ok(n.length <= 15, n);
  assert.ok(existsSync(a.path) && existsSync(bare.path));
});

test("eth0 inside is configured like guest-init's, lo is up", TIMEOUT, async () => {
  for (const [g, want] of [
    [a, { ...GUEST_DEFAULTS, mac: a.mac }],
    [b, { ...GUEST_DEFAULTS, ...B }],
  ] as const) {
    assert.equal(g.mac, want.mac);
    const links = await json<Link[]>(g, ['ip', '-j', 'addr', 'show']);
    assert.deepEqual(links.map((l) => l.ifname).sort(), ['eth0', 'lo']);
    const lo = links.find((l) => l.ifname === 'lo')!;
    assert.ok(lo.flags.includes('UP'));
    assert.ok(lo.addr_info.some((x) => x.local === '127.0.0.1'));
    const eth0 = links.find((l) => l.ifname === 'eth0')!;
    assert.equal(eth0.mtu, 1500);
    assert.equal(eth0.address, want.mac);
    assert.equal(eth0.operstate, 'UP');
    const v4 = eth0.addr_info.filter((x) => x.family === 'inet');
    assert.deepEqual(
      v4.map((x) => `${x.local}/${x.prefixlen}`),
      [want.ipv4],
    );
    const v6 = eth0.addr_info.find((x) => x.family === 'inet6' && x.scope === 'global');
    assert.equal(`${v6?.local}/${v6?.prefixlen}`, want.ipv6);
    assert.ok(!v6?.tentative && !v6?.dadfailed, 'nodad: the IPv6 address is usable at once');
    const r4 = await json<Route[]>(g, ['ip', '-j', '-4', 'route', 'show', 'default']);
    assert.deepEqual(
      r4.map((r) => [r.gateway, r.dev]),
      [[GUEST_DEFAULTS.gateway4, 'eth0']],
    );
    const r6 = await json<Route[]>(g, ['ip', '-j', '-6', 'route', 'show', 'default']);
    assert.deepEqual(
      r6.map((r) => [r.gateway, r.dev]),
      [[GUEST_DEFAULTS.gateway6, 'eth0']],
    );
    // Offloads stay at the kernel's defaults (as on a netfront): the veth's TSO is on.
    const features = (await g.exec(['ethtool', '-k', 'eth0'])).stdout.toString();
    assert.match(features, /tcp-segmentation-offload: on/);
  }
});

test('the host end is up, has no addresses and no IPv6', TIMEOUT, () => {
  for (const g of [a, b]) {
    const [link] = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show', 'dev', g.hostIf], { encoding: 'utf8' })) as Link[];
    assert.ok(link!.flags.includes('UP'));
    assert.equal(link!.mtu, 1500);
    assert.deepEqual(link!.addr_info, []);
    assert.equal(readFileSync(`/proc/sys/net/ipv6/conf/${g.hostIf}/disable_ipv6`, 'utf8').trim(), '1');
  }
});

test('the bare guest has lo only', TIMEOUT, async () => {
  const links = await json<Link[]>(bare, ['ip', '-j', 'addr', 'show']);
  assert.deepEqual(
    links.map((l) => l.ifname),
    ['lo'],
  );
  assert.ok(links[0]!.flags.includes('UP'));
});

test('guests are isolated from each other and from the root namespace', TIMEOUT, async () => {
  const listener = await listenIn(b, 8080);
  // Positive controls: the probe works, and b's listener is reachable from inside b.
  assert.equal(await canConnect(b, '10.75.0.3', 8080), true);
  assert.equal(await canConnect(b, 'fdd4:1476:6c7e::3', 8080), true);
  assert.equal(await canConnect(b, '127.0.0.1', 8080), true);
  assert.equal(await rootCanConnect('127.0.0.1', rootPort), true);
  // a cannot reach b, on either family, nor through its own loopback; neither guest reaches the
  // root namespace: its loopback, its addresses, or the gateway address. (Probed at once: each
  // refusal takes an ARP/ND timeout.)
  const rootAddrs = (JSON.parse(execFileSync('ip', ['-j', 'addr', 'show'], { encoding: 'utf8' })) as Link[])
    .flatMap((l) => l.addr_info)
    .filter((x) => x.scope === 'global')
    .map((x) => x.local);
  const probes: Array<[GuestNs, string, number]> = [
    [a, '10.75.0.3', 8080],
    [a, 'fdd4:1476:6c7e::3', 8080],
    [a, '127.0.0.1', 8080],
    ...[a, b].flatMap((g) =>
      ['127.0.0.1', GUEST_DEFAULTS.gateway4, GUEST_DEFAULTS.gateway6, ...rootAddrs].map((h): [GuestNs, string, number] => [g, h, rootPort]),
    ),
  ];
  const reached = await Promise.all(
    probes.map(async ([g, host, port]) => ((await canConnect(g, host, port)) ? `${g.ns} reached ${host}:${port}` : '')),
  );
  assert.deepEqual(reached.filter(Boolean), []);
  // The root namespace has no route into a guest: nothing points at a host end. (Connecting from the
  // root namespace proves nothing here: the machine's own default route may answer for any address.)
  for (const g of [a, b]) {
    for (const family of ['-4', '-6']) {
      assert.equal(
        execFileSync('ip', [family, 'route', 'show', 'table', 'all', 'dev', g.hostIf], { encoding: 'utf8' }).trim(),
        '',
        `${family} routes via ${g.hostIf}`,
      );
    }
  }
  const via = JSON.parse(execFileSync('ip', ['-j', 'route', 'get', '10.75.0.3'], { encoding: 'utf8' })) as Route[];
  assert.ok(!via.some((r) => r.dev === a.hostIf || r.dev === b.hostIf), JSON.stringify(via));
  listener.kill();
});

test('destroy kills what runs inside and leaves no namespace or interface behind; twice is fine', TIMEOUT, async () => {
  const g = await createVethGuest();
  const bg = await createBareGuest();
  const sleeper = g.spawn(['sleep', '1000']);
  const exited = new Promise<unknown>((resolve) => sleeper.once('exit', resolve));
  const orphan = await g.exec(['bash', '-c', 'setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!']);
  const orphanPid = Number(orphan.stdout.toString().trim());
  assert.ok(orphanPid > 0);
  await g.destroy();
  await bg.destroy();
  await exited;
  await g.destroy();
  await bg.destroy();
  assert.ok(await goneOrZombie(orphanPid), `pid ${orphanPid} still runs`);
  const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.ok(!netns.includes(g.ns) && !netns.includes(bg.ns), netns);
  assert.ok(!existsSync(g.path) && !existsSync(bg.path));
  const links = (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as Link[]).map((l) => l.ifname);
  assert.ok(!links.includes(g.hostIf), links.join(' '));
  await assert.rejects(createVethGuest({ name: 'this-name-is-too-long' }), /1-15/);
});

test('a guest left behind by a killed process is deleted by the next process to create one', TIMEOUT, () => {
  const mod = new URL('./guest-ns.js', import.meta.url).href;
  const node = (code: string) =>
    execFileSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  let leftBehind = '';
  try {
    node(
      `const m = await import(${JSON.stringify(mod)}); const g = await ` +
        `m.createVethGuest(); console.log(g.ns); process.kill(process.pid, 'SIGKILL');`,
    );
  } catch (e) {
    leftBehind = String((e as { stdout?: string }).stdout ?? '').trim();
  }
  assert.ok(leftBehind && existsSync(`/run/netns/${leftBehind}`), `the killed process's guest ${leftBehind} exists`);
  node(`const m = await import(${JSON.stringify(mod)}); const g = await m.createBareGuest(); await g.destroy();`);
  assert.ok(!existsSync(`/run/netns/${leftBehind}`), `${leftBehind} was swept`);
  assert.ok(!existsSync(`/sys/class/net/${leftBehind}`), `${leftBehind}'s host end was swept`);
});
