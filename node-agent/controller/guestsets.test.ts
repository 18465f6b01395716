// The single host's GuestSets below the API: the store survives a restart (uid, generation, status), a
// scale is a new generation, and Guests whose set went while the agent was down are deleted at start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GuestSet } from '../../crds/generated/types.js';
import { validateObject } from '../../crds/validate.js';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import { GuestStore, guestKey } from '../store/guest-store.js';
import { GuestSetStore, setKey } from '../store/guestset-store.js';
import { HostGuestSets } from './guestsets.js';

const set = (replicas: number, image = 'app:1'): GuestSet => {
  const r = validateObject({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'GuestSet',
    metadata: { name: 'web', namespace: 'default' },
    spec: { replicas, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { image } } },
  });
  assert.deepEqual(r.errors, []);
  return r.object as GuestSet;
};

test('GuestSets are durable; a Guest whose set is gone is deleted when the controller starts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-gs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock();
  const now = new Date(clock.now());
  let sets = new GuestSetStore(dir);
  let guests = new GuestStore(dir);
  assert.equal(sets.put(set(2), now), 'created');
  assert.equal(sets.put(set(2), now), 'unchanged');
  assert.equal(sets.put(set(2, 'app:2'), now), 'configured');
  const key = setKey('default', 'web');
  assert.equal(sets.get(key)!.metadata.generation, 2);
  assert.equal(sets.scale(key, 3)!.metadata.generation, 3);

  const host = new HostGuestSets(guests, sets, clock);
  host.start();
  await host.queue.idle();
  const owned = guests.list('default');
  assert.equal(owned.length, 3);
  assert.ok(owned.every((g) => g.metadata.ownerReferences?.[0]?.uid === sets.get(key)!.metadata.uid));
  assert.equal(sets.get(key)!.status?.replicas, 3);
  host.stop();

  // A restart: everything is read back from the files.
  const uid = sets.get(key)!.metadata.uid;
  sets = new GuestSetStore(dir);
  guests = new GuestStore(dir);
  assert.equal(sets.get(key)!.metadata.uid, uid);
  assert.equal(sets.get(key)!.metadata.generation, 3);
  assert.equal(sets.get(key)!.status?.updatedReplicas, 3);
  assert.equal(guests.list('default').length, 3);

  // The set is removed while no controller runs (a crash between the two): the next start deletes its Guests.
  sets.remove(key);
  assert.ok(guests.list('default').every((g) => !g.metadata.deletionTimestamp));
  const again = new HostGuestSets(guests, sets, clock);
  again.start();
  await again.queue.idle();
  assert.ok(guests.list('default').every((g) => g.metadata.deletionTimestamp));
  again.stop();
  // A Guest of the same name under a new set of the same name but another uid is not the new set's.
  sets.put(set(1), now);
  assert.notEqual(sets.get(key)!.metadata.uid, uid);
  assert.ok(guests.get(guestKey('default', owned[0]!.metadata.name))!.guest.metadata.deletionTimestamp);
});
