import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeAgentService } from '../../test/doubles/fake-agent-service.js';
import { jsonErrorOffset, parseJsonBody } from './http.js';
import { tailLines } from './routes.js';
import { startApiServer, groupId, type ApiServerOptions } from './server.js';
import { InvalidRequest } from '../service/service.js';

const GUEST = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'krata.dev/v1alpha1',
  kind: 'Guest',
  metadata: { name, namespace: 'default' },
  spec: { image: 'alpine:3.19', ...extra },
});

async function agent(t: { after: (fn: () => Promise<void> | void) => void }, opts: Partial<ApiServerOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'krata-api-'));
  const socketPath = join(dir, 'agent.sock');
  const service = new FakeAgentService();
  const logged: string[] = [];
  const server = await startApiServer(service, { socketPath, log: (m) => logged.push(m), ...opts });
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, socketPath, service, server, logged };
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

function call(
  socketPath: string,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string | number> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, method, path, headers: { ...(body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {}), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode!, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const post = (socketPath: string, path: string, value: unknown) =>
  call(socketPath, 'POST', path, JSON.stringify(value), { 'content-type': 'application/json' });

/** An open streaming response whose lines/bytes the test reads as they come. */
function stream(socketPath: string, path: string) {
  let text = '';
  const waiters: (() => void)[] = [];
  let ended = false;
  const ready = new Promise<{ status: number; close: () => void }>((resolve, reject) => {
    const req = request({ socketPath, path }, (res) => {
      res.on('data', (c: Buffer) => {
        text += c.toString('utf8');
        for (const w of waiters.splice(0)) w();
      });
      res.on('end', () => {
        ended = true;
        for (const w of waiters.splice(0)) w();
      });
      resolve({ status: res.statusCode!, close: () => req.destroy() });
    });
    req.on('error', (e) => (ended ? undefined : reject(e)));
    req.end();
  });
  return {
    ready,
    get text() {
      return text;
    },
    get ended() {
      return ended;
    },
    async until(pred: (text: string) => boolean): Promise<void> {
      while (!pred(text)) {
        if (ended) throw new Error(`stream ended before the expected output; got ${JSON.stringify(text)}`);
        await new Promise<void>((r) => waiters.push(r));
      }
    },
    async end(): Promise<void> {
      while (!ended) await new Promise<void>((r) => waiters.push(r));
    },
  };
}

async function eventually(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(pred(), what);
}

test('the socket is mode 0660 and owned by the configured group', async (t) => {
  const a = await agent(t, { group: 'daemon' });
  const st = statSync(a.socketPath);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o660);
  assert.equal(st.gid, groupId('daemon'));
  assert.equal(groupId('1234'), 1234);
  assert.throws(() => groupId('no-such-group-krata'), /no group "no-such-group-krata" in \/etc\/group/);
});

test('a stale socket file is replaced; a live agent or a regular file is left alone', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-api-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'agent.sock');
  // What an agent killed with SIGKILL leaves behind: a socket file nobody listens on.
  const script = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`;
  spawnSync(process.execPath, ['-e', script]);
  assert.ok(statSync(path).isSocket());
  const service = new FakeAgentService();
  const first = await startApiServer(service, { socketPath: path, log: () => {} });
  assert.equal((await call(path, 'GET', '/v1/host')).status, 200);
  await assert.rejects(startApiServer(service, { socketPath: path, log: () => {} }), /another node agent is listening on/);
  assert.equal((await call(path, 'GET', '/v1/host')).status, 200, 'the live agent still serves');
  await first.close();
  assert.ok(!existsSync(path), 'close removes the socket file');
  writeFileSync(path, 'not a socket');
  await assert.rejects(startApiServer(service, { socketPath: path, log: () => {} }), /exists and is not a socket/);
});

test('POST /v1/apply stores objects and reports what happened; dry runs store nothing', async (t) => {
  const { socketPath, service } = await agent(t);
  const dry = await post(socketPath, '/v1/apply', { objects: [GUEST('web')], dryRun: true });
  assert.equal(dry.status, 200);
  assert.deepEqual(dry.json.results, [{ kind: 'Guest', metadata: { namespace: 'default', name: 'web' }, action: 'created' }]);
  assert.equal(service.list().length, 0);
  const r = await post(socketPath, '/v1/apply', { objects: [GUEST('web'), GUEST('db')] });
  assert.deepEqual(
    r.json.results.map((x: any) => x.action),
    ['created', 'created'],
  );
  const again = await post(socketPath, '/v1/apply', { objects: [GUEST('web', { tty: true })] });
  assert.equal(again.json.results[0].action, 'configured');
  assert.equal(r.headers['content-type'], 'application/json');
});

test('an invalid batch is 422 with every error located, and nothing is stored', async (t) => {
  const { socketPath, service } = await agent(t);
  const r = await post(socketPath, '/v1/apply', { objects: [GUEST('ok'), GUEST('bad', { resources: { memory: '1 Gi' } })] });
  assert.equal(r.status, 422);
  assert.match(r.json.message, /nothing was applied/);
  assert.equal(r.json.errors[0].index, 1);
  assert.equal(r.json.errors[0].path, 'spec.resources.memory');
  assert.equal(service.list().length, 0);
});

test('hostile bodies: over the limit 413 (declared or streamed), malformed JSON 400 with its position, wrong shape 400', async (t) => {
  const { socketPath, service } = await agent(t, { maxBodyBytes: 1024 });
  const declared = await call(socketPath, 'POST', '/v1/apply', 'x'.repeat(2000));
  assert.equal(declared.status, 413);
  assert.equal(declared.json.message, 'the request body (2000 bytes) is over the limit of 1024 bytes');
  // Chunked, so the size is only known while reading.
  const streamed = await new Promise<Answer>((resolve, reject) => {
    const req = request({ socketPath, method: 'POST', path: '/v1/apply', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    for (let i = 0; i < 4; i++) req.write('y'.repeat(512));
    req.end();
  });
  assert.equal(streamed.status, 413);
  assert.equal(streamed.json.message, 'the request body is over the limit of 1024 bytes');

  const bad = await call(socketPath, 'POST', '/v1/apply', '{"objects": [\n  {"kind": }\n]}');
  assert.equal(bad.status, 400);
  assert.match(bad.json.message, /^malformed JSON at line 2, column 12 \(offset 25\): Unexpected token/);
  const truncated = await call(socketPath, 'POST', '/v1/apply', '{"objects": [');
  assert.match(truncated.json.message, /^malformed JSON at line 1, column 14 \(offset 13\)/);
  assert.equal((await call(socketPath, 'POST', '/v1/apply', '')).json.message, 'the request body is empty: expected a JSON object');
  const shape = await post(socketPath, '/v1/apply', [1, 2]);
  assert.equal(shape.status, 400);
  assert.match(shape.json.message, /must be \{"objects": \[\.\.\.\]/);
  assert.equal((await post(socketPath, '/v1/apply', { objects: [], dryRun: 'yes' })).status, 400);
  assert.equal(service.list().length, 0);
  // Still serving.
  assert.equal((await call(socketPath, 'GET', '/v1/guests')).status, 200);
});

test('100k-deep JSON is a 400 naming the depth on every JSON route; no error body carries a stack trace', async (t) => {
  const { socketPath, service, logged } = await agent(t);
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  const guest = `{"apiVersion":"krata.dev/v1alpha1","kind":"Guest","metadata":{"name":"a"},"spec":{"image":"x","env":${deep}}}`;
  for (const [path, body] of [
    ['/v1/apply', `{"objects":[${guest}]}`],
    ['/v1/images/pull', `{"image":"alpine:3.19","pullSecrets":${deep}}`],
  ] as const) {
    const r = await call(socketPath, 'POST', path, body, { 'content-type': 'application/json' });
    assert.equal(r.status, 400, `${path}: ${r.text.slice(0, 200)}`);
    assert.match(r.json.message, /^the JSON nests deeper than 100 levels \(at offset \d+\)/);
    assert.doesNotMatch(r.text, /\n\s+at /);
  }
  // Brackets inside strings are not nesting; a normal Guest is far from the bound.
  const stringy = await post(socketPath, '/v1/apply', { objects: [GUEST('s', { command: ['/bin/sh', '-c', '['.repeat(500)] })] });
  assert.equal(stringy.status, 200, stringy.text);
  assert.equal(service.list().length, 1);
  assert.deepEqual(logged, [], 'nothing unexpected happened');

  // An unexpected error whose message spans lines (a dump, a trace) leaves with its first line only.
  service.failures.set('host', new Error('first line\n    at secret (/opt/krata/internal.js:1:1)'));
  const r = await call(socketPath, 'GET', '/v1/host');
  assert.equal(r.status, 500);
  assert.equal(r.json.message, 'internal error in the node agent: first line');
});

test('a bare 1e400 quantity is reported out of range, not as "got number null"', async (t) => {
  const { socketPath } = await agent(t);
  const body =
    `{"objects":[{"apiVersion":"krata.dev/v1alpha1","kind":"Guest","metadata":{"name":"a"},` +
    `"spec":{"image":"x","resources":{"memory":1e400}}}]}`;
  const r = await call(socketPath, 'POST', '/v1/apply', body, { 'content-type': 'application/json' });
  assert.equal(r.status, 422);
  assert.deepEqual(r.json.errors, [
    { index: 0, path: 'spec.resources.memory', message: 'number out of range (beyond about ±1.8e308, so it reads as infinity)' },
  ]);
});

test('the JSON error position is found for every kind of mistake, also in deeply nested input', () => {
  const cases: [string, number][] = [
    ['{"a": 1,}', 8],
    ['[1 2]', 3],
    ['{"a" 1}', 5],
    ['"abc', 4],
    ['"a\\x"', 3],
    ['"\\u12G4"', 2],
    ['tru', 0],
    ['{"a": [1, 2}', 11],
    ['{} x', 3],
    ['-', 0],
    ['{"a": "b\nc"}', 8],
  ];
  for (const [text, offset] of cases) {
    assert.throws(() => JSON.parse(text));
    assert.equal(jsonErrorOffset(text), offset, text);
  }
  for (const ok of ['{"a": [1, -2.5e3, true, null, "\\u00e9\\n"]}', '  [ ]  ', '0']) assert.equal(jsonErrorOffset(ok), -1, ok);
  const deep = '['.repeat(200_000) + '}';
  assert.equal(jsonErrorOffset(deep), 200_000);
  assert.throws(() => parseJsonBody(Buffer.from([0x7b, 0xff, 0x7d])), /not UTF-8/);
});

test('unknown paths are 404 and wrong methods 405 with Allow, all as JSON', async (t) => {
  const { socketPath } = await agent(t);
  const missing = await call(socketPath, 'GET', '/v1/nothing');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.message, 'no such endpoint: /v1/nothing');
  assert.equal((await call(socketPath, 'GET', '/v1/guests/')).status, 404);
  const wrong = await call(socketPath, 'PUT', '/v1/guests');
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.allow, 'GET');
  assert.equal(wrong.json.message, 'PUT is not allowed on /v1/guests (allowed: GET)');
  assert.equal((await call(socketPath, 'GET', '/v1/apply')).status, 405);
  assert.equal((await call(socketPath, 'POST', '/v1/namespaces/default/guests/web')).headers.allow, 'GET, DELETE');
  assert.equal((await call(socketPath, 'DELETE', '/v1/images/pull')).status, 405);
});

test('GET guests: list (by namespace), one, 404, and names checked before use', async (t) => {
  const { socketPath } = await agent(t);
  await post(socketPath, '/v1/apply', { objects: [GUEST('web'), { ...GUEST('web'), metadata: { name: 'web', namespace: 'team-a' } }] });
  assert.equal((await call(socketPath, 'GET', '/v1/guests')).json.items.length, 2);
  const teamA = await call(socketPath, 'GET', '/v1/guests?namespace=team-a');
  assert.deepEqual(
    teamA.json.items.map((g: any) => g.metadata.namespace),
    ['team-a'],
  );
  const one = await call(socketPath, 'GET', '/v1/namespaces/default/guests/web');
  assert.equal(one.json.kind, 'Guest');
  assert.equal(one.json.status.phase, 'Pending');
  const absent = await call(socketPath, 'GET', '/v1/namespaces/default/guests/nope');
  assert.equal(absent.status, 404);
  assert.equal(absent.json.message, 'guest "nope" not found in namespace "default"');
  const badName = await call(socketPath, 'GET', '/v1/namespaces/default/guests/Web_1');
  assert.equal(badName.status, 400);
  assert.match(badName.json.message, /^invalid guest name "Web_1": must be a DNS label/);
  assert.equal((await call(socketPath, 'GET', '/v1/namespaces/..%2F..%2Fetc/guests/web')).status, 400);
  assert.equal((await call(socketPath, 'GET', '/v1/namespaces/%E0%A4%A/guests/web')).status, 400);
  assert.equal((await call(socketPath, 'GET', `/v1/namespaces/default/guests/${'a'.repeat(64)}`)).status, 400);
  assert.equal((await call(socketPath, 'GET', '/v1/guests?namespace=NOPE')).status, 400);
});

test('DELETE passes wait and the grace period; bad values are 400, absent guests 404', async (t) => {
  const { socketPath, service } = await agent(t);
  await post(socketPath, '/v1/apply', { objects: [GUEST('web'), GUEST('db')] });
  const r = await call(socketPath, 'DELETE', '/v1/namespaces/default/guests/web?wait=true&gracePeriodSeconds=5');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { kind: 'Guest', metadata: { namespace: 'default', name: 'web' }, status: 'deleted' });
  assert.deepEqual(service.deletes[0], { namespace: 'default', name: 'web', opts: { wait: true, gracePeriodSeconds: 5 } });
  assert.equal(service.get('default', 'web'), undefined, 'with wait, the answer comes once it is gone');
  assert.equal((await call(socketPath, 'DELETE', '/v1/namespaces/default/guests/db?gracePeriodSeconds=-1')).status, 400);
  assert.equal((await call(socketPath, 'DELETE', '/v1/namespaces/default/guests/db?wait=maybe')).status, 400);
  const gone = await call(socketPath, 'DELETE', '/v1/namespaces/default/guests/web');
  assert.equal(gone.status, 404);
});

test('GET /v1/watch streams NDJSON from the current state and unsubscribes when the client leaves', async (t) => {
  const { socketPath, service } = await agent(t);
  await post(socketPath, '/v1/apply', { objects: [GUEST('web')] });
  const w = stream(socketPath, '/v1/watch');
  const { status, close } = await w.ready;
  assert.equal(status, 200);
  await w.until((s) => s.includes('\n'));
  await eventually(() => service.watcherCount === 1, 'subscribed');
  service.run('default', 'web');
  await w.until((s) => s.split('\n').length > 2);
  const events = w.text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    events.map((e) => e.type),
    ['ADDED', 'MODIFIED'],
  );
  assert.equal(events[1].object.status.phase, 'Running');
  assert.equal(typeof events[1].revision, 'number');
  close();
  await eventually(() => service.watcherCount === 0, 'the watch is unsubscribed once the client disconnects');

  // since=N replays only later changes; namespace filters.
  const since = stream(socketPath, `/v1/watch?since=${events[1].revision - 1}&namespace=default`);
  await since.ready;
  await since.until((s) => s.includes('\n'));
  assert.deepEqual(
    since.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).type),
    ['MODIFIED'],
  );
  (await since.ready).close();
  await eventually(() => service.watcherCount === 0, 'unsubscribed again');
  assert.equal((await call(socketPath, 'GET', '/v1/watch?since=abc')).status, 400);
});

test('logs: history, its last N lines, and follow until the guest is gone or the client leaves', async (t) => {
  const { socketPath, service } = await agent(t);
  await post(socketPath, '/v1/apply', { objects: [GUEST('web'), GUEST('idle')] });
  const noConsole = await call(socketPath, 'GET', '/v1/namespaces/default/guests/idle/logs');
  assert.equal(noConsole.status, 409);
  assert.match(noConsole.json.message, /has no running domain \(phase Pending\)/);
  const console = service.run('default', 'web', 'one\ntwo\nthree\n');
  const all = await call(socketPath, 'GET', '/v1/namespaces/default/guests/web/logs');
  assert.equal(all.text, 'one\ntwo\nthree\n');
  assert.equal(all.headers['content-type'], 'application/octet-stream');
  assert.equal((await call(socketPath, 'GET', '/v1/namespaces/default/guests/web/logs?tail=2')).text, 'two\nthree\n');
  assert.equal((await call(socketPath, 'GET', '/v1/namespaces/default/guests/web/logs?tail=0')).text, '');
  assert.equal((await call(socketPath, 'GET', '/v1/namespaces/default/guests/web/logs?tail=x')).status, 400);

  const f = stream(socketPath, '/v1/namespaces/default/guests/web/logs?follow=true&tail=1');
  await f.ready;
  await f.until((s) => s === 'three\n');
  console.emit('four\n');
  await f.until((s) => s === 'three\nfour\n');
  // The guest goes away: the followed stream ends by itself and lets go of the console.
  await call(socketPath, 'DELETE', '/v1/namespaces/default/guests/web?wait=true');
  await f.end();
  assert.equal(console.listeners.size, 0);
  assert.equal(service.watcherCount, 0);

  const again = service.run('default', 'idle', 'x\n');
  const g = stream(socketPath, '/v1/namespaces/default/guests/idle/logs?follow=1');
  await g.until((s) => s === 'x\n');
  (await g.ready).close();
  await eventually(() => again.listeners.size === 0 && service.watcherCount === 0, 'a client that leaves is unsubscribed');
});

function upgrade(socketPath: string, path: string, protocol = 'krata-console.v1', extra = ''): Promise<{ socket: Socket; head: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let buf = '';
    socket.on('error', reject);
    socket.on('connect', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: agent\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\n\r\n${extra}`),
    );
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause(); // the caller resumes once it listens
      const rest = buf.slice(end + 4);
      if (rest) socket.unshift(Buffer.from(rest, 'latin1'));
      resolve({ socket, head: buf.slice(0, end) });
    };
    socket.on('data', onData);
  });
}

