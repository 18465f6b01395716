// GuestStore.sync, the store's cluster-mode entry: the cluster's metadata as given, 'desired' only for
// real changes, stale reads ignored, deletions, and a name recreated under a new uid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Guest } from '../../crds/generated/types.js';
import { GuestStore } from '../store/guest-store.js';
import type { WatchEvent } from '../../contracts/agent-api/types.js';
import { desiredGuest } from './desired-guest.js';
import { desired } from '../../test/harness/cluster-agent.js';
import { portSharer } from '../../crds/host-ports.js';

const work = mkdtempSync(join(tmpdir(), 'krata-store-sync-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const now = new Date('2026-01-01T00:00:00Z');
let n = 0;

function guest(uid: string, generation: number, image = 'app:1'): Guest {
  return desiredGuest('default/g', JSON.stringify({ ...desired('g', { image }), uid, generation }));
}

function recorder(store: GuestStore) {
  const seen: string[] = [];
  store.on('change', (e: WatchEvent) => seen.push(`${e.type} ${e.object.metadata.uid!.slice(0, 4)}`));
  store.on('desired', () => seen.push('desired'));
  return seen;
}

test("sync: the cluster's uid, generation, labels and annotations; desired only on change; stale generations ignored", () => {
  const store = new GuestStore(join(work, `s${++n}`));
  const seen = recorder(store);
  const uid = randomUUID();
  assert.equal(store.sync(guest(uid, 3), now), 'created');
  let g = store.get('default/g')!.guest;
  assert.equal(g.metadata.uid, uid);
  assert.equal(g.metadata.generation, 3);
  assert.equal(g.spec.restartPolicy, 'Always', 'defaulted by the validator');
  assert.deepEqual(g.status, { phase: 'Pending', observedGeneration: 0 });
  assert.equal(store.sync(guest(uid, 3), now), 'unchanged');
  store.setStatus('default/g', { phase: 'Running', domid: 7, observedGeneration: 3 }, { failures: 2 });
  assert.equal(store.sync({ ...guest(uid, 3), metadata: { ...guest(uid, 3).metadata, labels: { a: 'b' } } }, now), 'configured');
  assert.deepEqual(store.get('default/g')!.internal, { failures: 2 }, 'labels keep the back-off');
  assert.equal(store.sync(guest(uid, 4, 'app:2'), now), 'configured');
  g = store.get('default/g')!.guest;
  assert.equal(g.metadata.generation, 4, "the cluster's generation, not a local bump");
  assert.equal(g.metadata.labels, undefined);
  assert.equal(g.status!.domid, 7, 'status kept');
  assert.deepEqual(store.get('default/g')!.internal, {}, 'a new spec forgets the back-off');
  assert.equal(store.sync(guest(uid, 3), now), 'unchanged', 'an older generation is a stale read');
  assert.equal(store.get('default/g')!.guest.spec.image, 'app:2');
  const u = uid.slice(0, 4);
  assert.deepEqual(seen, [`ADDED ${u}`, 'desired', `MODIFIED ${u}`, `MODIFIED ${u}`, 'desired', `MODIFIED ${u}`, 'desired']);
  // It survives a restart like any record.
  assert.equal(new GuestStore(join(work, `s${n}`)).get('default/g')!.guest.metadata.uid, uid);
});

test(
  'sync: deleting marks the record with the grace period; a deletion ' + 'of something not held is gone; a Guest given back comes back',
  () => {
    const store = new GuestStore(join(work, `s${++n}`));
    const uid = randomUUID();
    const deleting = { deleting: { since: '2026-01-01T00:00:00Z', gracePeriodSeconds: 7 } };
    assert.equal(store.sync(guest(uid, 1), now), 'created');
    assert.equal(
      store.sync(desiredGuest('default/g', JSON.stringify({ ...desired('g'), uid, generation: 1, ...deleting })), now),
      'deleting',
    );
    const g = store.get('default/g')!.guest;
    assert.equal(g.metadata.deletionTimestamp, '2026-01-01T00:00:00Z');
    assert.equal(g.metadata.deletionGracePeriodSeconds, 7);
    store.remove('default/g');
    assert.equal(store.sync(desiredGuest('default/g', JSON.stringify({ ...desired('g'), uid, generation: 1, ...deleting })), now), 'gone');
    assert.deepEqual(store.keys(), []);
    // Taken off the host and given back while it is torn down: it starts afresh once gone.
    store.sync(guest(uid, 1), now);
    store.markDeleted('default/g', now);
    assert.equal(store.sync(guest(uid, 1), now), 'replacing');
    assert.ok(store.get('default/g')!.guest.metadata.deletionTimestamp, 'the teardown goes on');
    store.remove('default/g');
    assert.equal(store.get('default/g')!.guest.metadata.deletionTimestamp, undefined);
    assert.equal(store.get('default/g')!.guest.status!.phase, 'Pending');
  },
);

test('sync: a new uid under the same name waits for the old record to go, then is created; deleting the name drops it', () => {
  const store = new GuestStore(join(work, `s${++n}`));
  const seen = recorder(store);
  const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
  store.sync(guest(a, 1), now);
  assert.equal(store.sync(guest(b, 1, 'app:b'), now), 'replacing');
  assert.equal(store.get('default/g')!.guest.metadata.uid, a);
  assert.ok(store.get('default/g')!.guest.metadata.deletionTimestamp, 'the old one is being deleted');
  assert.equal(store.sync(guest(b, 2, 'app:b2'), now), 'replacing', 'the waiting one follows changes');
  store.remove('default/g');
  const g = store.get('default/g')!.guest;
  assert.equal(g.metadata.uid, b);
  assert.equal(g.metadata.generation, 2);
  assert.equal(g.spec.image, 'app:b2');
  assert.equal(g.metadata.deletionTimestamp, undefined);
  assert.deepEqual(seen.slice(-3), [`DELETED ${a.slice(0, 4)}`, `ADDED ${b.slice(0, 4)}`, 'desired']);
  // Replaced again, then the name is deleted before the old one is gone: nothing comes back.
  assert.equal(store.sync(guest(c, 1), now), 'replacing');
  store.markDeleted('default/g', now);
  store.remove('default/g');
  assert.deepEqual(store.keys(), []);
});

test("sync: a Guest's controller owner crosses Redis into the store, so a GuestSet's replicas share ports", () => {
  const record = { ...desired('web-1'), namespace: 'shop', uid: randomUUID(), owner: { kind: 'GuestSet', name: 'web', uid: 'set-uid' } };
  const store = new GuestStore(join(work, `s${++n}`));
  assert.equal(store.sync(desiredGuest('shop/web-1', JSON.stringify(record)), now), 'created');
  const g = store.get('shop/web-1')!.guest;
  assert.deepEqual(g.metadata.ownerReferences, [
    { apiVersion: 'krata.dev/v1alpha1', kind: 'GuestSet', name: 'web', uid: 'set-uid', controller: true },
  ]);
  assert.equal(portSharer(g), 'shop/set-uid');
  // Whatever a Redis writer puts there is bounded.
  assert.throws(
    () => desiredGuest('shop/web-1', JSON.stringify({ ...record, owner: { kind: 'GuestSet', name: 'web' } })),
    /owner: expected \{kind, name, uid\}/,
  );
  assert.throws(
    () => desiredGuest('shop/web-1', JSON.stringify({ ...record, owner: { kind: 'GuestSet', name: 'x'.repeat(300), uid: 'u' } })),
    /owner: expected/,
  );
});
