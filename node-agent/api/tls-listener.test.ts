// The agent's TLS listener against the in-memory service, with openssl certificates: krata-api's client
// certificate reaches a Guest, its logs, exec and the console; no certificate, another CA, another name or
// a server-only certificate are refused before any request; routes outside TLS_AGENT_ROUTES are 404; a
// renewed certificate is served without a restart; refusals are counted for /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { KRATA_API_CLIENT_NAME, TLS_AGENT_ROUTES, agentServerName } from '../../contracts/krata-api/agent-tls.js';
import { CONSOLE_PROTOCOL } from '../../contracts/agent-api/endpoints.js';
import { EXEC_PROTOCOL, ExecFrame, ExecFrameDecoder, execQueryString } from '../../contracts/agent-api/exec.js';
import type { GuestStore } from '../store/guest-store.js';
import { AgentMetrics } from '../controller/metrics.js';
import { AgentIdentity } from '../follower/agent-identity.js';
import { FakeAgentService } from '../../test/doubles/fake-agent-service.js';
import { TestCa } from '../../test/doubles/cert-authority.js';
import { testGuest } from '../../test/harness/agent-api.js';
import { captureLog } from '../../test/harness/cluster-agent.js';
import { ROUTES } from './routes.js';
import { TlsApiListener } from './tls-listener.js';

const HOST = 'xen-1.example';

interface Client {
  key?: string;
  cert?: string;
  ca: string;
  maxVersion?: 'TLSv1.2';
}

async function setup(t: { after(fn: () => Promise<void> | void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'krata-tls-listener-'));
  const ca = TestCa.create();
  const service = new FakeAgentService();
  await service.apply([testGuest('web'), testGuest('idle')], false);
  service.run('default', 'web', 'booting\nhello from web\n');
  const identity = AgentIdentity.open(dir, HOST, Date.now());
  assert.equal(identity.accept(ca.issue(HOST, identity.publicKey), Date.now()), 'taken');
  const log = captureLog();
  const listener = new TlsApiListener(service, { host: '127.0.0.1', port: 0, advertise: '192.0.2.7:9444', identity, log });
  listener.start();
  const port = await new Promise<number>((resolve) => {
    const wait = () => (listener.address ? resolve(listener.address.port) : setTimeout(wait, 10));
    wait();
  });
  t.after(async () => {
    await listener.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const api = { ...ca.client(), ca: ca.cert };
  return { ca, service, identity, listener, log, port, api };
}

/** One HTTPS request as krata-api makes it (servername: the agent's name); rejects when the connection is refused. */
function call(port: number, client: Client, method: string, path: string, body?: string) {
  return new Promise<{ status: number; text: string; peer: X509Certificate }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, servername: agentServerName(HOST), ...client, agent: false }, (res) => {
      let text = '';
      const peer = (res.socket as TLSSocket).getPeerX509Certificate()!;
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, text, peer }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** An upgrade over TLS: the status line and headers, then everything the agent sends until it ends the stream. */
function upgrade(port: number, client: Client, path: string, protocol: string, send?: (s: TLSSocket) => void, method = 'GET') {
  return new Promise<{ status: number; head: string; rest: Buffer }>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: agentServerName(HOST), ...client }, () => {
      socket.write(`${method} ${path} HTTP/1.1\r\nHost: agent\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\n\r\n`);
      send?.(socket);
    });
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.on('end', () => {
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, end).toString('latin1');
      resolve({ status: Number(head.split(' ')[1]), head, rest: all.subarray(end + 4) });
    });
  });
}

