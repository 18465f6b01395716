// GUEST_DIALER as the agent's container binds it: kratanet's dial socket under the state directory when
// the network is on, always Unavailable when it is off, and a double when a test rebinds it.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { replace, resolve } from '../../lib/container.js';
import { LoopbackDialer } from '../../test/doubles/loopback-dialer.js';
import { silentLog, testAgentConfig } from '../../test/harness/node-agent.js';
import { DialError } from '../net/guest-dialer.js';
import { dialSocketPath } from '../net/kratanet-dialer.js';
import { agentContainer } from './agent.js';
import { GUEST_DIALER } from './ids.js';

const dir = mkdtempSync(join(tmpdir(), 'krata-guest-dialer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const outcome = (p: Promise<unknown>) =>
  p.then(
    () => 'connected',
    (e: unknown) => (e instanceof DialError ? `${e.reason}: ${e.message}` : String(e)),
  );

test('network off: every dial is Unavailable; a test rebinds a double', async () => {
  const container = agentContainer(testAgentConfig(join(dir, 'off')), silentLog);
  const dialer = await resolve(container, GUEST_DIALER);
  assert.match(await outcome(dialer.dial('default/web', 80, { timeoutMs: 100 })), /^Unavailable: default\/web:80: .*network is off/);
  const double = new LoopbackDialer();
  replace(container, GUEST_DIALER, double);
  assert.equal(await resolve(container, GUEST_DIALER), double);
});

test("network on: dials go to kratanet's socket under the state directory", async () => {
  const stateDir = join(dir, 'on');
  const container = agentContainer(testAgentConfig(stateDir, { network: {} }), silentLog);
  const dialer = await resolve(container, GUEST_DIALER);
  assert.match(await outcome(dialer.dial('default/web', 80, { timeoutMs: 1000 })), /^Unavailable: .*ENOENT/, 'kratanet not running');
  // A stand-in for kratanet on the path the agent gives it.
  const path = dialSocketPath(stateDir)!;
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
  const seen: string[] = [];
  const server = createServer((s) =>
    s.once('data', (d: Buffer) => {
      seen.push(d.toString());
      s.end('ERR NoSuchGuest kratanet serves no guest default/web\n');
    }),
  );
  await new Promise<void>((r) => server.listen(path, r));
  try {
    assert.match(await outcome(dialer.dial('default/web', 80, { timeoutMs: 1000 })), /^NoSuchGuest: /);
    assert.deepEqual(seen, ['dial default/web 80 1000\n']);
  } finally {
    server.close();
  }
});
