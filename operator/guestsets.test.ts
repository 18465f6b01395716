// The operator runs the GuestSet controller in a cluster: against a real kube-apiserver and Redis with
// the operator in process and two hosts that heartbeat (no agents: Guests are placed, never run), a
// GuestSet applied gets its Guests, owned by it, spread over both hosts although one is far larger,
// and a status; a scale through the scale subresource removes Guests; deleting a set deletes its Guests;
// replicas share a host port on a host, which another owner cannot take.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PatchStrategy } from '@kubernetes/client-node';
import type { GuestSet } from '../crds/generated/types.js';
import { Redis } from 'ioredis';
import { heartbeatKey, type Heartbeat } from '../contracts/redis/contract.js';
import { startRedis, type TestRedis } from '../test/redis.js';
import { startKube, waitFor, type TestKube } from '../test/kube/operator-env.js';
import { startTestOperator, type TestOperator } from '../test/harness/operator.js';

let kube: TestKube;
let redis: TestRedis;
let op: TestOperator;

before(async () => {
  [kube, redis] = await Promise.all([startKube(), startRedis()]);
  const r = new Redis(redis.url);
  // xen-big has 16 times the memory of xen-small: least-allocated alone would put every Guest there.
  for (const [host, memoryMiB] of [
    ['xen-big', 65536],
    ['xen-small', 4096],
  ] as const) {
    await kube.client.request('POST', '/apis/krata.dev/v1alpha1/xenhosts', {
      body: { apiVersion: 'krata.dev/v1alpha1', kind: 'XenHost', metadata: { name: host }, spec: {} },
    });
    const hb: Heartbeat = {
      host,
      time: new Date().toISOString(),
      agentVersion: 'test',
      xenVersion: '4.17',
      kernelVersion: '6.1',
      capacity: { cpus: 16, memoryMiB },
      freeMemoryMiB: memoryMiB,
      guests: 0,
      running: 0,
      epoch: '',
    };
    await r.set(heartbeatKey(host), JSON.stringify(hb), 'EX', 600);
  }
  r.disconnect();
  op = await startTestOperator(kube.client, { redis: { url: redis.url }, workers: 2, pollMs: 200 });
});
after(async () => {
  await op?.stop();
  await Promise.all([kube?.stop(), redis?.stop()]);
});

const SETS = '/apis/krata.dev/v1alpha1/namespaces/default/guestsets';

test('a GuestSet applied to the cluster gets its Guests from the operator, and a scale removes some', { timeout: 120_000 }, async () => {
  await kube.client.request('POST', SETS, {
    body: {
      apiVersion: 'krata.dev/v1alpha1',
      kind: 'GuestSet',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { image: 'example.test/app:1', resources: { memory: '64Mi' } } },
      },
    },
  });
  const live = async () =>
    (await kube.client.listGuestsIn('default', 'krata.dev/guestset=web')).filter((g) => !g.metadata.deletionTimestamp);
  await waitFor(async () => (await live()).length === 3, 'three Guests', 30_000);
  const set = await waitFor(async () => {
    const s = await kube.client.getGuestSet('default', 'web');
    return s.status?.replicas === 3 ? s : undefined;
  }, 'the status to count them');
  assert.equal(set.status?.selector, 'app=web');
  assert.equal(set.status?.conditions?.find((c) => c.type === 'Reconciling')?.status, 'True', 'not Ready: no host runs them');
  for (const g of await live()) assert.equal(g.metadata.ownerReferences?.[0]?.uid, set.metadata.uid);
  const nodes = await waitFor(
    async () => {
      const n = (await live()).map((g) => g.status?.node).filter((x) => x !== undefined);
      return n.length === 3 ? n.sort() : undefined;
    },
    'all three placed',
    30_000,
  );
  assert.deepEqual(nodes, ['xen-big', 'xen-big', 'xen-small'], 'the replicas spread over both hosts');

  await kube.client.request<GuestSet>('PATCH', `${SETS}/web/scale`, {
    body: { spec: { replicas: 1 } },
    contentType: PatchStrategy.MergePatch,
  });
  await waitFor(async () => (await live()).length === 1, 'one Guest after the scale', 30_000);
  await waitFor(async () => (await kube.client.getGuestSet('default', 'web')).status?.replicas === 1, 'the status after the scale');
});

