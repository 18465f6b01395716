// The GuestSet controller against an in-memory client: Guests made from the template with the set's
// labels and ownerReference, status and kstatus conditions, a rolling update to the end, an invalid
// set reported as Stalled, an unowned matching Guest left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Guest, GuestSet, GuestSetStatus } from '../../crds/generated/types.js';
import { metaTime } from '../../crds/meta.js';
import { validateObject } from '../../crds/validate.js';
import { GuestSetController, HASH_LABEL, SET_LABEL, isOwnedBy, type GuestSetClient } from './controller.js';

class MemoryClient implements GuestSetClient {
  sets = new Map<string, GuestSet>();
  guests = new Map<string, Guest>();
  failCreate?: string;
  constructor(private readonly now: () => number) {}
  async getSet(namespace: string, name: string) {
    return structuredClone(this.sets.get(`${namespace}/${name}`));
  }
  async listSets() {
    return [...this.sets.values()];
  }
  async listGuests(set: GuestSet) {
    return [...this.guests.values()].filter((g) => isOwnedBy(g, set));
  }
  async createGuest(guest: Guest) {
    if (this.failCreate) throw new Error(this.failCreate);
    assert.ok(!this.guests.has(guest.metadata.name), 'names are unique');
    assert.deepEqual(validateObject(guest).errors, [], 'the Guest is valid');
    this.guests.set(guest.metadata.name, { ...guest, metadata: { ...guest.metadata, creationTimestamp: metaTime(this.now()) } });
  }
  async deleteGuest(_namespace: string, name: string) {
    this.guests.delete(name);
  }
  async writeStatus(set: GuestSet, status: GuestSetStatus) {
    this.sets.get(`${set.metadata.namespace}/${set.metadata.name}`)!.status = status;
  }
  put(spec: Record<string, unknown>, generation = 1) {
    const r = validateObject({
      apiVersion: 'krata.dev/v1alpha1',
      kind: 'GuestSet',
      metadata: { name: 'web', namespace: 'default', uid: 'set-uid', generation },
      spec: {
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { image: 'nginx:1' } },
        ...spec,
      },
    });
    assert.deepEqual(r.errors, []);
    const old = this.sets.get('default/web');
    this.sets.set('default/web', { ...(r.object as GuestSet), ...(old?.status ? { status: old.status } : {}) });
  }
  /** Every Guest becomes Ready at `at`. */
  readyAll(at: number) {
    for (const g of this.guests.values())
      if (!g.status?.conditions?.length)
        g.status = {
          phase: 'Running',
          conditions: [{ type: 'Ready', status: 'True', reason: 'Ready', message: '', lastTransitionTime: metaTime(at) }],
        };
  }
  get status() {
    return this.sets.get('default/web')!.status!;
  }
  cond(type: string) {
    return this.status.conditions!.find((c) => c.type === type)!;
  }
}

const setup = () => {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const client = new MemoryClient(() => now);
  let n = 0;
  const controller = new GuestSetController(client, { now: () => now, random: () => (n++ % 27) / 27 });
  return { client, controller, tick: (ms: number) => (now += ms), now: () => now };
};

