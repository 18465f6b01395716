// Registry credentials from docker config.json and pull secrets: key spellings, auth forms, helpers,
// hostile files, and that no secret ever shows in an error, a string, an inspection or JSON.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { CredentialError, CredentialStore } from './credentials.js';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const SECRET = 'hunter2-s3cret';

function config(auths: unknown, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ auths, ...extra });
}

/** Asserts `fn` throws a CredentialError matching `pattern` that does not leak SECRET. */
function throwsWithout(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CredentialError, `a CredentialError, not ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes(SECRET) && !e.message.includes(b64(`user:${SECRET}`)), `leaks the secret: ${e.message}`);
    return true;
  });
}

test('auths keys: bare hosts and URLs, normalised like a reference registry', () => {
  const store = CredentialStore.fromDockerConfig(
    config({
      'https://index.docker.io/v1/': { auth: b64('hub:hubpw') },
      'http://host:5000/v2/': { auth: b64('h:hpw') },
      'ghcr.io': { username: 'gh', password: 'ghpw' },
      '127.0.0.1:5000': { auth: b64('l:lpw') },
      'HTTPS://Quay.IO': { auth: b64('q:qpw') },
    }),
    '/root/.docker/config.json',
  );
  const hub = { username: 'hub', password: 'hubpw' };
  assert.deepEqual(store.lookup('docker.io'), hub);
  assert.deepEqual(store.lookup('index.docker.io'), hub);
  assert.deepEqual(store.lookup('registry-1.docker.io'), hub);
  assert.deepEqual(store.lookup('host:5000'), { username: 'h', password: 'hpw' });
  assert.equal(store.lookup('host'), undefined, 'the port is part of the registry');
  assert.deepEqual(store.lookup('ghcr.io'), { username: 'gh', password: 'ghpw' });
  assert.deepEqual(store.lookup('127.0.0.1:5000'), { username: 'l', password: 'lpw' });
  assert.deepEqual(store.lookup('quay.io'), { username: 'q', password: 'qpw' });
  assert.equal(store.lookup('gcr.io'), undefined);
  assert.deepEqual(store.warnings, []);
  assert.throws(() => store.lookup('not a host'), /registry "not a host" is not a host\[:port\]/);
});

test('auth forms: auth beats username/password, an identity token beats both, unusable entries are skipped', () => {
  const store = CredentialStore.fromDockerConfig(
    config({
      'a.io': { auth: b64('user:pa:ss:word'), username: 'other', password: 'other' },
      'b.io': { auth: b64('user:p'), identitytoken: 'tok' },
      'c.io': { username: 'u', password: '' },
      'd.io': {},
      'e.io': { auth: '' },
      'f.io': { username: 'u' },
      'g.io': { password: 'p' },
      'h.io': { auth: b64('u:p').replace(/=+$/, '') },
      'i.io': { auth: null, email: 'legacy@example.com', username: 'u', password: 'p' },
    }),
    'cfg',
  );
  assert.deepEqual(store.lookup('a.io'), { username: 'user', password: 'pa:ss:word' }, 'split at the first colon');
  assert.deepEqual(store.lookup('b.io'), { identityToken: 'tok' });
  assert.deepEqual(store.lookup('c.io'), { username: 'u', password: '' });
  for (const skipped of ['d.io', 'e.io', 'f.io', 'g.io']) assert.equal(store.lookup(skipped), undefined, skipped);
  assert.deepEqual(store.lookup('h.io'), { username: 'u', password: 'p' }, 'unpadded base64');
  assert.deepEqual(store.lookup('i.io'), { username: 'u', password: 'p' });
  assert.ok(Object.isFrozen(store.lookup('a.io')));
  assert.deepEqual(CredentialStore.fromDockerConfig('{}', 'cfg').registries, []);
});

test('a malformed auth is an error naming the source and the key, never the secret', () => {
  const bad = (auth: string) => () => CredentialStore.fromDockerConfig(config({ 'ghcr.io': { auth } }), '/etc/krata/config.json');
  const message = /^\/etc\/krata\/config\.json: auths\["ghcr\.io"\]\.auth is not base64 of "username:password" \(UTF-8\)$/;
  throwsWithout(bad(`!${SECRET}!`), message);
  throwsWithout(bad(b64(SECRET)), message); // no colon
  throwsWithout(bad(b64(`:${SECRET}`)), message); // no username
  throwsWithout(bad(`${b64(`user:${SECRET}`)}===`), message);
  throwsWithout(bad(`${b64(`user:${SECRET}`)} `), message);
  throwsWithout(bad(b64(Buffer.from([0x75, 0x3a, 0xff, 0xfe]))), message);
  throwsWithout(bad('nope'), message); // base64 by its alphabet, but of junk
  // An identity token does not excuse a broken auth.
  throwsWithout(
    () => CredentialStore.fromDockerConfig(config({ 'x.io': { auth: SECRET, identitytoken: 't' } }), 'c'),
    /c: auths\["x\.io"\]\.auth is not/,
  );
});

test('malformed documents are errors naming the source and the key', () => {
  const parse = (json: string) => () => CredentialStore.fromDockerConfig(json, 'cfg.json');
  throwsWithout(parse(`{"auths": {"x.io": {"password": "${SECRET}" oops}}}`), /^cfg\.json: not valid JSON( \(at position \d+\))?$/);
  throwsWithout(parse('[]'), /cfg\.json: a docker config must be a JSON object, not array/);
  throwsWithout(parse('null'), /not null/);
  throwsWithout(parse(config([])), /cfg\.json: auths must be an object, not array/);
  throwsWithout(parse(config({ 'x.io': 'user:pw' })), /cfg\.json: auths\["x\.io"\] must be an object, not string/);
  throwsWithout(
    parse(config({ 'x.io': { username: 'u', password: 5 } })),
    /cfg\.json: auths\["x\.io"\]\.password must be a string, not number/,
  );
  throwsWithout(parse(config({ 'x.io': { identitytoken: {} } })), /auths\["x\.io"\]\.identitytoken must be a string, not object/);
  throwsWithout(
    parse(config({ 'not a host': { auth: b64('u:p') } })),
    /cfg\.json: auths\["not a host"\] is not a registry host\[:port\] or URL/,
  );
  throwsWithout(parse(config({ '': { auth: b64('u:p') } })), /auths\[""\] is not a registry/);
  throwsWithout(parse(config({}, { credsStore: 5 })), /cfg\.json: credsStore must be a string, not number/);
  throwsWithout(parse(config({}, { credHelpers: ['gcr'] })), /cfg\.json: credHelpers must be an object, not array/);
  throwsWithout(
    parse(config({}, { credHelpers: { 'gcr.io': true } })),
    /cfg\.json: credHelpers\["gcr\.io"\] must be a string, not boolean/,
  );
  throwsWithout(parse(`{"pad": "${'x'.repeat(1024 * 1024)}"}`), /cfg\.json: larger than 1048576 bytes/);
  assert.throws(
    () => CredentialStore.fromDockerConfig(Buffer.from('{}') as unknown as string, 'cfg.json'),
    /cfg\.json: a docker config must be text, not object/,
  );
});

test('keys that spell one registry twice: the first wins, with a warning', () => {
  const store = CredentialStore.fromDockerConfig(
    config({ 'https://index.docker.io/v1/': { auth: b64('first:pw') }, 'docker.io': { auth: b64('second:pw') } }),
    'cfg',
  );
  assert.deepEqual(store.lookup('docker.io'), { username: 'first', password: 'pw' });
  assert.deepEqual(store.warnings, [
    'cfg: auths["https://index.docker.io/v1/"] and auths["docker.io"] both name docker.io; using auths["https://index.docker.io/v1/"]',
  ]);
});

test('credsStore and credHelpers are ignored, with warnings naming the registries that rely on them', () => {
  const store = CredentialStore.fromDockerConfig(
    config(
      { 'https://index.docker.io/v1/': {}, 'ghcr.io': {}, 'quay.io': { auth: b64('q:pw') }, 'gcr.io': { auth: b64('g:pw') } },
      { credsStore: 'desktop', credHelpers: { 'gcr.io': 'gcloud', '123.dkr.ecr.us-east-1.amazonaws.com': 'ecr-login' } },
    ),
    '/home/u/.docker/config.json',
  );
  assert.deepEqual(store.registries, ['gcr.io', 'quay.io']);
  assert.deepEqual(store.warnings, [
    '/home/u/.docker/config.json: gcr.io relies on credential helper ' +
      'docker-credential-gcloud, which a daemon cannot run (using its auths entry instead)',
    '/home/u/.docker/config.json: 123.dkr.ecr.us-east-1.amazonaws.com relies on credential ' +
      'helper docker-credential-ecr-login, which a daemon cannot run (no credentials for it)',
    '/home/u/.docker/config.json: credsStore docker-credential-desktop cannot be ' +
      'run by a daemon (docker.io, ghcr.io rely on it and have no credentials here)',
  ]);
  const alone = CredentialStore.fromDockerConfig(JSON.stringify({ credsStore: 'osxkeychain' }), 'c');
  assert.deepEqual(alone.warnings, [
    'c: credsStore docker-credential-osxkeychain cannot be run by a daemon (no registry here relies on it)',
  ]);
  assert.deepEqual(CredentialStore.fromDockerConfig(JSON.stringify({ credsStore: '' }), 'c').warnings, []);
});

test('secrets never show in toString, inspection or JSON', () => {
  const store = CredentialStore.fromDockerConfig(
    config({ 'ghcr.io': { auth: b64(`user:${SECRET}`) }, 'docker.io': { identitytoken: SECRET } }),
    'cfg',
  );
  for (const shown of [
    String(store),
    inspect(store),
    inspect(store, { showHidden: true, depth: 10 }),
    JSON.stringify(store),
    String([store]),
  ]) {
    assert.ok(!shown.includes(SECRET) && !shown.includes('user'), shown);
  }
  assert.equal(String(store), 'CredentialStore(docker.io, ghcr.io)');
  assert.equal(JSON.stringify(store), '{"registries":["docker.io","ghcr.io"]}');
  assert.deepEqual(Object.keys(store), ['warnings']);
});

test('pull secrets: kubernetes.io/dockerconfigjson and the legacy kubernetes.io/dockercfg', () => {
  const json = CredentialStore.fromPullSecret(
    { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': b64(config({ 'ghcr.io': { auth: b64('g:pw') } })) } },
    'Secret default/regcred',
  );
  assert.deepEqual(json.lookup('ghcr.io'), { username: 'g', password: 'pw' });
  const legacy = CredentialStore.fromPullSecret(
    {
      type: 'kubernetes.io/dockercfg',
      data: { '.dockercfg': b64(JSON.stringify({ 'https://index.docker.io/v1/': { auth: b64('h:pw'), email: 'x@y' } })) },
    },
    'Secret default/old',
  );
  assert.deepEqual(legacy.lookup('docker.io'), { username: 'h', password: 'pw' });
});

test('bad pull secrets are errors naming the secret and the key', () => {
  const secret = (type: unknown, data: unknown) => () => CredentialStore.fromPullSecret({ type, data }, 'Secret ns/s');
  const dcj = 'kubernetes.io/dockerconfigjson';
  throwsWithout(() => CredentialStore.fromPullSecret('x', 'Secret ns/s'), /^Secret ns\/s: a pull secret must be an object, not string$/);
  throwsWithout(
    secret('Opaque', {}),
    /^Secret ns\/s: type "Opaque" is not a pull secret \(kubernetes\.io\/dockerconfigjson or kubernetes\.io\/dockercfg\)$/,
  );
  throwsWithout(secret(undefined, {}), /type undefined is not a pull secret/);
  throwsWithout(secret(dcj, undefined), /Secret ns\/s: data must be an object, not undefined/);
  throwsWithout(secret(dcj, {}), /Secret ns\/s: data\["\.dockerconfigjson"\] is missing \(or not a string\)/);
  throwsWithout(secret('kubernetes.io/dockercfg', { '.dockerconfigjson': 'e30=' }), /data\["\.dockercfg"\] is missing/);
  throwsWithout(
    secret(dcj, { '.dockerconfigjson': `not base64 ${SECRET}` }),
    /Secret ns\/s data\["\.dockerconfigjson"\]: not valid base64/,
  );
  throwsWithout(secret(dcj, { '.dockerconfigjson': b64(SECRET) }), /Secret ns\/s data\["\.dockerconfigjson"\]: not valid JSON/);
  throwsWithout(
    secret(dcj, { '.dockerconfigjson': b64(config({ 'ghcr.io': { auth: SECRET } })) }),
    /^Secret ns\/s data\["\.dockerconfigjson"\]: auths\["ghcr\.io"\]\.auth is not base64 of "username:password" \(UTF-8\)$/,
  );
  throwsWithout(
    secret('kubernetes.io/dockercfg', { '.dockercfg': b64('[]') }),
    /data\["\.dockercfg"\]: must be a JSON object of registries, not array/,
  );
  throwsWithout(
    secret('kubernetes.io/dockercfg', { '.dockercfg': b64(JSON.stringify({ 'x.io': { auth: SECRET } })) }),
    /^Secret ns\/s data\["\.dockercfg"\]: \["x\.io"\]\.auth is not base64/,
  );
  throwsWithout(
    secret(dcj, { '.dockerconfigjson': 'A'.repeat(2 * 1024 * 1024) }),
    /data\["\.dockerconfigjson"\]: larger than 1048576 bytes/,
  );
});

test('merge: earlier stores win, warnings are kept', () => {
  const a = CredentialStore.fromDockerConfig(config({ 'ghcr.io': { auth: b64('a:1') } }, { credsStore: 'x' }), 'a');
  const b = CredentialStore.fromDockerConfig(config({ 'ghcr.io': { auth: b64('b:2') }, 'quay.io': { auth: b64('b:3') } }), 'b');
  const merged = a.merge(b);
  assert.deepEqual(merged.lookup('ghcr.io'), { username: 'a', password: '1' });
  assert.deepEqual(merged.lookup('quay.io'), { username: 'b', password: '3' });
  assert.deepEqual(
    merged.warnings.map((w) => w.split(':')[0]),
    ['a'],
  );
  assert.deepEqual(b.merge(a).lookup('ghcr.io'), { username: 'b', password: '2' });
  assert.deepEqual(CredentialStore.empty().merge().registries, []);
});

test('fromFiles: missing files are skipped, earlier files win, hostile files are errors naming the path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-creds-'));
  const first = join(dir, 'first.json');
  const second = join(dir, 'second.json');
  writeFileSync(first, config({ 'ghcr.io': { auth: b64('one:1') } }));
  writeFileSync(second, config({ 'ghcr.io': { auth: b64('two:2') }, 'quay.io': { auth: b64('two:3') } }));
  const store = await CredentialStore.fromFiles([
    join(dir, 'missing.json'),
    join(dir, 'no/such/dir.json'),
    join(first, 'under-a-file'),
    first,
    second,
  ]);
  assert.deepEqual(store.lookup('ghcr.io'), { username: 'one', password: '1' });
  assert.deepEqual(store.lookup('quay.io'), { username: 'two', password: '3' });
  assert.deepEqual((await CredentialStore.fromFiles([])).registries, []);

  const rejects = async (path: string, pattern: RegExp) => {
    await assert.rejects(CredentialStore.fromFiles([first, path]), (e: unknown) => {
      assert.ok(e instanceof CredentialError);
      assert.match(e.message, pattern);
      return true;
    });
  };
  const big = join(dir, 'big.json');
  writeFileSync(big, `{"pad": "${'x'.repeat(1024 * 1024)}"}`);
  await rejects(big, new RegExp(`^${big}: larger than 1048576 bytes$`));
  const latin1 = join(dir, 'latin1.json');
  writeFileSync(latin1, Buffer.from([0x7b, 0xe9, 0x7d]));
  await rejects(latin1, new RegExp(`^${latin1}: not valid UTF-8$`));
  const broken = join(dir, 'broken.json');
  writeFileSync(broken, config({ 'ghcr.io': { auth: 'nope' } }));
  await rejects(broken, new RegExp(`^${broken}: auths\\["ghcr\\.io"\\]\\.auth is not base64`));
  const subdir = join(dir, 'a-directory');
  mkdirSync(subdir);
  await rejects(subdir, new RegExp(`^${subdir}: not a regular file$`));
  // A FIFO must be refused, not waited on forever.
  const fifo = join(dir, 'fifo');
  if (spawnSync('mkfifo', [fifo]).status === 0) await rejects(fifo, new RegExp(`^${fifo}: not a regular file$`));
  if (process.getuid?.() !== 0) {
    const unreadable = join(dir, 'unreadable.json');
    writeFileSync(unreadable, '{}', { mode: 0o000 });
    await rejects(unreadable, new RegExp(`^${unreadable}: cannot open: EACCES`));
  }
});
