// The agent's durable pieces and its work queue: the guest store (API-server semantics, crash
// safety), IPAM reservations, and the queue's guarantees (dedupe, one worker per key, backoff, bound).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Guest } from '../../crds/generated/types.js';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import { GuestStore } from './guest-store.js';
import { Ipam } from '../reconcile/ipam.js';
import type { WatchEvent } from '../../contracts/agent-api/types.js';
import { WorkQueue } from '../../lib/work-queue.js';

const work = mkdtempSync(join(tmpdir(), 'krata-agent-store-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
let n = 0;
const now = new Date('2026-01-01T00:00:00Z');

function guest(name: string, image = 'app:1', labels?: Record<string, string>): Guest {
  return {
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name, namespace: 'default', ...(labels ? { labels } : {}) },
    spec: { image, resources: { cpus: 1, memory: '64Mi' } } as Guest['spec'],
  };
}

test('guest store: uid, generation bumps on spec changes only, status kept, revisions for watches', () => {
  const dir = join(work, `s${++n}`);
  const store = new GuestStore(dir);
  const events: WatchEvent[] = [];
  store.on('change', (e: WatchEvent) => events.push(e));
  assert.equal(store.put(guest('a'), now), 'created');
  const a = store.get('default/a')!.guest;
  assert.match(a.metadata.uid!, /^[0-9a-f-]{36}$/);
  assert.equal(a.metadata.generation, 1);
  assert.equal(store.put(guest('a'), now), 'unchanged');
  assert.equal(store.put(guest('a', 'app:1', { tier: 'web' }), now), 'configured');
  assert.equal(store.get('default/a')!.guest.metadata.generation, 1, 'labels are not spec');
  store.setStatus('default/a', { phase: 'Running', domid: 4 });
  assert.equal(store.put(guest('a', 'app:2', { tier: 'web' }), now), 'configured');
  const a2 = store.get('default/a')!.guest;
  assert.equal(a2.metadata.generation, 2);
  assert.equal(a2.status!.domid, 4, 'status survives a spec change');
  assert.equal(a2.metadata.uid, a.metadata.uid);
  assert.deepEqual(
    events.map((e) => e.type),
    ['ADDED', 'MODIFIED', 'MODIFIED', 'MODIFIED'],
  );
  assert.deepEqual(
    events.map((e) => e.revision),
    [1, 2, 3, 4],
  );
  assert.equal(store.setStatus('default/a', { phase: 'Running', domid: 4 }), false, 'an unchanged status is not written');
  store.markDeleted('default/a', now, 3);
  assert.throws(() => store.put(guest('a'), now), /being deleted/);
  store.remove('default/a');
  assert.equal(events.at(-1)!.type, 'DELETED');
  assert.deepEqual(readdirSync(join(dir, 'guests/default')), []);
});

test('guest store: what was written survives a restart and a kill -9 in the middle of writes', () => {
  const dir = join(work, `s${++n}`);
  const store = new GuestStore(dir);
  store.put(guest('kept'), now);
  store.setStatus('default/kept', { phase: 'Running', restartCount: 2 }, { failures: 1, notBefore: 5 });
  // A writer killed while writing: hundreds of records rewritten in a child process, SIGKILLed.
  const script = `
    import { GuestStore } from ${JSON.stringify(new URL('./guest-store.js', import.meta.url).href)};
    const s = new GuestStore(${JSON.stringify(dir)});
    const guest = (i) => ({
      apiVersion: 'krata.dev/v1alpha1', kind: 'Guest', metadata: { name: 'g' + (i % 50), namespace: 'default' },
      spec: { image: 'img:' + i, resources: { cpus: 1, memory: '64Mi' } },
    });
    for (let i = 0; ; i++) s.put(guest(i), new Date());`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 1500, killSignal: 'SIGKILL' });
  assert.equal(r.signal, 'SIGKILL');
  writeFileSync(join(dir, 'guests/default/torn.json.tmp-1-abcd'), '{"guest": {"metad');
  writeFileSync(join(dir, 'guests/default/broken.json'), 'not json');
  const problems: string[] = [];
  const again = new GuestStore(dir, problems);
  assert.equal(again.get('default/kept')!.guest.status!.restartCount, 2);
  assert.deepEqual(again.get('default/kept')!.internal, { failures: 1, notBefore: 5 });
  assert.ok(again.keys().filter((k) => /^default\/g\d+$/.test(k)).length > 0, 'the killed writer got some records in');
  for (const k of again.keys()) assert.ok(again.get(k)!.guest.spec.image, `${k} is whole`);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /broken\.json/);
  assert.ok(!readdirSync(join(dir, 'guests/default')).some((f) => f.includes('.tmp-')), 'interrupted temporary files are removed');
  // Revisions continue from the highest stored one.
  const before = again.currentRevision;
  again.put(guest('new'), now);
  assert.equal(again.currentRevision, before + 1);
});

