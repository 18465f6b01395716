// Cluster mode against a real redis-server, with the operator played by the test: desired entries
// reach Running and come back as status; jobs nudge; absence deletes only for a complete epoch; a
// Guest recreated under its name replaces the old one; whatever Redis holds, bad entries are skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { desiredKey, fieldOf } from '../../contracts/redis/contract.js';
import { desired, harness, until } from '../../test/harness/cluster-agent.js';

/** A hang fails the test by name instead of stalling the file. */
const limit = { timeout: 45_000 };
const phase = (h: Awaited<ReturnType<typeof harness>>, name: string) => h.agent.get('default', name)?.status?.phase;

test('desired entries → store → reconciler → Running; the status hash and stream carry the report', limit, async () => {
  const h = await harness();
  try {
    const web = desired('web', {}, { labels: { tier: 'web' }, annotations: { note: 'x' } });
    const db = desired('db');
    await h.op.put(web, db);
    await h.op.nudge(web);
    await h.op.nudge(db);
    await until(() => phase(h, 'web') === 'Running' && phase(h, 'db') === 'Running', 'both Running');
    const g = h.agent.get('default', 'web')!;
    assert.equal(g.metadata.uid, web.uid, "the cluster's uid, not a generated one");
    assert.equal(g.metadata.generation, 1);
    assert.deepEqual(g.metadata.labels, { tier: 'web' });
    assert.equal(g.status!.node, 'xen-1.example');
    await until(async () => (await h.op.status('web'))?.status?.phase === 'Running', 'status hash says Running');
    const report = (await h.op.status('web'))!;
    assert.equal(report.uid, web.uid);
    assert.equal(report.generation, 1);
    assert.equal(report.status!.observedGeneration, 1);
    assert.equal(report.status!.addresses!.ipv4, g.status!.addresses!.ipv4);
    assert.match(report.time, /^\d{4}-\d\d-\d\dT/);
    const streamed = await h.op.streamed('web');
    assert.equal(streamed.at(-1)!.status!.phase, 'Running');
    assert.ok(streamed.length <= 4, `coalesced: ${streamed.map((r) => r.status?.phase).join(', ')}`);
    // An entry the agent already runs is not touched by later reads (once the reconciler has observed
    // both running domains and recorded their resources, the last status writes it makes for them).
    await until(() => ['web', 'db'].every((n) => h.agent.get('default', n)?.status?.resources !== undefined), 'resources recorded');
    const rv = h.agent.get('default', 'web')!.metadata.resourceVersion;
    await new Promise((r) => setTimeout(r, 1200)); // past a full resync
    assert.equal(h.agent.get('default', 'web')!.metadata.resourceVersion, rv);
    assert.equal(h.hv.calls.create, 2);
  } finally {
    await h.stop();
  }
});

test('jobs nudge: a new generation with a job is acted on at once, not at the next poll; a duplicate job collapses', limit, async () => {
  const h = await harness({ pollMs: 60_000, resyncMs: 60_000 });
  try {
    const app = desired('app');
    await h.op.put(app);
    await h.op.complete('e1');
    h.cluster.follower.poll(); // the first read of the hash
    await until(() => phase(h, 'app') === 'Running', 'Running');
    const first = h.agent.get('default', 'app')!.status!.domid;
    const v2 = { ...app, generation: 2, spec: { ...app.spec, args: ['--v2'] } };
    await h.op.put(v2);
    const t0 = Date.now();
    await h.op.nudge(v2);
    await until(
      () => h.agent.get('default', 'app')!.status!.observedGeneration === 2 && phase(h, 'app') === 'Running',
      'generation 2 running',
      5000,
    );
    assert.ok(Date.now() - t0 < 5000, 'well before the 60 s poll');
    assert.notEqual(h.agent.get('default', 'app')!.status!.domid, first, 'a spec change recreated the domain');
    assert.equal(h.agent.get('default', 'app')!.spec.args![0], '--v2');
    // The same job again: BullMQ keeps one job per id.
    await h.op.nudge(v2);
    await h.op.nudge(v2);
    // The worker marks the job completed after acting on it: the Guest can be Running a moment before.
    const counts = () => h.op.queue.getJobCounts('completed', 'waiting', 'active', 'failed');
    await until(async () => (await counts()).active === 0, 'the job settled');
    assert.deepEqual(await counts(), { completed: 1, waiting: 0, active: 0, failed: 0 });
  } finally {
    await h.stop();
  }
});

