// The dial socket's own rules, without a guest: where and how it listens, and what it does with
// requests that never come, are too long, are malformed or name no guest. Dials that reach a guest
// are in test/net/dial.test.ts (a guest in a network namespace).
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DialService, MAX_PENDING_REQUESTS } from './dial-service.js';

const root = mkdtempSync(join(tmpdir(), 'dial-service-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `d${n++}`, 'kratanet.sock');

/** Connects, writes `data` (if any), resolves with everything read until the server closes. */
function talk(path: string, data?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve(got));
    if (data !== undefined) s.write(data);
  });
}

async function service(requestTimeoutMs = 5000): Promise<{ svc: DialService; path: string }> {
  const svc = new DialService({ lookup: () => undefined, requestTimeoutMs });
  const path = fresh();
  await svc.listen(path);
  return { svc, path };
}

test('listens 0600 in a directory it makes 0700; closing removes the socket', async () => {
  const { svc, path } = await service();
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(join(path, '..')).mode & 0o777, 0o700);
  svc.close();
  await new Promise((r) => setImmediate(r));
  assert.equal(existsSync(path), false);
});

test('a stale socket is replaced; a directory others may use, or a file that is not a socket, is refused', async () => {
  const path = fresh();
  mkdirSync(join(path, '..'), { mode: 0o700 });
  // A listener killed without closing leaves its socket file behind.
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`]);
  await new Promise((r) => child.stdout.once('data', r));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(statSync(path).isSocket());
  await assert.rejects(talk(path, 'x'), /ECONNREFUSED/);
  const svc = new DialService({ lookup: () => undefined });
  await svc.listen(path);
  assert.match(await talk(path, 'dial a/b 80 100\n'), /^ERR NoSuchGuest /);
  svc.close();

  const loose = fresh();
  mkdirSync(join(loose, '..'), { mode: 0o700 });
  chmodSync(join(loose, '..'), 0o755);
  await assert.rejects(new DialService({ lookup: () => undefined }).listen(loose), /mode 0700/);

  const file = fresh();
  mkdirSync(join(file, '..'), { mode: 0o700 });
  writeFileSync(file, 'not a socket');
  await assert.rejects(new DialService({ lookup: () => undefined }).listen(file), /not a socket/);
});

test('an unknown guest is NoSuchGuest; a malformed request BadRequest; both close the connection', async () => {
  const { svc, path } = await service();
  assert.equal(await talk(path, 'dial ns/nope 80 1000\n'), 'ERR NoSuchGuest kratanet serves no guest ns/nope\n');
  assert.match(await talk(path, 'GET / HTTP/1.1\r\n'), /^ERR BadRequest expected/);
  assert.match(await talk(path, 'dial ns/g 0 1000\n'), /^ERR BadRequest bad port\n$/);
  // Bytes after the line in one write do not confuse the parser.
  assert.match(await talk(path, 'dial ns/nope 80 1000\nextra bytes'), /^ERR NoSuchGuest /);
  svc.close();
});

test('a request line is bounded in size and in time', async () => {
  const { svc, path } = await service(200);
  assert.equal(await talk(path, 'd'.repeat(10_000)), 'ERR BadRequest request too long\n');
  // A line split over writes still counts whole.
  const s = connect(path);
  const answer = new Promise<string>((resolve) => {
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('close', () => resolve(got));
  });
  s.write('dial ns/x ');
  setTimeout(() => s.write('80 1000\n'), 20);
  assert.match(await answer, /^ERR NoSuchGuest /);
  assert.equal(await talk(path), 'ERR BadRequest no request within 200 ms\n');
  assert.equal(await talk(path, 'dial ns/x 80'), 'ERR BadRequest no request within 200 ms\n');
  svc.close();
});

test(`at most ${MAX_PENDING_REQUESTS} connections wait for their request line; more are closed at once`, async () => {
  const { svc, path } = await service(30_000);
  const idle: Socket[] = [];
  for (let i = 0; i < MAX_PENDING_REQUESTS; i++) {
    const s = connect(path);
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    idle.push(s);
  }
  while (svc.waiting < MAX_PENDING_REQUESTS) await new Promise((r) => setTimeout(r, 10)); // all accepted
  // (It writes nothing: had it to wait for a slot, it would wait the 30 s request timeout.)
  assert.equal(await talk(path), '', 'closed without an answer');
  // One of the waiting ones asks and is answered, which frees a slot.
  const first = idle.shift()!;
  const answered = new Promise<string>((resolve) => {
    let got = '';
    first.on('data', (d: Buffer) => (got += d.toString()));
    first.on('close', () => resolve(got));
  });
  first.write('dial ns/x 80 1000\n');
  assert.match(await answered, /^ERR NoSuchGuest /);
  assert.match(await talk(path, 'dial ns/x 80 1000\n'), /^ERR NoSuchGuest /);
  for (const s of idle) s.destroy();
  svc.close();
});