test("krata-api's certificate reaches a Guest, its logs, exec and the console over mutual TLS 1.3", async (t) => {
  const { port, api, listener, identity } = await setup(t);
  const guest = await call(port, api, 'GET', '/v1/namespaces/default/guests/web');
  assert.equal(guest.status, 200, guest.text);
  assert.equal(JSON.parse(guest.text).metadata.name, 'web');
  assert.ok(guest.peer.checkHost(agentServerName(HOST)), 'the agent presents its serving certificate');
  assert.equal(guest.peer.toString(), identity.certificate!.certificate);

  const logs = await call(port, api, 'GET', '/v1/namespaces/default/guests/web/logs?tail=1');
  assert.equal(logs.status, 200);
  assert.equal(logs.text, 'hello from web\n');
  assert.equal((await call(port, api, 'GET', '/v1/namespaces/default/guests/nope')).status, 404);

  const exec = await upgrade(
    port,
    api,
    `/v1/namespaces/default/guests/web/exec?${execQueryString({ command: ['echo', 'over', 'tls'] })}`,
    EXEC_PROTOCOL,
  );
  assert.equal(exec.status, 101, exec.head);
  const frames = new ExecFrameDecoder().push(exec.rest);
  const stdout = Buffer.concat(frames.filter((f) => f.type === ExecFrame.stdout).map((f) => f.payload)).toString();
  assert.equal(stdout, 'over tls\n');
  assert.deepEqual(JSON.parse(frames.at(-1)!.payload.toString()), { exitCode: 0 });

  // The console upgrades as on the socket (the client ends it).
  const consoleAnswer = await upgrade(port, api, '/v1/namespaces/default/guests/web/console', CONSOLE_PROTOCOL, (s) =>
    setTimeout(() => s.end(), 200),
  );
  assert.equal(consoleAnswer.status, 101, consoleAnswer.head);
  const size = await call(port, api, 'PUT', '/v1/namespaces/default/guests/web/console/size', '{"rows":40,"cols":120}');
  assert.equal(size.status, 204, size.text);
  // A plain GET of an upgrade route is answered as on the socket.
  assert.equal((await call(port, api, 'GET', '/v1/namespaces/default/guests/web/exec')).status, 426);

  const s = listener.status();
  assert.equal(s.listening, true);
  assert.equal(s.listen, `127.0.0.1:${port}`);
  assert.equal(s.advertise, '192.0.2.7:9444');
  assert.equal(s.notAfter, new Date(identity.certificate!.notAfter).toISOString());
  assert.equal(s.refused, 0);
  assert.equal(listener.endpoint, '192.0.2.7:9444');
});

test('only TLS_AGENT_ROUTES are served: writes and everything else are 404', async (t) => {
  const { port, api, service } = await setup(t);
  const apply = JSON.stringify({ items: [testGuest('evil')] });
  for (const [method, path, body] of [
    ['POST', '/v1/apply', apply],
    ['DELETE', '/v1/namespaces/default/guests/web'],
    ['GET', '/v1/guests'],
    ['GET', '/v1/host'],
    ['GET', '/v1/watch'],
    ['GET', '/v1/images'],
    ['POST', '/v1/images/pull', '{"image":"alpine"}'],
    ['DELETE', '/v1/namespaces/default/secrets/s'],
    ['PUT', '/v1/namespaces/default/guestsets/x/scale', '{"replicas":9}'],
    ['POST', '/v1/namespaces/default/guests/web'],
    ['GET', '/nope'],
  ] as const) {
    const r = await call(port, api, method, path, body);
    assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
  }
  assert.equal(service.get('default', 'evil'), undefined);
  assert.ok(service.get('default', 'web'), 'not deleted');
  // An upgrade by another method, or to a route that is not served, is a 404 too.
  const viaPost = await upgrade(port, api, '/v1/namespaces/default/guests/web/exec', EXEC_PROTOCOL, undefined, 'POST');
  assert.equal(viaPost.status, 404);
  const notServed = await upgrade(port, api, '/v1/watch', EXEC_PROTOCOL);
  assert.equal(notServed.status, 404);
});

test('every TLS route but the port-forward one names a route of the local API', () => {
  const known = new Set(ROUTES.flatMap((r) => Object.keys(r.methods).map((m) => `${m} ${r.path}`)));
  // The port-forward route (PORTFORWARD_PROTOCOL) comes with its own change; the filter serves it by its pattern.
  const missing = TLS_AGENT_ROUTES.filter((r) => !known.has(r) && !r.endsWith('/portforward'));
  assert.deepEqual(missing, []);
});

