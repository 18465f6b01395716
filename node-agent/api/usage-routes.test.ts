// The usage routes over the real API server and the in-memory AgentService: the list (by namespace),
// one Guest's, 404 for an absent Guest, 409 naming the phase for one without a running domain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import { startFakeAgentApi, testGuest } from '../../test/harness/agent-api.js';

function get(socketPath: string, path: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method: 'GET', path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const usage = (namespace: string, name: string): GuestUsage => ({
  namespace,
  name,
  domid: 1,
  timestamp: '2026-01-01T00:00:00.000Z',
  cpuSeconds: 2,
  cpuCores: 0.25,
  windowSeconds: 10,
  vcpus: { online: 1, max: 1 },
  memory: { domainBytes: 1 << 30, maxBytes: 1 << 30 },
  channel: { phase: 'up' },
});

test("GET /v1/usage and one Guest's usage: items, 404 absent, 409 without a running domain, 400 bad names", async (t) => {
  const { socket: socketPath, service } = await startFakeAgentApi(t);
  await service.apply([testGuest('web'), testGuest('db'), testGuest('api', 'team-a')], false);
  service.run('default', 'web');
  service.run('team-a', 'api');
  service.usageItems = [usage('default', 'web'), usage('team-a', 'api')];

  const all = await get(socketPath, '/v1/usage');
  assert.equal(all.status, 200);
  assert.deepEqual(
    all.json.items.map((u: GuestUsage) => `${u.namespace}/${u.name}`),
    ['default/web', 'team-a/api'],
  );
  const teamA = await get(socketPath, '/v1/usage?namespace=team-a');
  assert.deepEqual(
    teamA.json.items.map((u: GuestUsage) => u.name),
    ['api'],
  );
  assert.equal((await get(socketPath, '/v1/usage?namespace=Bad_NS')).status, 400);

  const one = await get(socketPath, '/v1/namespaces/default/guests/web/usage');
  assert.equal(one.status, 200);
  assert.deepEqual(one.json, usage('default', 'web'));

  const absent = await get(socketPath, '/v1/namespaces/default/guests/nope/usage');
  assert.equal(absent.status, 404);
  assert.equal(absent.json.message, 'guest "nope" not found in namespace "default"');

  const pending = await get(socketPath, '/v1/namespaces/default/guests/db/usage');
  assert.equal(pending.status, 409);
  assert.equal(pending.json.message, 'guest "db" has no running domain (phase Pending), so there is no usage');

  // A domain that went away between the Guest's status and the sample: no usage either.
  service.usageItems = [];
  const gone = await get(socketPath, '/v1/namespaces/default/guests/web/usage');
  assert.equal(gone.status, 409);
  assert.match(gone.json.message, /phase Running/);
  assert.equal((await get(socketPath, '/v1/namespaces/default/guests/Web/usage')).status, 400);
});