test('ipam: one reservation per Guest, persisted, released, new uid new addresses, exhaustion is an error', () => {
  const dir = join(work, `s${++n}`);
  const ipam = new Ipam(dir, { ipv4Subnet: '10.9.8.0/29', ipv6Subnet: 'fd00:1:2::/48' });
  const a = ipam.reserve('default/a', 'uid-a');
  assert.deepEqual(a, {
    uid: 'uid-a',
    ipv4: '10.9.8.2',
    ipv6: 'fd00:1:2::2',
    mac: '02:4b:00:00:00:02',
    prefix4: 29,
    prefix6: 64,
    gateway4: '10.9.8.1',
    gateway6: 'fd00:1:2::1',
  });
  assert.deepEqual(ipam.reserve('default/a', 'uid-a'), a, 'same guest, same addresses');
  const b = ipam.reserve('default/b', 'uid-b');
  assert.equal(b.ipv4, '10.9.8.3');
  assert.deepEqual(new Ipam(dir, { ipv4Subnet: '10.9.8.0/29', ipv6Subnet: 'fd00:1:2::/48' }).get('default/b'), b, 'persisted');
  ipam.reserve('default/c', 'c');
  ipam.reserve('default/d', 'd');
  ipam.reserve('default/e', 'e');
  assert.throws(() => ipam.reserve('default/f', 'f'), /no free IPv4 address left in 10\.9\.8\.0\/29/);
  ipam.release('default/b');
  assert.equal(ipam.reserve('default/f', 'f').ipv4, '10.9.8.3', 'released addresses are reused');
  assert.throws(() => new Ipam(join(work, 'x'), { ipv4Subnet: '10.0.0.0/33' }), /not a CIDR/);
});

test('work queue: a key at most once queued, never twice at once, backoff doubling on failure, bounded concurrency', async () => {
  const clock = new FakeClock();
  const running = new Set<string>();
  let maxParallel = 0;
  const runs: string[] = [];
  let failB = 3;
  let release: () => void = () => undefined;
  let gate = new Promise<void>((r) => (release = r));
  const errors: number[] = [];
  const q = new WorkQueue(
    async (key) => {
      assert.ok(!running.has(key), `${key} handled twice at once`);
      running.add(key);
      maxParallel = Math.max(maxParallel, running.size);
      runs.push(key);
      await gate;
      running.delete(key);
      if (key === 'b' && failB-- > 0) throw new Error('nope');
    },
    { concurrency: 2, clock },
    (_key, _err, retry) => errors.push(retry),
  );
  for (const k of ['a', 'b', 'c', 'a', 'a']) q.add(k);
  q.add('a'); // while 'a' runs: marked dirty, runs again afterwards
  release();
  await q.idle();
  assert.equal(maxParallel, 2);
  assert.deepEqual(runs.filter((k) => k === 'a').length, 2);
  gate = Promise.resolve();
  for (let i = 0; i < 3; i++) {
    clock.advance(1000);
    await q.idle();
  }
  assert.deepEqual(errors, [5, 10, 20], 'backoff doubles from 5 ms');
  assert.equal(q.attempts('b'), 0, 'a success resets it');
  q.stop();
});
