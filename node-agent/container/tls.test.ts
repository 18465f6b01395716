// The agent in cluster mode with its TLS listener, as main.ts builds it, on a real redis-server: it asks
// for a certificate, the operator (an openssl CA here) answers, the listener comes up and the heartbeat
// advertises it; krata-api's certificate reaches a Guest the cluster placed; restarted with that TLS state,
// it listens at once and asks for nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { agentServerName } from '../../contracts/krata-api/agent-tls.js';
import { certRequestKey, heartbeatKey, parseHeartbeat } from '../../contracts/redis/contract.js';
import { TestCa, answerCertRequest } from '../../test/doubles/cert-authority.js';
import { HOST, desired, harness, until, type Harness } from '../../test/harness/cluster-agent.js';

const limit = { timeout: 60_000 };

const heartbeat = async (h: Harness) => {
  const raw = await h.op.client.get(heartbeatKey(HOST));
  return raw === null ? undefined : parseHeartbeat(raw);
};

function get(port: number, client: { key: string; cert: string; ca: string }, path: string) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, servername: agentServerName(HOST), ...client, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('cluster mode: the certificate through Redis, the listener, the heartbeat apiEndpoint, a restart', limit, async () => {
  const ca = TestCa.create();
  const tls = { host: '127.0.0.1', port: 0, advertise: '192.0.2.10:9444' };
  const h = await harness({ tls, heartbeatMs: 100 });
  try {
    await until(async () => (await h.op.client.exists(certRequestKey(HOST))) === 1, 'the certificate request');
    assert.equal(h.tls!.status().listening, false);
    const beat = await heartbeat(h);
    assert.ok(beat, 'heartbeats before the listener is up');
    assert.equal(beat.apiEndpoint, undefined, 'no apiEndpoint before the listener is up');

    await answerCertRequest(h.op.client, HOST, ca);
    await until(() => h.tls!.address !== undefined, 'the listener up');
    await until(async () => (await heartbeat(h))?.apiEndpoint === '192.0.2.10:9444', 'apiEndpoint in the heartbeat');

    const g = desired('web');
    await h.op.put(g);
    await h.op.nudge(g);
    await until(() => h.agent.get('default', 'web')?.status?.phase === 'Running', 'web Running');
    const api = { ...ca.client(), ca: ca.cert };
    const port = h.tls!.address!.port;
    const answer = await get(port, api, '/v1/namespaces/default/guests/web');
    assert.equal(answer.status, 200, answer.text);
    assert.equal(JSON.parse(answer.text).metadata.uid, g.uid);
    assert.equal((await get(port, api, '/v1/guests')).status, 404);

    const key = readFileSync(join(h.dir, 'tls/agent.key'), 'utf8');
    const cert = h.tls!.status().notAfter;
    await h.stopAgent();

    // A restart with the same TLS state (in a new state directory: the image cache's lock is held until
    // this process exits): the same key and certificate, listening at once, nothing asked.
    await h.op.client.del(certRequestKey(HOST));
    const dir = `${h.dir}-restarted`;
    cpSync(join(h.dir, 'tls'), join(dir, 'tls'), { recursive: true, preserveTimestamps: true });
    const again = await harness({ tls, heartbeatMs: 100, redis: h.redis, dir });
    try {
      await until(() => again.tls!.address !== undefined, 'listening at once after the restart');
      assert.equal(again.tls!.status().notAfter, cert);
      assert.equal(readFileSync(join(dir, 'tls/agent.key'), 'utf8'), key);
      await until(async () => (await heartbeat(again))?.apiEndpoint === '192.0.2.10:9444', 'apiEndpoint after the restart');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await again.op.client.exists(certRequestKey(HOST)), 0, 'no request while the certificate is good');
      assert.equal((await get(again.tls!.address!.port, api, '/v1/namespaces/default/guests/web')).status, 200);
    } finally {
      await again.stop();
    }
  } finally {
    await h.stopAgent();
    await h.op.close();
  }
});
