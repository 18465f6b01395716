// Layers → squashfs, checked with the real unsquashfs: the union rules (whiteouts, opaque
// directories, replacement), hardlinks in every arrangement, metadata, hostile layers, reproducibility.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync, readlinkSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildTar, type TarHeader } from './tar.js';
import { packLayers, type PackLayer } from './pack.js';

type E = Partial<TarHeader> & { path: string; data?: Buffer };
const txt = (s: string) => Buffer.from(s);
const work = mkdtempSync(join(tmpdir(), 'krata-pack-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
let n = 0;

function layerFile(entries: E[] | Buffer, compression: 'gzip' | 'zstd' | 'none' = 'gzip'): PackLayer {
  const tar = Buffer.isBuffer(entries) ? entries : buildTar(entries);
  const file = join(work, `layer-${++n}`);
  let data = tar;
  if (compression === 'gzip') data = gzipSync(tar);
  if (compression === 'zstd') data = execFileSync('zstd', ['-q', '-c'], { input: tar });
  writeFileSync(file, data);
  return { file, digest: `sha256:${createHash('sha256').update(data).digest('hex')}`, diffId: `sha256:${createHash('sha256').update(tar).digest('hex')}` };
}

async function pack(layers: PackLayer[]): Promise<string> {
  const out = join(work, `out-${++n}.sqfs`);
  await packLayers(layers, out);
  return out;
}

function extract(sqfs: string): string {
  const dir = join(work, `x-${++n}`);
  execFileSync('unsquashfs', ['-q', '-d', dir, sqfs], { stdio: 'ignore' });
  return dir;
}

/** `unsquashfs -lln` as path → "mode owner" (the root dropped). */
function listing(sqfs: string): Map<string, string> {
  const out = execFileSync('unsquashfs', ['-lln', sqfs]).toString().trim().split('\n');
  const m = new Map<string, string>();
  for (const line of out) {
    const match = /^(\S+) (\d+\/\d+)\s+.*?squashfs-root(\/\S*)?(?: -> (.*))?$/.exec(line);
    if (match && match[3]) m.set(match[3].slice(1), `${match[1]} ${match[2]}${match[4] ? ` -> ${match[4]}` : ''}`);
  }
  return m;
}

test('whiteouts, opaque directories and replacement across three layers (gzip, zstd, plain)', async () => {
  const base = layerFile([
    { path: 'etc/', type: 'dir' },
    { path: 'etc/a', data: txt('a') },
    { path: 'etc/b', data: txt('b') },
    { path: 'opt/d/x', data: txt('x') },
    { path: 'opt/d/sub/y', data: txt('y') },
    { path: 'usr/bin/tool', data: txt('old'), mode: 0o755 },
    { path: 'var/gone/deep/file', data: txt('z') },
    { path: 'srv/was-dir/inner', data: txt('i') },
  ]);
  const mid = layerFile([
    { path: 'etc/.wh.a', data: txt('') },
    { path: 'opt/d/', type: 'dir', mode: 0o700 },
    { path: 'opt/d/.wh..wh..opq', data: txt('') },
    { path: 'opt/d/z', data: txt('z-new') },
    { path: 'var/.wh.gone', data: txt('') },
    { path: 'srv/was-dir', data: txt('now a file') },
  ], 'zstd');
  const top = layerFile([
    { path: 'usr/bin/tool', data: txt('new'), mode: 0o755 },
    { path: 'var/gone/again', data: txt('back') },
  ], 'none');
  const sqfs = await pack([base, mid, top]);
  const dir = extract(sqfs);
  assert.equal(existsSync(join(dir, 'etc/a')), false, 'whiteout removes etc/a');
  assert.equal(readFileSync(join(dir, 'etc/b'), 'utf8'), 'b');
  assert.equal(existsSync(join(dir, 'opt/d/x')), false, 'opaque dir hides lower x');
  assert.equal(existsSync(join(dir, 'opt/d/sub')), false, 'opaque dir hides lower sub/');
  assert.equal(readFileSync(join(dir, 'opt/d/z'), 'utf8'), 'z-new');
  assert.equal(statSync(join(dir, 'opt/d')).mode & 0o777, 0o700, 'the upper directory entry wins');
  assert.equal(readFileSync(join(dir, 'usr/bin/tool'), 'utf8'), 'new');
  assert.equal(existsSync(join(dir, 'var/gone/deep')), false, 'a whited-out directory stays gone when re-created above');
  assert.equal(readFileSync(join(dir, 'var/gone/again'), 'utf8'), 'back');
  assert.equal(readFileSync(join(dir, 'srv/was-dir'), 'utf8'), 'now a file');
  const list = listing(sqfs);
  assert.ok(!list.has('srv/was-dir/inner'));
  assert.ok(![...list.keys()].some((p) => p.includes('.wh.')), 'no whiteout files in the result');
});

test('hardlinks: same layer, to a lower layer, to a target replaced above, to a target hidden in its own layer', async () => {
  const l1 = layerFile([
    { path: 'bin/busybox', data: txt('BB'), mode: 0o755 },
    { path: 'bin/sh', type: 'hardlink', linkname: 'bin/busybox' },
    { path: 'lib/orig', data: txt('original') },
    { path: 'lib/alias', type: 'hardlink', linkname: 'lib/orig' },
  ]);
  const l2 = layerFile([
    { path: 'bin/ls', type: 'hardlink', linkname: 'bin/busybox' },
    { path: 'data/v1', data: txt('version one') },
    { path: 'data/keep', type: 'hardlink', linkname: 'data/v1' },
    { path: 'data/keep2', type: 'hardlink', linkname: 'data/v1' },
  ]);
  const l3 = layerFile([
    { path: 'lib/orig', data: txt('replaced') },
    { path: 'data/v1', data: txt('version two') },
  ]);
  const dir = extract(await pack([l1, l2, l3]));
  const ino = (p: string) => statSync(join(dir, p)).ino;
  assert.equal(ino('bin/sh'), ino('bin/busybox'));
  assert.equal(ino('bin/ls'), ino('bin/busybox'), 'a link to a lower layer\'s file');
  assert.equal(statSync(join(dir, 'bin/busybox')).nlink, 3);
  assert.equal(readFileSync(join(dir, 'lib/alias'), 'utf8'), 'original', 'the link keeps the content its target had in its layer');
  assert.equal(readFileSync(join(dir, 'lib/orig'), 'utf8'), 'replaced');
  assert.notEqual(ino('lib/alias'), ino('lib/orig'));
  assert.equal(readFileSync(join(dir, 'data/keep'), 'utf8'), 'version one');
  assert.equal(ino('data/keep'), ino('data/keep2'));
  assert.equal(statSync(join(dir, 'data/keep')).nlink, 2);
  assert.equal(readFileSync(join(dir, 'data/v1'), 'utf8'), 'version two');
});

test('metadata: owners, modes, mtimes, symlinks, devices, fifos, xattrs, long names, directories no layer defines', async () => {
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex'); // cap_net_bind_service, effective
  const longName = `deep/${'d'.repeat(120)}/${'f'.repeat(200)}`;
  const sqfs = await pack([
    layerFile([
      { path: 'home/app/', type: 'dir', uid: 1000, gid: 1000, mode: 0o750, mtime: 1_600_000_000 },
      { path: 'home/app/run.sh', data: txt('#!/bin/sh\n'), uid: 1000, gid: 1000, mode: 0o4755, mtime: 1_700_000_000 },
      { path: 'usr/bin/ping', data: txt('ping'), mode: 0o755, xattrs: { 'security.capability': cap } },
      { path: 'usr/bin/p', type: 'symlink', linkname: 'ping' },
      { path: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 },
      { path: 'dev/sda', type: 'block', mode: 0o660, devmajor: 8, devminor: 0 },
      { path: 'run/fifo', type: 'fifo', mode: 0o600 },
      { path: longName, data: txt('long') },
      { path: 'big-ids', data: txt('x'), uid: 70_000_000, gid: 3_000_000 },
    ]),
  ]);
  const list = listing(sqfs);
  assert.equal(list.get('home/app'), 'drwxr-x--- 1000/1000');
  assert.equal(list.get('home/app/run.sh'), '-rwsr-xr-x 1000/1000');
  assert.equal(list.get('usr/bin/p'), 'lrwxrwxrwx 0/0 -> ping');
  assert.equal(list.get('run/fifo'), 'prw------- 0/0');
  assert.equal(list.get('big-ids'), '-rw-r--r-- 70000000/3000000');
  assert.match(execFileSync('unsquashfs', ['-lln', sqfs]).toString(), /crw-rw-rw- 0\/0\s+1,\s+3 .*dev\/null/);
  const dir = extract(sqfs);
  assert.equal(statSync(join(dir, 'home/app/run.sh')).mtimeMs, 1_700_000_000_000);
  assert.equal(readFileSync(join(dir, longName), 'utf8'), 'long');
  assert.equal(readlinkSync(join(dir, 'usr/bin/p')), 'ping');
  const xattr = execFileSync('python3', ['-c', 'import os,sys; sys.stdout.buffer.write(os.getxattr(sys.argv[1], "security.capability"))', join(dir, 'usr/bin/ping')]);
  assert.deepEqual(xattr, cap);
  // Directories only implied by paths get fixed attributes (reproducible), not the clock's.
  assert.equal(list.get('deep'), 'drwxr-xr-x 0/0');
  assert.equal(lstatSync(join(dir, 'deep')).mtimeMs, 0);
  assert.equal(lstatSync(dir).mtimeMs, 0, 'the root has a fixed time');
});

test('the same layers give byte-identical squashfs, also a second later', async () => {
  const layers = [layerFile([{ path: 'a/b', data: Buffer.alloc(300_000, 7) }, { path: 'c', data: txt('c') }]), layerFile([{ path: 'a/d', data: txt('d') }])];
  const one = readFileSync(await pack(layers));
  await new Promise((r) => setTimeout(r, 1100));
  const two = readFileSync(await pack(layers));
  assert.ok(one.equals(two));
});

async function packError(layers: PackLayer[]): Promise<string> {
  const out = join(work, `bad-${++n}.sqfs`);
  try {
    await packLayers(layers, out, { limits: { maxEntries: 50, maxFileBytes: 1000, maxTotalBytes: 5000 } });
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail('packing succeeded');
}

test('hostile layers are refused with the layer and the entry named', async () => {
  assert.match(await packError([layerFile([{ path: '../../etc/passwd', data: txt('x') }])]), /layer sha256:[0-9a-f]{64}: "\.\.\/\.\.\/etc\/passwd".*path traversal/);
  assert.match(await packError([layerFile([{ path: 'a/../../b', data: txt('x') }])]), /path traversal/);
  assert.match(await packError([layerFile([{ path: 'lib', type: 'symlink', linkname: '/usr/lib' }, { path: 'lib/evil', data: txt('x') }])]), /"lib\/evil".*parent "lib" is a symlink/);
  assert.match(
    await packError([layerFile([{ path: 'etc', type: 'symlink', linkname: '/host/etc' }]), layerFile([{ path: 'etc/shadow', data: txt('x') }])]),
    /"etc": is a symlink here, but a layer above puts entries under it/,
  );
  assert.match(await packError([layerFile([{ path: 'f', data: Buffer.alloc(1001) }])]), /"f": file of 1001 bytes exceeds/);
  assert.match(await packError([layerFile(Array.from({ length: 51 }, (_, i) => ({ path: `f${i}`, data: txt('') })))]), /more than 50 entries/);
  assert.match(await packError([layerFile([{ path: 'x', data: txt('1') }, { path: 'x', data: txt('2') }])]), /"x": appears twice/);
  assert.match(await packError([layerFile([{ path: 'l', type: 'hardlink', linkname: 'nowhere' }])]), /hardlink target "nowhere" is in no layer/);
  assert.match(await packError([layerFile([{ path: 'd', type: 'dir' }, { path: 'l', type: 'hardlink', linkname: 'd' }])]), /hardlink to directory/);
  const good = layerFile([{ path: 'x', data: txt('x') }]);
  assert.match(await packError([{ ...good, diffId: `sha256:${'0'.repeat(64)}` }]), /uncompressed content is sha256:[0-9a-f]{64}, but the image config says sha256:0000/);
  const tar = buildTar([{ path: 'x', data: Buffer.alloc(900, 1) }]);
  assert.match(await packError([layerFile(tar.subarray(0, 1024), 'none')]), /truncated inside entry "x"/);
  const corrupt = Buffer.from(tar);
  corrupt[10] = 0x41;
  assert.match(await packError([layerFile(corrupt, 'none')]), /checksum mismatch/);
  assert.match(await packError([layerFile(gzipSync(tar).subarray(0, 40), 'none')]), /cannot decompress/);
});
