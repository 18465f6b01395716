// The image cache against a real registry (Debian's docker-registry on 127.0.0.1) with images these
// tests build and push; every squashfs is checked with the real unsquashfs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, tamperBlob, type Registry } from '../../test/registry.js';
import { buildImage, buildIndex, pushImage, pushIndex, writeDockerSave, writeOciLayout, type BuiltImage } from '../../test/oci-images.js';
import { fileURLToPath } from 'node:url';
import { buildTar } from '../../lib/tar.js';
import { CredentialStore } from '../../lib/oci/credentials.js';
import { importImage } from './import.js';
import { ImageStore } from './store.js';
import { type PullEvent } from '../../contracts/agent-api/types.js';

const txt = (s: string) => Buffer.from(s);
const work = mkdtempSync(join(tmpdir(), 'krata-store-test-'));
let reg: Registry;
let n = 0;
const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex');

/** A three-layer image: whiteouts, an opaque dir, cross-layer hardlinks, a capability, a user, a zstd layer. */
function appImage(variant = 'app'): BuiltImage {
  return buildImage({
    layers: [
      {
        compression: 'gzip',
        tar: buildTar([
          { path: 'bin/', type: 'dir' },
          { path: 'bin/busybox', data: txt('busybox'), mode: 0o755 },
          { path: 'bin/sh', type: 'hardlink', linkname: 'bin/busybox' },
          { path: 'etc/passwd', data: txt('root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n') },
          { path: 'etc/old.conf', data: txt('old') },
          { path: 'var/cache/a', data: txt('a') },
          { path: 'var/cache/b', data: txt('b') },
        ]),
      },
      {
        compression: 'zstd',
        tar: buildTar([
          { path: 'etc/.wh.old.conf', data: txt('') },
          { path: 'var/cache/', type: 'dir', mode: 0o700 },
          { path: 'var/cache/.wh..wh..opq', data: txt('') },
          { path: 'var/cache/c', data: txt('c') },
          { path: 'bin/ls', type: 'hardlink', linkname: 'bin/busybox' },
          { path: 'usr/bin/ping', data: txt('ping'), mode: 0o755, xattrs: { 'security.capability': CAP } },
        ]),
      },
      {
        compression: 'gzip',
        tar: buildTar([
          { path: 'home/app/', type: 'dir', uid: 1000, gid: 1000, mode: 0o750 },
          { path: 'home/app/hello', data: txt(variant), uid: 1000, gid: 1000 },
        ]),
      },
    ],
    config: { User: 'app', Env: ['PATH=/bin:/usr/bin'], Cmd: ['/bin/sh'], WorkingDir: '/home/app' },
  });
}

function newStore(extra: Partial<ConstructorParameters<typeof ImageStore>[0]['registry']> = {}): ImageStore {
  const store = new ImageStore({ root: join(work, `store-${++n}`), registry: { insecure: [reg.host], ...extra } });
  store.recover();
  return store;
}

function tree(sqfs: string): string[] {
  return execFileSync('unsquashfs', ['-lln', sqfs])
    .toString()
    .trim()
    .split('\n')
    .filter((l) => l.includes('squashfs-root/'))
    .map((l) => {
      const m = /^(\S+) (\S+)\s+(\d+|\d+,\s*\d+) \S+ \S+ squashfs-root\/(.*)$/.exec(l)!;
      return `${m[1]} ${m[2]} ${m[4]}`;
    });
}