test('the console upgrades to raw bytes both ways and lets go when the client leaves', async (t) => {
  const { socketPath, service } = await agent(t);
  await post(socketPath, '/v1/apply', { objects: [GUEST('web')] });
  const console = service.run('default', 'web', 'login: ');
  const { socket, head } = await upgrade(socketPath, '/v1/namespaces/default/guests/web/console', 'krata-console.v1', 'ro');
  assert.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(head, /\r\nupgrade: krata-console\.v1/i);
  socket.write(Buffer.from('ot\n\x03'));
  await console.waitForInput('root\n\x03');
  let received = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
  socket.resume();
  console.emit(Buffer.from([0x1b, 0x5b, 0x41, 0x00, 0xff]));
  await eventually(() => received.length === 5, 'output reaches the client byte for byte');
  assert.deepEqual([...received], [0x1b, 0x5b, 0x41, 0x00, 0xff]);
  assert.equal(console.listeners.size, 1);
  socket.destroy();
  await eventually(() => console.listeners.size === 0 && service.watcherCount === 0, 'detaching unsubscribes');
});

test(
  'console input from a fast client is held back while the guest ' + 'reads nothing (paused socket), then all arrives in order',
  async (t) => {
    const { socketPath, service } = await agent(t);
    await post(socketPath, '/v1/apply', { objects: [GUEST('slow')] });
    const console = service.run('default', 'slow');
    console.blocked = true;
    const { socket } = await upgrade(socketPath, '/v1/namespaces/default/guests/slow/console');
    socket.resume();
    const data = Buffer.from(Array.from({ length: 4 * 1024 * 1024 }, (_, i) => (i * 13) % 256));
    let flushed = false;
    socket.write(data, () => (flushed = true));
    // The agent takes at most its bound plus one socket read; the rest waits in the kernel and the client.
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(console.queue.pending <= console.queue.limit + 64 * 1024, `queued ${console.queue.pending} bytes`);
    assert.ok(console.queue.pending >= console.queue.limit, 'the queue filled up to its bound first');
    assert.equal(flushed, false, "the client's write is held back, not dropped");
    console.unblock();
    await eventually(() => Buffer.concat(console.input).length === data.length, 'every byte arrives');
    assert.deepEqual(Buffer.concat(console.input), data);
    socket.destroy();
  },
);

