import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient, KubeError, isConflict, isNotFound, type KubeEvent } from './client.js';
import { newGuest, startKube, type TestKube } from '../../test/kube/operator-env.js';

interface EventObj {
  metadata: { name: string };
  involvedObject: { uid: string };
  reason: string;
  message: string;
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  source: { component: string };
  reportingComponent: string;
  reportingInstance: string;
}

describe('KubeClient against kube-apiserver', () => {
  let kube: TestKube;
  before(async () => {
    kube = await startKube();
  });
  after(async () => {
    await kube?.stop();
  });

  it('server-side applies Guest status without touching spec or generation', async () => {
    const created = await kube.client.createGuest(newGuest('ssa'));
    const applied = await kube.client.applyGuestStatus('default', 'ssa', { phase: 'Pending', node: 'host-a' });
    assert.deepEqual(applied.status, { phase: 'Pending', node: 'host-a' });
    assert.deepEqual(applied.spec, created.spec);
    assert.equal(applied.metadata.generation, created.metadata.generation);
    const mf = applied.metadata.managedFields as { manager: string; operation: string; subresource?: string }[];
    assert.ok(
      mf.some((f) => f.manager === 'krata-operator' && f.operation === 'Apply'),
      JSON.stringify(mf),
    );

    // Applying a smaller status removes what this manager no longer applies; so does the uid-checked write.
    assert.deepEqual((await kube.client.applyGuestStatus('default', 'ssa', { phase: 'Running' })).status, { phase: 'Running' });
    const again = await kube.client.applyGuestStatus('default', 'ssa', { node: 'host-b' }, { uid: created.metadata.uid });
    assert.deepEqual(again.status, { node: 'host-b' });
    const got = await kube.client.getGuest('default', 'ssa');
    assert.deepEqual(got.status, { node: 'host-b' });
    assert.equal(got.metadata.generation, created.metadata.generation);
    assert.deepEqual(got.spec, created.spec);
  });

  it('refuses a status write for another incarnation (uid precondition)', async () => {
    await kube.client.createGuest(newGuest('reborn'));
    await assert.rejects(
      kube.client.applyGuestStatus('default', 'reborn', { phase: 'Failed' }, { uid: '00000000-0000-0000-0000-000000000000' }),
      (e) => isConflict(e) && /Precondition failed/.test((e as Error).message),
    );
    assert.equal((await kube.client.getGuest('default', 'reborn')).status, undefined);
    await assert.rejects(kube.client.applyGuestStatus('default', 'absent', { phase: 'Failed' }), isNotFound);
  });

  it('patches finalizers only on the resourceVersion it saw', async () => {
    const g = await kube.client.createGuest(newGuest('fin'));
    const withFin = await kube.client.setGuestFinalizers('default', 'fin', ['krata.dev/guest'], g.metadata.resourceVersion!);
    assert.deepEqual(withFin.metadata.finalizers, ['krata.dev/guest']);
    assert.equal(withFin.metadata.generation, g.metadata.generation);
    await assert.rejects(
      kube.client.setGuestFinalizers('default', 'fin', [], g.metadata.resourceVersion!),
      (e) => isConflict(e) && (e as KubeError).status === 409,
    );

    await kube.client.deleteGuest('default', 'fin');
    const terminating = await kube.client.getGuest('default', 'fin');
    assert.ok(terminating.metadata.deletionTimestamp, 'the finalizer holds the Guest');
    await kube.client.setGuestFinalizers('default', 'fin', [], terminating.metadata.resourceVersion!);
    await assert.rejects(kube.client.getGuest('default', 'fin'), isNotFound);
  });

  it('aggregates repeated Events into one with a count, like client-go', async () => {
    const errors: unknown[] = [];
    const client = kube.clientVia(kube.env.server, { instance: 'operator-0', onError: (_m, e) => errors.push(e) });
    const g = await client.createGuest(newGuest('evented'));
    const ev = (message: string): KubeEvent => ({
      namespace: 'default',
      involved: {
        kind: 'Guest',
        apiVersion: 'krata.dev/v1alpha1',
        namespace: 'default',
        name: 'evented',
        uid: g.metadata.uid!,
        resourceVersion: g.metadata.resourceVersion,
      },
      type: 'Normal',
      reason: 'Scheduled',
      message,
    });
    const writes = client.writes;
    await client.createEvent(ev('placed on host-a'));
    await client.createEvent(ev('placed on host-a'));
    assert.equal(client.writes - writes, 2, 'one POST, then one PATCH');
    // A burst of identical events, none awaited before the next: still the same Event.
    await Promise.all([1, 2, 3].map(() => client.createEvent(ev('placed on host-a'))));
    await client.createEvent(ev('placed on host-b'));

    const list = await client.request<{ items: EventObj[] }>('GET', '/api/v1/namespaces/default/events', {
      query: { fieldSelector: `involvedObject.uid=${g.metadata.uid}` },
    });
    const byMessage = new Map(list.items.map((e) => [e.message, e]));
    assert.equal(list.items.length, 2, JSON.stringify(list.items.map((e) => [e.metadata.name, e.message, e.count])));
    const a = byMessage.get('placed on host-a')!;
    assert.equal(a.count, 5);
    assert.equal(a.source.component, 'krata-operator');
    assert.equal(a.reportingComponent, 'krata.dev/operator');
    assert.equal(a.reportingInstance, 'operator-0');
    assert.ok(a.lastTimestamp >= a.firstTimestamp);
    assert.equal(byMessage.get('placed on host-b')!.count, 1);
    assert.deepEqual(errors, []);

    // A failing Event write is reported, never thrown.
    await client.createEvent({ ...ev('nowhere'), namespace: 'no-such-namespace' });
    assert.equal(errors.length, 1);
    assert.ok(isNotFound(errors[0]));
  });

  it('counts writes and errors by status', async () => {
    const client = kube.clientVia(kube.env.server);
    await client.listGuests();
    const g = await client.createGuest(newGuest('counted'));
    await client.applyGuestStatus('default', 'counted', { phase: 'Pending' }, { uid: g.metadata.uid });
    await client.applyGuestStatus('default', 'counted', { phase: 'Pending' });
    await client.setGuestFinalizers('default', 'counted', ['krata.dev/guest'], g.metadata.resourceVersion!).catch(() => {});
    await client.getGuest('default', 'nope').catch(() => {});
    await client.deleteGuest('default', 'counted');
    assert.equal(client.writes, 5);
    assert.deepEqual(client.errors, { 404: 1, 409: 1 });
  });

  it('creates XenHosts idempotently and applies their status', async () => {
    const h = await kube.client.createXenHost('host-a', { zone: 'z1' });
    assert.equal(h.spec.unschedulable, false, 'schema defaults applied');
    const again = await kube.client.createXenHost('host-a');
    assert.equal(again.metadata.uid, h.metadata.uid);
    assert.deepEqual(again.metadata.labels, { zone: 'z1' });
    const s = await kube.client.applyXenHostStatus('host-a', { xenVersion: '4.17.5', guests: 3 });
    assert.deepEqual(s.status, { xenVersion: '4.17.5', guests: 3 });
    assert.equal(s.metadata.generation, h.metadata.generation);

    // Events about a cluster-scoped object live in 'default'.
    const errors: unknown[] = [];
    const client = kube.clientVia(kube.env.server, { onError: (_m, e) => errors.push(e) });
    await client.createEvent({
      namespace: 'default',
      involved: { kind: 'XenHost', apiVersion: 'krata.dev/v1alpha1', name: 'host-a', uid: h.metadata.uid! },
      type: 'Warning',
      reason: 'NotReady',
      message: 'no heartbeat for 40s',
    });
    assert.deepEqual(errors, []);
    const evs = await client.request<{ items: EventObj[] }>('GET', '/api/v1/namespaces/default/events', {
      query: { fieldSelector: `involvedObject.uid=${h.metadata.uid}` },
    });
    assert.deepEqual(
      evs.items.map((e) => [e.reason, e.count]),
      [['NotReady', 1]],
    );
  });

  it('lists page by page', async () => {
    for (const n of ['p1', 'p2', 'p3']) await kube.client.createGuest(newGuest(n, 'kube-system'));
    const all = (await kube.client.listGuests()).items.length;
    const names: string[] = [];
    let cont: string | undefined;
    let pages = 0;
    do {
      const page = await kube.client.listGuests({ limit: 2, continue: cont });
      assert.ok(page.items.length <= 2);
      assert.match(page.resourceVersion, /^\d+$/);
      names.push(...page.items.map((g) => `${g.metadata.namespace}/${g.metadata.name}`));
      cont = page.continue;
      pages++;
    } while (cont);
    assert.equal(names.length, all);
    assert.equal(new Set(names).size, all);
    assert.equal(pages, Math.ceil(all / 2));
  });

  it('turns a watch ERROR event into a KubeError (410 Gone for an expired resourceVersion)', async () => {
    const w = kube.client.watch('guests', { resourceVersion: '1' }, () => {});
    await assert.rejects(w.done, (e) => e instanceof KubeError && e.status === 410 && e.reason === 'Expired');
  });
});

