// GuestSets on a single host, end to end but for Xen: kratactl through the real API server to the real
// agent (its stores, the Guest reconciler and the GuestSet controller) on the test-double hypervisor,
// where a Guest is Ready once its domain runs. A multi-document apply mixing kinds, rollout status,
// get, scale (and the scale route's checks), a rolling update of the image, describe, explain, a
// rollout that cannot finish (timeout), and deletion of the set taking its Guests and nothing else.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import type { Running } from '../../lib/lifecycle.js';
import type { NodeAgentService } from '../../node-agent/service/agent-service.js';
import { startSocketAgent, testAgentConfig } from '../harness/node-agent.js';
import { kratactl } from '../harness/kratactl.js';
import { HASH_LABEL } from '../../workloads/guestset/controller.js';

const setYaml = (image: string, replicas = 3, name = 'web') => `apiVersion: krata.dev/v1alpha1
kind: GuestSet
metadata:
  name: ${name}
spec:
  replicas: ${replicas}
  selector:
    matchLabels: {app: ${name}}
  template:
    metadata:
      labels: {app: ${name}}
    spec:
      image: ${image}
      resources: {memory: 64Mi}
      terminationGracePeriodSeconds: 0
`;
const loneGuest = `apiVersion: krata.dev/v1alpha1
kind: Guest
metadata:
  name: lone
  labels: {app: web}
spec:
  image: app:1
  resources: {memory: 64Mi}
`;

function put(socketPath: string, path: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'PUT', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('GuestSets on a single host through kratactl', { timeout: 120_000 }, () => {
  let dir: string;
  let socket: string;
  let running: Running;
  let agent: NodeAgentService;
  const k = (...args: string[]) => kratactl([...args, '--agent', socket]);
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  /** The set's Guests that are not being deleted. */
  const members = (set = 'web') =>
    agent.list('default').filter((g) => g.metadata.labels?.['krata.dev/guestset'] === set && !g.metadata.deletionTimestamp);
  async function until(pred: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 1500 && !pred(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(pred(), what);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'krata-guestset-'));
    socket = join(dir, 'agent.sock');
    ({ agent, running } = await startSocketAgent(
      testAgentConfig(join(dir, 'state'), { api: { socketPath: socket } }),
      file('image.sqfs', 'not a real image'),
    ));
  });
  after(async () => {
    await running?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('apply a GuestSet beside a Guest; it rolls out, scales, updates, and goes with its Guests', async () => {
    let r = await k('apply', '-f', file('both.yaml', `${setYaml('app:1')}---\n${loneGuest}`));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /guestset\.krata\.dev\/web created/);
    assert.match(r.stdout, /guest\.krata\.dev\/lone created/);

    r = await k('rollout', 'status', 'gs/web', '--timeout', '60s');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /guestset "web" successfully rolled out\n$/);
    assert.equal(members().length, 3);
    for (const g of members()) {
      assert.match(g.metadata.name, /^web-[a-z0-9]{5}$/);
      assert.equal(g.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    }
    const lone = agent.get('default', 'lone')!;
    assert.equal(lone.metadata.ownerReferences, undefined, 'a Guest matching the selector is not adopted');

    r = await k('get', 'gs');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\nweb\s+3\/3\s+3\s+3\s+\d+s\n$/);
    r = await k('get', 'guestsets', 'web', '-o', 'json');
    const got = JSON.parse(r.stdout) as { kind: string; status: { selector: string } };
    assert.equal(got.kind, 'GuestSet');
    assert.equal(got.status.selector, 'app=web');

    r = await k('scale', 'gs', 'web', '--replicas', '1');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'guestset.krata.dev/web scaled\n');
    await until(() => members().length === 1, 'scaled down to one Guest');
    assert.equal((await k('rollout', 'status', 'gs', 'web', '--timeout', '60s')).code, 0);
    assert.equal((await put(socket, '/v1/namespaces/default/guestsets/web/scale', '{"replicas": -1}')).status, 400);
    assert.equal((await put(socket, '/v1/namespaces/default/guestsets/nope/scale', '{"replicas": 1}')).status, 404);

    const before = members()[0]!.metadata.labels![HASH_LABEL];
    r = await k('apply', '-f', file('v2.yaml', setYaml('app:2', 2)));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /guestset\.krata\.dev\/web configured/);
    r = await k('rollout', 'status', 'gs/web', '--timeout', '60s');
    assert.equal(r.code, 0, r.stderr);
    await until(() => members().length === 2, 'two Guests after the update');
    for (const g of members()) {
      assert.equal(g.spec.image, 'app:2');
      assert.notEqual(g.metadata.labels![HASH_LABEL], before);
    }

    r = await k('describe', 'gs', 'web');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Replicas:\s+2 desired \| 2 updated \| 2 total \| 2 available \| 0 unavailable/);
    assert.match(r.stdout, /RollingUpdateStrategy:\s+25% max unavailable, 25% max surge/);
    assert.match(r.stdout, /Ready\s+True\s+Available/);
    for (const g of members()) assert.ok(r.stdout.includes(g.metadata.name), `describe lists ${g.metadata.name}`);

    r = await k('delete', 'gs', 'web');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'guestset.krata.dev/web deleted\n');
    await until(() => agent.list('default').every((g) => !g.metadata.labels?.['krata.dev/guestset']), "the set's Guests are gone");
    assert.ok(agent.get('default', 'lone'), 'the unowned Guest stays');
    assert.equal((await k('get', 'gs', 'web')).code, 1);
  });

  test('rollout status fails on timeout while Guests cannot start; explain documents GuestSets', async () => {
    let r = await k('apply', '-f', file('broken.yaml', setYaml('broken:1', 1, 'bad')));
    assert.equal(r.code, 0, r.stderr);
    r = await k('rollout', 'status', 'gs/bad', '--timeout', '1s');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /timed out waiting for the rollout of guestset "bad"/);
    assert.match(r.stdout, /0 of 1 updated replicas are available|0 out of 1 new replicas/);
    r = await k('rollout', 'status', 'gs/bad', '--watch=false');
    assert.equal(r.code, 0, 'without --watch the state is printed once');
    assert.equal((await k('rollout', 'status', 'gs/nope', '--timeout', '1s')).code, 1);
    assert.equal((await k('scale', 'gs', 'bad')).code, 2, '--replicas is required');
    r = await k('delete', '-f', join(dir, 'broken.yaml'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'guestset.krata.dev/bad deleted\n');

    r = await kratactl(['explain', 'guestset.spec.strategy.rollingUpdate']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /maxSurge/);
    assert.match(r.stdout, /maxUnavailable/);
    r = await kratactl(['explain', 'gs.spec.template.spec.image']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /OCI image reference/);
  });
});