test('console with ?logs=true replays what the guest printed before the attach', async (t) => {
  const { socketPath, service } = await agent(t);
  await post(socketPath, '/v1/apply', { objects: [GUEST('early')] });
  service.run('default', 'early', 'printed before anyone attached\n');
  const { socket } = await upgrade(socketPath, '/v1/namespaces/default/guests/early/console?logs=true');
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString()));
  socket.resume();
  await eventually(() => received.includes('printed before anyone attached'), 'history first');
  socket.destroy();
});

test('console: the guest ending closes the session; refusals are JSON answers', async (t) => {
  const { socketPath, service } = await agent(t);
  await post(socketPath, '/v1/apply', { objects: [GUEST('web'), GUEST('idle')] });
  service.run('default', 'web');
  const { socket } = await upgrade(socketPath, '/v1/namespaces/default/guests/web/console');
  const closed = new Promise((r) => socket.on('close', r));
  socket.resume();
  service.setStatus('default', 'web', { phase: 'Succeeded', exitCode: 0, domid: undefined });
  await closed;

  const noUpgrade = await call(socketPath, 'GET', '/v1/namespaces/default/guests/web/console');
  assert.equal(noUpgrade.status, 426);
  assert.equal(noUpgrade.headers.upgrade, 'krata-console.v1');
  const refusal = async (path: string, protocol?: string) => {
    const { socket: s, head } = await upgrade(socketPath, path, protocol);
    const body = await new Promise<string>((r) => {
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString()));
      s.on('end', () => r(text));
      s.resume();
    });
    return { status: Number(head.split(' ')[1]), json: JSON.parse(body) };
  };
  assert.equal((await refusal('/v1/namespaces/default/guests/web/console', 'websocket')).status, 400);
  assert.equal((await refusal('/v1/namespaces/default/guests/nope/console')).status, 404);
  const idle = await refusal('/v1/namespaces/default/guests/idle/console');
  assert.equal(idle.status, 409);
  assert.match(idle.json.message, /no running domain/);
  assert.equal((await refusal('/v1/guests')).status, 400);
  assert.equal((await refusal('/v1/elsewhere')).status, 404);
});

