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
import { buildTar, encodeHeader, tarPadding, type TarHeader } from '../../lib/tar.js';
import { packLayers, type PackLayer } from './pack.js';
import { LayerUnion } from './layer-union.js';

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
  return {
    file,
    digest: `sha256:${createHash('sha256').update(data).digest('hex')}`,
    diffId: `sha256:${createHash('sha256').update(tar).digest('hex')}`,
  };
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
  const mid = layerFile(
    [
      { path: 'etc/.wh.a', data: txt('') },
      { path: 'opt/d/', type: 'dir', mode: 0o700 },
      { path: 'opt/d/.wh..wh..opq', data: txt('') },
      { path: 'opt/d/z', data: txt('z-new') },
      { path: 'var/.wh.gone', data: txt('') },
      { path: 'srv/was-dir', data: txt('now a file') },
    ],
    'zstd',
  );
  const top = layerFile(
    [
      { path: 'usr/bin/tool', data: txt('new'), mode: 0o755 },
      { path: 'var/gone/again', data: txt('back') },
    ],
    'none',
  );
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
  assert.equal(ino('bin/ls'), ino('bin/busybox'), "a link to a lower layer's file");
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
  const xattr = execFileSync('python3', [
    '-c',
    'import os,sys; sys.stdout.buffer.write(os.getxattr(sys.argv[1], "security.capability"))',
    join(dir, 'usr/bin/ping'),
  ]);
  assert.deepEqual(xattr, cap);
  // Directories only implied by paths get fixed attributes (reproducible), not the clock's.
  assert.equal(list.get('deep'), 'drwxr-xr-x 0/0');
  assert.equal(lstatSync(join(dir, 'deep')).mtimeMs, 0);
  assert.equal(lstatSync(dir).mtimeMs, 0, 'the root has a fixed time');
});

test('the same layers give byte-identical squashfs, also a second later', async () => {
  const layers = [
    layerFile([
      { path: 'a/b', data: Buffer.alloc(300_000, 7) },
      { path: 'c', data: txt('c') },
    ]),
    layerFile([{ path: 'a/d', data: txt('d') }]),
  ];
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
  assert.match(
    await packError([layerFile([{ path: '../../etc/passwd', data: txt('x') }])]),
    /layer sha256:[0-9a-f]{64}: "\.\.\/\.\.\/etc\/passwd".*path traversal/,
  );
  assert.match(await packError([layerFile([{ path: 'a/../../b', data: txt('x') }])]), /path traversal/);
  assert.match(
    await packError([
      layerFile([
        { path: 'lib', type: 'symlink', linkname: '/usr/lib' },
        { path: 'lib/evil', data: txt('x') },
      ]),
    ]),
    /"lib\/evil".*parent "lib" is a symlink/,
  );
  assert.match(
    await packError([
      layerFile([{ path: 'etc', type: 'symlink', linkname: '/host/etc' }]),
      layerFile([{ path: 'etc/shadow', data: txt('x') }]),
    ]),
    /"etc": is a symlink here, but a layer above puts entries under it/,
  );
  assert.match(await packError([layerFile([{ path: 'f', data: Buffer.alloc(1001) }])]), /"f": file of 1001 bytes exceeds/);
  assert.match(
    await packError([layerFile(Array.from({ length: 51 }, (_, i) => ({ path: `f${i}`, data: txt('') })))]),
    /more than 50 entries/,
  );
  assert.match(
    await packError([
      layerFile([
        { path: 'x', data: txt('1') },
        { path: 'x', data: txt('2') },
      ]),
    ]),
    /"x": appears twice/,
  );
  assert.match(
    await packError([layerFile([{ path: 'l', type: 'hardlink', linkname: 'nowhere' }])]),
    /hardlink target "nowhere" is in no layer/,
  );
  assert.match(
    await packError([
      layerFile([
        { path: 'd', type: 'dir' },
        { path: 'l', type: 'hardlink', linkname: 'd' },
      ]),
    ]),
    /hardlink to directory/,
  );
  const good = layerFile([{ path: 'x', data: txt('x') }]);
  assert.match(
    await packError([{ ...good, diffId: `sha256:${'0'.repeat(64)}` }]),
    /uncompressed content is sha256:[0-9a-f]{64}, but the image config says sha256:0000/,
  );
  const tar = buildTar([{ path: 'x', data: Buffer.alloc(900, 1) }]);
  assert.match(await packError([layerFile(tar.subarray(0, 1024), 'none')]), /truncated inside entry "x"/);
  const corrupt = Buffer.from(tar);
  corrupt[10] = 0x41;
  assert.match(await packError([layerFile(corrupt, 'none')]), /checksum mismatch/);
  assert.match(await packError([layerFile(gzipSync(tar).subarray(0, 40), 'none')]), /cannot decompress/);
});

