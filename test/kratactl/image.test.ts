// kratactl image pull|import|ls|rm|prune, run in-process against a real registry (Debian's
// docker-registry on 127.0.0.1) with a store in a temporary directory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type Registry } from '../registry.js';
import { buildImage, pushImage, writeOciLayout, type BuiltImage } from '../oci-images.js';
import { kratactl as cli, type CliResult } from '../harness/kratactl.js';
import { buildTar } from '../../lib/tar.js';
import type { StoredImage } from '../../contracts/agent-api/types.js';
import { FakeAgentService } from '../doubles/fake-agent-service.js';
import { startApiServer } from '../../node-agent/api/server.js';

const work = mkdtempSync(join(tmpdir(), 'krata-image-cli-test-'));
const store = join(work, 'state');
// No ~/.docker/config.json of the machine's: HOME is an empty directory.
const env = { HOME: join(work, 'home') };
let reg: Registry;
let n = 0;

function image(text: string): BuiltImage {
  return buildImage({
    layers: [
      { compression: 'gzip', tar: buildTar([{ path: 'etc/', type: 'dir' }, { path: 'etc/motd', data: Buffer.from(text) }]) },
      { compression: 'zstd', tar: buildTar([{ path: 'srv/data', data: Buffer.from(`${text}\n`.repeat(1000)) }]) },
    ],
    config: { Cmd: ['/bin/sh'] },
  });
}

const short = (digest: string) => digest.slice('sha256:'.length, 'sha256:'.length + 12);

/** kratactl image ARGS against the test's store and registry. */
function kimage(args: string[], storeDir = store): Promise<CliResult> {
  const [sub, ...rest] = args;
  return cli(['image', sub!, '--store', storeDir, '--insecure-registry', reg.host, ...rest], { env });
}

async function listed(storeDir = store): Promise<StoredImage[]> {
  const r = await kimage(['ls', '-o', 'json'], storeDir);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StoredImage[];
}

const app = image('app');
const other = image('other');

before(async () => {
  reg = await startRegistry();
  await pushImage(reg, 'test/app', 'v1', app);
  await pushImage(reg, 'test/other', 'v1', other);
});
after(async () => {
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

test('image pull -q prints the digest and nothing else', async () => {
  const r = await kimage(['pull', '-q', `${reg.host}/test/app:v1`]);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `${app.manifestDigest}\n`);
});

test('image ls -o json lists the pulled image with its names, digest and path', async () => {
  const images = await listed();
  assert.equal(images.length, 1);
  const img = images[0]!;
  assert.deepEqual(img.names, [`${reg.host}/test/app:v1`]);
  assert.equal(img.digest, app.manifestDigest);
  assert.equal(img.format, 'squashfs');
  assert.equal(img.source, 'registry');
  assert.equal(img.path, join(store, 'images', `sha256-${app.manifestDigest.slice(7)}.squashfs`));
  assert.ok(existsSync(img.path));
  assert.ok(img.size > 0);
});

test('image ls prints a table: NAME, DIGEST (short), SIZE, LAST USED; -o wide adds the platform and path', async () => {
  const r = await kimage(['ls']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^NAME\s+DIGEST\s+SIZE\s+LAST USED$/);
  const [name, digest, ...rest] = lines[1]!.split(/\s{3,}/);
  assert.equal(name, `${reg.host}/test/app:v1`);
  assert.equal(digest, app.manifestDigest.slice(0, 19));
  assert.match(rest[0]!, /^\d+(\.\d)? (B|KiB|MiB)$/);
  assert.match(rest[1]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  // The columns line up: DIGEST starts where the digest does.
  assert.equal(lines[0]!.indexOf('DIGEST'), lines[1]!.indexOf(app.manifestDigest.slice(0, 19)));
  const wide = await kimage(['ls', '-o', 'wide']);
  assert.match(wide.stdout, /^NAME\s+DIGEST\s+SIZE\s+LAST USED\s+PLATFORM\s+PATH\n/);
  assert.ok(wide.stdout.includes(app.manifestDigest) && wide.stdout.includes('linux/amd64') && wide.stdout.includes('.squashfs'));
});

test('image pull of a missing tag exits 1 with "error: … not found"', async () => {
  const r = await kimage(['pull', '-q', `${reg.host}/test/app:missing`]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`^error: ${reg.host.replace(/\./g, '\\.')}/test/app:missing: .*HTTP 404: not found`));
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, 'one line, no stack trace');
});

test('image pull without -q reports progress on a non-terminal stderr, one line per step', async () => {
  const ref = `${reg.host}/test/other:v1`;
  const r = await kimage(['pull', ref]);
  assert.equal(r.code, 0, r.stderr);
  const total = other.layers.reduce((s, l) => s + l.size, 0);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines[0], `${ref}: ${other.manifestDigest}, 2 layers, ${(total / 1e6).toFixed(1)} MB`);
  for (const l of other.layers) {
    assert.ok(lines.includes(`${short(l.digest)}: downloaded ${(l.size / 1e6).toFixed(1)} MB`), `downloaded line for ${l.digest} in:\n${r.stderr}`);
    assert.ok(lines.includes(`${short(l.digest)}: unpacked`), `unpacked line for ${l.digest} in:\n${r.stderr}`);
  }
  assert.equal(lines.length, 1 + 2 * other.layers.length);
  assert.ok(!r.stderr.includes('\x1b'), 'no terminal escapes in line mode');
  assert.match(r.stdout, new RegExp(`^${ref.replace(/\./g, '\\.')} ${other.manifestDigest} \\d+(\\.\\d)? (B|KiB|MiB)\\n$`));
  // Again: a cache hit, said in one line.
  const again = await kimage(['pull', ref]);
  assert.equal(again.code, 0);
  assert.equal(again.stderr, `${ref}: ${other.manifestDigest} is cached\n`);
});