describe('KubeClient request handling', () => {
  let inFlight = 0;
  let maxInFlight = 0;
  const server = createServer((req, res) => {
    if (req.url?.includes('hang')) return; // never answers
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    setTimeout(() => {
      inFlight--;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ items: [], metadata: { resourceVersion: '7' } }));
    }, 20);
  });
  let url = '';
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const client = (opts: ConstructorParameters<typeof KubeClient>[1]) => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: url, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return new KubeClient(kc, opts);
  };

  it('keeps at most maxInFlight requests in flight and queues the rest', async () => {
    const c = client({ maxInFlight: 3 });
    const pages = await Promise.all(Array.from({ length: 40 }, () => c.listGuests()));
    assert.equal(pages.length, 40);
    assert.ok(pages.every((p) => p.resourceVersion === '7' && p.continue === undefined));
    assert.equal(maxInFlight, 3);
    c.close();
  });

  it('gives up on a request after timeoutMs with a transport error (status 0)', async () => {
    const c = client({ timeoutMs: 200 });
    const t0 = Date.now();
    await assert.rejects(c.request('GET', '/hang'), (e) => e instanceof KubeError && e.status === 0 && /no answer/.test(e.message));
    assert.ok(Date.now() - t0 < 2000);
    assert.deepEqual(c.errors, { 0: 1 });
    c.close();
  });
});
