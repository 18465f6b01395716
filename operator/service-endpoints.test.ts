// A GuestSet behind a Kubernetes Service, against a real kube-apiserver: the EndpointSlices the operator
// keeps for a Service annotated krata.dev/guestset list the hosts (their Nodes' addresses) that run a
// Ready replica, follow readiness as the Guests' status changes, map the Service's ports to the set's
// host port, ignore another namespace's Guests, and go with the annotation or the Service.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Guest, XenHost } from '../crds/generated/types.js';
import { newGuest, startKube, waitFor, type TestKube } from '../test/kube/operator-env.js';
import { startTestOperator } from '../test/harness/operator.js';
import { startRedis } from '../test/redis.js';
import type { Service } from './kube/client.js';
import { desiredRecord } from './desired-publisher.js';
import { Informer } from './kube/informer.js';
import { desiredSlices, ServiceEndpoints, type EndpointSlice } from './service-endpoints.js';

let kube: TestKube;
let guests: Informer<Guest>;
let hosts: Informer<XenHost>;
let endpoints: ServiceEndpoints;
let group = '';
const logs: string[] = [];

const NODES: Record<string, { type: string; address: string }[]> = {
  'xen-a': [{ type: 'InternalIP', address: '192.0.2.1' }],
  'xen-b': [
    { type: 'Hostname', address: 'xen-b' },
    { type: 'InternalIP', address: '192.0.2.2' },
    { type: 'InternalIP', address: '2001:db8::2' },
  ],
  'xen-c': [{ type: 'ExternalIP', address: '198.51.100.3' }],
};

function replica(name: string, namespace = 'shop'): Guest {
  const g = newGuest(name, namespace);
  g.metadata.labels = { 'krata.dev/guestset': 'web' };
  g.metadata.ownerReferences = [
    { apiVersion: 'krata.dev/v1alpha1', kind: 'GuestSet', name: 'web', uid: `set-${namespace}`, controller: true },
  ];
  g.spec.network = { enabled: true, ports: [{ name: 'http', containerPort: 80, hostPort: 8080, protocol: 'TCP' }] };
  return g;
}

async function setStatus(name: string, node: string, ready: boolean, namespace = 'shop'): Promise<void> {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await kube.client.applyGuestStatus(namespace, name, {
    phase: 'Running',
    node,
    conditions: [
      { type: 'Ready', status: ready ? 'True' : 'False', reason: ready ? 'Probed' : 'ProbeFailed', message: '', lastTransitionTime: now },
    ],
  });
}

const service = (annotated = true): Service & { apiVersion: string; kind: string } => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'shop', ...(annotated ? { annotations: { 'krata.dev/guestset': 'web' } } : {}) },
  spec: {
    ports: [
      { name: 'http', protocol: 'TCP', port: 80, targetPort: 'http' },
      { name: 'alt', protocol: 'TCP', port: 81, targetPort: 80 },
      { name: 'none', protocol: 'TCP', port: 82, targetPort: 9999 },
    ],
  },
});

/** The Service's slices as addressType → [endpoint addresses], with the ports and metadata checked on the way. */
async function slices(): Promise<Record<string, string[]>> {
  const list = await kube.client.request<{ items: EndpointSlice[] }>('GET', `/apis/${group}/namespaces/shop/endpointslices`);
  const out: Record<string, string[]> = {};
  for (const s of list.items) {
    assert.deepEqual(s.metadata.labels, {
      'kubernetes.io/service-name': 'web',
      'endpointslice.kubernetes.io/managed-by': 'operator.krata.dev',
    });
    assert.deepEqual(
      s.metadata.ownerReferences.map((o) => [o.kind, o.name, o.controller]),
      [['Service', 'web', true]],
    );
    assert.deepEqual(
      s.ports.map((p) => [p.name, p.protocol, p.port]),
      [
        ['http', 'TCP', 8080],
        ['alt', 'TCP', 8080],
      ],
    );
    assert.ok(s.endpoints.every((e) => e.conditions.ready === true));
    out[s.addressType] = s.endpoints.map((e) => e.addresses[0]!).sort();
  }
  return out;
}