test('absence deletes only when the hash is complete for the current epoch; then the report is status null', limit, async () => {
  const h = await harness();
  try {
    const keep = desired('keep');
    const drop = desired('drop');
    await h.op.put(keep, drop);
    await h.op.complete('e1');
    await until(
      () => phase(h, 'keep') === 'Running' && phase(h, 'drop') === 'Running' && h.cluster.follower.appliedEpoch === 'e1',
      'Running, epoch e1',
    );
    // A republish in progress: 'drop' is not written (yet), the marker is for an old epoch.
    await h.op.client.multi().hdel(desiredKey('xen-1.example'), fieldOf('default', 'drop')).set('krata:epoch', 'e2').exec();
    await h.op.nudge(drop);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(phase(h, 'drop'), 'Running', 'an incomplete hash deletes nothing');
    assert.equal(h.cluster.follower.appliedEpoch, 'e1');
    await h.op.complete('e2');
    await until(() => !h.agent.get('default', 'drop'), 'drop deleted');
    assert.equal(phase(h, 'keep'), 'Running');
    await until(async () => (await h.op.streamed('drop')).at(-1)?.status === null, 'status null for drop on the stream');
    assert.equal((await h.op.streamed('drop')).at(-1)!.uid, drop.uid);
    assert.equal(h.hv.count, 1);
    assert.equal(h.cluster.follower.appliedEpoch, 'e2');
    // Its field in the status hash is a tombstone: gone at the next full read, as the desired field is.
    await until(async () => (await h.op.status('drop')) === undefined, 'status field pruned');
    assert.equal((await h.op.status('keep'))!.status!.phase, 'Running');
  } finally {
    await h.stop();
  }
});

test('deletion through the entry: deleting with a grace period stops the domain; a Guest never seen is reported gone', limit, async () => {
  const h = await harness();
  try {
    const old = desired('old');
    await h.op.put(old);
    await h.op.nudge(old);
    await until(() => phase(h, 'old') === 'Running', 'Running');
    const domid = h.agent.get('default', 'old')!.status!.domid!;
    const deleting = { ...old, deleting: { since: '2026-01-01T00:00:00Z', gracePeriodSeconds: 3 } };
    const never = desired('never', {}, { deleting: { since: '2026-01-01T00:00:00Z' } });
    await h.op.put(deleting, never);
    await h.op.nudge(deleting);
    await h.op.nudge(never);
    await until(() => !h.agent.get('default', 'old'), 'old removed');
    assert.equal(h.hv.domain(domid), undefined);
    await until(
      async () => (await h.op.status('old'))?.status === null && (await h.op.status('never'))?.status === null,
      'both reported gone',
    );
    assert.equal((await h.op.status('never'))!.uid, never.uid);
    // Reported once, not at every full read; the tombstone stays while the desired field does.
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal((await h.op.streamed('never')).length, 1);
    assert.equal((await h.op.status('never'))!.status, null);
    // The operator, having seen it gone, removes the field; the agent then drops its tombstone.
    await h.op.client.hdel(desiredKey('xen-1.example'), fieldOf('default', 'never'), fieldOf('default', 'old'));
    await until(async () => (await h.op.status('never')) === undefined && (await h.op.status('old')) === undefined, 'tombstones pruned');
  } finally {
    await h.stop();
  }
});

test('a Guest recreated under the same name with a new uid replaces the old one cleanly', limit, async () => {
  const h = await harness();
  try {
    const a = desired('app');
    await h.op.put(a);
    await h.op.nudge(a);
    await until(() => phase(h, 'app') === 'Running', 'a Running');
    const oldDomid = h.agent.get('default', 'app')!.status!.domid!;
    const b = desired('app', { args: ['--new'] });
    await h.op.put(b);
    await h.op.nudge(b);
    await until(() => h.agent.get('default', 'app')?.metadata.uid === b.uid && phase(h, 'app') === 'Running', 'b Running');
    assert.equal(h.hv.domain(oldDomid), undefined, 'the old domain is gone');
    assert.equal(h.hv.count, 1);
    const g = h.agent.get('default', 'app')!;
    assert.equal(h.hv.domain(g.status!.domid!)!.launch.guest.uid, b.uid);
    await until(
      async () => (await h.op.status('app'))?.uid === b.uid && (await h.op.status('app'))?.status?.phase === 'Running',
      'status hash has b',
    );
    const streamed = await h.op.streamed('app');
    const lastOfA = streamed.filter((r) => r.uid === a.uid).at(-1)!;
    assert.equal(lastOfA.status, null, 'the old uid is reported gone');
    assert.ok(streamed.indexOf(lastOfA) < streamed.findIndex((r) => r.uid === b.uid && r.status?.phase === 'Running'));
  } finally {
    await h.stop();
  }
});

