import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeCa, type CertFiles } from '../test/openssl-ca.js';
import { authenticate, RequestHeaderSource, AUTH_CONFIGMAP_PATH } from './authn.js';
import type { Kube } from './kube.js';
import { ApiServer } from './server.js';
import { asStatus, sendStatus } from './status.js';

const quiet = { info: () => undefined, warn: () => undefined };

/** GET `path` with a client certificate; the status and body. */
function get(port: number, path: string, client?: CertFiles): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        rejectUnauthorized: false,
        agent: false,
        headers: { 'x-remote-user': 'alice' },
        ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => done({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', fail);
    req.end();
  });
}

describe('the HTTPS listener', () => {
  let dir: string;
  let server: ApiServer;
  let port: number;
  let caPem: string;
  let proxyA: CertFiles;
  let proxyB: CertFiles;
  let caB: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'krata-api-server-'));
    const serving = makeCa(dir, 'serving-ca').issue('serving', { cn: 'krata-api', dns: ['krata-api'], usage: 'server' });
    const a = makeCa(dir, 'proxy-a');
    const b = makeCa(dir, 'proxy-b');
    proxyA = a.issue('front-a', { cn: 'front-proxy-client', usage: 'client' });
    proxyB = b.issue('front-b', { cn: 'front-proxy-client', usage: 'client' });
    caPem = readFileSync(a.cert, 'utf8');
    caB = readFileSync(b.cert, 'utf8');
    const kube: Kube = {
      get: <T>(path: string) =>
        Promise.resolve(
          path === AUTH_CONFIGMAP_PATH
            ? ({
                data: {
                  'requestheader-client-ca-file': caPem,
                  'requestheader-allowed-names': '["front-proxy-client"]',
                  'requestheader-username-headers': '["X-Remote-User"]',
                  'requestheader-group-headers': '[]',
                  'requestheader-extra-headers-prefix': '[]',
                },
              } as T)
            : undefined,
        ),
      create: () => Promise.reject(new Error('not used')),
    };
    const headers = new RequestHeaderSource(kube);
    // Routes that answer with the authenticated user: what is under test is who the listener trusts.
    const routes = {
      handleRequest: (req: Parameters<typeof authenticate>[0], res: Parameters<typeof sendStatus>[0]) => {
        try {
          res.end(authenticate(req, headers.current()).username);
        } catch (e) {
          sendStatus(res, asStatus(e));
        }
        return Promise.resolve();
      },
      handleUpgrade: () => Promise.resolve(),
    };
    server = new ApiServer(
      { listen: '127.0.0.1:0', certFile: serving.cert, keyFile: serving.key, refreshMs: 60_000 },
      headers,
      routes,
      quiet,
    );
    await server.start();
    port = server.address().port;
  });

  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves health and discovery to anyone, and the rest only to the trusted front proxy', async () => {
    assert.equal((await get(port, '/readyz')).status, 200);
    assert.equal((await get(port, '/apis/subresources.krata.dev/v1alpha1')).status, 200);
    assert.equal((await get(port, '/openapi/v2')).status, 404);
    assert.deepEqual(await get(port, '/x', proxyA), { status: 200, body: 'alice' });
    assert.equal((await get(port, '/x', proxyB)).status, 401);
    assert.equal((await get(port, '/x')).status, 401);
  });

  it('trusts the requestheader CA the ConfigMap names after a refresh', async () => {
    caPem = caB;
    await server.refresh();
    assert.deepEqual(await get(port, '/x', proxyB), { status: 200, body: 'alice' });
    assert.equal((await get(port, '/x', proxyA)).status, 401);
  });
});