async function expectSlices(want: Record<string, string[]>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  let got: Record<string, string[]> = {};
  while (Date.now() < deadline) {
    got = await slices();
    if (JSON.stringify(got) === JSON.stringify(want)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(got, want, `${what}\n${logs.join('\n')}`);
}

before(async () => {
  kube = await startKube();
  for (const ns of ['shop', 'other']) await kube.client.request('POST', '/api/v1/namespaces', { body: { metadata: { name: ns } } });
  for (const [name, addresses] of Object.entries(NODES))
    await kube.client.request('POST', '/api/v1/nodes', { body: { metadata: { name }, status: { addresses } } });
  const versions = await kube.client.request<{ versions: { version: string }[] }>('GET', '/apis/discovery.k8s.io');
  group = versions.versions.some((v) => v.version === 'v1') ? 'discovery.k8s.io/v1' : 'discovery.k8s.io/v1beta1';
  for (const [name, ns] of [
    ['web-1', 'shop'],
    ['web-2', 'shop'],
    ['web-3', 'shop'],
    ['web-9', 'other'],
  ] as const)
    await kube.client.createGuest(replica(name, ns));
  await setStatus('web-1', 'xen-a', true);
  await setStatus('web-2', 'xen-b', true);
  await setStatus('web-3', 'xen-c', false);
  // Another namespace's replica of a set of the same name, Ready on xen-c: never this Service's.
  await setStatus('web-9', 'xen-c', true, 'other');
  const say = (m: string, e?: unknown) => void logs.push(`${m}${e ? `: ${(e as Error).message}` : ''}`);
  guests = new Informer<Guest>(kube.client, 'guests', { log: say });
  hosts = new Informer<XenHost>(kube.client, 'xenhosts', { log: say });
  guests.start();
  hosts.start();
  await Promise.all([guests.synced(), hosts.synced()]);
  endpoints = new ServiceEndpoints(kube.client, guests, hosts, { log: say });
  await endpoints.start();
});

after(async () => {
  await endpoints?.stop();
  await guests?.stop();
  await hosts?.stop();
  await kube?.stop();
});

test('an annotated Service gets slices of the hosts with a Ready replica, by address family, ports mapped to the host port', async () => {
  await kube.client.request('POST', '/api/v1/namespaces/shop/services', { body: service() });
  await expectSlices({ IPv4: ['192.0.2.1', '192.0.2.2'], IPv6: ['2001:db8::2'] }, 'xen-a and xen-b; xen-c has no ready replica');
});

test('the slices follow readiness: a replica turning not ready takes its host out, one turning ready adds it', async () => {
  await setStatus('web-2', 'xen-b', false);
  await expectSlices({ IPv4: ['192.0.2.1'] }, 'xen-b left out, its IPv6 slice deleted');
  await setStatus('web-3', 'xen-c', true);
  await expectSlices({ IPv4: ['192.0.2.1', '198.51.100.3'] }, 'xen-c in (its ExternalIP: it has no InternalIP)');
  await setStatus('web-1', 'xen-a', false);
  await setStatus('web-3', 'xen-c', false);
  await expectSlices({}, 'no ready replica: no slices');
  await setStatus('web-1', 'xen-a', true);
  await expectSlices({ IPv4: ['192.0.2.1'] }, 'xen-a back');
});

test('the annotation removed takes the slices away; put back, they return', async () => {
  await kube.client.request('PATCH', '/api/v1/namespaces/shop/services/web', {
    body: { metadata: { annotations: { 'krata.dev/guestset': null } } },
    contentType: 'application/merge-patch+json',
  });
  await expectSlices({}, 'not annotated any more');
  await kube.client.request('PATCH', '/api/v1/namespaces/shop/services/web', {
    body: { metadata: { annotations: { 'krata.dev/guestset': 'web' } } },
    contentType: 'application/merge-patch+json',
  });
  await expectSlices({ IPv4: ['192.0.2.1'] }, 'annotated again');
});

test("deleting the Service deletes its slices (the operator's own deletion: no garbage collector here)", async () => {
  await kube.client.request('DELETE', '/api/v1/namespaces/shop/services/web');
  await expectSlices({}, 'Service gone');
});

test('desiredSlices: a Service with a selector, or naming no set, gets none; v1beta1 slices carry no nodeName', () => {
  const g = replica('x');
  g.metadata.uid = 'u';
  g.status = {
    node: 'xen-a',
    conditions: [{ type: 'Ready', status: 'True', reason: 'R', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }],
  };
  const svc = { ...service(), metadata: { ...service().metadata, uid: 'svc' } };
  const addrs = () => ['192.0.2.1'];
  assert.equal(desiredSlices(svc, [g], addrs).length, 1);
  assert.equal(desiredSlices(svc, [g], addrs)[0]!.endpoints[0]!.nodeName, 'xen-a');
  assert.equal(desiredSlices(svc, [g], addrs, false)[0]!.endpoints[0]!.nodeName, undefined);
  assert.deepEqual(desiredSlices({ ...svc, spec: { ...svc.spec, selector: { app: 'web' } } }, [g], addrs), []);
  assert.deepEqual(desiredSlices({ ...svc, metadata: { ...svc.metadata, annotations: {} } }, [g], addrs), []);
  // A Guest labelled into the set without being the set's (no controller ownerReference) is not a replica.
  const stray = { ...g, metadata: { ...g.metadata, ownerReferences: [] } };
  assert.deepEqual(desiredSlices(svc, [stray], addrs), []);
});

test("the desired record carries a Guest's controller owner to its host (replicas of one set share host ports there)", () => {
  const g = replica('web-1');
  g.metadata.uid = 'u';
  g.metadata.ownerReferences = [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'c', uid: 'c' }, ...g.metadata.ownerReferences!];
  assert.deepEqual(desiredRecord(g).owner, { kind: 'GuestSet', name: 'web', uid: 'set-shop' });
  assert.equal(desiredRecord(newGuest('solo')).owner, undefined);
});

test('the operator runs it when it leads: a slice left by a Service deleted meanwhile is removed', async () => {
  await endpoints.stop();
  const base = `/apis/${group}/namespaces/shop/endpointslices`;
  await kube.client.request('POST', base, {
    body: {
      apiVersion: group,
      kind: 'EndpointSlice',
      metadata: {
        name: 'gone-krata-ipv4',
        labels: { 'kubernetes.io/service-name': 'gone', 'endpointslice.kubernetes.io/managed-by': 'operator.krata.dev' },
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['192.0.2.1'], conditions: { ready: true } }],
      ports: [],
    },
  });
  const redis = await startRedis();
  const op = await startTestOperator(kube.client, { redis: { url: redis.url }, pollMs: 200 });
  try {
    await waitFor(
      async () => (await kube.client.request<{ items: unknown[] }>('GET', base)).items.length === 0,
      'orphan slice deleted',
      15_000,
    );
  } finally {
    await op.stop();
    await redis.stop();
  }
});
