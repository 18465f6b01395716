// The image fixtures checked against tools that share no code with them: what buildImage/pushImage
// put into Debian's docker-registry must be what skopeo reads back, byte for byte, and the offline
// layouts must open in skopeo (and umoci). The puller's own tests trust these fixtures.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildTar } from '../lib/tar.js';
import { buildImage, buildIndex, pushImage, pushIndex, writeDockerSave, writeOciLayout, type BuiltImage } from './oci-images.js';
import { blobDataPath, startRegistry, tamperBlob, type Registry } from './registry.js';

const TIMEOUT = { timeout: 20_000 };

function skopeo(...args: string[]): string {
  return execFileSync('skopeo', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });
}

interface SkopeoInspect {
  Digest: string;
  Architecture: string;
  Os: string;
  Layers: string[];
  Env?: string[];
}

function inspect(ref: string, ...flags: string[]): SkopeoInspect {
  return JSON.parse(skopeo('inspect', ...flags, ref)) as SkopeoInspect;
}

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'krata-oci-test-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const baseLayer = buildTar([
  { path: 'etc' },
  { path: 'etc/hostname', data: Buffer.from('krata\n') },
  { path: 'bin' },
  { path: 'bin/busybox', data: Buffer.from('#!/bin/false\n'), mode: 0o755 },
  { path: 'bin/sh', type: 'symlink', linkname: 'busybox' },
]);
const appLayer = buildTar([
  { path: 'etc' },
  { path: 'etc/.wh.hostname', data: Buffer.alloc(0) },
  { path: 'srv' },
  { path: 'srv/app.conf', data: Buffer.from('answer = 42\n'), uid: 1000, gid: 1000 },
]);
// Big enough that the upload and the download take more than one chunk.
const bigLayer = buildTar([{ path: 'blob.bin', data: randomBytes(2 << 20) }]);

function twoLayerGzip(architecture = 'amd64', variant?: string): BuiltImage {
  return buildImage({
    layers: [
      { tar: baseLayer, compression: 'gzip' },
      { tar: appLayer, compression: 'gzip' },
    ],
    config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'], WorkingDir: '/srv' },
    architecture,
    ...(variant !== undefined && { variant }),
  });
}

let reg: Registry;
before(async () => {
  reg = await startRegistry();
});
after(async () => {
  await reg?.stop();
});

test('a two-layer gzip image comes back from the registry as built', TIMEOUT, async () => {
  const img = twoLayerGzip();
  await pushImage(reg, 'krata/gzip', 'v1', img);
  const ref = `docker://${reg.host}/krata/gzip:v1`;
  assert.equal(skopeo('inspect', '--tls-verify=false', '--raw', ref), img.manifest.toString());
  const info = inspect(ref, '--tls-verify=false');
  assert.equal(info.Digest, img.manifestDigest);
  assert.deepEqual(
    info.Layers,
    img.layers.map((l) => l.digest),
  );
  assert.equal(info.Architecture, 'amd64');
  assert.deepEqual(info.Env, ['PATH=/bin']);

  const layer = img.layers[1]!;
  const res = await fetch(`${reg.url}/v2/krata/gzip/blobs/${layer.digest}`);
  assert.equal(res.status, 200);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), layer.data);
  // The registry stores the blob where blobDataPath says (tamperBlob relies on it).
  assert.deepEqual(readFileSync(blobDataPath(reg, layer.digest)), layer.data);
});

