// The ApplySet parent routes and the Secret list of the local API: path and body checks, the parent's
// own checks answered as 422 naming the field, 404 when absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startFakeAgentApi } from '../../test/harness/agent-api.js';
import { APPLYSET_ID_LABEL, applySetId } from '../../contracts/agent-api/applyset.js';

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

const parent = (name: string, namespace = 'default', id = applySetId(name, namespace)) =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      namespace,
      labels: { [APPLYSET_ID_LABEL]: id },
      annotations: { 'applyset.kubernetes.io/tooling': 'kratactl/v0.1.0' },
    },
  });

test('ApplySet routes: put, get, list, delete; bad paths and bodies refused', async (t) => {
  const { socket, service } = await startFakeAgentApi(t);
  let r = await call(socket, 'GET', '/v1/namespaces/default/applysets/site');
  assert.equal(r.status, 404);
  assert.match(r.json.message, /applyset "site" not found in namespace "default"/);

  r = await call(socket, 'PUT', '/v1/namespaces/default/applysets/site', parent('site'));
  assert.equal(r.status, 200);
  assert.equal(r.json.action, 'created');
  assert.equal((await call(socket, 'PUT', '/v1/namespaces/default/applysets/site', parent('site'))).json.action, 'unchanged');
  r = await call(socket, 'GET', '/v1/namespaces/default/applysets/site');
  assert.equal(r.json.metadata.labels[APPLYSET_ID_LABEL], applySetId('site', 'default'));
  await call(socket, 'PUT', '/v1/namespaces/team/applysets/other', parent('other', 'team'));
  assert.deepEqual(
    (await call(socket, 'GET', '/v1/applysets?namespace=team')).json.items.map((p: { metadata: { name: string } }) => p.metadata.name),
    ['other'],
  );
  assert.equal((await call(socket, 'GET', '/v1/applysets')).json.items.length, 2);

  for (const [path, body, status, why] of [
    ['/v1/namespaces/default/applysets/Bad_Name', parent('site'), 400, /DNS subdomain/],
    ['/v1/namespaces/default/applysets/site', parent('site', 'default', 'applyset-forged-v1'), 422, /not valid/],
    ['/v1/namespaces/default/applysets/elsewhere', parent('site'), 422, /not valid/],
    ['/v1/namespaces/default/applysets/site', '{"apiVersion": "v1"', 400, /JSON/],
  ] as const) {
    r = await call(socket, 'PUT', path, body);
    assert.equal(r.status, status, path);
    assert.match(r.json.message, why);
  }
  assert.equal(service.getApplySet('default', 'site')!.metadata.labels[APPLYSET_ID_LABEL], applySetId('site', 'default'), 'unchanged');

  r = await call(socket, 'DELETE', '/v1/namespaces/default/applysets/site');
  assert.equal(r.status, 200);
  assert.equal((await call(socket, 'DELETE', '/v1/namespaces/default/applysets/site')).status, 404);

  service.secrets.add('default/regcred');
  assert.deepEqual((await call(socket, 'GET', '/v1/secrets')).json.items, [
    { namespace: 'default', name: 'regcred', type: 'kubernetes.io/dockerconfigjson', registries: [] },
  ]);
  assert.deepEqual((await call(socket, 'GET', '/v1/secrets?namespace=other')).json.items, []);
});
