import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CacheLocked, lockImageCache } from './image/cache-lock.js';

const work = mkdtempSync(join(tmpdir(), 'krata-image-command-test-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

test('with --stop-on-eof, a writer stops when its standard input ends, and lets go of the cache', async () => {
  // A registry that takes the connection and never answers: the pull waits, holding the lock.
  const sockets: Socket[] = [];
  const registry = createServer((s) => sockets.push(s));
  registry.listen(0, '127.0.0.1');
  await once(registry, 'listening');
  const host = `127.0.0.1:${(registry.address() as { port: number }).port}`;
  const state = join(work, 'state');
  const main = fileURLToPath(new URL('./image-main.js', import.meta.url));
  const args = [
    main,
    'pull',
    '--state',
    state,
    '--docker-config',
    join(work, 'none.json'),
    '--insecure-registry',
    host,
    '--stop-on-eof',
    `${host}/x/y:1`,
  ];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'ignore', 'inherit'] });
  try {
    for (let i = 0; i < 500 && sockets.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(sockets.length > 0, 'the pull reached the registry');
    assert.throws(() => lockImageCache(join(state, 'images'), 'test'), CacheLocked);
    const exited = once(child, 'exit');
    child.stdin!.end();
    const [code] = await exited;
    assert.equal(code, 1);
    lockImageCache(join(state, 'images'), 'test').release();
  } finally {
    child.kill('SIGKILL');
    for (const s of sockets) s.destroy();
    registry.close();
  }
});
