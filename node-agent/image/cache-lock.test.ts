import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CacheLocked, lockImageCache, lockPath, waitForImageCache } from './cache-lock.js';

const work = mkdtempSync(join(tmpdir(), 'krata-cache-lock-test-'));
test.after(() => rmSync(work, { recursive: true, force: true }));
let n = 0;

test('one writer at a time: a second lock is refused with the holder named, and taken once released', () => {
  const root = join(work, `images-${++n}`);
  const first = lockImageCache(root, 'writer one');
  assert.throws(
    () => lockImageCache(root, 'writer two'),
    (e: unknown) =>
      e instanceof CacheLocked &&
      e.holder?.pid === process.pid &&
      e.message === `the image cache ${root} is in use by writer one (pid ${process.pid})`,
  );
  first.release();
  const second = lockImageCache(root, 'writer two');
  assert.deepEqual(JSON.parse(readFileSync(lockPath(root), 'utf8')), { pid: process.pid, command: 'writer two' });
  second.release();
});

test('the lock of another process holds; once that process is killed (kill -9), its stale lock is taken', async () => {
  const root = join(work, `images-${++n}`);
  const module = new URL('./cache-lock.js', import.meta.url).href;
  const script = `const { lockImageCache } = await import(${JSON.stringify(module)});
    lockImageCache(${JSON.stringify(root)}, 'other');
    console.log('locked');
    setInterval(() => {}, 1000);`;
  const holder = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await once(holder.stdout!, 'data');
    const byHolder = (e: unknown) => e instanceof CacheLocked && e.holder?.pid === holder.pid && e.holder?.command === 'other';
    assert.throws(() => lockImageCache(root, 'me'), byHolder);
  } finally {
    holder.kill('SIGKILL');
    await once(holder, 'exit');
  }
  // The file still names the dead process; the kernel released its lock.
  assert.equal(JSON.parse(readFileSync(lockPath(root), 'utf8')).pid, holder.pid);
  const mine = lockImageCache(root, 'me');
  assert.equal(JSON.parse(readFileSync(lockPath(root), 'utf8')).pid, process.pid);
  mine.release();
});

test('waitForImageCache waits for the holder to let go, saying once who it waits for', async () => {
  const root = join(work, `images-${++n}`);
  const first = lockImageCache(root, 'the agent');
  const busy: CacheLocked[] = [];
  const waiting = waitForImageCache(root, 'next', (e) => busy.push(e), 10);
  await new Promise((r) => setTimeout(r, 50));
  first.release();
  const lock = await waiting;
  assert.equal(busy.length, 1);
  assert.equal(busy[0]!.holder?.command, 'the agent');
  lock.release();
});
