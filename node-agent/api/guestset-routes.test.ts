// The GuestSet routes of the local API over the in-memory service: list, get, scale and delete, with
// the body and path checks answered before the service is called.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startFakeAgentApi } from '../../test/harness/agent-api.js';
import type { KratObject } from '../../crds/validate.js';

function call(socketPath: string, method: string, path: string, body?: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const set = (name: string, namespace = 'default') =>
  ({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'GuestSet',
    metadata: { name, namespace },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { image: 'a:1' } },
    },
  }) as unknown as KratObject;

test('GuestSet routes: list by namespace, get, scale, delete; 400 and 404 say what is wrong', async (t) => {
  const { socket, service } = await startFakeAgentApi(t);
  await service.apply([set('web'), set('db', 'team')], false);
  let r = await call(socket, 'GET', '/v1/guestsets');
  assert.deepEqual(
    r.json.items.map((s: { metadata: { name: string } }) => s.metadata.name),
    ['web', 'db'],
  );
  r = await call(socket, 'GET', '/v1/guestsets?namespace=team');
  assert.deepEqual(
    r.json.items.map((s: { metadata: { name: string } }) => s.metadata.name),
    ['db'],
  );
  r = await call(socket, 'GET', '/v1/namespaces/default/guestsets/web');
  assert.equal(r.status, 200);
  assert.equal(r.json.spec.replicas, 2);
  r = await call(socket, 'GET', '/v1/namespaces/default/guestsets/nope');
  assert.equal(r.status, 404);
  assert.match(r.json.message, /guestset "nope" not found in namespace "default"/);
  r = await call(socket, 'GET', '/v1/namespaces/default/guestsets/Bad_Name');
  assert.equal(r.status, 400);

  r = await call(socket, 'PUT', '/v1/namespaces/default/guestsets/web/scale', '{"replicas": 5}');
  assert.equal(r.status, 200);
  assert.equal(r.json.spec.replicas, 5);
  assert.equal(service.getGuestSet('default', 'web')!.spec.replicas, 5);
  for (const body of ['{"replicas": 1.5}', '{"replicas": 1001}', '{"replicas": "3"}', '[]', '{}']) {
    r = await call(socket, 'PUT', '/v1/namespaces/default/guestsets/web/scale', body);
    assert.equal(r.status, 400, body);
    assert.match(r.json.message, /\{"replicas": N\}, N a whole number from 0 to 1000/);
  }
  assert.equal(service.getGuestSet('default', 'web')!.spec.replicas, 5, 'a refused scale changes nothing');
  assert.equal((await call(socket, 'PUT', '/v1/namespaces/default/guestsets/nope/scale', '{"replicas": 1}')).status, 404);

  r = await call(socket, 'DELETE', '/v1/namespaces/default/guestsets/web');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { kind: 'GuestSet', metadata: { namespace: 'default', name: 'web' }, status: 'deleted' });
  assert.equal((await call(socket, 'DELETE', '/v1/namespaces/default/guestsets/web')).status, 404);
});
