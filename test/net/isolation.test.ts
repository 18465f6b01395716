// kratanet's egress policy on real kernel stacks (issue 16): a guest reaches "the world" behind dom0's
// default route, but not dom0's own addresses, the subnet dom0 is attached to (other nodes, Redis),
// a network dom0 routes elsewhere (pod routes), or a --deny-cidr range; an --allow-cidr rule reopens
// one destination on one port. dom0 here is a network namespace of its own, so its routing table is
// the test's: kratanet runs inside it, the guest is a namespace behind a veth, and "the world" is a
// third namespace on dom0's uplink, which is also dom0's default gateway. Needs root.
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createBareGuest, createVethGuest, type GuestNs, type VethGuest } from './guest-ns.js';

const KRATANET = fileURLToPath(new URL('../../node-agent/net/main.js', import.meta.url));

// Connects to host:port, reads what the server says; prints {ok, said} or {error}.
const PROBE = String.raw`
const [host, port] = process.argv.slice(1);
const c = require('node:net').connect({ host, port: Number(port) });
let said = '';
const t = setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(0); }, 4000);
c.on('data', (d) => (said += d));
c.on('end', () => { clearTimeout(t); console.log(JSON.stringify({ ok: true, said })); });
c.on('error', (e) => { clearTimeout(t); console.log(JSON.stringify({ error: e.code })); });
`;

// A server on every address of its namespace, on each port given, saying NAME:PORT.
const SERVE = String.raw`
const [name, ...ports] = process.argv.slice(1);
let n = 0;
for (const p of ports) require('node:net').createServer((s) => s.on('error', () => {}).end(name + ':' + p))
  .listen(Number(p), '::', () => { if (++n === ports.length) console.log('listening'); });
`;

type Probe = { ok?: boolean; said?: string; error?: string };

async function probe(ns: GuestNs, host: string, port: number): Promise<Probe> {
  const r = await ns.exec([process.execPath, '-e', PROBE, host, String(port)], { timeoutMs: 15_000 });
  return JSON.parse(r.stdout.toString().trim().split('\n').pop() || '{}') as Probe;
}

async function serve(ns: GuestNs, name: string, ports: number[]): Promise<ChildProcess> {
  const child = ns.spawn([process.execPath, '-e', SERVE, name, ...ports.map(String)]);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
    child.once('exit', (code) => reject(new Error(`server in ${ns.ns} exited (${code})`)));
  });
  return child;
}

