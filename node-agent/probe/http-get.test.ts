// httpGet and tcpSocket probes against real local servers through a loopback dialer double: status
// codes, the request the guest sees, a probe aborted at its timeout, oversized and malformed answers,
// HTTPS without verification.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HTTPGetAction } from '../../crds/generated/types.js';
import { PortMapDialer } from '../../test/doubles/port-map-dialer.js';
import { Deadline } from './deadline.js';
import { httpGetHandler, tcpSocketHandler } from './handlers.js';
import { RESPONSE_MAX, USER_AGENT } from './http-get.js';

const KEY = 'default/web';

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

async function httpServer(handle: (req: IncomingMessage, res: ServerResponse) => void) {
  const seen: IncomingMessage[] = [];
  const server = createHttpServer((req, res) => {
    seen.push(req);
    handle(req, res);
  });
  const port = await listen(server);
  return { server, port, seen, dialer: new PortMapDialer().map(KEY, 8080, port) };
}

const action = (a: Partial<HTTPGetAction> = {}): HTTPGetAction => ({ port: 8080, path: '/healthz', scheme: 'HTTP', ...a });
const probe = (dialer: PortMapDialer, a?: Partial<HTTPGetAction>, deadline = new Deadline()) =>
  httpGetHandler(dialer, KEY, 8080, action(a), () => '10.0.0.5')(deadline, 1000);

test('status 200-399 passes, others fail with the status and the start of the body; the guest sees a kubelet-like GET', async () => {
  let status = 200;
  const s = await httpServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(status === 503 ? 'draining' : 'ok');
  });
  assert.deepEqual(
    await probe(s.dialer, {
      httpHeaders: [
        { name: 'X-Probe', value: 'yes' },
        { name: 'host', value: 'app.example' },
      ],
    }),
    {
      ok: true,
    },
  );
  const req = s.seen[0]!;
  assert.equal(req.method, 'GET');
  assert.equal(req.url, '/healthz');
  assert.equal(req.headers.host, 'app.example');
  assert.equal(req.headers['user-agent'], USER_AGENT);
  assert.equal(req.headers['x-probe'], 'yes');
  assert.equal(req.headers.connection, 'close');
  status = 302;
  assert.equal((await probe(s.dialer)).ok, true);
  assert.equal(s.seen[1]!.headers.host, '10.0.0.5:8080');
  status = 503;
  assert.deepEqual(await probe(s.dialer), { ok: false, message: 'HTTP probe failed with statuscode: 503: draining' });
  status = 404;
  assert.deepEqual(await probe(s.dialer), { ok: false, message: 'HTTP probe failed with statuscode: 404: ok' });
  s.server.close();
});

test("a refused port and an unknown guest fail with the dialer's words", async () => {
  const closed = createTcpServer();
  const port = await listen(closed);
  await new Promise((r) => closed.close(r));
  const dialer = new PortMapDialer().map(KEY, 8080, port);
  assert.match((await probe(dialer)).message!, /dial tcp port 8080: connection refused by port 8080/);
  assert.match((await tcpSocketHandler(dialer, KEY, 8080)(new Deadline(), 1000)).message!, /connection refused/);
  assert.match((await tcpSocketHandler(dialer, 'default/other', 80)(new Deadline(), 1000)).message!, /is not on kratanet/);
  assert.match((await tcpSocketHandler(undefined, KEY, 80)(new Deadline(), 1000)).message!, /no dialer/);
});

test('tcpSocket: an accepted connection passes and is closed at once', async () => {
  const sockets: Socket[] = [];
  let closed = 0;
  const server = createTcpServer((s) => sockets.push(s.resume().on('close', () => closed++)));
  const port = await listen(server);
  const dialer = new PortMapDialer().map(KEY, 5432, port);
  assert.deepEqual(await tcpSocketHandler(dialer, KEY, 5432)(new Deadline(), 1000), { ok: true });
  while (closed === 0) await new Promise((r) => setTimeout(r, 5));
  assert.equal(sockets.length, 1);
  server.close();
});

test('a guest that never answers: the probe ends at its timeout and the connection is closed', async () => {
  const held: ServerResponse[] = [];
  const s = await httpServer((_req, res) => held.push(res));
  const ac = new Deadline();
  const result = probe(s.dialer, {}, ac);
  while (s.seen.length === 0) await new Promise((r) => setTimeout(r, 5));
  const gone = new Promise((r) => s.seen[0]!.socket.once('close', r));
  ac.pass();
  assert.deepEqual(await result, { ok: false, message: 'Get "http://10.0.0.5:8080/healthz": timed out after 1s' });
  await gone;
  s.server.close();
});

test('oversized and malformed answers: at most 10 KiB read, a failure message clipped, no status line is a failure', async () => {
  const huge = 'x'.repeat(32 * 1024 * 1024);
  let mode: 'big-ok' | 'big-error' | 'garbage' = 'big-ok';
  const closed: boolean[] = [];
  const raw = createTcpServer((sock) => {
    sock.on('error', () => undefined);
    sock.once('data', () => {
      if (mode === 'garbage') sock.write('y'.repeat(RESPONSE_MAX * 4));
      else sock.write(`HTTP/1.1 ${mode === 'big-ok' ? 200 : 500} X\r\ncontent-length: ${huge.length}\r\n\r\n`);
      // The whole body would take far longer than the probe lets it: the probe hangs up first.
      sock.write(huge, () => closed.push(false));
    });
    sock.on('close', () => closed.push(true));
  });
  const dialer = new PortMapDialer().map(KEY, 8080, await listen(raw));
  assert.deepEqual(await probe(dialer), { ok: true });
  mode = 'big-error';
  const failed = await probe(dialer);
  assert.equal(failed.ok, false);
  assert.ok(failed.message!.startsWith('HTTP probe failed with statuscode: 500: xxx'));
  assert.ok(failed.message!.length <= 1024);
  mode = 'garbage';
  assert.match((await probe(dialer)).message!, /malformed HTTP response: no status line/);
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(closed.filter((c) => c).length >= 3, 'the probe closed every connection');
  raw.close();
});

test('HTTPS: TLS over the dialed stream, the certificate not verified', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-probe-tls-'));
  try {
    const [key, cert] = [join(dir, 'k.pem'), join(dir, 'c.pem')];
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=guest'],
      {
        stdio: 'ignore',
      },
    );
    const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      res.writeHead(req.url === '/ok' ? 204 : 500);
      res.end();
    });
    const dialer = new PortMapDialer().map(KEY, 8080, await listen(server));
    assert.deepEqual(await probe(dialer, { scheme: 'HTTPS', path: '/ok' }), { ok: true });
    assert.deepEqual(await probe(dialer, { scheme: 'HTTPS', path: '/bad' }), {
      ok: false,
      message: 'HTTP probe failed with statuscode: 500',
    });
    server.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