test('events, filtered by namespace and name', async (t) => {
  const { socketPath, service } = await agent(t);
  service.record('default', 'web', 'Normal', 'Pulled', 'image pulled');
  service.record('default', 'db', 'Warning', 'BackOff', 'restarting', 3);
  service.record('other', 'web', 'Normal', 'Started', 'started');
  assert.equal((await call(socketPath, 'GET', '/v1/events')).json.items.length, 3);
  const web = await call(socketPath, 'GET', '/v1/events?namespace=default&name=web');
  assert.deepEqual(
    web.json.items.map((e: any) => e.reason),
    ['Pulled'],
  );
  assert.equal((await call(socketPath, 'GET', '/v1/events?name=BAD')).status, 400);
});

test('images: pull streams progress then the image (or the error); list; remove by encoded reference', async (t) => {
  const { socketPath, service } = await agent(t);
  const pulled = await post(socketPath, '/v1/images/pull', { image: 'docker.io/library/alpine:3.19' });
  assert.equal(pulled.status, 200);
  assert.equal(pulled.headers['content-type'], 'application/x-ndjson');
  const lines = pulled.text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.slice(0, -1).map((l) => l.kind),
    ['resolved', 'download', 'downloaded', 'unpacked', 'done'],
  );
  assert.equal(lines.at(-1).image.names[0], 'docker.io/library/alpine:3.19');
  const failed = await post(socketPath, '/v1/images/pull', { image: 'missing:1' });
  assert.deepEqual(
    failed.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l)),
    [{ error: 'manifest unknown: missing:1' }],
  );
  assert.equal((await post(socketPath, '/v1/images/pull', { image: '' })).status, 400);
  assert.equal((await post(socketPath, '/v1/images/pull', { image: 'a b' })).status, 400);
  // Pull secrets are names in a namespace: unknown ones are a 422 before any stream, bad names a 400.
  const missing = await post(socketPath, '/v1/images/pull', { image: 'alpine', pullSecrets: ['regcred'] });
  assert.equal(missing.status, 422);
  assert.match(missing.text, /image pull secret default\/regcred not found/);
  assert.equal((await post(socketPath, '/v1/images/pull', { image: 'alpine', pullSecrets: ['../x'] })).status, 400);
  assert.equal((await post(socketPath, '/v1/images/pull', { image: 'alpine', namespace: 'Bad', pullSecrets: ['regcred'] })).status, 400);
  assert.equal((await call(socketPath, 'GET', '/v1/images')).json.items.length, 1);
  const removed = await call(socketPath, 'DELETE', `/v1/images/${encodeURIComponent('docker.io/library/alpine:3.19')}`);
  assert.equal(removed.status, 200);
  assert.equal(removed.json.image.digest, lines.at(-1).image.digest);
  const again = await call(socketPath, 'DELETE', `/v1/images/${encodeURIComponent('docker.io/library/alpine:3.19')}`);
  assert.equal(again.status, 404);
  assert.equal(again.json.message, 'no image docker.io/library/alpine:3.19 in the cache');
  service.secrets.add('team/regcred');
  const withSecret = await post(socketPath, '/v1/images/pull', {
    image: 'docker.io/library/alpine:3.19',
    namespace: 'team',
    pullSecrets: ['regcred'],
  });
  assert.equal(withSecret.status, 200);
  assert.equal(JSON.parse(withSecret.text.trim().split('\n').at(-1)!).image.names[0], 'docker.io/library/alpine:3.19');
});