before(async () => {
  reg = await startRegistry();
});
after(async () => {
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

test('pull: layers merged (whiteouts, opaque dir, hardlinks, capability, owners), config kept, progress reported', async () => {
  const img = appImage();
  await pushImage(reg, 'test/app', 'v1', img);
  const store = newStore();
  const events: PullEvent[] = [];
  const got = await store.pull(`${reg.host}/test/app:v1`, { onEvent: (e) => events.push(e) });
  assert.equal(got.digest, img.manifestDigest);
  assert.deepEqual(got.names, [`${reg.host}/test/app:v1`]);
  assert.equal(got.config.config.User, 'app');
  assert.deepEqual(got.config.config.Cmd, ['/bin/sh']);
  assert.equal(got.config.config.WorkingDir, '/home/app');
  assert.deepEqual(tree(got.path), [
    'drwxr-xr-x 0/0 bin',
    '-rwxr-xr-x 0/0 bin/busybox',
    '-rwxr-xr-x 0/0 bin/ls',
    '-rwxr-xr-x 0/0 bin/sh',
    'drwxr-xr-x 0/0 etc',
    '-rw-r--r-- 0/0 etc/passwd',
    'drwxr-xr-x 0/0 home',
    'drwxr-x--- 1000/1000 home/app',
    '-rw-r--r-- 1000/1000 home/app/hello',
    'drwxr-xr-x 0/0 usr',
    'drwxr-xr-x 0/0 usr/bin',
    '-rwxr-xr-x 0/0 usr/bin/ping',
    'drwxr-xr-x 0/0 var',
    'drwx------ 0/0 var/cache',
    '-rw-r--r-- 0/0 var/cache/c',
  ]);
  const x = join(work, `x-${++n}`);
  execFileSync('unsquashfs', ['-q', '-d', x, got.path], { stdio: 'ignore' });
  assert.equal(statSync(join(x, 'bin/ls')).ino, statSync(join(x, 'bin/busybox')).ino);
  assert.equal(statSync(join(x, 'bin/busybox')).nlink, 3);
  const cap = execFileSync('python3', [
    '-c',
    'import os,sys; sys.stdout.buffer.write(os.getxattr(sys.argv[1], "security.capability"))',
    join(x, 'usr/bin/ping'),
  ]);
  assert.deepEqual(cap, CAP);
  // Progress: every layer downloaded to its full size and unpacked.
  for (const l of img.layers) {
    const last = events.filter((e): e is Extract<PullEvent, { kind: 'download' }> => e.kind === 'download' && e.layer === l.digest).at(-1);
    assert.equal(last?.bytes, l.size);
    assert.ok(events.some((e) => e.kind === 'unpacked' && e.layer === l.digest));
  }
  assert.equal(events.at(-1)?.kind, 'done');
  // A second pull is a cache hit; by digest it needs no registry at all.
  const again: PullEvent[] = [];
  assert.equal((await store.pull(`${reg.host}/test/app:v1`, { onEvent: (e) => again.push(e) })).digest, img.manifestDigest);
  assert.deepEqual(
    again.map((e) => e.kind),
    ['cached'],
  );
  const offline = new ImageStore({ root: store.imagesDir, registry: { insecure: ['127.0.0.1:1'] } });
  assert.equal((await offline.pull(`127.0.0.1:1/test/app@${img.manifestDigest}`)).digest, img.manifestDigest);
});

test('pull: a two-platform index gives the host platform, or the one asked for', async () => {
  const amd = appImage('amd64');
  const arm = buildImage({
    layers: [{ compression: 'gzip', tar: buildTar([{ path: 'arch', data: txt('arm64') }]) }],
    architecture: 'arm64',
    variant: 'v8',
  });
  const index = buildIndex([
    { image: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { image: amd, platform: { os: 'linux', architecture: 'amd64' } },
  ]);
  await pushIndex(reg, 'test/multi', 'latest', [arm, amd], index);
  assert.equal((await newStore().pull(`${reg.host}/test/multi`)).digest, amd.manifestDigest);
  const armImg = await newStore({ platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }).pull(`${reg.host}/test/multi`);
  assert.equal(armImg.digest, arm.manifestDigest);
  assert.deepEqual(tree(armImg.path), ['-rw-r--r-- 0/0 arch']);
  await assert.rejects(
    newStore({ platform: { os: 'linux', architecture: 's390x' } }).pull(`${reg.host}/test/multi`),
    /linux\/arm64\/v8, linux\/amd64/,
  );
  // Docker's media types (schema 2 manifest list and manifest) work the same way.
  const dockerAmd = buildImage({
    layers: [{ compression: 'gzip', tar: buildTar([{ path: 'docker', data: txt('v2') }]) }],
    mediaTypes: 'docker',
  });
  const dockerList = buildIndex([{ image: dockerAmd, platform: { os: 'linux', architecture: 'amd64' } }], 'docker');
  await pushIndex(reg, 'test/docker', 'latest', [dockerAmd], dockerList);
  const fromDocker = await newStore().pull(`${reg.host}/test/docker`);
  assert.equal(fromDocker.digest, dockerAmd.manifestDigest);
  assert.deepEqual(tree(fromDocker.path), ['-rw-r--r-- 0/0 docker']);
});

test('pull: a tampered blob is refused and nothing is cached or left behind', async () => {
  const img = appImage('tampered');
  await pushImage(reg, 'test/tampered', 'v1', img);
  tamperBlob(reg, img.layers[2]!.digest);
  const store = newStore();
  await assert.rejects(
    store.pull(`${reg.host}/test/tampered:v1`),
    new RegExp(`blob ${img.layers[2]!.digest} .* does not match its digest .*refused`),
  );
  assert.deepEqual(store.list(), []);
  assert.deepEqual(
    readdirSync(store.imagesDir).filter((f) => f !== '.partial'),
    [],
  );
  assert.deepEqual(readdirSync(store.tmpDir), []);
  // The top layer fails while the lower ones are still downloading: they stop, nothing writes into
  // the removed work directory (that used to be an unhandled ENOENT that killed the process).
  const tall = buildImage({
    layers: [
      ...Array.from({ length: 6 }, (_, i) => ({
        compression: 'gzip' as const,
        tar: buildTar([{ path: `l${i}`, data: randomBytes(3_000_000) }]),
      })),
      { compression: 'gzip', tar: buildTar([{ path: 'top', data: txt('top') }]) },
    ],
  });
  await pushImage(reg, 'test/tall', 'v1', tall);
  tamperBlob(reg, tall.layers[6]!.digest);
  const tallStore = newStore({ concurrency: 2 });
  await assert.rejects(tallStore.pull(`${reg.host}/test/tall:v1`), /does not match its digest/);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(readdirSync(tallStore.tmpDir), []);
  // A mirror serving tampered content is passed over for the registry itself.
  const good = appImage('mirrored');
  await pushImage(reg, 'test/mirrored', 'v1', good);
  const mirror = await startRegistry();
  try {
    await pushImage(mirror, 'test/mirrored', 'v1', good);
    tamperBlob(mirror, good.layers[0]!.digest);
    const s = newStore({ insecure: [reg.host, mirror.host], mirrors: { [reg.host]: [mirror.url] } });
    assert.equal((await s.pull(`${reg.host}/test/mirrored:v1`)).digest, good.manifestDigest);
  } finally {
    await mirror.stop();
  }
});

test('pull: mirrors come first; a registry that is down is not needed', async () => {
  const mirror = await startRegistry();
  try {
    const img = appImage('from-mirror');
    await pushImage(mirror, 'library/thing', '1', img);
    const store = newStore({ insecure: [mirror.host, '127.0.0.1:9'], mirrors: { '127.0.0.1:9': [mirror.url] }, attempts: 1 });
    assert.equal((await store.pull('127.0.0.1:9/library/thing:1')).digest, img.manifestDigest);
    await assert.rejects(
      newStore({ insecure: ['127.0.0.1:9'], attempts: 2 }).pull('127.0.0.1:9/library/thing:1'),
      /cannot reach http:\/\/127\.0\.0\.1:9/,
    );
  } finally {
    await mirror.stop();
  }
  assert.throws(
    () => newStore({ mirrors: { 'docker.io': ['http://10.0.0.1:5000'] } }),
    /uses http, but 10\.0\.0\.1:5000 is not listed as an insecure registry/,
  );
});

test('pull: an htpasswd-protected repository needs credentials (docker config.json or a pull secret)', async () => {
  const secure = await startRegistry({ htpasswd: { username: 'krata', password: 's3cret' } });
  try {
    const img = appImage('private');
    await pushImage(secure, 'private/app', 'v1', img, { username: 'krata', password: 's3cret' });
    const ref = `${secure.host}/private/app:v1`;
    await assert.rejects(newStore({ insecure: [secure.host] }).pull(ref), /requires a username and password/);
    const wrong = CredentialStore.fromDockerConfig(
      JSON.stringify({ auths: { [secure.host]: { auth: Buffer.from('krata:nope').toString('base64') } } }),
      'config.json',
    );
    await assert.rejects(
      newStore({ insecure: [secure.host], credentials: wrong }).pull(ref),
      /access denied \(the credentials were refused\)/,
    );
    const docker = CredentialStore.fromDockerConfig(
      JSON.stringify({ auths: { [`http://${secure.host}/v2/`]: { auth: Buffer.from('krata:s3cret').toString('base64') } } }),
      'config.json',
    );
    assert.equal((await newStore({ insecure: [secure.host], credentials: docker }).pull(ref)).digest, img.manifestDigest);
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/dockerconfigjson',
      data: {
        '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { [secure.host]: { username: 'krata', password: 's3cret' } } })).toString(
          'base64',
        ),
      },
    };
    assert.equal(
      (await newStore({ insecure: [secure.host], credentials: CredentialStore.fromPullSecret(secret, 'secret') }).pull(ref)).digest,
      img.manifestDigest,
    );
  } finally {
    await secure.stop();
  }
});

test('concurrent pulls of one image share one job', async () => {
  const img = appImage('shared');
  await pushImage(reg, 'test/shared', 'v1', img);
  await pushImage(reg, 'test/shared', 'alias', img);
  const store = newStore();
  let packs = 0;
  const pack = store.pack.bind(store);
  store.pack = async (...args) => {
    packs++;
    return pack(...args);
  };
  const results = await Promise.all([
    store.pull(`${reg.host}/test/shared:v1`),
    store.pull(`${reg.host}/test/shared:v1`),
    store.pull(`${reg.host}/test/shared:alias`),
  ]);
  assert.equal(packs, 1);
  assert.ok(results.every((r) => r.digest === img.manifestDigest));
  assert.deepEqual(
    store.list().map((i) => i.names.sort()),
    [[`${reg.host}/test/shared:alias`, `${reg.host}/test/shared:v1`]],
  );
});

test('kill -9 in the middle of a pull never leaves an image that is served; recover() removes the leftovers', async () => {
  // A big layer, so that the pull is still running when it is killed.
  const big = buildImage({
    layers: [
      {
        compression: 'gzip',
        tar: buildTar(
          Array.from({ length: 40 }, (_, i) => ({ path: `data/f${i}`, data: execFileSync('head', ['-c', '1000000', '/dev/urandom']) })),
        ),
      },
    ],
  });
  await pushImage(reg, 'test/big', 'v1', big);
  const state = join(work, `state-${++n}`);
  const root = join(state, 'images');
  for (let attempt = 0; attempt < 3; attempt++) {
    const main = fileURLToPath(new URL('../main.js', import.meta.url));
    const child = spawn(
      process.execPath,
      [main, 'image', 'pull', '--state', state, '--insecure-registry', reg.host, `${reg.host}/test/big:v1`],
      { stdio: 'ignore' },
    );
    // Kill it as soon as the job has written something.
    let started = false;
    for (let i = 0; i < 1000 && !started && child.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 5));
      const partial = join(root, '.partial');
      started = existsSync(partial) && readdirSync(partial).some((d) => readdirSync(join(partial, d)).length > 0);
    }
    const exited = new Promise((r) => (child.exitCode !== null ? r(undefined) : child.on('exit', r)));
    child.kill('SIGKILL');
    await exited;
    assert.ok(started, 'the pull had started writing when it was killed');
    assert.equal(child.signalCode, 'SIGKILL', 'the pull was killed, not finished');
    const store = new ImageStore({ root });
    assert.equal(store.get(big.manifestDigest), undefined, 'the killed pull left no committed image');
    store.recover();
    assert.deepEqual(
      readdirSync(root).filter((f) => f !== '.partial' && f !== '.lock'),
      [],
      'nothing but the cache lock file',
    );
    assert.deepEqual(readdirSync(join(root, '.partial')), []);
  }
  const store = new ImageStore({ root, registry: { insecure: [reg.host] } });
  assert.equal((await store.pull(`${reg.host}/test/big:v1`)).digest, big.manifestDigest);
});

