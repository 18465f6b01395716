// The in-process squashfs, read back with the real unsquashfs: the same listing as mksquashfs makes
// of the same files, every byte of every file (one block, several blocks, none), and bad input refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTar } from '../../lib/tar.js';
import { flatSquashfs, FLAT_SQUASHFS_LIMITS, type FlatFile } from './flat-squashfs.js';

const work = mkdtempSync(join(tmpdir(), 'krata-flat-squashfs-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
let n = 0;

function image(files: FlatFile[]): string {
  const out = join(work, `flat-${++n}.sqfs`);
  writeFileSync(out, flatSquashfs(files));
  return out;
}

/** `unsquashfs -lln` without the dates. */
const listing = (img: string) =>
  execFileSync('unsquashfs', ['-lln', img])
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((l) =>
      l
        .split(/\s+/)
        .filter((_, i) => i !== 3 && i !== 4)
        .join(' '),
    );

test('unsquashfs reads back every file, its bytes, mode and owner', () => {
  const files: FlatFile[] = [
    { name: 'launch.json', data: Buffer.from('{"version":1}\n'), mode: 0o644 },
    { name: 'big', data: randomBytes(300_000), mode: 0o600 }, // three data blocks, the last a short one
    { name: 'empty', data: Buffer.alloc(0), mode: 0o644 },
  ];
  const img = image(files);
  const out = join(work, `x-${n}`);
  execFileSync('unsquashfs', ['-q', '-n', '-d', out, img]);
  for (const f of files) assert.deepEqual(readFileSync(join(out, f.name)), f.data, f.name);
  const lines = execFileSync('unsquashfs', ['-lln', img]).toString().trim().split('\n');
  assert.match(lines[0]!, /^drwxr-xr-x 0\/0 /);
  assert.deepEqual(
    lines.slice(1).map((l) =>
      l
        .split(/\s+/)
        .filter((_, i) => i !== 3 && i !== 4)
        .join(' '),
    ),
    ['-rw------- 0/0 300000 squashfs-root/big', '-rw-r--r-- 0/0 0 squashfs-root/empty', '-rw-r--r-- 0/0 14 squashfs-root/launch.json'],
  );
  assert.equal(readFileSync(img).length % 4096, 0, 'padded like mksquashfs: a loop device holds whole sectors');
});

test('the same files as mksquashfs packs them: one listing, one content', () => {
  const data = Buffer.from(JSON.stringify({ process: { env: [{ name: 'A', value: 'b'.repeat(5000) }] } }) + '\n');
  const ours = image([{ name: 'launch.json', data, mode: 0o644 }]);
  const theirs = join(work, 'mksquashfs.sqfs');
  execFileSync('mksquashfs', ['-', theirs, '-tar', '-noappend', '-quiet', '-no-progress', '-comp', 'gzip'], {
    input: buildTar([{ path: 'launch.json', data, mode: 0o644 }]),
  });
  const files = (img: string) => listing(img).filter((l) => !l.startsWith('d'));
  assert.deepEqual(files(ours), files(theirs));
  assert.deepEqual(execFileSync('unsquashfs', ['-cat', ours, 'launch.json']), execFileSync('unsquashfs', ['-cat', theirs, 'launch.json']));
});

test('bad input is refused: no files, a path, a duplicate, a bad mode, too much', () => {
  const f = (name: string, data = Buffer.from('x'), mode = 0o644): FlatFile => ({ name, data, mode });
  assert.throws(() => flatSquashfs([]), RangeError);
  for (const name of ['', 'a/b', '.', '..', 'x\0y', 'n'.repeat(256)])
    assert.throws(() => flatSquashfs([f(name)]), RangeError, JSON.stringify(name));
  assert.throws(() => flatSquashfs([f('a'), f('a')]), /twice/);
  assert.throws(() => flatSquashfs([f('a', undefined, 0o10000)]), /mode/);
  assert.throws(() => flatSquashfs([f('a', Buffer.alloc(FLAT_SQUASHFS_LIMITS.fileBytes + 1))]), /bytes/);
  assert.throws(() => flatSquashfs(Array.from({ length: FLAT_SQUASHFS_LIMITS.files + 1 }, (_, i) => f(`f${i}`))), RangeError);
  // Long names that overflow the directory's one metadata block.
  assert.throws(() => flatSquashfs(Array.from({ length: 40 }, (_, i) => f(`${i}`.padStart(250, 'n')))), /metadata block/);
  assert.doesNotThrow(() => flatSquashfs([f('a', Buffer.alloc(FLAT_SQUASHFS_LIMITS.fileBytes))]));
});
