import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildInitrd } from './initrd.js';

test('the archive unpacks with cpio: files, modes, implied parent directories', () => {
  const archive = buildInitrd([
    { path: 'init', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
    { path: 'lib/modules/6.1.0/kernel/fs/squashfs.ko', data: Buffer.alloc(4097, 7) },
    { path: 'lib/modules/krata.order', data: Buffer.from('/lib/modules/6.1.0/kernel/fs/squashfs.ko\n') },
    { path: 'dev' },
    { path: './run/', mode: 0o700 },
  ]);
  assert.equal(archive.length % 4, 0);
  const dir = mkdtempSync(join(tmpdir(), 'krata-initrd-'));
  try {
    execFileSync('cpio', ['-i', '--quiet', '--make-directories', '--no-absolute-filenames'], { cwd: dir, input: archive });
    assert.equal(readFileSync(join(dir, 'init'), 'utf8'), '#!/bin/sh\n');
    assert.equal(statSync(join(dir, 'init')).mode & 0o777, 0o755);
    assert.ok(readFileSync(join(dir, 'lib/modules/6.1.0/kernel/fs/squashfs.ko')).equals(Buffer.alloc(4097, 7)));
    assert.equal(statSync(join(dir, 'lib/modules/6.1.0/kernel/fs/squashfs.ko')).mode & 0o777, 0o644);
    assert.ok(statSync(join(dir, 'dev')).isDirectory());
    assert.equal(statSync(join(dir, 'run')).mode & 0o777, 0o700);
    const listing = execFileSync('cpio', ['-t', '--quiet'], { input: archive, encoding: 'utf8' }).trim().split('\n');
    assert.ok(
      listing.indexOf('lib') < listing.indexOf('lib/modules') &&
        listing.indexOf('lib/modules') < listing.indexOf('lib/modules/krata.order'),
      'parents come before children',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('paths that could leave the initrd or collide are refused', () => {
  assert.throws(() => buildInitrd([{ path: '../etc/passwd', data: Buffer.alloc(1) }]), /not a plain relative path/);
  assert.throws(() => buildInitrd([{ path: '/', data: Buffer.alloc(1) }]), /not a plain relative path/);
  assert.throws(
    () =>
      buildInitrd([
        { path: 'a', data: Buffer.alloc(1) },
        { path: 'a', data: Buffer.alloc(1) },
      ]),
    /given twice/,
  );
  assert.throws(
    () =>
      buildInitrd([
        { path: 'a/b', data: Buffer.alloc(1) },
        { path: 'a', data: Buffer.alloc(1) },
      ]),
    /both a file and a directory/,
  );
});
