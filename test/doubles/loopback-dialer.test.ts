import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { DialError } from '../../node-agent/net/guest-dialer.js';
import { LoopbackDialer } from './loopback-dialer.js';

let server: Server;
let port: number;
before(async () => {
  server = createServer((s) => s.on('error', () => {}).end('hi'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
after(() => server.close());

const reason = (e: unknown) => (e instanceof DialError ? e.reason : String(e));

test('maps a key to a loopback server, records the dials, and fails as the real dialer does', async () => {
  // A port nothing listens on: bind one and close it.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const dead = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));

  const d = new LoopbackDialer().set('ns/a', port).setPort('ns/b', 80, port).setPort('ns/b', 81, dead);
  const s = await d.dial('ns/a', 1234, { timeoutMs: 1000 });
  const said = await new Promise<string>((r) => {
    let got = '';
    s.on('data', (x: Buffer) => (got += x.toString()));
    s.on('end', () => r(got));
  });
  assert.equal(said, 'hi');
  s.destroy();
  (await d.dial('ns/b', 80, { timeoutMs: 1000 })).destroy();
  assert.equal(await d.dial('ns/b', 82, { timeoutMs: 1000 }).catch(reason), 'Refused');
  assert.equal(await d.dial('ns/b', 81, { timeoutMs: 1000 }).catch(reason), 'Refused');
  assert.equal(await d.dial('ns/c', 80, { timeoutMs: 1000 }).catch(reason), 'NoSuchGuest');
  const ac = new AbortController();
  ac.abort();
  assert.equal(await d.dial('ns/a', 80, { timeoutMs: 1000, signal: ac.signal }).catch(reason), 'Unavailable');
  d.delete('ns/a');
  assert.equal(await d.dial('ns/a', 80, { timeoutMs: 1000 }).catch(reason), 'NoSuchGuest');
  assert.deepEqual(
    d.dials.map((x) => `${x.key}:${x.port}`),
    ['ns/a:1234', 'ns/b:80', 'ns/b:82', 'ns/b:81', 'ns/c:80', 'ns/a:80', 'ns/a:80'],
  );
});