test('recover() removes committed images whose files disagree (a torn squashfs or metadata), and keeps the rest', async () => {
  const root = join(work, `torn-${++n}`);
  const store = new ImageStore({ root, registry: { insecure: [reg.host] } });
  const imgs = ['a', 'b', 'c', 'd'].map((v) => appImage(`torn-${v}`));
  for (const [i, img] of imgs.entries()) await pushImage(reg, 'test/torn', `v${i}`, img);
  const pulled = [];
  for (let i = 0; i < 4; i++) pulled.push(await store.pull(`${reg.host}/test/torn:v${i}`));
  const [short, badMeta, noMagic] = pulled;
  truncateSync(short!.path, short!.size - 1);
  writeFileSync(join(root, `sha256-${badMeta!.digest.slice(7)}.json`), '{"digest": "sha256:');
  const fd = openSync(noMagic!.path, 'r+');
  writeSync(fd, Buffer.from('\0\0\0\0'), 0, 4, 0);
  closeSync(fd);
  const r = new ImageStore({ root }).recover();
  assert.equal(r.damaged.length, 3, r.damaged.join('\n'));
  assert.match(
    r.damaged.find((d) => d.includes(short!.digest.slice(7)))!,
    /the squashfs has \d+ bytes, the metadata says \d+/,
  );
  assert.match(
    r.damaged.find((d) => d.includes(badMeta!.digest.slice(7)))!,
    /unreadable metadata/,
  );
  assert.match(
    r.damaged.find((d) => d.includes(noMagic!.digest.slice(7)))!,
    /squashfs magic/,
  );
  assert.deepEqual(
    new ImageStore({ root }).list().map((i) => i.digest),
    [pulled[3]!.digest],
  );
  const kept = `sha256-${pulled[3]!.digest.slice(7)}`;
  assert.deepEqual(
    readdirSync(root).filter((f) => !f.startsWith('.') && !f.includes(kept)),
    [],
    'nothing of the damaged images is left',
  );
  assert.deepEqual(new ImageStore({ root }).recover(), { removed: [], damaged: [] }, 'a second recover finds nothing');
});