test('images: import streams the request body to the service (no body limit), then progress and the image', async (t) => {
  const { socketPath, service } = await agent(t, { maxBodyBytes: 1024 });
  const archive = Buffer.alloc(256 * 1024, 7);
  const tar = { 'content-type': 'application/x-tar' };
  const query = `name=${encodeURIComponent('example.com/app:1')}&source=${encodeURIComponent('/tmp/app.tar')}`;
  const r = await call(socketPath, 'POST', `/v1/images/import?${query}`, archive, tar);
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/x-ndjson');
  const lines = r.text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.slice(0, -1).map((l) => l.kind),
    ['resolved', 'done'],
  );
  assert.equal(lines.at(-1).image.names[0], 'example.com/app:1');
  assert.deepEqual(
    service.imports.map((i) => [i.name, i.source]),
    [['example.com/app:1', '/tmp/app.tar']],
  );
  assert.ok(service.imports[0]!.bytes.equals(archive), 'the body reached the service whole');
  // Without a name the service names it; a failure after the stream started is its last line.
  const unnamed = await call(socketPath, 'POST', '/v1/images/import?source=x.tar', Buffer.from('tar'), tar);
  assert.equal(service.imports[1]!.name, undefined);
  assert.equal(JSON.parse(unnamed.text.trim().split('\n').at(-1)!).image.names[0], 'import/x.tar');
  const empty = await call(socketPath, 'POST', '/v1/images/import?source=empty.tar', Buffer.alloc(0), tar);
  assert.deepEqual(JSON.parse(empty.text), { error: 'empty.tar: not a tar archive (empty)' });
  // Refused before the body is read: a bad name or source is a 400, a refusing service its own status.
  assert.equal((await call(socketPath, 'POST', '/v1/images/import?name=Not%20A%20Ref', archive, tar)).status, 400);
  assert.equal((await call(socketPath, 'POST', '/v1/images/import?name=UPPER%2Fcase', archive, tar)).status, 400);
  assert.equal((await call(socketPath, 'POST', '/v1/images/import?source=a%0Ab', archive, tar)).status, 400);
  service.failures.set('importImage', new InvalidRequest('this agent has no image cache', [], 503));
  const refused = await call(socketPath, 'POST', '/v1/images/import?source=a.tar', archive, tar);
  assert.equal(refused.status, 503);
  assert.equal(refused.json.message, 'this agent has no image cache');
  assert.equal((await call(socketPath, 'DELETE', '/v1/images/import')).status, 405, 'a literal route, not an image named "import"');
});

