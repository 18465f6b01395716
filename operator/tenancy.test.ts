// What a namespace editor can ask of placement, against a real kube-apiserver and Redis with the
// operator in process and two hosts that heartbeat (no agents: Guests stay waiting for them). The
// krata.dev/node annotation and a status sent with the create do not choose the host; nodeName obeys
// the cordon; host ports obey the XenHost's policy and are not handed out twice on one host; the
// placement lives in status.node and survives an operator restart.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { desiredKey, heartbeatKey, type Heartbeat } from '../contracts/redis/contract.js';
import type { Guest, XenHost } from '../crds/generated/types.js';
import { startRedis, type TestRedis } from '../test/redis.js';
import { newGuest, startKube, waitFor, type TestKube } from '../test/kube/operator-env.js';
import { startTestOperator, type TestOperator } from '../test/harness/operator.js';

let kube: TestKube;
let redis: TestRedis;
let r: Redis;
let op: TestOperator;
const logs: string[] = [];

const say = (m: string, e?: unknown) => void logs.push(`${m}${e ? `: ${(e as Error).message}` : ''}`);
const startOperator = () => startTestOperator(kube.client, { redis: { url: redis.url }, workers: 4, pollMs: 200 }, say);

const heartbeat = (host: string): Heartbeat => ({
  host,
  time: new Date().toISOString(),
  agentVersion: 'test',
  xenVersion: '4.17',
  kernelVersion: '6.1',
  capacity: { cpus: 16, memoryMiB: 16384 },
  freeMemoryMiB: 16384,
  guests: 0,
  running: 0,
  epoch: '',
});

async function xenHost(name: string, spec: Partial<XenHost['spec']>): Promise<void> {
  await kube.client.request('POST', '/apis/krata.dev/v1alpha1/xenhosts', {
    body: { apiVersion: 'krata.dev/v1alpha1', kind: 'XenHost', metadata: { name }, spec },
  });
}

function guest(name: string, spec: Partial<Guest['spec']> = {}, annotations?: Record<string, string>): Guest {
  const g = newGuest(name);
  g.spec = { image: 'example.test/app:1', resources: { cpus: 1, memory: '64Mi' }, ...spec } as Guest['spec'];
  if (annotations) g.metadata.annotations = annotations;
  return g;
}

const scheduled = (name: string) =>
  waitFor(
    async () => {
      const g = await kube.client.getGuest('default', name);
      const c = g.status?.conditions?.find((x) => x.type === 'Scheduled');
      return (
        c && {
          status: c.status,
          reason: c.reason,
          message: c.message,
          node: g.status?.node,
          stalled: g.status?.conditions?.find((x) => x.type === 'Stalled')?.status,
        }
      );
    },
    `Guest ${name} Scheduled`,
    30_000,
  );

const published = async (host: string) => Object.keys(await r.hgetall(desiredKey(host))).filter((f) => !f.startsWith('_'));

before(async () => {
  [kube, redis] = await Promise.all([startKube(), startRedis()]);
  r = new Redis(redis.url);
  // xen-a is cordoned, xen-b takes Guests and allows the default host ports only.
  await xenHost('xen-a', { unschedulable: true });
  await xenHost('xen-b', {});
  for (const h of ['xen-a', 'xen-b']) await r.set(heartbeatKey(h), JSON.stringify(heartbeat(h)), 'EX', 600);
  op = await startOperator();
});

after(async () => {
  await op?.stop();
  r?.disconnect();
  await redis?.stop();
  await kube?.stop();
});

test('a user-set krata.dev/node annotation (and a status sent with the create) does not choose the host', async () => {
  const g = guest('sneaky', {}, { 'krata.dev/node': 'xen-a' });
  g.status = { node: 'xen-a', phase: 'Running' };
  await kube.client.createGuest(g);
  const s = await scheduled('sneaky');
  assert.deepEqual([s.status, s.node], ['True', 'xen-b'], JSON.stringify(s));
  await waitFor(async () => (await published('xen-b')).includes('default/sneaky'), 'published to xen-b');
  assert.deepEqual(await published('xen-a'), []);
});

test('spec.nodeName does not skip the cordon: Scheduled=False, Unschedulable, with the reason', async () => {
  await kube.client.createGuest(guest('pinned', { nodeName: 'xen-a' }));
  const s = await scheduled('pinned');
  assert.deepEqual(s, {
    status: 'False',
    reason: 'Unschedulable',
    message: "0/2 hosts are available: 1 didn't match spec.nodeName, 1 unschedulable",
    node: undefined,
    stalled: undefined,
  });
  assert.deepEqual(await published('xen-a'), []);
});