test('gc: removes unused images, least recently used first, down to the budget', async () => {
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const store = new ImageStore({ root: join(work, `gc-${++n}`), registry: { insecure: [reg.host] }, now: () => new Date((clock += 1000)) });
  const imgs = ['a', 'b', 'c'].map((v) => appImage(`gc-${v}`));
  for (const [i, img] of imgs.entries()) await pushImage(reg, 'test/gc', `v${i}`, img);
  for (let i = 0; i < 3; i++) await store.pull(`${reg.host}/test/gc:v${i}`);
  await store.pull(`${reg.host}/test/gc:v0`); // v0 used most recently now
  const size = store.list()[0]!.size;
  const r = store.gc(new Set([imgs[1]!.manifestDigest]), size * 2);
  assert.deepEqual(
    r.removed.map((i) => i.digest),
    [imgs[2]!.manifestDigest],
    'v1 is in use, v2 is least recently used',
  );
  assert.equal(store.list().length, 2);
  const all = store.gc(new Set([imgs[1]!.manifestDigest]), 0);
  assert.deepEqual(
    all.removed.map((i) => i.digest),
    [imgs[0]!.manifestDigest],
  );
  assert.throws(() => store.remove(`${reg.host}/test/gc:v1`, new Set([imgs[1]!.manifestDigest])), /used by a Guest/);
  assert.equal(store.remove(imgs[1]!.manifestDigest.slice(7, 19)).digest, imgs[1]!.manifestDigest);
  assert.deepEqual(store.list(), []);
});