test('malformed JSON, invalid specs, hostile fields and huge values are skipped with one log line each, never a crash', limit, async () => {
  const h = await harness();
  try {
    const good = desired('good');
    const key = desiredKey('xen-1.example');
    const bad: Record<string, string> = {
      'default/broken': '{"namespace": "default", "name": "bro',
      'default/invalid': JSON.stringify(desired('invalid', { resources: { cpus: 0, memory: '1Ki' } })),
      '../x': JSON.stringify(desired('x')),
      'default/pathuid': JSON.stringify({ ...desired('pathuid'), uid: '../../etc/passwd' }),
      'default/huge': JSON.stringify({ ...desired('huge'), annotations: { big: 'x'.repeat(1_200_000) } }),
      'Default/Upper': JSON.stringify({ ...desired('x'), namespace: 'Default', name: 'Upper' }),
      'default/null': 'null',
      'default/gen': JSON.stringify({ ...desired('gen'), generation: -1 }),
      ['f'.repeat(10_000)]: 'y',
    };
    for (const [f, v] of Object.entries(bad)) await h.op.client.hset(key, f, v);
    await h.op.put(good);
    await h.op.complete('e1');
    await h.op.queue.add('reconcile', { junk: true }, { jobId: 'junk' });
    await h.op.queue.add('reconcile', { namespace: 'default', name: 'broken' }, { jobId: 'broken' });
    await until(() => phase(h, 'good') === 'Running' && h.cluster.follower.appliedEpoch === 'e1', 'good Running');
    await new Promise((r) => setTimeout(r, 1200)); // another full read: no new log lines
    const skipped = h.log.lines.filter((l) => l.msg === 'skipping a desired entry');
    assert.equal(skipped.length, Object.keys(bad).length, JSON.stringify(skipped.map((l) => l.obj)));
    const why = Object.fromEntries(skipped.map((l) => [l.obj.field, String(l.obj.err)]));
    assert.match(why['default/broken']!, /not a desired Guest/);
    assert.match(why['default/invalid']!, /spec\.resources\.cpus/);
    assert.match(why['../x']!, /does not name the Guest/);
    assert.match(why['default/pathuid']!, /uid: expected a UUID/);
    assert.match(why['default/huge']!, /over the 1048576-byte limit/);
    assert.equal(skipped.find((l) => String(l.obj.field).startsWith('fff'))!.obj.field, 'f'.repeat(200), 'field names are cut in logs');
    assert.deepEqual(h.store.keys(), ['default/good']);
    assert.ok(h.log.lines.some((l) => l.msg.includes('without a namespace and name')));
  } finally {
    await h.stop();
  }
});

test("a record's pull tokens reach the Guest's image pull, in memory only; malformed ones refuse the entry", limit, async () => {
  const h = await harness();
  try {
    const expiresAt = new Date(Date.now() + 300_000).toISOString();
    const token = 'eyJ.pull-token-for-team-app.sig';
    const app = desired(
      'app',
      { image: 'registry.example/team/app:v1' },
      {
        pullAuth: {
          tokens: [{ registry: 'registry.example', repository: 'team/app', token, expiresAt }],
          problems: ['image pull secret default/old not found'],
        },
      },
    );
    const key = desiredKey('xen-1.example');
    await h.op.client.hset(
      key,
      'default/crlf',
      JSON.stringify(
        desired('crlf', {}, { pullAuth: { tokens: [{ registry: 'r', repository: 'x', token: 'a\r\nHost: evil', expiresAt }] } }),
      ),
    );
    await h.op.client.hset(
      key,
      'default/many',
      JSON.stringify(
        desired(
          'many',
          {},
          { pullAuth: { tokens: Array.from({ length: 9 }, () => ({ registry: 'r', repository: 'x', token: 't', expiresAt })) } },
        ),
      ),
    );
    await h.op.put(app);
    await h.op.complete('e1');
    await until(() => phase(h, 'app') === 'Running', 'app Running');
    const pulled = h.images.auths.find((a) => a.reference === 'registry.example/team/app:v1')!;
    assert.deepEqual(pulled.auth, {
      namespace: 'default',
      tokens: [{ registry: 'registry.example', repository: 'team/app', token, expiresAt }],
      problems: ['image pull secret default/old not found'],
    });
    // The store's file has the Guest, not the token.
    const file = join(h.dir, 'guests', 'default', 'app.json');
    assert.ok(readFileSync(file, 'utf8').includes('team/app'));
    assert.ok(!readFileSync(file, 'utf8').includes(token));
    const skipped = h.log.lines
      .filter((l) => l.msg === 'skipping a desired entry')
      .map((l) => `${String(l.obj.field)}: ${String(l.obj.err)}`);
    assert.ok(
      skipped.some((s) => /default\/crlf: pullAuth\.tokens\[0\]\.token: not a bearer token/.test(s)),
      skipped.join('\n'),
    );
    assert.ok(
      skipped.some((s) => /default\/many: pullAuth: expected \{tokens: \[at most 8\]/.test(s)),
      skipped.join('\n'),
    );
    assert.deepEqual(h.store.keys(), ['default/app']);
  } finally {
    await h.stop();
  }
});