test('a new set gets its Guests, labelled and owned, and turns Ready when they are', async () => {
  const { client, controller, now } = setup();
  client.put({ replicas: 3 });
  await controller.reconcile('default', 'web');
  const guests = [...client.guests.values()];
  assert.equal(guests.length, 3);
  for (const g of guests) {
    assert.match(g.metadata.name, /^web-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    assert.equal(g.metadata.labels![SET_LABEL], 'web');
    assert.equal(g.metadata.labels!.app, 'web');
    assert.equal(g.metadata.labels![HASH_LABEL], client.status.updateRevision);
    assert.deepEqual(g.metadata.ownerReferences, [
      { apiVersion: 'krata.dev/v1alpha1', kind: 'GuestSet', name: 'web', uid: 'set-uid', controller: true, blockOwnerDeletion: true },
    ]);
    assert.equal(g.spec.image, 'nginx:1');
  }
  assert.equal(client.status.selector, 'app=web');
  assert.equal(client.cond('Ready').status, 'False');
  assert.equal(client.cond('Reconciling').reason, 'WaitingForAvailable');
  client.readyAll(now());
  await controller.reconcile('default', 'web');
  assert.deepEqual(
    { ...client.status, conditions: undefined },
    {
      ...client.status,
      conditions: undefined,
      replicas: 3,
      readyReplicas: 3,
      updatedReplicas: 3,
      availableReplicas: 3,
      observedGeneration: 1,
    },
  );
  assert.equal(client.cond('Ready').status, 'True');
  assert.equal(client.cond('Reconciling').status, 'False');
  assert.equal(client.cond('Stalled').status, 'False');
  // Level-triggered: nothing more to do, nothing written.
  const before = JSON.stringify(client.status);
  await controller.reconcile('default', 'web');
  assert.equal(JSON.stringify(client.status), before);
});

test('a template change rolls out under minReadySeconds, asking to be called again when a Guest turns available', async () => {
  const { client, controller, tick, now } = setup();
  client.put({ replicas: 2, minReadySeconds: 30 });
  await controller.reconcile('default', 'web');
  client.readyAll(now());
  tick(30_000);
  await controller.reconcile('default', 'web');
  const first = client.status.updateRevision;
  assert.equal(client.cond('Ready').status, 'True');
  client.put({ replicas: 2, minReadySeconds: 30, template: { metadata: { labels: { app: 'web' } }, spec: { image: 'nginx:2' } } }, 2);
  let rounds = 0;
  while (client.cond('Ready').status !== 'True' || client.status.updateRevision === first) {
    assert.ok(rounds++ < 20, 'the rollout ends');
    const r = await controller.reconcile('default', 'web');
    assert.ok(client.guests.size <= 3, 'maxSurge 25% of 2 rounds up to 1');
    assert.ok(client.status.availableReplicas! >= 2 || rounds === 1 || client.cond('Reconciling').status === 'True');
    client.readyAll(now());
    if (r.requeueAfterMs) tick(r.requeueAfterMs);
  }
  const images = [...client.guests.values()].map((g) => g.spec.image);
  assert.deepEqual(images, ['nginx:2', 'nginx:2']);
  assert.equal(client.status.observedGeneration, 2);
  assert.notEqual(client.status.updateRevision, first);
});

test('an invalid set and a refused Guest make the set Stalled; an unowned Guest matching the selector is left alone', async () => {
  const { client, controller } = setup();
  client.put({ replicas: 1 });
  client.sets.get('default/web')!.spec.selector = { matchLabels: { app: 'api' } };
  await controller.reconcile('default', 'web');
  assert.equal(client.cond('Stalled').status, 'True');
  assert.equal(client.cond('Stalled').reason, 'InvalidSpec');
  assert.match(client.cond('Stalled').message, /spec\.selector: does not match/);
  assert.equal(client.guests.size, 0);

  client.put({ replicas: 1 });
  client.guests.set('by-hand', {
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name: 'by-hand', namespace: 'default', labels: { app: 'web' } },
  } as unknown as Guest);
  client.failCreate = 'the disk is full';
  const r = await controller.reconcile('default', 'web');
  assert.equal(r.requeueAfterMs, 10_000);
  assert.equal(client.cond('Stalled').reason, 'GuestCreateFailed');
  assert.match(client.cond('Stalled').message, /the disk is full/);
  client.failCreate = undefined;
  await controller.reconcile('default', 'web');
  assert.equal(client.cond('Stalled').status, 'False');
  assert.equal(client.guests.size, 2, 'its own Guest is made; the unowned one is neither adopted nor deleted');
  assert.equal(client.status.replicas, 1);
});

test("a long set name is cut so that its Guests' names stay DNS labels of at most 63 characters", async () => {
  const { client, controller } = setup();
  const long = 'a'.repeat(56) + '-bcdefg';
  client.put({ replicas: 1 });
  const stored = client.sets.get('default/web')!;
  client.sets.delete('default/web');
  client.sets.set(`default/${long}`, { ...stored, metadata: { ...stored.metadata, name: long } });
  await controller.reconcile('default', long);
  const [g] = [...client.guests.values()];
  assert.match(g!.metadata.name, /^a{56}-[a-z0-9]{5}$/, 'the cut drops a trailing "-"');
  assert.ok(g!.metadata.name.length <= 63);
  assert.equal(g!.metadata.labels![SET_LABEL], long);
});