test('refused before any request: no certificate, another CA, another name, no clientAuth; counted', async (t) => {
  const { port, api, ca, listener, service, log } = await setup(t);
  const other = TestCa.create('another CA');
  const refusedAt = (client: Client) =>
    call(port, client, 'GET', '/v1/namespaces/default/guests/web').then(
      (r) => assert.fail(`answered ${r.status}`),
      (e: Error) => e,
    );
  const cases: [string, Client, 'handshake' | 'identity'][] = [
    ['no certificate', { ca: api.ca }, 'handshake'],
    ["krata-api's certificate over TLS 1.2", { ...api, maxVersion: 'TLSv1.2' }, 'handshake'],
    ['another CA, the right name', { ...other.client(), ca: api.ca }, 'handshake'],
    ['another name', { ...ca.client({ dns: ['someone.clients.krata.internal'] }), ca: api.ca }, 'identity'],
    ['a wildcard name', { ...ca.client({ dns: ['*.clients.krata.internal'], cn: 'x' }), ca: api.ca }, 'identity'],
    // OpenSSL's own purpose check refuses a serverAuth-only certificate; one without any EKU is the listener's.
    ['the name, serverAuth only', { ...ca.client({ eku: 'serverAuth' }), ca: api.ca }, 'handshake'],
    ['the name, no extended key usage', { ...ca.client({ eku: '' }), ca: api.ca }, 'identity'],
    [
      "an agent's certificate",
      { ...ca.client({ dns: [agentServerName('xen-2.example')], eku: 'serverAuth,clientAuth' }), ca: api.ca },
      'identity',
    ],
  ];
  // No request of a refused client reaches the service.
  let reads = 0;
  const get = service.get.bind(service);
  service.get = (namespace: string, name: string) => (reads++, get(namespace, name));
  for (const [what, client, reason] of cases) {
    const before = { ...listener.refused };
    await refusedAt(client);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(listener.refused[reason], before[reason] + 1, `${what}: refused at the ${reason} check`);
  }
  // The same name in the CN alone (no DNS names) is krata-api too.
  const cnOnly = { ...ca.client({ dns: [], cn: KRATA_API_CLIENT_NAME }), ca: api.ca };
  assert.equal(reads, 0);
  assert.equal((await call(port, cnOnly, 'GET', '/v1/namespaces/default/guests/web')).status, 200);
  assert.equal(reads, 1);
  assert.ok(log.lines.some((l) => l.level === 'warn' && /refused a TLS client: its certificate does not name/.test(l.msg)));

  const metrics = new AgentMetrics({ list: () => [] } as unknown as GuestStore, () => undefined);
  metrics.countTlsRefusals(() => listener.refused);
  const text = await metrics.registry.metrics();
  assert.match(text, /krata_agent_tls_refused_total\{reason="handshake"\} 4\n/);
  assert.match(text, /krata_agent_tls_refused_total\{reason="identity"\} 4\n/);
  assert.equal(listener.status().refused, 8);
});

test('a renewed certificate is served to new connections without a restart; no certificate, no listener', async (t) => {
  const { port, api, ca, identity } = await setup(t);
  const first = await call(port, api, 'GET', '/v1/namespaces/default/guests/web');
  assert.equal(identity.accept(ca.issue(HOST, identity.publicKey, { days: 20 }), Date.now()), 'taken');
  const second = await call(port, api, 'GET', '/v1/namespaces/default/guests/web');
  assert.equal(second.status, 200);
  assert.notEqual(second.peer.serialNumber, first.peer.serialNumber);
  assert.equal(second.peer.toString(), identity.certificate!.certificate);

  const dir = mkdtempSync(join(tmpdir(), 'krata-tls-none-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bare = AgentIdentity.open(dir, HOST, Date.now());
  const waiting = new TlsApiListener(new FakeAgentService(), {
    host: '127.0.0.1',
    port: 0,
    advertise: '192.0.2.8:9444',
    identity: bare,
    log: captureLog(),
  });
  waiting.start();
  t.after(() => waiting.stop());
  assert.equal(waiting.address, undefined);
  assert.equal(waiting.endpoint, undefined, 'nothing advertised before a certificate');
  assert.equal(waiting.status().listening, false);
  bare.accept(ca.issue(HOST, bare.publicKey), Date.now());
  for (let i = 0; i < 100 && !waiting.address; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(waiting.address, 'listening once the certificate came');
  assert.equal(waiting.endpoint, '192.0.2.8:9444');
});

test('an address in use is reported in the status (and retried), not a crash', async (t) => {
  const { port, identity } = await setup(t);
  const log = captureLog();
  const second = new TlsApiListener(new FakeAgentService(), { host: '127.0.0.1', port, identity, log });
  second.start();
  t.after(() => second.stop());
  for (let i = 0; i < 100 && !second.status().problem; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(second.status().listening, false);
  assert.match(second.status().problem!, /cannot listen: .*EADDRINUSE/);
  assert.equal(second.endpoint, undefined);
  assert.ok(log.lines.some((l) => l.level === 'error' && /EADDRINUSE/.test(l.msg)));
});