test('a privileged host port is refused (HostPortNotAllowed, Stalled); a host port is not handed out twice on one host', async () => {
  await kube.client.createGuest(guest('web80', { network: { enabled: true, ports: [{ containerPort: 80, protocol: 'TCP' }] } }));
  const refused = await scheduled('web80');
  assert.deepEqual(refused, {
    status: 'False',
    reason: 'HostPortNotAllowed',
    message: "0/2 hosts are available: 2 didn't allow host port TCP/80 of spec.network.ports[0].containerPort (allowed: 1024-65535)",
    node: undefined,
    stalled: 'True',
  });
  await kube.client.createGuest(
    guest('web1', { network: { enabled: true, ports: [{ containerPort: 80, hostPort: 8080, protocol: 'TCP' }] } }),
  );
  assert.equal((await scheduled('web1')).node, 'xen-b');
  await kube.client.createGuest(guest('web2', { network: { enabled: true, ports: [{ containerPort: 8080, protocol: 'TCP' }] } }));
  const second = await scheduled('web2');
  assert.deepEqual(
    [second.status, second.reason, second.message],
    ['False', 'Unschedulable', '0/2 hosts are available: 1 host port TCP/8080 in use, 1 unschedulable'],
  );
});

test('the placement is status.node: a new operator keeps every Guest where it was', async () => {
  await op.stop();
  // Once more, the annotation says otherwise; a new leader must not follow it.
  await kube.client.request('PATCH', '/apis/krata.dev/v1alpha1/xenhosts/xen-a', {
    body: { spec: { unschedulable: false } },
    contentType: 'application/merge-patch+json',
  });
  await kube.client.request('PATCH', '/apis/krata.dev/v1alpha1/namespaces/default/guests/sneaky', {
    body: { metadata: { annotations: { 'krata.dev/node': 'xen-a' } } },
    contentType: 'application/merge-patch+json',
  });
  op = await startOperator();
  // The pinned Guest may go to xen-a now: proof the new operator has reconciled.
  assert.equal(await waitFor(async () => (await kube.client.getGuest('default', 'pinned')).status?.node, 'pinned placed', 30_000), 'xen-a');
  assert.equal((await kube.client.getGuest('default', 'sneaky')).status?.node, 'xen-b');
  assert.ok((await published('xen-b')).includes('default/sneaky'));
  assert.ok(!(await published('xen-a')).includes('default/sneaky'));
});

test("an admin's XenHost guestPolicy decides: opening port 80 places the refused Guest; allowNodeName: false refuses pins", async () => {
  const patchHost = (name: string, spec: unknown) =>
    kube.client.request('PATCH', `/apis/krata.dev/v1alpha1/xenhosts/${name}`, {
      body: { spec },
      contentType: 'application/merge-patch+json',
    });
  // The API server stores the defaults: what an admin sees with kubectl get -o yaml.
  assert.deepEqual((await kube.client.getXenHost('xen-b')).spec.guestPolicy, {
    allowNodeName: true,
    hostPorts: [{ from: 1024, to: 65535 }],
  });
  await patchHost('xen-b', {
    guestPolicy: {
      hostPorts: [
        { from: 80, to: 80 },
        { from: 1024, to: 65535 },
      ],
    },
  });
  assert.equal(await waitFor(async () => (await kube.client.getGuest('default', 'web80')).status?.node, 'web80 placed', 30_000), 'xen-b');
  await patchHost('xen-a', { guestPolicy: { allowNodeName: false } });
  await waitFor(
    async () =>
      (await kube.client.getXenHost('xen-a')).spec.guestPolicy.allowNodeName === false &&
      op.operator.hosts.get('xen-a')?.spec.guestPolicy.allowNodeName === false,
    'policy seen',
  );
  await kube.client.createGuest(guest('pinned2', { nodeName: 'xen-a' }));
  const s = await scheduled('pinned2');
  assert.deepEqual(s, {
    status: 'False',
    reason: 'NodeNameNotAllowed',
    message: 'XenHost xen-a does not allow Guests to name it in spec.nodeName (its spec.guestPolicy.allowNodeName is false)',
    node: undefined,
    stalled: 'True',
  });
});
