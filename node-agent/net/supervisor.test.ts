// Wiring kratanet into the node agent: the configuration derived from the guest store and the address
// reservations, and the supervisor that runs kratanet as a child (here a fake child script that records
// what it is sent, fails a guest once, crashes on demand, and can ignore SIGTERM), plus the real one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Guest } from '../../crds/generated/types.js';
import { validateObject } from '../../crds/validate.js';
import { GuestStore } from '../store/guest-store.js';
import { Ipam } from '../reconcile/ipam.js';
import { validateConfig, type KratanetConfig } from './config.js';
import { desiredNetwork, describeConflict, egressFlags, type PortConflict } from './desired.js';
import { DialError } from './guest-dialer.js';
import { dialSocketPath, KratanetDialer } from './kratanet-dialer.js';
import { NetSupervisor, type NetLog } from './supervisor.js';

const work = mkdtempSync(join(tmpdir(), 'krata-net-supervisor-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
let n = 0;

function guest(name: string, spec: Record<string, unknown> = {}): Guest {
  const r = validateObject({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name },
    spec: { image: 'registry.example/app:1.0', resources: { cpus: 1, memory: '64Mi' }, ...spec },
  });
  assert.deepEqual(r.errors, []);
  return r.object as Guest;
}

/** A Guest as the reconciler leaves it: stored, addresses reserved (if networked), a domain (if domid). */
function running(
  store: GuestStore,
  ipam: Ipam,
  name: string,
  created: string,
  domid: number | undefined,
  spec: Record<string, unknown> = {},
): void {
  store.put(guest(name, spec), new Date(created));
  const key = `default/${name}`;
  const g = store.get(key)!.guest;
  if (g.spec.network.enabled) ipam.reserve(key, g.metadata.uid!);
  store.setStatus(key, domid === undefined ? { phase: 'Pending' } : { phase: 'Running', domid });
}

test('desiredNetwork: networked guests with a domain and a reservation; the older guest keeps a contested host port', () => {
  const dir = join(work, `state-${++n}`);
  const store = new GuestStore(dir);
  const ipam = new Ipam(dir);
  const net = (ports: unknown[] = []) => ({ network: { enabled: true, ports } });
  running(
    store,
    ipam,
    'web',
    '2026-01-01T00:00:00Z',
    3,
    net([{ containerPort: 80 }, { containerPort: 53, hostPort: 5353, protocol: 'UDP' }]),
  );
  running(
    store,
    ipam,
    'late',
    '2026-01-02T00:00:00Z',
    5,
    net([
      { containerPort: 8080, hostPort: 80 },
      { containerPort: 53, protocol: 'UDP' },
    ]),
  );
  running(store, ipam, 'offline', '2026-01-01T00:00:00Z', 4, { network: { enabled: false } });
  running(store, ipam, 'pending', '2026-01-01T00:00:00Z', undefined, net());
  running(store, ipam, 'dying', '2026-01-01T00:00:00Z', 7, net());
  store.markDeleted('default/dying', new Date('2026-01-03T00:00:00Z'));
  // A domain but no reservation (none made yet), and a reservation of an earlier Guest of the name.
  store.put(guest('unreserved', net()), new Date('2026-01-01T00:00:00Z'));
  store.setStatus('default/unreserved', { phase: 'Running', domid: 8 });
  store.put(guest('replaced', net()), new Date('2026-01-01T00:00:00Z'));
  ipam.reserve('default/replaced', 'some-earlier-uid');
  store.setStatus('default/replaced', { phase: 'Running', domid: 9 });

  const conflicts: PortConflict[] = [];
  const cfg = desiredNetwork(store, ipam, { hostLoopback: true }, conflicts);
  assert.deepEqual(validateConfig(JSON.parse(JSON.stringify(cfg))), cfg, 'kratanet accepts it as it is');
  assert.equal(cfg.hostLoopback, true);
  assert.equal(cfg.hostAccess, false);
  assert.deepEqual(cfg.guestSubnets, ['10.75.0.0/16', 'fdd4:1476:6c7e::/48']);
  assert.deepEqual(
    cfg.guests.map((g) => g.id),
    ['default/dying', 'default/late', 'default/web'],
    'a guest being deleted keeps its network while its domain is there',
  );
  const web = cfg.guests.find((g) => g.id === 'default/web')!;
  const r = ipam.get('default/web')!;
  assert.deepEqual(web, {
    id: 'default/web',
    interface: 'vif3.0',
    mac: r.mac,
    ipv4: `${r.ipv4}/16`,
    ipv6: `${r.ipv6}/64`,
    gateway4: '10.75.0.1',
    gateway6: 'fdd4:1476:6c7e::1',
    ports: [
      { protocol: 'TCP', guestPort: 80, hostPort: 80 },
      { protocol: 'UDP', guestPort: 53, hostPort: 5353 },
    ],
  });
  assert.equal(web.ipv4, '10.75.0.2/16');
  const late = cfg.guests.find((g) => g.id === 'default/late')!;
  assert.equal(late.interface, 'vif5.0');
  assert.deepEqual(late.ports, [{ protocol: 'UDP', guestPort: 53, hostPort: 53 }], 'TCP/80 stays with the older guest');
  assert.deepEqual(conflicts, [{ guest: 'default/late', holder: 'default/web', protocol: 'TCP', hostPort: 80 }]);
  assert.match(describeConflict(conflicts[0]!), /default\/late.*TCP\/80.*default\/web/);
  assert.deepEqual(desiredNetwork(store, ipam, { hostLoopback: true }), cfg, 'the same state gives the same configuration');

  // The older guest's domain goes: the port is free for the other.
  store.setStatus('default/web', { phase: 'Succeeded' });
  const after: PortConflict[] = [];
  const cfg2 = desiredNetwork(store, ipam, {}, after);
  assert.deepEqual(
    cfg2.guests.map((g) => g.id),
    ['default/dying', 'default/late'],
  );
  assert.deepEqual(cfg2.guests[1]!.ports, [
    { protocol: 'TCP', guestPort: 8080, hostPort: 80 },
    { protocol: 'UDP', guestPort: 53, hostPort: 53 },
  ]);
  assert.deepEqual(after, []);
  // The deleted guest's domain is gone and its record with it.
  ipam.release('default/dying');
  store.remove('default/dying');
  assert.deepEqual(
    desiredNetwork(store, ipam).guests.map((g) => g.id),
    ['default/late'],
  );
});

test("desiredNetwork: the guest subnets are the Ipam's", () => {
  const dir = join(work, `state-${++n}`);
  const store = new GuestStore(dir);
  const ipam = new Ipam(dir, { ipv4Subnet: '192.168.77.5/24', ipv6Subnet: 'fd00:1:2::/48' });
  running(store, ipam, 'a', '2026-01-01T00:00:00Z', 12, { network: { enabled: true } });
  const cfg = desiredNetwork(store, ipam, { hostAccess: true });
  assert.deepEqual(cfg.guestSubnets, ['192.168.77.0/24', 'fd00:1:2::/48']);
  assert.equal(cfg.hostAccess, true);
  assert.deepEqual(
    cfg.guests.map((g) => [g.interface, g.ipv4, g.ipv6, g.gateway4, g.gateway6]),
    [['vif12.0', '192.168.77.2/24', 'fd00:1:2::2/64', '192.168.77.1', 'fd00:1:2::1']],
  );
  validateConfig(cfg);
});

test("desiredNetwork: the agent's --deny-cidr, --allow-cidr and --network-budget reach kratanet", () => {
  const dir = join(work, `state-${++n}`);
  const store = new GuestStore(dir);
  const ipam = new Ipam(dir);
  running(store, ipam, 'a', '2026-01-01T00:00:00Z', 12, { network: { enabled: true } });
  const cfg = desiredNetwork(store, ipam, egressFlags(['10.96.0.0/12'], ['10.96.0.10/32:53'], '64'));
  assert.deepEqual([cfg.denyCidrs, cfg.allowCidrs, cfg.hostBudget], [['10.96.0.0/12'], ['10.96.0.10/32:53'], 64 << 20]);
  assert.deepEqual(validateConfig(JSON.parse(JSON.stringify(cfg))), cfg, 'kratanet accepts it as it is');
  const plain = desiredNetwork(store, ipam, egressFlags());
  assert.ok(!('denyCidrs' in plain) && !('allowCidrs' in plain) && !('hostBudget' in plain), "no flags: kratanet's defaults");
});

test('desiredNetwork: the dial socket reaches kratanet as given; kratanet refuses a relative or overlong one', () => {
  const dir = join(work, `state-${++n}`);
  const store = new GuestStore(dir);
  const ipam = new Ipam(dir);
  running(store, ipam, 'a', '2026-01-01T00:00:00Z', 12, { network: { enabled: true } });
  const dialSocket = dialSocketPath(dir)!;
  const cfg = desiredNetwork(store, ipam, { dialSocket });
  assert.equal(cfg.dialSocket, dialSocket);
  assert.deepEqual(validateConfig(JSON.parse(JSON.stringify(cfg))), cfg);
  assert.ok(!('dialSocket' in desiredNetwork(store, ipam)));
  assert.throws(() => validateConfig({ ...cfg, dialSocket: 'rel/k.sock' }), /dialSocket: must be an absolute path/);
  assert.throws(() => validateConfig({ ...cfg, dialSocket: `/${'x'.repeat(107)}` }), /dialSocket: must be an absolute path of at most 107/);
});

// The fake kratanet: records every start, apply and SIGTERM in log.jsonl; applies after DELAY ms;
// fails a guest whose id contains "flaky" the first time it sees it; exits with 3 on an apply while
// the file "crash" exists (removing it); ignores SIGTERM while "ignore-sigterm" exists.
const FAKE = `
import { appendFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const [dir, delay = '0'] = process.argv.slice(2);
const rec = (o) => appendFileSync(join(dir, 'log.jsonl'), JSON.stringify({ pid: process.pid, ...o }) + '\\n');
rec({ event: 'start' });
process.on('SIGTERM', () => {
  rec({ event: 'sigterm' });
  if (!existsSync(join(dir, 'ignore-sigterm'))) process.exit(0);
});
process.on('message', (m) => {
  if (m.type !== 'apply') return;
  rec({ event: 'apply', seq: m.seq, config: m.config });
  if (existsSync(join(dir, 'crash'))) {
    rmSync(join(dir, 'crash'));
    process.exit(3);
  }
  setTimeout(() => {
    if (m.config.invalid) return process.send({ type: 'applied', seq: m.seq, error: 'agent: invalid: unknown field' });
    const results = m.config.guests.map((g) => {
      const marker = join(dir, 'failed-' + g.id.replace(/\\//g, '_'));
      if (g.id.includes('flaky') && !existsSync(marker)) {
        writeFileSync(marker, '');
        return { id: g.id, ok: false, error: g.interface + ': no such device', portErrors: [] };
      }
      return { id: g.id, ok: true, portErrors: g.ports?.some((p) => p.hostPort === 1) ? ['TCP/1: permission denied'] : [] };
    });
    process.send({ type: 'applied', seq: m.seq, results });
  }, Number(delay));
});
process.send({ type: 'ready' });
`;

interface LogEntry {
  pid: number;
  event: 'start' | 'apply' | 'sigterm';
  seq?: number;
  config?: KratanetConfig;
}

interface Fake {
  dir: string;
  sup: NetSupervisor;
  logs: { level: string; msg: string }[];
  entries(event?: LogEntry['event']): LogEntry[];
}

function fake(delayMs = 0, opts: ConstructorParameters<typeof NetSupervisor>[0] = {}): Fake {
  const dir = mkdtempSync(join(work, 'fake-'));
  const script = join(dir, 'fake-kratanet.mjs');
  writeFileSync(script, FAKE);
  const logs: { level: string; msg: string }[] = [];
  const log: NetLog = (level, msg) => logs.push({ level, msg });
  const sup = new NetSupervisor({
    script,
    args: [dir, String(delayMs)],
    log,
    retryMs: 100,
    restartBackoffMs: [50, 400],
    stopTimeoutMs: 300,
    ...opts,
  });
  return {
    dir,
    sup,
    logs,
    entries(event) {
      const file = join(dir, 'log.jsonl');
      const all = existsSync(file)
        ? readFileSync(file, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as LogEntry)
        : [];
      return event ? all.filter((e) => e.event === event) : all;
    },
  };
}

async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cfgOf(...ids: string[]): KratanetConfig {
  return {
    guests: ids.map((id, i) => ({
      id,
      interface: `vif${i + 10}.0`,
      mac: `02:4b:00:00:00:${(i + 2).toString(16).padStart(2, '0')}`,
      ipv4: `10.75.0.${i + 2}/16`,
      ipv6: `fdd4:1476:6c7e::${i + 2}/64`,
      gateway4: '10.75.0.1',
      gateway6: 'fdd4:1476:6c7e::1',
      ports: [],
    })),
  };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('supervisor: one apply at a time; configurations given meanwhile collapse into the newest; an unchanged one is not sent', async () => {
  const f = fake(300);
  try {
    f.sup.update(cfgOf('default/a'));
    await until(() => f.entries('apply').length === 1, 'the first apply');
    f.sup.update(cfgOf('default/a', 'default/b'));
    f.sup.update(cfgOf('default/a', 'default/b', 'default/c'));
    f.sup.update(cfgOf('default/c'));
    await until(() => f.sup.results().length === 1 && f.sup.result('default/c') !== undefined, 'the newest configuration applied');
    const applies = f.entries('apply');
    assert.deepEqual(
      applies.map((e) => e.config!.guests.map((g) => g.id)),
      [['default/a'], ['default/c']],
    );
    assert.deepEqual(
      applies.map((e) => e.seq),
      [1, 2],
    );
    assert.deepEqual(f.sup.results(), [{ id: 'default/c', ok: true, portErrors: [] }]);
    f.sup.update(cfgOf('default/c'));
    await sleep(100);
    assert.equal(f.entries('apply').length, 2, 'the same configuration again is not sent');
    assert.equal(f.entries('start').length, 1);
    assert.deepEqual(f.sup.status(), { running: true, restarts: 0 });
  } finally {
    await f.sup.stop();
  }
});

test('supervisor: a guest that could not be set up is retried by sending the configuration again, until it is', async () => {
  const f = fake();
  try {
    const cfg = cfgOf('default/ok', 'default/flaky');
    cfg.guests[0]!.ports = [{ protocol: 'TCP', guestPort: 1, hostPort: 1 }];
    f.sup.update(cfg);
    await until(() => f.sup.result('default/flaky') !== undefined, 'the first results');
    assert.deepEqual(f.sup.result('default/flaky'), { id: 'default/flaky', ok: false, error: 'vif11.0: no such device', portErrors: [] });
    assert.deepEqual(f.sup.result('default/ok')!.portErrors, ['TCP/1: permission denied']);
    await until(() => f.sup.result('default/flaky')?.ok === true, 'the retry');
    const applies = f.entries('apply');
    assert.equal(applies.length, 2);
    assert.deepEqual(applies[1]!.config, cfg, 'the retry is the same configuration');
    await sleep(300);
    assert.equal(f.entries('apply').length, 2, 'no retries once every guest is up');
    assert.ok(f.logs.some((l) => l.level === 'warn' && /default\/flaky: network not set up: vif11.0: no such device/.test(l.msg)));
    assert.ok(f.logs.some((l) => l.level === 'info' && /default\/flaky: network set up/.test(l.msg)));
    assert.equal(f.logs.filter((l) => /TCP\/1: permission denied/.test(l.msg)).length, 1, 'a port error is logged once');
  } finally {
    await f.sup.stop();
  }
});

test('supervisor: a refused configuration is logged, not retried; the next one goes', async () => {
  const f = fake();
  try {
    f.sup.update({ ...cfgOf('default/a'), invalid: true } as KratanetConfig);
    await until(() => f.sup.status().error !== undefined, 'the refusal');
    assert.match(f.sup.status().error!, /unknown field/);
    await sleep(250);
    assert.equal(f.entries('apply').length, 1);
    f.sup.update(cfgOf('default/a'));
    await until(() => f.sup.result('default/a')?.ok === true, 'the next configuration');
    assert.equal(f.sup.status().error, undefined);
  } finally {
    await f.sup.stop();
  }
});

test('supervisor: kratanet dying is restarted with backoff and given the last configuration again', async () => {
  const f = fake();
  try {
    writeFileSync(join(f.dir, 'crash'), '');
    f.sup.update(cfgOf('default/a'));
    // It dies on the first apply; the next one gets the same configuration.
    await until(() => f.sup.result('default/a')?.ok === true, 'the configuration applied after the crash');
    const starts = f.entries('start');
    assert.equal(starts.length, 2);
    const applies = f.entries('apply');
    assert.deepEqual(
      applies.map((e) => e.pid),
      [starts[0]!.pid, starts[1]!.pid],
    );
    assert.deepEqual(applies[1]!.config, cfgOf('default/a'));
    assert.ok(f.logs.some((l) => l.level === 'error' && /exited with code 3; restarting in 50 ms/.test(l.msg)));
    // Killed from outside, while a newer configuration is the last one given.
    f.sup.update(cfgOf('default/a', 'default/b'));
    await until(() => f.sup.result('default/b') !== undefined, 'the newer configuration');
    process.kill(starts[1]!.pid, 'SIGKILL');
    await until(() => f.entries('start').length === 3 && f.entries('apply').length === 4, 'the second restart');
    assert.deepEqual(f.entries('apply')[3]!.config, cfgOf('default/a', 'default/b'));
    assert.ok(
      f.logs.some((l) => /killed by SIGKILL; restarting in 100 ms/.test(l.msg)),
      'the delay doubles',
    );
    assert.equal(f.sup.status().restarts, 2);
    await until(() => f.sup.status().running, 'running again');
  } finally {
    await f.sup.stop();
  }
});

test('supervisor: stop sends SIGTERM, then SIGKILL if it does not exit; nothing is restarted after', async () => {
  const f = fake();
  f.sup.update(cfgOf('default/a'));
  await until(() => f.sup.result('default/a') !== undefined, 'the first apply');
  const pid = f.entries('start')[0]!.pid;
  writeFileSync(join(f.dir, 'ignore-sigterm'), '');
  const t0 = Date.now();
  await f.sup.stop();
  assert.ok(Date.now() - t0 >= 250, 'it waited for the SIGTERM timeout');
  assert.equal(f.entries('sigterm').length, 1);
  assert.equal(alive(pid), false);
  assert.ok(f.logs.some((l) => /did not exit within 300 ms of SIGTERM/.test(l.msg)));
  f.sup.update(cfgOf('default/b'));
  await sleep(200);
  assert.equal(f.entries('start').length, 1, 'no restart after stop');
  assert.equal(f.sup.status().running, false);
  await f.sup.stop(); // twice is fine

  // A child that exits on SIGTERM: stop resolves as soon as it has.
  const g = fake();
  g.sup.update(cfgOf('default/a'));
  await until(() => g.sup.status().running, 'started');
  const pid2 = g.entries('start')[0]!.pid;
  const t1 = Date.now();
  await g.sup.stop();
  assert.ok(Date.now() - t1 < 250);
  assert.equal(alive(pid2), false);
  assert.equal(g.entries('sigterm').length, 1);
  // Stopping one never started, or one waiting to restart, resolves at once.
  await new NetSupervisor({ script: '/nonexistent.js' }).stop();
});

test('supervisor: the real kratanet answers over IPC', async () => {
  const logs: string[] = [];
  const sup = new NetSupervisor({ log: (_l, msg) => logs.push(msg), retryMs: 60_000 });
  try {
    sup.update({ guestSubnets: ['10.75.0.0/16', 'fdd4:1476:6c7e::/48'], guests: [] });
    await until(() => sup.status().running, `kratanet to start (${logs.join('; ')})`, 10_000);
    // A guest whose vif does not exist: not ok, with the interface named.
    sup.update({
      guests: [
        {
          id: 'default/x',
          interface: 'vif9999.0',
          mac: '02:4b:00:00:00:02',
          ipv4: '10.75.0.2/16',
          ipv6: 'fdd4:1476:6c7e::2/64',
          gateway4: '10.75.0.1',
          gateway6: 'fdd4:1476:6c7e::1',
          ports: [],
        },
      ],
    });
    await until(() => sup.result('default/x') !== undefined, 'the result', 10_000);
    assert.equal(sup.result('default/x')!.ok, false);
    assert.match(sup.result('default/x')!.error!, /vif9999\.0/);
    // The dial socket the agent names is served: kratanet answers for a guest it does not serve.
    const dialSocket = dialSocketPath(join(work, `state-${++n}`))!;
    const dialer = new KratanetDialer(dialSocket);
    const reason = () =>
      dialer.dial('default/x', 80, { timeoutMs: 2000 }).then(
        () => 'connected',
        (e: DialError) => `${e.reason}: ${e.message}`,
      );
    assert.match(await reason(), /^Unavailable: .*ENOENT/, 'no socket yet');
    sup.update({ dialSocket, guests: [] });
    await until(() => existsSync(dialSocket), 'the dial socket', 10_000);
    assert.match(await reason(), /^NoSuchGuest: /);
  } finally {
    await sup.stop();
  }
});