test('image rm NAME removes it; an unknown image exits 1', async () => {
  const r = await kimage(['rm', `${reg.host}/test/other:v1`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `removed ${reg.host}/test/other:v1 (${other.manifestDigest})\n`);
  assert.deepEqual((await listed()).map((i) => i.digest), [app.manifestDigest]);
  const missing = await kimage(['rm', `${reg.host}/test/other:v1`]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^error: no image .*test\/other:v1 in the cache\n$/);
});

test('image import of an OCI layout', async () => {
  const offline = image('offline');
  const layout = join(work, `layout-${++n}`);
  writeOciLayout(layout, offline, 'example.com/offline/app:1.0');
  const r = await kimage(['import', '-q', layout]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${offline.manifestDigest}\n`);
  const img = (await listed()).find((i) => i.digest === offline.manifestDigest);
  assert.deepEqual(img?.names, ['example.com/offline/app:1.0']);
  assert.equal(img?.source, 'import');
  // --name overrides the layout's name; an import with progress says what it unpacked.
  const renamed = join(work, `layout-${++n}`);
  const second = image('renamed');
  writeOciLayout(renamed, second);
  const named = await kimage(['import', '--name', 'example.com/renamed:2', renamed]);
  assert.equal(named.code, 0, named.stderr);
  assert.match(named.stderr, new RegExp(`^example\\.com/renamed:2: ${second.manifestDigest}, 2 layers`));
  assert.ok(named.stderr.includes(`${short(second.layers[0]!.digest)}: unpacked`));
  assert.match(named.stdout, new RegExp(`^example\\.com/renamed:2 ${second.manifestDigest} `));
  const bad = await kimage(['import', join(work, 'nothing-here')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: .*nothing-here: no such file or directory\n$/);
});

test('image prune --budget 0 removes every image', async () => {
  assert.ok((await listed()).length >= 2);
  const r = await kimage(['prune', '--budget', '0']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.ok(lines.slice(0, -1).every((l) => /^removed \S+ \(\d+(\.\d)? (B|KiB|MiB)\)$/.test(l)), r.stdout);
  assert.match(lines.at(-1)!, /^freed \d+(\.\d)? (B|KiB|MiB), cache holds 0 B$/);
  assert.deepEqual(await listed(), []);
  assert.equal((await kimage(['ls'])).stdout, 'NAME   DIGEST   SIZE   LAST USED\n');
});

test('image prune --budget keeps what fits', async () => {
  const dir = join(work, `state-${++n}`);
  assert.equal((await kimage(['pull', '-q', `${reg.host}/test/app:v1`], dir)).code, 0);
  const r = await kimage(['prune', '--budget', '1G'], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^freed 0 B, cache holds \d/);
  assert.equal((await listed(dir)).length, 1);
});

test('usage errors exit 2 and point to the usage text', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['prune', '--budget', 'lots'], /^error: --budget "lots" is not a size \(e\.g\. 500M, 20G\)\n/],
    [['frobnicate'], /^error: unknown image command "frobnicate" \(pull, import, ls, rm, prune\)\n/],
    [['ls', '-o', 'yaml'], /^error: --output must be table, wide or json, not "yaml"\n/],
    [['pull'], /^error: image pull takes one REFERENCE\n/],
    [['rm'], /^error: image rm takes one or more IMAGE/],
    [['ls', '--frob'], /^error: Unknown option '--frob'/],
  ];
  for (const [args, message] of cases) {
    const r = await kimage(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, message);
    assert.match(r.stderr, /Run 'kratactl image --help' for usage\.\n$/);
  }
  const none = await cli(['image'], { env });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^error: image needs a command: pull, import, ls, rm or prune\n/);
  const help = await cli(['image', '--help'], { env });
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Manage the host's image cache/);
  assert.match(help.stdout, /kratactl image prune \[--budget SIZE\]/);
});

test('image rm and prune leave alone what the node agent\'s Guests use', async () => {
  const dir = join(work, `state-${++n}`);
  const pulled = await kimage(['pull', '-q', `${reg.host}/test/app:v1`], dir);
  assert.equal(pulled.code, 0, pulled.stderr);
  const digest = pulled.stdout.trim();
  const service = new FakeAgentService();
  const socketPath = join(work, `agent-${n}.sock`);
  const server = await startApiServer(service, { socketPath });
  try {
    await service.apply([{ apiVersion: 'krata.dev/v1alpha1', kind: 'Guest', metadata: { name: 'user' }, spec: { image: `${reg.host}/test/app:v1` } } as never], false);
    service.setStatus('default', 'user', { phase: 'Running', imageDigest: digest });
    const prune = await kimage(['prune', '--budget', '0', '--agent', socketPath], dir);
    assert.equal(prune.code, 0, prune.stderr);
    assert.equal((await listed(dir)).length, 1, 'the image in use stays');
    const rm = await kimage(['rm', digest, '--agent', socketPath], dir);
    assert.equal(rm.code, 1);
    assert.match(rm.stderr, /used by a Guest/);
  } finally {
    await server.close();
  }
});