test('import: an OCI layout directory and a docker save tarball give the same tree as a pull', async () => {
  const img = appImage('offline');
  const layout = join(work, `layout-${++n}`);
  writeOciLayout(layout, img, 'example.com/offline/app:1.0');
  const store = newStore();
  const fromLayout = await importImage(store, layout);
  assert.equal(fromLayout.digest, img.manifestDigest);
  assert.deepEqual(fromLayout.names, ['example.com/offline/app:1.0']);
  const saved = join(work, `save-${++n}.tar`);
  writeDockerSave(saved, img, ['offline/app:latest']);
  const fromSave = await importImage(store, saved);
  assert.deepEqual(fromSave.names, ['docker.io/offline/app:latest']);
  assert.deepEqual(tree(fromSave.path), tree(fromLayout.path));
  assert.equal(fromSave.config.config.User, 'app');
  // Importing what is cached adds the name, packs nothing.
  const again = await importImage(store, saved, { name: 'example.com/again:2' });
  assert.equal(again.digest, fromSave.digest);
  assert.ok(again.names.includes('example.com/again:2') && again.names.includes('docker.io/offline/app:latest'));
  // Tampering is caught offline too.
  const bad = join(work, `layout-${++n}`);
  writeOciLayout(bad, img);
  const blob = join(bad, 'blobs/sha256', img.layers[0]!.digest.slice(7));
  const bytes = readFileSync(blob);
  bytes[bytes.length - 1] ^= 0xff;
  writeFileSync(blob, bytes);
  await assert.rejects(importImage(newStore(), bad, { name: 'bad:1' }), /does not match its digest/);
  await assert.rejects(importImage(store, work), /neither an OCI image layout/);
});