/** One layer with `count` empty files in directory `dir` (what makes mksquashfs -tar quadratic). */
function wideLayer(count: number, dir = 'd'): PackLayer {
  return layerFile(Array.from({ length: count }, (_, i) => ({ path: `${dir}/f${i}`, data: Buffer.alloc(0) })));
}

test(
  'entries per directory are bounded (by default 16384), counted ' + 'in the result across layers, implied directories included',
  async () => {
    const big = wideLayer(16_385, 'usr/lib');
    const out = join(work, `wide-${++n}.sqfs`);
    await assert.rejects(packLayers([big], out), (e: Error) => {
      assert.match(
        e.message,
        new RegExp(`layer 1/1 \\(${big.digest}\\): directory "usr/lib" has more than 16384 entries \\(the limit per directory\\)`),
      );
      return true;
    });
    const limits = { maxDirEntries: 16 };
    // Split over two layers, the merged directory is what mksquashfs sees.
    const lower = layerFile(Array.from({ length: 9 }, (_, i) => ({ path: `d/a${i}`, data: txt('') })));
    const upper = layerFile(Array.from({ length: 8 }, (_, i) => ({ path: `d/b${i}`, data: txt('') })));
    await assert.rejects(
      packLayers([lower, upper], join(work, `wide-${++n}.sqfs`), { limits }),
      new RegExp(`layer 1/2 \\(${lower.digest}\\): directory "d" has more than 16`),
    );
    // Directories no layer defines count in their parent; the root is "/".
    await assert.rejects(
      packLayers(
        [layerFile(Array.from({ length: 17 }, (_, i) => ({ path: `p/x${i}/f`, data: txt('') })))],
        join(work, `wide-${++n}.sqfs`),
        { limits },
      ),
      /directory "p" has more than 16/,
    );
    await assert.rejects(
      packLayers([layerFile(Array.from({ length: 17 }, (_, i) => ({ path: `r${i}`, data: txt('') })))], join(work, `wide-${++n}.sqfs`), {
        limits,
      }),
      /directory "\/" has more than 16/,
    );
    // Entries replaced or whited out above do not count twice; exactly the limit packs.
    const replaced = layerFile(Array.from({ length: 16 }, (_, i) => ({ path: `d/a${i}`, data: txt('new') })));
    await packLayers([lower, replaced], join(work, `wide-${++n}.sqfs`), { limits: { maxDirEntries: 25 } });
    await packLayers(
      [layerFile(Array.from({ length: 16 }, (_, i) => ({ path: `d/a${i}`, data: txt('') })))],
      join(work, `wide-${++n}.sqfs`),
      { limits },
    );
  },
);

test('the union keeps at most 256 MiB of paths by default: 4 KB paths are refused after about 65k entries, not at 1M', () => {
  let refused: Error | undefined;
  let count = 0;
  const union = new LayerUnion(() => undefined);
  const sink = union.layer(0, `layer 1/1 (sha256:${'1'.repeat(64)})`);
  const tail = 'x'.repeat(4000);
  try {
    for (; count < 200_000; count++) {
      // Spread over directories, so that the per-directory bound is not what stops it.
      sink.entry({ path: `a${count >> 10}/b${count & 1023}/${tail}`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 });
      sink.end();
    }
  } catch (e) {
    refused = e as Error;
  }
  assert.match(refused?.message ?? 'not refused', /layer 1\/1 \(sha256:1{64}\): ".*": the image's paths exceed 268435456 bytes in all/);
  assert.ok(count > 60_000 && count < 70_000, `refused at entry ${count}`);
});

/** The pid of the mksquashfs writing `out`, once it runs. */
async function mksquashfsFor(out: string): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const pids = execFileSync('pgrep', ['-f', `mksquashfs - ${out} `], { encoding: 'utf8' })
      .toString()
      .trim()
      .split('\n')
      .filter(Boolean);
    if (pids.length) return Number(pids[0]);
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`no mksquashfs for ${out}`);
}