test('a zstd layer image and a docker-media-type image push and inspect', TIMEOUT, async () => {
  const zstd = buildImage({
    layers: [
      { tar: bigLayer, compression: 'zstd' },
      { tar: appLayer, compression: 'none' },
    ],
  });
  assert.equal(zstd.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  assert.deepEqual(zstd.layers[0]!.data.subarray(0, 4), Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), 'zstd frame magic');
  await pushImage(reg, 'krata/zstd', 'latest', zstd);
  const ref = `docker://${reg.host}/krata/zstd:latest`;
  assert.equal(skopeo('inspect', '--tls-verify=false', '--raw', ref), zstd.manifest.toString());
  assert.equal(inspect(ref, '--tls-verify=false').Digest, zstd.manifestDigest);
  const res = await fetch(`${reg.url}/v2/krata/zstd/blobs/${zstd.layers[0]!.digest}`);
  assert.equal(sha256Hex(Buffer.from(await res.arrayBuffer())), zstd.layers[0]!.digest.slice(7));

  const docker = buildImage({ layers: [{ tar: baseLayer, compression: 'gzip' }], mediaTypes: 'docker' });
  assert.equal(docker.manifestMediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  await pushImage(reg, 'krata/docker', 'v1', docker);
  assert.equal(inspect(`docker://${reg.host}/krata/docker:v1`, '--tls-verify=false').Digest, docker.manifestDigest);
  assert.throws(() => buildImage({ layers: [{ tar: baseLayer, compression: 'zstd' }], mediaTypes: 'docker' }), /zstd/);
});

test('an index of two platforms is served under its tag, each platform resolvable', TIMEOUT, async () => {
  const amd64 = twoLayerGzip('amd64');
  const arm64 = twoLayerGzip('arm64', 'v8');
  const index = buildIndex([
    { image: amd64, platform: { os: 'linux', architecture: 'amd64' } },
    { image: arm64, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ]);
  await pushIndex(reg, 'krata/multi', 'v1', [amd64, arm64], index);
  const ref = `docker://${reg.host}/krata/multi:v1`;
  assert.equal(skopeo('inspect', '--tls-verify=false', '--raw', ref), index.index.toString());
  const arm = JSON.parse(
    skopeo('--override-arch', 'arm64', '--override-variant', 'v8', 'inspect', '--tls-verify=false', '--config', ref),
  ) as { architecture: string };
  assert.equal(arm.architecture, 'arm64');
  // Each platform's manifest is in the repository by digest.
  const res = await fetch(`${reg.url}/v2/krata/multi/manifests/${arm64.manifestDigest}`, { headers: { Accept: arm64.manifestMediaType } });
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), arm64.manifest);
});

test('tamperBlob makes the registry serve bytes that do not match the digest', TIMEOUT, async () => {
  const img = twoLayerGzip();
  await pushImage(reg, 'krata/tampered', 'v1', img);
  const layer = img.layers[0]!;
  tamperBlob(reg, layer.digest);
  const res = await fetch(`${reg.url}/v2/krata/tampered/blobs/${layer.digest}`);
  assert.equal(res.status, 200);
  const served = Buffer.from(await res.arrayBuffer());
  assert.equal(served.length, layer.size);
  assert.notEqual(sha256Hex(served), layer.digest.slice(7));
});

test('with htpasswd: anonymous requests get 401, an authenticated push works', TIMEOUT, async () => {
  const creds = { username: 'krata', password: 's3cret pass' };
  const authReg = await startRegistry({ htpasswd: creds });
  try {
    assert.equal((await fetch(`${authReg.url}/v2/`)).status, 401);
    const img = twoLayerGzip();
    await assert.rejects(pushImage(authReg, 'krata/private', 'v1', img), /401/);
    await assert.rejects(pushImage(authReg, 'krata/private', 'v1', img, { ...creds, password: 'wrong' }), /401/);
    await pushImage(authReg, 'krata/private', 'v1', img, creds);
    const ref = `docker://${authReg.host}/krata/private:v1`;
    const info = inspect(ref, '--tls-verify=false', '--creds', `${creds.username}:${creds.password}`);
    assert.equal(info.Digest, img.manifestDigest);
    assert.throws(() => inspect(ref, '--tls-verify=false', '--no-creds'), /unauthorized|401|authentication/i);
  } finally {
    await authReg.stop();
  }
  assert.equal(existsSync(authReg.dataDir), false, 'stop() removes the storage');
});

test('writeOciLayout writes a layout skopeo and umoci open', TIMEOUT, () => {
  const img = twoLayerGzip();
  withTempDir((dir) => {
    const layout = join(dir, 'layout');
    writeOciLayout(layout, img, 'v1');
    const info = inspect(`oci:${layout}:v1`);
    assert.equal(info.Digest, img.manifestDigest);
    assert.deepEqual(
      info.Layers,
      img.layers.map((l) => l.digest),
    );
    const stat = JSON.parse(execFileSync('umoci', ['stat', '--json', '--image', `${layout}:v1`], { encoding: 'utf8' })) as {
      history: unknown[];
    };
    assert.equal(stat.history.length, 2);
  });
});

test('writeDockerSave writes an archive skopeo opens, layers uncompressed', TIMEOUT, () => {
  const img = buildImage({
    layers: [
      { tar: baseLayer, compression: 'gzip' },
      { tar: bigLayer, compression: 'zstd' },
    ],
  });
  withTempDir((dir) => {
    const file = join(dir, 'image.tar');
    writeDockerSave(file, img, ['example.com:5000/krata/saved:v1']);
    const info = inspect(`docker-archive:${file}`);
    // docker-archive layers are the tars themselves: their digests are the diff IDs.
    assert.deepEqual(
      info.Layers,
      img.layers.map((l) => l.diffId),
    );
    assert.equal(info.Architecture, 'amd64');
    assert.equal(inspect(`docker-archive:${file}:example.com:5000/krata/saved:v1`).Architecture, 'amd64');
  });
});
