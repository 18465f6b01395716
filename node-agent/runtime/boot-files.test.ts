// Boot files are read once while unchanged: a rewrite (new size, mtime or inode) reads again, the
// cache stays within its bytes (least recently used out), and a file larger than it is never kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BootFileCache } from './boot-files.js';

const work = mkdtempSync(join(tmpdir(), 'krata-boot-files-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

function counting(max?: number) {
  const reads: string[] = [];
  const cache = new BootFileCache(max, (p) => {
    reads.push(p);
    return readFile(p);
  });
  return { cache, reads };
}

test('an unchanged file is read once; a changed one (in place, or replaced by rename) is read again', async () => {
  const f = join(work, 'vmlinuz');
  writeFileSync(f, 'kernel one');
  const { cache, reads } = counting();
  assert.equal((await cache.get(f)).toString(), 'kernel one');
  assert.equal((await cache.get(f)).toString(), 'kernel one');
  assert.equal(reads.length, 1);
  writeFileSync(f, 'kernel two!'); // in place: size and mtime move
  assert.equal((await cache.get(f)).toString(), 'kernel two!');
  assert.equal(reads.length, 2);
  writeFileSync(f, 'kernel 3!!!'); // same size: mtime and ctime still move
  utimesSync(f, new Date(1000), new Date(1000));
  assert.equal((await cache.get(f)).toString(), 'kernel 3!!!');
  writeFileSync(`${f}.new`, 'kernel 4!!!');
  utimesSync(`${f}.new`, new Date(1000), new Date(1000));
  renameSync(`${f}.new`, f); // a new inode
  assert.equal((await cache.get(f)).toString(), 'kernel 4!!!');
  assert.equal(reads.length, 4);
  assert.equal(cache.size, 11);
});

test('the cache keeps within its bytes, least recently used out; a file larger than it is read each time', async () => {
  const [a, b, c, big] = ['a', 'b', 'c', 'big'].map((n) => join(work, n)) as [string, string, string, string];
  writeFileSync(a, 'x'.repeat(40));
  writeFileSync(b, 'y'.repeat(40));
  writeFileSync(c, 'z'.repeat(40));
  writeFileSync(big, 'w'.repeat(101));
  const { cache, reads } = counting(100);
  await cache.get(a);
  await cache.get(b);
  await cache.get(a); // a is now the most recent
  await cache.get(c); // b goes
  assert.equal(cache.size, 80);
  await cache.get(a);
  assert.deepEqual(reads, [a, b, c]);
  await cache.get(b);
  assert.deepEqual(reads, [a, b, c, b]);
  await cache.get(big);
  await cache.get(big);
  assert.equal(reads.filter((r) => r === big).length, 2);
  assert.ok(cache.size <= 100);
});

test('a missing file is an error, and nothing is kept for it', async () => {
  const { cache } = counting();
  await assert.rejects(cache.get(join(work, 'nope')), { code: 'ENOENT' });
  assert.equal(cache.size, 0);
});
