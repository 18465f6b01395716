import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Guest, XenHost } from '../../crds/generated/types.js';
import { Informer, keyOf } from './informer.js';
import { FreezableProxy, newGuest, startKube, waitFor, type TestKube } from '../../test/kube/operator-env.js';

type Seen = [event: string, key: string, rv?: string, oldRv?: string];

function record<T extends Guest | XenHost>(inf: Informer<T>): Seen[] {
  const seen: Seen[] = [];
  for (const ev of ['add', 'update', 'delete', 'resync'] as const) {
    inf.on(ev, (obj, old) => seen.push([ev, keyOf(obj), obj.metadata.resourceVersion, old?.metadata.resourceVersion]));
  }
  return seen;
}

/** The cache and the server agree on every object's resourceVersion. */
async function assertMatchesServer(kube: TestKube, inf: Informer<Guest>): Promise<void> {
  const server = (await kube.client.listGuests()).items.map((g) => [keyOf(g), g.metadata.resourceVersion]).sort();
  const cached = inf
    .list()
    .map((g) => [keyOf(g), g.metadata.resourceVersion])
    .sort();
  assert.deepEqual(cached, server);
}

describe('Informer against kube-apiserver', () => {
  let kube: TestKube;
  const informers: { stop(): Promise<void> }[] = [];
  const logs: string[] = [];
  const log = (msg: string, err?: unknown) => logs.push(`${msg}${err ? `: ${(err as Error).message}` : ''}`);
  before(async () => {
    kube = await startKube();
  });
  after(async () => {
    await Promise.all(informers.map((i) => i.stop()));
    await kube?.stop();
  });

  it('lists, then delivers add, update and delete from the watch', async () => {
    await kube.client.createGuest(newGuest('before'));
    const inf = new Informer<Guest>(kube.client, 'guests', { log });
    informers.push(inf);
    const seen = record(inf);
    inf.start();
    await inf.synced();
    assert.deepEqual(inf.keys(), ['default/before']);
    assert.deepEqual(
      seen.map((s) => s.slice(0, 2)),
      [['add', 'default/before']],
    );
    assert.equal(inf.get('default/before')!.metadata.managedFields, undefined, 'managedFields are not cached');

    const created = await kube.client.createGuest(newGuest('live'));
    await waitFor(() => inf.get('default/live'), 'add of live');
    const updated = await kube.client.applyGuestStatus('default', 'live', { phase: 'Pending' });
    await waitFor(() => inf.get('default/live')?.status?.phase === 'Pending', 'update of live');
    await kube.client.deleteGuest('default', 'live');
    await waitFor(() => !inf.get('default/live'), 'delete of live');

    assert.deepEqual(
      seen.slice(1).map(([ev, key, , oldRv]) => [ev, key, oldRv]),
      [
        ['add', 'default/live', undefined],
        ['update', 'default/live', created.metadata.resourceVersion],
        ['delete', 'default/live', updated.metadata.resourceVersion],
      ],
    );
    assert.deepEqual([seen[1][2], seen[2][2]], [created.metadata.resourceVersion, updated.metadata.resourceVersion]);
    await assertMatchesServer(kube, inf);
    assert.equal(inf.relists, 0);
  });

  it('rewatches from the last resourceVersion when the server ends a watch', async () => {
    const inf = new Informer<Guest>(kube.client, 'guests', { watchTimeoutSeconds: 1, log });
    informers.push(inf);
    const seen = record(inf);
    inf.start();
    await inf.synced();
    const names = Array.from({ length: 12 }, (_, i) => `rewatch-${i}`);
    for (const n of names) {
      await kube.client.createGuest(newGuest(n));
      await new Promise((r) => setTimeout(r, 250));
    }
    await waitFor(() => names.every((n) => inf.get(`default/${n}`)), 'all adds');
    const adds = seen.filter((s) => s[0] === 'add' && s[1].startsWith('default/rewatch-')).map((s) => s[1]);
    assert.deepEqual(
      adds,
      names.map((n) => `default/${n}`),
      'each once, in order',
    );
    assert.equal(inf.relists, 0, 'a watch the server ends is resumed, not relisted');
    await assertMatchesServer(kube, inf);
  });

  it('keys cluster-scoped objects by name', async () => {
    await kube.client.createXenHost('host-1');
    const inf = new Informer<XenHost>(kube.client, 'xenhosts', { log });
    informers.push(inf);
    inf.start();
    await inf.synced();
    assert.deepEqual(inf.keys(), ['host-1']);
  });

  it('relists periodically, emitting resync for every object and the differences', async () => {
    const inf = new Informer<Guest>(kube.client, 'guests', { relistMs: 1500, log });
    informers.push(inf);
    const seen = record(inf);
    inf.start();
    await inf.synced();
    const n = inf.keys().length;
    await waitFor(() => inf.relists >= 1, 'a periodic relist', 5000);
    const resyncs = seen.filter((s) => s[0] === 'resync').map((s) => s[1]);
    assert.deepEqual(resyncs.sort(), inf.keys().sort());
    assert.equal(resyncs.length, n);
    assert.equal(seen.filter((s) => s[0] === 'update').length, 0, 'an unchanged object is not an update');
    // The rewatch after the relist still delivers.
    await kube.client.createGuest(newGuest('after-relist'));
    await waitFor(() => inf.get('default/after-relist'), 'watch after relist');
    await assertMatchesServer(kube, inf);
  });

  it('relists when the watch goes silent (watchdog), catching up on what it missed', async () => {
    const proxy = await FreezableProxy.start(kube.env.server);
    try {
      await kube.client.createGuest(newGuest('doomed'));
      const client = kube.clientVia(proxy.url);
      const inf = new Informer<Guest>(client, 'guests', { watchdogMs: 2000, watchTimeoutSeconds: 1, log });
      informers.push(inf);
      const seen = record(inf);
      inf.start();
      await inf.synced();
      // Quiet but healthy: no events and no bookmarks, but each watch ends on time, so no alarm.
      await new Promise((r) => setTimeout(r, 3500));
      assert.equal(inf.watchdogFirings, 0);
      assert.equal(inf.relists, 0);

      proxy.freeze();
      await kube.client.createGuest(newGuest('during-freeze'));
      await kube.client.deleteGuest('default', 'doomed');
      await waitFor(() => inf.watchdogFirings >= 1, 'the watchdog', 5000);
      assert.equal(inf.get('default/during-freeze'), undefined, 'frozen: nothing arrives');
      assert.ok(inf.get('default/doomed'));

      proxy.unfreeze();
      await waitFor(() => inf.get('default/during-freeze') && !inf.get('default/doomed'), 'catch-up after the freeze');
      assert.equal(inf.relists, 1);
      assert.ok(seen.some((s) => s[0] === 'delete' && s[1] === 'default/doomed'));
      await assertMatchesServer(kube, inf);
      // And the new watch is live.
      await kube.client.createGuest(newGuest('after-freeze'));
      await waitFor(() => inf.get('default/after-freeze'), 'watch after the freeze');
      assert.ok(
        logs.some((l) => /silent for 2000 ms/.test(l)),
        logs.join('\n'),
      );
    } finally {
      await proxy.close();
    }
  });

  it('refuses a watchdog that a quiet, healthy watch would trip', () => {
    assert.throws(() => new Informer<Guest>(kube.client, 'guests', { watchdogMs: 90_000, watchTimeoutSeconds: 300 }), /must exceed/);
  });

  it('stops cleanly', async () => {
    const inf = new Informer<Guest>(kube.client, 'guests', { log });
    const seen = record(inf);
    inf.start();
    await inf.synced();
    const t0 = Date.now();
    await inf.stop();
    assert.ok(Date.now() - t0 < 1000, `stop took ${Date.now() - t0} ms`);
    const n = seen.length;
    await kube.client.createGuest(newGuest('after-stop'));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(seen.length, n);
  });
});
