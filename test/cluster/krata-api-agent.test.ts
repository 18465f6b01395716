// krata-api's agent client against the REAL agent TLS listener (node-agent/api/tls-listener.ts) over the
// in-memory agent service: the same routes the TLS double serves (test/doubles/tls-agent.ts) answer the
// same way, and the identity checks hold between the two real ends.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXEC_PROTOCOL, ExecFrame, ExecFrameDecoder, execQueryString } from '../../contracts/agent-api/exec.js';
import { AgentIdentity } from '../../node-agent/follower/agent-identity.js';
import { TlsApiListener } from '../../node-agent/api/tls-listener.js';
import { TestCa } from '../doubles/cert-authority.js';
import { FakeAgentService } from '../doubles/fake-agent-service.js';
import { testGuest } from '../harness/agent-api.js';
import { captureLog } from '../harness/cluster-agent.js';
import { AgentClient, type AgentTarget } from '../../krata-api/agent-client.js';
import { StatusError } from '../../krata-api/status.js';

const HOST = 'xen-1.example';

const text = async (res: IncomingMessage) => {
  let s = '';
  for await (const d of res as AsyncIterable<Buffer>) s += d.toString();
  return s;
};

const readAll = (socket: Duplex, head: Buffer) =>
  new Promise<Buffer>((resolve) => {
    const chunks = [head];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });

describe('krata-api ↔ the agent TLS listener', () => {
  let dir: string;
  let listener: TlsApiListener;
  let client: AgentClient;
  let target: AgentTarget;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'krata-api-interop-'));
    const ca = TestCa.create();
    const service = new FakeAgentService();
    await service.apply([testGuest('web')], false);
    service.run('default', 'web', 'booting\nhello from web\n');
    const identity = AgentIdentity.open(dir, HOST, Date.now());
    assert.equal(identity.accept(ca.issue(HOST, identity.publicKey), Date.now()), 'taken');
    listener = new TlsApiListener(service, { host: '127.0.0.1', port: 0, identity, log: captureLog() });
    listener.start();
    while (!listener.address) await new Promise((r) => setTimeout(r, 10));
    const api = ca.client();
    client = new AgentClient(() => ({ cert: Buffer.from(api.cert), key: Buffer.from(api.key), ca: Buffer.from(ca.cert) }));
    target = { host: HOST, endpoint: `127.0.0.1:${listener.address.port}` };
  });

  after(async () => {
    await listener?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads logs, runs exec and sets the console size', async () => {
    assert.equal(await text(await client.request(target, 'GET', '/v1/namespaces/default/guests/web/logs?tail=1')), 'hello from web\n');
    const query = execQueryString({ command: ['echo', 'over', 'tls'] });
    const { socket, head } = await client.upgrade(target, `/v1/namespaces/default/guests/web/exec?${query}`, EXEC_PROTOCOL);
    const frames = new ExecFrameDecoder().push(await readAll(socket, head));
    assert.equal(Buffer.concat(frames.filter((f) => f.type === ExecFrame.stdout).map((f) => f.payload)).toString(), 'over tls\n');
    assert.equal(frames.at(-1)!.type, ExecFrame.exit);
    const size = await client.request(target, 'PUT', '/v1/namespaces/default/guests/web/console/size', { rows: 40, cols: 120 });
    assert.equal(size.statusCode, 204);
    size.resume();
  });

  it("passes on the agent's 404 with its message", async () => {
    await assert.rejects(client.request(target, 'GET', '/v1/namespaces/default/guests/nope/logs'), (e: unknown) => {
      assert.ok(e instanceof StatusError);
      assert.equal(e.code, 404);
      assert.match(e.message, /nope/);
      return true;
    });
  });

  it('refuses the agent when the Guest names another host', async () => {
    await assert.rejects(
      client.request({ ...target, host: 'xen-2.example' }, 'GET', '/v1/namespaces/default/guests/web/logs'),
      (e: unknown) => {
        assert.ok(e instanceof StatusError);
        assert.equal(e.code, 502);
        assert.match(e.message, /could not be verified as that host/);
        return true;
      },
    );
  });
});