test('images: prune takes a budget in bytes and answers what it removed', async (t) => {
  const { socketPath, service } = await agent(t);
  await post(socketPath, '/v1/images/pull', { image: 'docker.io/library/alpine:3.19' });
  const kept = await post(socketPath, '/v1/images/prune', { budgetBytes: 1 << 30 });
  assert.equal(kept.status, 200);
  assert.deepEqual(kept.json, { removed: [], freedBytes: 0, keptBytes: 4096 });
  const all = await post(socketPath, '/v1/images/prune', {});
  assert.deepEqual([all.json.removed.length, all.json.freedBytes, all.json.keptBytes], [1, 4096, 0]);
  assert.deepEqual(service.prunes, [1 << 30, 0]);
  for (const budgetBytes of [-1, 1.5, '10G', 2 ** 60]) {
    const r = await post(socketPath, '/v1/images/prune', { budgetBytes });
    assert.equal(r.status, 400, String(budgetBytes));
    assert.equal(r.json.message, 'budgetBytes must be a whole number, 0 or more');
  }
  assert.equal((await post(socketPath, '/v1/images/prune', [])).status, 400);
  assert.equal(service.prunes.length, 2);
});

test('GET /v1/host', async (t) => {
  const { socketPath } = await agent(t);
  const r = await call(socketPath, 'GET', '/v1/host');
  assert.equal(r.json.xenVersion, '4.17.5');
  assert.deepEqual(r.json.guests, { total: 0, running: 0 });
});