test(
  'deleting a GuestSet deletes its Guests (the operator does it: this API server runs no garbage collector)',
  { timeout: 120_000 },
  async () => {
    await kube.client.request('POST', SETS, {
      body: {
        apiVersion: 'krata.dev/v1alpha1',
        kind: 'GuestSet',
        metadata: { name: 'gone', namespace: 'default' },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'gone' } },
          template: { metadata: { labels: { app: 'gone' } }, spec: { image: 'example.test/app:1', resources: { memory: '64Mi' } } },
        },
      },
    });
    const owned = async () =>
      (await kube.client.listGuestsIn('default', 'krata.dev/guestset=gone')).filter((g) => !g.metadata.deletionTimestamp);
    await waitFor(async () => (await owned()).length === 2, 'two Guests', 30_000);
    // A Guest of another set stays: only the deleted set's go.
    const others = (await kube.client.listGuestsIn('default', 'krata.dev/guestset=web')).length;
    await kube.client.request('DELETE', `${SETS}/gone`);
    await waitFor(async () => (await owned()).length === 0, "the deleted set's Guests gone", 30_000);
    assert.equal((await kube.client.listGuestsIn('default', 'krata.dev/guestset=web')).length, others, "the other set's Guests stay");
  },
);

test("a set's replicas share a host port: three replicas publishing one port are placed on two hosts", { timeout: 120_000 }, async () => {
  await kube.client.request('POST', SETS, {
    body: {
      apiVersion: 'krata.dev/v1alpha1',
      kind: 'GuestSet',
      metadata: { name: 'shared', namespace: 'default' },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'shared' } },
        template: {
          metadata: { labels: { app: 'shared' } },
          spec: {
            image: 'example.test/app:1',
            resources: { memory: '64Mi' },
            network: { ports: [{ containerPort: 8000, hostPort: 18000 }] },
          },
        },
      },
    },
  });
  const nodes = await waitFor(
    async () => {
      const guests = await kube.client.listGuestsIn('default', 'krata.dev/guestset=shared');
      const n = guests.map((g) => g.status?.node).filter((x) => x !== undefined);
      return n.length === 3 ? n.sort() : undefined;
    },
    'all three placed (two of them on one host, sharing the port)',
    30_000,
  );
  assert.deepEqual(new Set(nodes), new Set(['xen-big', 'xen-small']));
  // Another owner's Guest asking for the same port finds no host: the set holds it on both.
  await kube.client.request('POST', '/apis/krata.dev/v1alpha1/namespaces/default/guests', {
    body: {
      apiVersion: 'krata.dev/v1alpha1',
      kind: 'Guest',
      metadata: { name: 'lone', namespace: 'default' },
      spec: { image: 'example.test/app:1', resources: { memory: '64Mi' }, network: { ports: [{ containerPort: 8000, hostPort: 18000 }] } },
    },
  });
  const lone = await waitFor(
    async () => {
      const g = await kube.client.getGuest('default', 'lone');
      return g.status?.conditions?.some((c) => c.type === 'Scheduled') || g.status?.node ? g : undefined;
    },
    'the lone Guest judged',
    30_000,
  );
  assert.equal(lone.status?.node, undefined, `not placed: ${JSON.stringify(lone.status)}`);
  const scheduled = lone.status?.conditions?.find((c) => c.type === 'Scheduled');
  assert.equal(scheduled?.reason, 'Unschedulable');
  assert.match(scheduled?.message ?? '', /host port TCP\/18000 in use/);
});

test('a template change rolls the set: every Guest is replaced by one of the new revision', { timeout: 120_000 }, async () => {
  const body = (image: string) => ({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'GuestSet',
    metadata: { name: 'roll', namespace: 'default' },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'roll' } },
      // No agent runs these Guests, so none becomes Ready: the budget lets the rollout go on regardless.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 2, maxSurge: 0 } },
      template: { metadata: { labels: { app: 'roll' } }, spec: { image, resources: { memory: '64Mi' } } },
    },
  });
  await kube.client.request('POST', SETS, { body: body('example.test/app:1') });
  const live = async () =>
    (await kube.client.listGuestsIn('default', 'krata.dev/guestset=roll')).filter((g) => !g.metadata.deletionTimestamp);
  const first = await waitFor(async () => {
    const s = await kube.client.getGuestSet('default', 'roll');
    const gs = await live();
    return gs.length === 2 && s.status?.updateRevision ? s.status.updateRevision : undefined;
  }, 'two Guests of the first revision');
  await kube.client.request('PATCH', `${SETS}/roll`, {
    body: { spec: { template: { spec: { image: 'example.test/app:2' } } } },
    contentType: PatchStrategy.MergePatch,
  });
  const second = await waitFor(
    async () => {
      const s = await kube.client.getGuestSet('default', 'roll');
      const gs = await live();
      const rev = s.status?.updateRevision;
      return rev && rev !== first && gs.length === 2 && gs.every((g) => g.metadata.labels?.['krata.dev/template-hash'] === rev)
        ? { rev, gs }
        : undefined;
    },
    'both Guests replaced by the new revision',
    60_000,
  );
  for (const g of second.gs) assert.equal(g.spec.image, 'example.test/app:2');
  await waitFor(async () => (await kube.client.getGuestSet('default', 'roll')).status?.updatedReplicas === 2, 'status: 2 updated');
});