function running(out: string): boolean {
  try {
    execFileSync('pgrep', ['-f', `mksquashfs - ${out} `]);
    return true;
  } catch {
    return false;
  }
}

test('a pack runs niced, and past its wall-clock limit mksquashfs is killed and the error says so', async () => {
  // About 5 s of mksquashfs CPU: one directory of 32k entries.
  const layer = wideLayer(32_000);
  const out = join(work, `slow-${++n}.sqfs`);
  const packing = packLayers([layer], out, { timeoutMs: 400, limits: { maxDirEntries: 40_000 } });
  packing.catch(() => undefined);
  const pid = await mksquashfsFor(out);
  assert.equal(
    execFileSync('ps', ['-o', 'ni=', '-p', String(pid)])
      .toString()
      .trim(),
    '19',
  );
  await assert.rejects(packing, /packing took longer than the 0.4 s limit \(pack timeout\): mksquashfs was killed/);
  assert.equal(running(out), false, 'mksquashfs is gone');
});

test('a pack past its CPU limit is stopped by the kernel (RLIMIT_CPU), and the error says so', async () => {
  const out = join(work, `cpu-${++n}.sqfs`);
  // About 5 s of mksquashfs CPU: one directory of 32k entries.
  await assert.rejects(
    packLayers([wideLayer(32_000)], out, { cpuSeconds: 1, limits: { maxDirEntries: 40_000 } }),
    /mksquashfs used up its CPU limit of 1 s \(RLIMIT_CPU\) and was stopped/,
  );
  assert.equal(running(out), false);
});

test('global pax records are bounded: each entry gets a copy of them', async () => {
  const record = (k: string, v: string) => {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    return `${len}${body}`;
  };
  const globalHeader = (keys: number) => {
    const body = Buffer.from(Array.from({ length: keys }, (_, i) => record(`comment${i}`, 'x')).join(''));
    const h = encodeHeader({ path: 'pax_global_header', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: body.length });
    h[156] = 'g'.charCodeAt(0);
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
    return Buffer.concat([h, body, tarPadding(body.length)]);
  };
  const withGlobal = (keys: number) => layerFile(Buffer.concat([globalHeader(keys), buildTar([{ path: 'f', data: txt('f') }])]));
  // git archive writes one such record; 64 keys pass, 65 do not.
  await packLayers([withGlobal(64)], join(work, `g-${++n}.sqfs`));
  assert.match(await packError([withGlobal(65)]), /layer sha256:[0-9a-f]{64}: entry 1: global pax records hold more than 64 keys/);
});

test('decompressed bytes that are not content are bounded: a small blob cannot be gunzipped without end', async () => {
  const tar = buildTar([{ path: 'f', data: Buffer.alloc(100_000, 1) }]);
  // 3 MiB of zeros after the end of the archive: a 3 KB gzip blob.
  const bomb = layerFile(Buffer.concat([tar, Buffer.alloc(3 * 2 ** 20)]));
  const out = join(work, `bomb-${++n}.sqfs`);
  await assert.rejects(
    packLayers([bomb], out, { limits: { maxOverheadBytes: 2 ** 20 } }),
    new RegExp(`layer ${bomb.digest}: more than 1048576 bytes that are not file content`),
  );
  // File content does not count: the same limit takes 100 KB of content and its headers.
  await packLayers([layerFile(tar)], join(work, `bomb-${++n}.sqfs`), { limits: { maxOverheadBytes: 8192 } });
});
