// KratanetDialer against a scripted dial socket (no kratanet, no root): what it sends, how each answer
// and each failure maps to a DialError, and that the socket it hands back is the stream, with the
// guest's first bytes intact. The dialer against a real kratanet and guest: test/net/dial.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, test } from 'node:test';
import { DialError } from './guest-dialer.js';
import { dialSocketPath, KratanetDialer, NoNetworkDialer } from './kratanet-dialer.js';

const dir = mkdtempSync(join(tmpdir(), 'kratanet-dialer-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A dial socket that hands each connection's first line and the socket to `script`. */
async function scripted(script: (line: string, s: Socket) => void): Promise<{ path: string; server: Server; lines: string[] }> {
  const path = join(dir, `s${n++}.sock`);
  const lines: string[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      lines.push(buf.slice(0, nl));
      script(buf.slice(0, nl), s);
    };
    s.on('data', onData);
    s.on('end', () => s.end()); // a client that hung up: close (the server is half-open otherwise)
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { path, server, lines };
}

async function rejectsWith(p: Promise<unknown>, reason: DialError['reason'], message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof DialError, String(e));
    assert.equal(e.reason, reason, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

function readAll(s: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

test('sends one request line; after OK the socket is the stream, bytes that came with OK first', async () => {
  const { path, server, lines } = await scripted((_line, s) => {
    s.write('OK\nhello from the guest, ');
    setTimeout(() => s.end('and more'), 20);
  });
  const stream = await new KratanetDialer(path).dial('default/web-0', 8080, { timeoutMs: 1500.5 });
  assert.deepEqual(lines, ['dial default/web-0 8080 1501']);
  assert.equal(await readAll(stream), 'hello from the guest, and more');
  stream.destroy();
  server.close();
});

test('a guest that says something and closes at once: nothing lost, half-close both ways', async () => {
  let clientSaid: Promise<string> | undefined;
  const { path, server } = await scripted((_line, s) => {
    clientSaid = readAll(s);
    s.end('OK\nbanner\n'); // OK, the guest's bytes and its FIN in one go
  });
  const stream = await new KratanetDialer(path).dial('a/b', 22, { timeoutMs: 1000 });
  assert.equal(await readAll(stream), 'banner\n');
  stream.end('bye'); // still writable after the guest's FIN
  assert.equal(await clientSaid, 'bye');
  server.close();
});

test('pipe() works on the returned stream (it is neither paused nor flowing)', async () => {
  const { path, server } = await scripted((_line, s) => s.end('OK\npiped'));
  const stream = await new KratanetDialer(path).dial('a/b', 80, { timeoutMs: 1000 });
  const { PassThrough } = await import('node:stream');
  const sink = new PassThrough();
  stream.pipe(sink);
  assert.equal(await readAll(sink), 'piped');
  stream.destroy();
  server.close();
});

test("kratanet's reasons become the DialError's; BadRequest and nonsense are Unavailable", async () => {
  const answers: Record<string, string> = {
    'a/none': 'ERR NoSuchGuest kratanet serves no guest a/none\n',
    'a/refused': 'ERR Refused a/refused refused port 80\n',
    'a/slow': 'ERR Timeout a/slow did not accept port 80 within 100 ms\n',
    'a/busy': 'ERR Unavailable a/busy has too many dials open\n',
    'a/bad': 'ERR BadRequest bad port\n',
    'a/junk': 'HTTP/1.1 400 Bad Request\r\n',
    'a/long': 'x'.repeat(4096),
    'a/silent-close': '',
  };
  const { path, server } = await scripted((line, s) => s.end(answers[line.split(' ')[1]!]));
  const d = new KratanetDialer(path);
  await rejectsWith(d.dial('a/none', 80, { timeoutMs: 1000 }), 'NoSuchGuest', /serves no guest a\/none/);
  await rejectsWith(d.dial('a/refused', 80, { timeoutMs: 1000 }), 'Refused');
  await rejectsWith(d.dial('a/slow', 80, { timeoutMs: 1000 }), 'Timeout');
  await rejectsWith(d.dial('a/busy', 80, { timeoutMs: 1000 }), 'Unavailable', /too many/);
  await rejectsWith(d.dial('a/bad', 80, { timeoutMs: 1000 }), 'Unavailable', /bad port/);
  await rejectsWith(d.dial('a/junk', 80, { timeoutMs: 1000 }), 'Unavailable', /unexpected answer/);
  await rejectsWith(d.dial('a/long', 80, { timeoutMs: 1000 }), 'Unavailable', /overlong/);
  await rejectsWith(d.dial('a/silent-close', 80, { timeoutMs: 1000 }), 'Unavailable', /without an answer/);
  server.close();
});

test('no kratanet: a missing socket, a stale one or a file that is not a socket is Unavailable', async () => {
  await rejectsWith(new KratanetDialer(join(dir, 'missing.sock')).dial('a/b', 80, { timeoutMs: 1000 }), 'Unavailable', /ENOENT/);
  const { path, server } = await scripted(() => {});
  await new Promise((r) => server.close(r));
  writeFileSync(join(dir, 'plain'), '');
  await rejectsWith(new KratanetDialer(path).dial('a/b', 80, { timeoutMs: 1000 }), 'Unavailable');
  await rejectsWith(new KratanetDialer(join(dir, 'plain')).dial('a/b', 80, { timeoutMs: 1000 }), 'Unavailable', /ECONNREFUSED/);
});

test('no answer within timeoutMs is Timeout, and the socket is closed', async () => {
  let closed: Promise<void> | undefined;
  const { path, server } = await scripted((_line, s) => (closed = new Promise((r) => s.on('close', () => r()))));
  await rejectsWith(new KratanetDialer(path).dial('a/b', 80, { timeoutMs: 50 }), 'Timeout', /within 50 ms/);
  await closed;
  server.close();
});

test('an abort ends the dial at once (Unavailable; Timeout for AbortSignal.timeout), the socket closed', async () => {
  let closed = 0;
  const { path, server } = await scripted((_line, s) => s.on('close', () => closed++));
  const d = new KratanetDialer(path);
  const ac = new AbortController();
  const p = d.dial('a/b', 80, { timeoutMs: 10_000, signal: ac.signal });
  setTimeout(() => ac.abort(), 30);
  await rejectsWith(p, 'Unavailable', /aborted/);
  await rejectsWith(d.dial('a/b', 80, { timeoutMs: 10_000, signal: AbortSignal.timeout(30) }), 'Timeout', /aborted/);
  const pre = new AbortController();
  pre.abort();
  await rejectsWith(d.dial('a/b', 80, { timeoutMs: 10_000, signal: pre.signal }), 'Unavailable');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(closed, 2);
  server.close();
});

test('a key or port that cannot name a guest port is refused before asking kratanet', async () => {
  const d = new KratanetDialer(join(dir, 'never-used.sock'));
  await rejectsWith(d.dial('has space/x', 80, { timeoutMs: 100 }), 'NoSuchGuest');
  await rejectsWith(d.dial('a/b', 0, { timeoutMs: 100 }), 'Refused', /port 0/);
  await rejectsWith(d.dial('a/b', 70000, { timeoutMs: 100 }), 'Refused');
  await rejectsWith(d.dial('a/b', 80, { timeoutMs: NaN }), 'Timeout', /not a number/);
});

test('NoNetworkDialer is Unavailable; the socket path lives under the state directory and fits sun_path', async () => {
  await rejectsWith(new NoNetworkDialer().dial('a/b', 80), 'Unavailable', /network is off/);
  assert.equal(dialSocketPath('/var/lib/krata'), '/var/lib/krata/network/dial/kratanet.sock');
  assert.equal(dialSocketPath(`/${'x'.repeat(100)}`), undefined);
});
