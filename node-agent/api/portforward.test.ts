// The port-forward upgrade against the real API server, the in-memory service and a loopback dialer:
// bytes both ways, half-close passed on, and the refusals before the 101 (400, 404, 409, 502).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { startExecAgentApi } from '../../test/harness/agent-api.js';
import { LoopbackDialer } from '../../test/doubles/loopback-dialer.js';
import { parsePortForwardQuery } from './portforward-route.js';
import { HttpError } from './http.js';

/** Opens the upgrade; resolves with the status line, the head's rest and the socket (its data after the head). */
function open(socketPath: string, path: string, protocol = 'krata-portforward.v1') {
  return new Promise<{ status: number; head: string; socket: Socket; rest: Buffer }>((resolve, reject) => {
    const socket = connect(socketPath);
    let buf = Buffer.alloc(0);
    socket.on('error', reject);
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: agent\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\n\r\n`));
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      const head = buf.subarray(0, end).toString();
      resolve({ status: Number(head.split(' ')[1]), head: buf.toString(), socket, rest: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
  });
}

function readAll(socket: Socket, first: Buffer): Promise<Buffer> {
  const chunks = [first];
  return new Promise((resolve) => {
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.resume();
  });
}

/** A server standing in for the guest's port: it echoes what it gets, reversed end to end, once the client half-closes. */
async function reverser(): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.on('end', () => s.end(Buffer.from(Buffer.concat(got)).reverse()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

test('bytes both ways, the client half-close passed on, the guest end passed back', async (t) => {
  const api = await startExecAgentApi(t);
  const server = await reverser();
  t.after(() => server.close());
  api.service.dialer = new LoopbackDialer().setPort('default/web', 8080, (server.address() as AddressInfo).port);
  const c = await open(api.socket, '/v1/namespaces/default/guests/web/portforward?port=8080');
  assert.equal(c.status, 101, c.head);
  assert.match(c.head, /upgrade: krata-portforward\.v1/i);
  const data = randomBytes(1 << 20);
  const back = readAll(c.socket, c.rest);
  c.socket.end(data);
  const got = await back;
  assert.equal(got.length, data.length);
  assert.ok(got.equals(Buffer.from(data).reverse()), 'every byte, through the agent and back');
});

test('refusals come before the upgrade, each with its status and a message', async (t) => {
  const api = await startExecAgentApi(t);
  const dialer = new LoopbackDialer().setPort('default/web', 8080, 1); // port 1 on loopback: refused
  const cases: [string, number, RegExp, boolean][] = [
    ['/v1/namespaces/default/guests/web/portforward', 400, /port is required/, true],
    ['/v1/namespaces/default/guests/web/portforward?port=0', 400, /1 to 65535/, true],
    ['/v1/namespaces/default/guests/web/portforward?port=80&x=1', 400, /unknown query parameter \\"x\\"/, true],
    ['/v1/namespaces/default/guests/nope/portforward?port=80', 404, /not found/, true],
    ['/v1/namespaces/default/guests/idle/portforward?port=80', 409, /no running domain/, true],
    ['/v1/namespaces/default/guests/web/portforward?port=80', 409, /no guest network/, false],
    ['/v1/namespaces/default/guests/web/portforward?port=8080', 502, /refused|ECONNREFUSED/, true],
  ];
  for (const [path, status, message, withDialer] of cases) {
    api.service.dialer = withDialer ? dialer : undefined;
    const c = await open(api.socket, path);
    assert.equal(c.status, status, `${path}: ${c.head}`);
    assert.match(c.head, message, path);
    c.socket.destroy();
  }
});

test('the query: one port from 1 to 65535, nothing else', () => {
  assert.equal(parsePortForwardQuery(new URLSearchParams('port=65535')), 65535);
  for (const q of ['', 'port=1&port=2', 'port=65536', 'port=-1', 'port=8080x', 'port=80&tty=true'])
    assert.throws(() => parsePortForwardQuery(new URLSearchParams(q)), HttpError, q);
});
