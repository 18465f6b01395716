// Image references: Docker Hub normalisation as `docker pull` does it, the grammar's edges, and errors
// that quote the input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatReference, ImageReferenceError, normalizeRegistry, parseDigest, parseReference, registryEndpoint } from './reference.js';

const SHA256 = 'a'.repeat(64);
const SHA512 = '0123456789abcdef'.repeat(8);

test('Docker Hub names normalise as docker pull does', () => {
  const cases: [string, string][] = [
    ['alpine', 'docker.io/library/alpine:latest'],
    ['library/alpine:3.19', 'docker.io/library/alpine:3.19'],
    ['docker.io/alpine', 'docker.io/library/alpine:latest'],
    ['docker.io/library/alpine', 'docker.io/library/alpine:latest'],
    ['index.docker.io/library/alpine', 'docker.io/library/alpine:latest'],
    ['registry-1.docker.io/alpine:edge', 'docker.io/library/alpine:edge'],
    ['user/repo', 'docker.io/user/repo:latest'],
    ['user/repo/deeper', 'docker.io/user/repo/deeper:latest'],
    [`foo@sha256:${SHA256}`, `docker.io/library/foo@sha256:${SHA256}`],
  ];
  for (const [input, canonical] of cases) assert.equal(formatReference(parseReference(input)), canonical, input);
  assert.deepEqual(parseReference('alpine'), { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' });
  assert.deepEqual(parseReference('user/repo'), { registry: 'docker.io', repository: 'user/repo', tag: 'latest' });
});

test('the first component is a registry when it has "." or ":" or is localhost', () => {
  assert.deepEqual(parseReference('localhost/foo'), { registry: 'localhost', repository: 'foo', tag: 'latest' });
  assert.deepEqual(parseReference('localhost:5000/foo'), { registry: 'localhost:5000', repository: 'foo', tag: 'latest' });
  assert.deepEqual(parseReference('[::1]:5000/foo'), { registry: '[::1]:5000', repository: 'foo', tag: 'latest' });
  assert.deepEqual(parseReference('[fe80::1]/foo:1'), { registry: '[fe80::1]', repository: 'foo', tag: '1' });
  assert.deepEqual(parseReference('ghcr.io/org/app:v1.2'), { registry: 'ghcr.io', repository: 'org/app', tag: 'v1.2' });
  assert.deepEqual(parseReference('127.0.0.1:5000/a/b'), { registry: '127.0.0.1:5000', repository: 'a/b', tag: 'latest' });
  // Not a registry: no dot, no colon, not localhost — a Docker Hub user, and no library/ prefix.
  assert.deepEqual(parseReference('myhost/foo'), { registry: 'docker.io', repository: 'myhost/foo', tag: 'latest' });
  // A lone "localhost:5000" is the image "localhost" with tag "5000", as in Docker.
  assert.deepEqual(parseReference('localhost:5000'), { registry: 'docker.io', repository: 'library/localhost', tag: '5000' });
  // Host names are case-insensitive: one spelling.
  assert.equal(parseReference('GHCR.io/org/app').registry, 'ghcr.io');
  assert.equal(parseReference('Index.Docker.IO/alpine').repository, 'library/alpine');
});

test('tag and digest: the default tag only when neither is given, both kept when both are', () => {
  assert.deepEqual(parseReference(`host:5000/a/b@sha256:${SHA256}`), {
    registry: 'host:5000',
    repository: 'a/b',
    digest: `sha256:${SHA256}`,
  });
  assert.equal(formatReference(parseReference(`host:5000/a/b@sha256:${SHA256}`)), `host:5000/a/b@sha256:${SHA256}`);
  const both = parseReference(`repo:tag@sha256:${SHA256}`);
  assert.deepEqual(both, { registry: 'docker.io', repository: 'library/repo', tag: 'tag', digest: `sha256:${SHA256}` });
  assert.equal(formatReference(both), `docker.io/library/repo:tag@sha256:${SHA256}`);
  assert.equal(parseReference(`x@sha512:${SHA512}`).digest, `sha512:${SHA512}`);
  assert.equal(parseReference(`a:${'t'.repeat(128)}`).tag, 't'.repeat(128));
  assert.equal(parseReference('a:_Under.score-1').tag, '_Under.score-1');
});

test('repository components follow the grammar', () => {
  for (const ok of ['a.b', 'a_b', 'a__b', 'a-b', 'a---b', 'a0/b1.c_d__e-f']) assert.equal(parseReference(`h.io/${ok}`).repository, ok);
  for (const bad of ['a/../b', 'a//b', '-a', 'a-', 'a..b', 'a___b', 'a_.b', '.a', 'a/', 'é']) {
    assert.throws(() => parseReference(`h.io/${bad}`), /repository (component|name)|not valid|whitespace or control/, bad);
  }
  assert.throws(
    () => parseReference('a/../b'),
    (e: unknown) => {
      assert.ok(e instanceof ImageReferenceError);
      assert.match(e.message, /^image reference "a\/\.\.\/b": repository component "\.\." is not valid/);
      return true;
    },
  );
  assert.throws(() => parseReference('h.io/'), /image reference "h\.io\/": the repository name is empty/);
  assert.throws(() => parseReference(':tag'), /image reference ":tag": the repository name is empty/);
  assert.throws(() => parseReference(`@sha256:${SHA256}`), /the repository name is empty/);
  assert.throws(() => parseReference('foo:bar:baz'), /repository component "foo:bar" is not valid/);
});

test('uppercase in the repository is an error that says so', () => {
  assert.throws(() => parseReference('Foo'), /image reference "Foo": repository "library\/Foo" must be lowercase/);
  assert.throws(() => parseReference('ghcr.io/Org/app'), /repository "Org\/app" must be lowercase/);
});

test('bad tags, digests and registries are errors naming the input', () => {
  assert.throws(() => parseReference('alpine:'), /image reference "alpine:": tag "" is not valid/);
  assert.throws(() => parseReference('alpine:.x'), /tag "\.x" is not valid/);
  assert.throws(() => parseReference(`a:${'t'.repeat(129)}`), /tag "t+…" is not valid/);
  assert.throws(() => parseReference('alpine@'), /image reference "alpine@": digest "" is not "algorithm:hex"/);
  assert.throws(() => parseReference(`alpine@md5:${'a'.repeat(32)}`), /algorithm "md5" is not supported \(sha256, sha512\)/);
  assert.throws(() => parseReference(`alpine@sha256:${'A'.repeat(64)}`), /sha256 needs 64 lowercase hex digits/);
  assert.throws(() => parseReference(`a@sha256:${SHA256}@sha256:${SHA256}`), /digest "sha256:a+@sha256:a+…" is too long/);
  assert.throws(() => parseReference('host:0/foo'), /registry "host:0" is not a host\[:port\]/);
  assert.throws(() => parseReference('host:65536/foo'), /registry "host:65536"/);
  assert.throws(() => parseReference('-bad.io/foo'), /registry "-bad\.io"/);
  assert.throws(() => parseReference('[::1/foo'), /registry "\[::1"/);
  assert.throws(() => parseReference('[zz::1]:5000/foo'), /registry "\[zz::1\]:5000"/);
  assert.throws(() => parseReference('[::1]'), /image reference "\[::1\]": repository component "\[:" is not valid/);
});

test('whitespace, empty, overlong and image-ID inputs are errors', () => {
  assert.throws(() => parseReference(''), /^ImageReferenceError: image reference is empty$/);
  assert.throws(() => parseReference(' alpine'), /image reference " alpine" contains whitespace/);
  assert.throws(() => parseReference('alpine\n'), /image reference "alpine\\n" contains whitespace or control characters/);
  assert.throws(() => parseReference('al\u0000pine'), /contains whitespace or control characters/);
  const long = `h.io/${'a'.repeat(5000)}`;
  assert.throws(
    () => parseReference(long),
    (e: unknown) => {
      assert.match(String(e), /is 5005 characters long \(at most 4096\)/);
      assert.ok(String(e).length < 200, 'the message does not echo the whole input');
      return true;
    },
  );
  assert.throws(() => parseReference(`h.io/${'a'.repeat(251)}`), /longer than 255 characters/);
  assert.equal(parseReference(`h.io/${'a'.repeat(250)}`).repository.length, 250);
  assert.throws(() => parseReference(SHA256), /is a 64-hex image ID/);
  assert.throws(() => parseReference(123 as unknown as string), /must be a string, not number/);
});

test('formatReference validates and normalises its input', () => {
  assert.equal(formatReference({ registry: 'index.docker.io', repository: 'alpine' }), 'docker.io/library/alpine:latest');
  assert.equal(formatReference({ registry: 'localhost:5000', repository: 'x', tag: 't' }), 'localhost:5000/x:t');
  assert.throws(() => formatReference({ registry: 'foo', repository: 'bar' }), /registry "foo" needs a "\." or ":" or to be "localhost"/);
  assert.throws(() => formatReference({ registry: 'h.io', repository: 'Bar' }), /must be lowercase/);
  assert.throws(() => formatReference({ registry: 'h.io', repository: 'bar', tag: '' }), /tag "" is not valid/);
  assert.throws(() => formatReference({ registry: 'h.io', repository: 'bar', digest: 'sha256:x' }), /sha256 needs 64/);
  assert.throws(
    () => formatReference({ registry: 'h.io', repository: 'bar', tag: 5 as unknown as string }),
    /field tag must be a string, not number/,
  );
});

test('parseDigest accepts sha256 and sha512, nothing else', () => {
  assert.deepEqual(parseDigest(`sha256:${SHA256}`), { algorithm: 'sha256', hex: SHA256 });
  assert.deepEqual(parseDigest(`sha512:${SHA512}`), { algorithm: 'sha512', hex: SHA512 });
  assert.throws(() => parseDigest(SHA256), /digest "a+" is not "algorithm:hex"/);
  assert.throws(() => parseDigest(`:${SHA256}`), /is not "algorithm:hex"/);
  assert.throws(() => parseDigest(`sha384:${'a'.repeat(96)}`), /algorithm "sha384" is not supported/);
  assert.throws(() => parseDigest(`sha256:${SHA512}`), /sha256 needs 64 lowercase hex digits/);
  assert.throws(() => parseDigest(`sha512:${SHA256}`), /sha512 needs 128 lowercase hex digits/);
  assert.throws(() => parseDigest(`sha256:${'g'.repeat(64)}`), /needs 64 lowercase hex/);
  assert.throws(() => parseDigest(`sha256:${SHA256}\n`), /needs 64 lowercase hex/);
  assert.throws(() => parseDigest('x'.repeat(10_000)), /is too long \(10000 characters\)/);
  assert.throws(() => parseDigest(null as unknown as string), /must be a string, not object/);
});

test('registryEndpoint: Docker Hub is served at registry-1.docker.io', () => {
  assert.equal(registryEndpoint('docker.io'), 'registry-1.docker.io');
  assert.equal(registryEndpoint('index.docker.io'), 'registry-1.docker.io');
  assert.equal(registryEndpoint('ghcr.io'), 'ghcr.io');
  assert.equal(registryEndpoint('localhost:5000'), 'localhost:5000');
  assert.equal(registryEndpoint('[::1]:5000'), '[::1]:5000');
  assert.throws(() => registryEndpoint('https://ghcr.io'), /registry "https:\/\/ghcr\.io" is not a host\[:port\]/);
});

test('normalizeRegistry: one spelling per registry', () => {
  assert.equal(normalizeRegistry('Registry-1.Docker.io'), 'docker.io');
  assert.equal(normalizeRegistry('127.0.0.1:5000'), '127.0.0.1:5000');
  assert.equal(normalizeRegistry('[2001:DB8::1]'), '[2001:db8::1]');
  for (const bad of ['', 'a b', 'host:', 'host:x', 'a..b', `${'a'.repeat(64)}.io`, '[::1]:', 'user@host']) {
    assert.throws(() => normalizeRegistry(bad), /is not a host\[:port\]/, bad);
  }
});