/** A small tmpfs (root can mount one): a real full disk, without filling the host's. */
function smallDisk(size: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'krata-full-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
  process.on('exit', () => {
    spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Nothing of `store` but its empty .partial directory. */
function assertEmpty(store: ImageStore): void {
  assert.deepEqual(store.list(), []);
  assert.deepEqual(readdirSync(store.imagesDir), ['.partial']);
  assert.deepEqual(readdirSync(store.tmpDir), []);
}

/** An OCI layout (outside the store's disk) whose image packs to about `mb` MB: incompressible content. */
function bulkyLayout(mb: number, name: string): { layout: string; img: BuiltImage } {
  const img = buildImage({ layers: [{ compression: 'gzip', tar: buildTar([{ path: 'bulk', data: randomBytes(mb * 1_000_000) }]) }] });
  const layout = join(work, `layout-${++n}`);
  writeOciLayout(layout, img, name);
  return { layout, img };
}

test('a full disk is said by name: a pack or a download that runs out of space says ENOSPC, and leaves nothing', async () => {
  const disk = smallDisk('2m');
  const store = new ImageStore({ root: join(disk, 'images'), registry: { insecure: [reg.host] } });
  // The pack: mksquashfs runs out of space (it used to read "cannot decompress: write EPIPE").
  const { layout, img } = bulkyLayout(3, 'example.com/bulky:1');
  await assert.rejects(importImage(store, layout), (e: Error & { code?: string }) => {
    assert.match(
      e.message,
      new RegExp(
        `^no space left on device \\(ENOSPC\\) writing image ${img.manifestDigest} ` +
          `to ${store.imagesDir} \\(mksquashfs: .*No space left on device`,
      ),
    );
    assert.equal(e.code, 'ENOSPC');
    assert.doesNotMatch(e.message, /EPIPE|decompress/);
    return true;
  });
  assertEmpty(store);
  // The download: the blob does not fit (it used to be retried and reported as "cannot reach").
  await pushImage(reg, 'test/bulky', 'v1', img);
  await assert.rejects(store.pull(`${reg.host}/test/bulky:v1`), (e: Error & { code?: string }) => {
    assert.match(e.message, new RegExp(`^no space left on device \\(ENOSPC\\) writing image ${img.manifestDigest} to ${store.imagesDir}`));
    assert.doesNotMatch(e.message, /cannot reach/);
    assert.equal(e.code, 'ENOSPC');
    return true;
  });
  assertEmpty(store);
});

test('a metadata write that fails after the squashfs is in place leaves no orphaned squashfs and no temporary', async () => {
  const disk = smallDisk('4m');
  const { layout, img } = bulkyLayout(1, 'example.com/meta:1');
  let filled = false;
  // The clock is read between the squashfs's rename and the metadata write: fill the disk then.
  const store = new ImageStore({
    root: join(disk, 'images'),
    now: () => {
      if (!filled) {
        filled = true;
        const fd = openSync(join(disk, 'filler'), 'w');
        try {
          for (const chunk = Buffer.alloc(64 * 1024); ;) writeSync(fd, chunk);
        } catch (e) {
          assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
        } finally {
          closeSync(fd);
        }
      }
      return new Date();
    },
  });
  await assert.rejects(
    importImage(store, layout),
    new RegExp(`: no space left on device \\(ENOSPC\\) writing image ${img.manifestDigest} to ${store.imagesDir} \\(ENOSPC`),
  );
  assert.ok(filled, 'the disk filled after the pack');
  assertEmpty(store);
  assert.equal(store.get(img.manifestDigest), undefined);
  // With room again, the same import commits.
  rmSync(join(disk, 'filler'));
  assert.equal((await importImage(store, layout)).digest, img.manifestDigest);
});

test('a pack past its time limit is killed; the error says which bound; nothing is left in .partial', async () => {
  // About 5 s of mksquashfs CPU: one directory of 32k entries.
  const wide = buildImage({
    layers: [
      { compression: 'gzip', tar: buildTar(Array.from({ length: 32_000 }, (_, i) => ({ path: `wide/f${i}`, data: Buffer.alloc(0) }))) },
    ],
  });
  const layout = join(work, `layout-${++n}`);
  writeOciLayout(layout, wide, 'example.com/wide:1');
  const store = new ImageStore({ root: join(work, `store-${++n}`), packTimeoutMs: 300, limits: { maxDirEntries: 40_000 } });
  await assert.rejects(importImage(store, layout), /packing took longer than the 0\.3 s limit \(pack timeout\): mksquashfs was killed/);
  assertEmpty(store);
  assert.equal(spawnSync('pgrep', ['-f', `mksquashfs - ${store.tmpDir}`]).status, 1, 'no mksquashfs left running');
  // The per-directory bound comes from the store's options too.
  const narrow = new ImageStore({ root: join(work, `store-${++n}`), limits: { maxDirEntries: 1000 } });
  await assert.rejects(
    importImage(narrow, layout),
    new RegExp(`layer 1/1 \\(${wide.layers[0]!.digest}\\): directory "wide" has more than 1000 entries`),
  );
  assertEmpty(narrow);
});