test('an exception in the service is a 500 with its message, logged, and the server keeps serving', async (t) => {
  const { socketPath, service, logged } = await agent(t);
  service.failures.set('host', new TypeError('cannot read properties of undefined'));
  const r = await call(socketPath, 'GET', '/v1/host');
  assert.equal(r.status, 500);
  assert.equal(r.json.message, 'internal error in the node agent: cannot read properties of undefined');
  assert.match(logged[0]!, /GET \/v1\/host: TypeError/);
  service.failures.set('list', new Error('boom'));
  assert.equal((await call(socketPath, 'GET', '/v1/guests')).status, 500);
  service.failures.set('watch', new Error('no watch today'));
  const watch = await call(socketPath, 'GET', '/v1/watch');
  assert.equal(watch.status, 500);
  assert.equal(watch.json.message, 'internal error in the node agent: no watch today');
  assert.equal((await call(socketPath, 'GET', '/v1/host')).status, 200);
  // Garbage that is not HTTP at all.
  const raw = connect(socketPath);
  const answer = await new Promise<string>((r) => {
    let text = '';
    raw.on('data', (d: Buffer) => (text += d.toString()));
    raw.on('close', () => r(text));
    raw.write('\x00\x01 hello\r\n\r\n');
  });
  assert.match(answer, /^HTTP\/1\.1 400 Bad Request/);
  assert.equal((await call(socketPath, 'GET', '/v1/host')).status, 200);
});

test('close ends open streams cleanly and removes the socket', async (t) => {
  const { socketPath, service, server } = await agent(t);
  await post(socketPath, '/v1/apply', { objects: [GUEST('web')] });
  const w = stream(socketPath, '/v1/watch');
  await w.until((s) => s.includes('\n'));
  await server.close();
  await w.end();
  assert.equal(service.watcherCount, 0);
  assert.ok(!existsSync(socketPath));
});

test('tailLines counts lines, not a trailing newline', () => {
  const b = (s: string) => tailLines(Buffer.from(s), 2).toString();
  assert.equal(b('a\nb\nc\n'), 'b\nc\n');
  assert.equal(b('a\nb\nc'), 'b\nc');
  assert.equal(b('c\n'), 'c\n');
  assert.equal(b(''), '');
});
