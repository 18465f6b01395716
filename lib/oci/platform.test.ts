// Picking a manifest from an index: attestations skipped, variant compatibility per architecture,
// ties to the first entry, and errors that list what the index offers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatPlatform, hostPlatform, parsePlatform, PlatformError, selectManifest, type Platform } from './platform.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

interface Entry {
  platform?: { os: string; architecture: string; variant?: string; 'os.version'?: string };
  annotations?: Record<string, string>;
  mediaType?: string;
  digest: string;
}

let counter = 0;
/** An index entry for "os/arch[/variant]" with a distinct valid digest. */
function entry(platform: string, extra: Partial<Entry> = {}): Entry {
  const [os, architecture, variant] = platform.split('/') as [string, string, string?];
  const digest = `sha256:${(++counter).toString(16).padStart(64, '0')}`;
  return { mediaType: OCI_MANIFEST, digest, platform: { os, architecture, ...(variant ? { variant } : {}) }, ...extra };
}

function pick(manifests: Entry[], want: string): Entry {
  return selectManifest(manifests, parsePlatform(want), 'index ghcr.io/org/app:1');
}

test('hostPlatform maps process.arch to the OCI names', () => {
  assert.deepEqual(hostPlatform('x64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(hostPlatform('arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(hostPlatform('ia32'), { os: 'linux', architecture: '386' });
  assert.deepEqual(hostPlatform('arm'), { os: 'linux', architecture: 'arm' });
  assert.equal(hostPlatform().os, 'linux');
  assert.throws(() => hostPlatform('mips'), /^PlatformError: no image platform for process\.arch "mips" \(known: x64, arm64, ia32, arm\)$/);
  assert.throws(() => hostPlatform('constructor'), /process\.arch "constructor"/);
});

test('parsePlatform reads os/architecture[/variant], lowercase, and refuses anything else', () => {
  assert.deepEqual(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.equal(formatPlatform(parsePlatform('linux/arm/v7')), 'linux/arm/v7');
  assert.equal(formatPlatform({ os: 'linux', architecture: '386' }), 'linux/386');
  for (const bad of [
    'linux',
    'linux/',
    '/amd64',
    'linux/amd64/',
    'linux/arm64/v8/x',
    'Linux/amd64',
    'linux/amd 64',
    ' linux/amd64',
    'linux//amd64',
    '',
    'x/'.repeat(200),
  ]) {
    assert.throws(
      () => parsePlatform(bad),
      /is not "os\/architecture\[\/variant\]" in lowercase \(e\.g\. linux\/amd64, linux\/arm64\/v8\)/,
      bad,
    );
  }
  assert.throws(() => parsePlatform('linux/AMD64'), /^PlatformError: platform "linux\/AMD64" is not/);
  assert.throws(() => parsePlatform(7 as unknown as string), /platform number is not/);
});

test('attestations and unknown entries are skipped', () => {
  const attestation = entry('unknown/unknown', {
    annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': 'sha256:x' },
  });
  const annotated = entry('linux/amd64', { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } });
  const image = entry('linux/amd64', { annotations: { 'org.opencontainers.image.created': 'now' } });
  assert.equal(pick([attestation, annotated, image], 'linux/amd64'), image);
  // An attestation that claims the wanted platform is still not an image.
  assert.throws(
    () => pick([annotated], 'linux/amd64'),
    /no image for linux\/amd64; it lists no platform images \(1 attestation\/unknown entry skipped\)/,
  );
  const odd = [
    entry('unknown/unknown'),
    entry('linux/unknown'),
    { digest: `sha256:${'1'.repeat(64)}` },
    entry('linux/amd64', { mediaType: 'application/vnd.oci.image.index.v1+json' }),
    entry('linux/amd64', { mediaType: 'application/vnd.in-toto+json' }),
    { digest: 'x', platform: { os: 'linux', architecture: 5 } } as unknown as Entry,
    { digest: 'x', platform: { os: 'linux', architecture: 'amd64', variant: 3 } } as unknown as Entry,
    null as unknown as Entry,
  ];
  assert.throws(() => pick(odd, 'linux/amd64'), /it lists no platform images \(8 attestation\/unknown entries skipped\)/);
  const docker = entry('linux/amd64', { mediaType: 'application/vnd.docker.distribution.manifest.v2+json' });
  const untyped = entry('linux/amd64', { mediaType: undefined });
  assert.equal(pick([...odd, docker], 'linux/amd64'), docker);
  assert.equal(pick([...odd, untyped], 'linux/amd64'), untyped);
});

test('os and architecture must match', () => {
  const amd = entry('linux/amd64');
  const win = entry('windows/amd64', { platform: { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.1' } });
  assert.equal(pick([win, entry('linux/arm64/v8'), amd], 'linux/amd64'), amd);
  assert.equal(pick([win, amd], 'windows/amd64'), win);
  assert.throws(() => pick([entry('linux/386')], 'linux/amd64'), /no image for linux\/amd64; available: linux\/386$/);
});

test('arm64: an exact variant is best, a missing variant counts as v8', () => {
  const plain = entry('linux/arm64');
  const v8 = entry('linux/arm64/v8');
  assert.equal(pick([plain, v8], 'linux/arm64/v8'), v8, 'exact beats equivalent');
  assert.equal(pick([v8, plain], 'linux/arm64'), plain, 'exact beats equivalent');
  assert.equal(pick([plain], 'linux/arm64/v8'), plain);
  assert.equal(pick([v8], 'linux/arm64'), v8);
  assert.equal(selectManifest([entry('linux/amd64'), plain], hostPlatform('arm64'), 'i'), plain);
  assert.throws(() => pick([entry('linux/arm64/v9')], 'linux/arm64/v8'), /available: linux\/arm64\/v9$/);
  const v9 = entry('linux/arm64/v9');
  assert.equal(pick([v8, v9], 'linux/arm64/v9'), v9);
});

test('amd64: a v2/v3/v4 host takes the highest level not above its own; a baseline host only the baseline', () => {
  const none = entry('linux/amd64');
  const v1 = entry('linux/amd64/v1');
  const v2 = entry('linux/amd64/v2');
  const v3 = entry('linux/amd64/v3');
  const v4 = entry('linux/amd64/v4');
  assert.equal(pick([none, v2, v3, v4], 'linux/amd64/v3'), v3);
  assert.equal(pick([none, v2, v4], 'linux/amd64/v3'), v2);
  assert.equal(pick([v4, none], 'linux/amd64/v3'), none);
  assert.equal(pick([v1, v4], 'linux/amd64/v2'), v1);
  assert.equal(pick([v1, none], 'linux/amd64/v2'), v1, 'v1 and no variant are the same level: the first wins');
  assert.equal(pick([none, v1], 'linux/amd64/v2'), none);
  assert.equal(pick([v2, v3, v4, none], 'linux/amd64'), none);
  assert.equal(pick([v1, none], 'linux/amd64'), none, 'exact beats the same level');
  assert.equal(pick([none, v1], 'linux/amd64/v1'), v1);
  assert.equal(pick([v1], 'linux/amd64'), v1);
  assert.throws(() => pick([v2, v3], 'linux/amd64'), /no image for linux\/amd64; available: linux\/amd64\/v2, linux\/amd64\/v3$/);
  assert.throws(() => pick([v2], 'linux/amd64/v1'), /no image for linux\/amd64\/v1/);
  assert.throws(() => pick([v4], 'linux/amd64/v3'), /available: linux\/amd64\/v4$/);
  assert.throws(() => pick([entry('linux/amd64/v9')], 'linux/amd64/v4'), /available: linux\/amd64\/v9/);
  assert.equal(selectManifest([v3, none], hostPlatform('x64'), 'i'), none);
});

test('other architectures: an exact variant, or any variant when none is wanted', () => {
  const v6 = entry('linux/arm/v6');
  const v7 = entry('linux/arm/v7');
  const plain386 = entry('linux/386');
  assert.equal(pick([v6, v7], 'linux/arm/v7'), v7);
  assert.equal(pick([v6], 'linux/arm/v7'), v6, 'a v7 CPU runs v6 code');
  assert.throws(() => pick([v7], 'linux/arm/v6'), /available: linux\/arm\/v7$/);
  assert.equal(pick([v6, v7], 'linux/arm'), v7, 'containerd reads a bare arm as v7');
  const ppc = entry('linux/ppc64le');
  const p9 = entry('linux/ppc64le/power9');
  assert.equal(pick([p9, ppc], 'linux/ppc64le'), ppc, 'no variant is preferred when none is wanted');
  assert.equal(pick([p9], 'linux/ppc64le'), p9);
  assert.equal(pick([ppc, p9], 'linux/ppc64le/power9'), p9);
  assert.throws(() => pick([entry('linux/ppc64le')], 'linux/ppc64le/power9'), /available: linux\/ppc64le$/);
  assert.equal(pick([plain386], 'linux/386'), plain386);
});

test('ties go to the first entry in the index', () => {
  const a = entry('linux/amd64');
  const b = entry('linux/amd64');
  assert.equal(pick([a, b], 'linux/amd64'), a);
  assert.equal(pick([b, a], 'linux/amd64'), b);
});

test('no match: the error names the source and lists the available platforms', () => {
  const index = [entry('linux/arm64/v8'), entry('linux/386'), entry('unknown/unknown'), entry('linux/386')];
  assert.throws(
    () => selectManifest(index, { os: 'linux', architecture: 'amd64' }, 'index docker.io/library/alpine:3.19'),
    (e: unknown) => {
      assert.ok(e instanceof PlatformError);
      assert.equal(
        e.message,
        'index docker.io/library/alpine:3.19: no image for linux/amd64; available: ' +
          'linux/arm64/v8, linux/386 (1 attestation/unknown entry skipped)',
      );
      return true;
    },
  );
  assert.throws(
    () => selectManifest([], { os: 'linux', architecture: 'amd64' }, 'idx'),
    /^PlatformError: idx: no image for linux\/amd64; it lists no platform images$/,
  );
  // Hostile platform strings are quoted and the list is bounded.
  const hostile = entry('linux/amd64', { platform: { os: 'linux', architecture: `x\n${'y'.repeat(500)}` } });
  const many = Array.from({ length: 50 }, (_, i) => entry(`linux/arch${i}`));
  assert.throws(
    () => selectManifest([hostile, ...many], { os: 'linux', architecture: 'amd64' }, 'idx'),
    (e: unknown) => {
      const message = (e as Error).message;
      assert.match(message, /available: "linux\/x\\nyyy+…", linux\/arch0, .*linux\/arch18, … 31 more$/);
      assert.ok(message.length < 800, message);
      return true;
    },
  );
  assert.throws(
    () => selectManifest({} as unknown as Entry[], { os: 'linux', architecture: 'amd64' }, 'idx'),
    /idx: manifests must be an array, not object/,
  );
});

test('the chosen entry must carry a valid digest', () => {
  const bad = { ...entry('linux/amd64'), digest: 'sha256:NOTHEX' };
  assert.throws(
    () => pick([bad], 'linux/amd64'),
    /^PlatformError: index ghcr\.io\/org\/app:1: the manifest for linux\/amd64 has a bad digest: digest "sha256:NOTHEX": sha256 needs 64 lowercase hex digits$/,
  );
  const want: Platform = { os: 'linux', architecture: 'amd64' };
  const md5 = { ...entry('linux/amd64'), digest: `md5:${'a'.repeat(32)}` };
  assert.throws(() => selectManifest([md5], want, 'i'), /algorithm "md5" is not supported/);
});