describe('kratanet keeps a guest to the world behind the default route', { concurrency: false }, () => {
  let dom0: GuestNs;
  let world: GuestNs;
  let guest: VethGuest;
  let kratanet: ChildProcess;
  let log = '';
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kratanet-isolation-'));
    dom0 = await createBareGuest();
    world = await createBareGuest();
    guest = await createVethGuest();
    const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
    // The guest's vif stand-in moves into dom0 (kratanet quiets it again there).
    ip('link', 'set', guest.hostIf, 'netns', dom0.ns);
    ip('-n', dom0.ns, 'link', 'set', guest.hostIf, 'up');
    // dom0's uplink: 198.51.100.1/24 and 2001:db8:64::1/64; the world's end is its default gateway.
    ip('-n', dom0.ns, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', world.ns);
    ip('-n', dom0.ns, 'addr', 'add', '198.51.100.1/24', 'dev', 'up0');
    ip('-n', dom0.ns, '-6', 'addr', 'add', '2001:db8:64::1/64', 'dev', 'up0', 'nodad');
    ip('-n', dom0.ns, 'link', 'set', 'up0', 'up');
    ip('-n', dom0.ns, 'route', 'add', 'default', 'via', '198.51.100.9');
    ip('-n', dom0.ns, '-6', 'route', 'add', 'default', 'via', '2001:db8:64::9');
    // A network dom0 routes through something other than its default route (like a CNI pod route).
    ip('-n', dom0.ns, 'route', 'add', '192.0.2.0/24', 'via', '198.51.100.9');
    ip('-n', world.ns, 'addr', 'add', '198.51.100.9/24', 'dev', 'eth0');
    ip('-n', world.ns, 'addr', 'add', '198.51.100.20/24', 'dev', 'eth0'); // another host on dom0's subnet
    ip('-n', world.ns, '-6', 'addr', 'add', '2001:db8:64::9/64', 'dev', 'eth0', 'nodad');
    ip('-n', world.ns, 'link', 'set', 'eth0', 'up');
    for (const a of ['203.0.113.5/32', '203.0.113.70/32', '192.0.2.7/32']) ip('-n', world.ns, 'addr', 'add', a, 'dev', 'lo');
    ip('-n', world.ns, '-6', 'addr', 'add', '2001:db8:ff::5/128', 'dev', 'lo');
    ip('-n', world.ns, '-6', 'route', 'add', 'default', 'via', '2001:db8:64::1'); // (the IPv4 replies are on-link)
    await serve(world, 'world', [7000, 7001]);
    await serve(dom0, 'dom0', [7002]);
    const cfg = {
      denyCidrs: ['203.0.113.64/26'],
      allowCidrs: ['198.51.100.20/32:7001'],
      guests: [
        {
          id: 'g',
          interface: guest.hostIf,
          mac: guest.mac,
          ipv4: guest.ipv4,
          ipv6: guest.ipv6,
          gateway4: guest.gateway4,
          gateway6: guest.gateway6,
        },
      ],
    };
    writeFileSync(join(dir, 'kratanet.json'), JSON.stringify(cfg));
    kratanet = dom0.spawn([process.execPath, KRATANET, '--config', join(dir, 'kratanet.json')]);
    kratanet.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await new Promise<void>((resolve, reject) => {
      kratanet.stdout!.on('data', (d: Buffer) => d.toString().includes('kratanet ready') && resolve());
      kratanet.once('exit', (code) => reject(new Error(`kratanet exited (${code}): ${log}`)));
    });
  });

  after(async () => {
    kratanet?.kill('SIGTERM');
    await guest?.destroy();
    await world?.destroy();
    await dom0?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the world behind the default route is reached (IPv4 and IPv6)', async () => {
    assert.deepEqual(await probe(guest, '203.0.113.5', 7000), { ok: true, said: 'world:7000' });
    assert.deepEqual(await probe(guest, '2001:db8:ff::5', 7000), { ok: true, said: 'world:7000' });
  });

  test("dom0's addresses, its subnet, a network it routes and a --deny-cidr range are refused", async () => {
    const cases: [string, number, RegExp][] = [
      ['198.51.100.1', 7002, /dom0's own address/], // dom0 itself
      ['2001:db8:64::1', 7002, /dom0's own address/],
      ['198.51.100.20', 7000, /node network 198\.51\.100\.0\/24 on up0 \(attached\)/], // a neighbour
      ['198.51.100.9', 7000, /node network 198\.51\.100\.0\/24/], // dom0's own gateway
      ['2001:db8:64::9', 7000, /node network 2001:db8:64::\/64/],
      ['192.0.2.7', 7000, /node network 192\.0\.2\.0\/24 on up0 \(route\)/], // routed, not by default
      ['203.0.113.70', 7000, /deny-cidr 203\.0\.113\.64\/26/],
    ];
    for (const [host, port, reason] of cases) {
      // The control: dom0 itself reaches it, so the refusal is kratanet's.
      assert.equal((await probe(dom0, host, port)).ok, true, `dom0 reaches ${host}:${port}`);
      const before = log.length;
      assert.deepEqual(await probe(guest, host, port), { error: 'ECONNREFUSED' }, `the guest reaches ${host}:${port}`);
      await new Promise((r) => setTimeout(r, 1000)); // refusals are logged once a second per guest
      assert.match(log.slice(before), reason, `the log names the rule for ${host}`);
    }
  });

  test('--allow-cidr reopens a destination on its port only', async () => {
    assert.deepEqual(await probe(guest, '198.51.100.20', 7001), { ok: true, said: 'world:7001' });
    assert.deepEqual(await probe(guest, '198.51.100.20', 7000), { error: 'ECONNREFUSED' });
    assert.equal(kratanet.exitCode, null, `kratanet exited: ${log}`);
  });
});
