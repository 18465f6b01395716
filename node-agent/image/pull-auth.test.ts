// Per-namespace pull credentials and the authorization of cached images, against the real
// docker-registry (token auth as Docker Hub does it, and htpasswd Basic auth): a private image one
// namespace pulled with its secret is not served from the cache to another namespace that cannot show
// the registry it may pull it, whatever the pull policy.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type Registry } from '../../test/registry.js';
import { buildImage, pushImage, type BuiltImage } from '../../test/oci-images.js';
import { buildTar } from '../../lib/tar.js';
import { CredentialStore } from '../../lib/oci/credentials.js';
import { ImageStore } from './store.js';
import { exchangeToken, registryChallenge, type PullAuth, type RegistryOptions } from '../../lib/oci/registry.js';
import { CachedImages } from '../service/agent-service.js';
import { ImageError } from '../reconcile/pulls.js';

const work = mkdtempSync(join(tmpdir(), 'krata-pull-auth-test-'));
let n = 0;
after(() => rmSync(work, { recursive: true, force: true }));

function smallImage(text: string): BuiltImage {
  return buildImage({
    layers: [
      {
        compression: 'gzip',
        tar: buildTar([
          { path: 'etc/', type: 'dir' },
          { path: 'etc/motd', data: Buffer.from(text) },
        ]),
      },
    ],
    config: { Cmd: ['/bin/sh'] },
  });
}

/** A pull secret as the API server serves it, for `host`. */
function pullSecret(host: string, username: string, password: string): CredentialStore {
  const config = JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } } });
  return CredentialStore.fromPullSecret(
    { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(config).toString('base64') } },
    'Secret',
  );
}

async function refused(p: Promise<unknown>, reason: string, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ImageError, `an ImageError, not ${String(e)}`);
    assert.equal(e.reason, reason);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('cached private images are authorized per namespace (token auth)', { timeout: 90_000 }, () => {
  const USER = 'tenant-a';
  const PASSWORD = 'a-s3cret';
  let reg: Registry;
  let registry: RegistryOptions;
  const privateImg = smallImage('private');
  const publicImg = smallImage('public');

  function newImages(extra: RegistryOptions = {}): { store: ImageStore; images: CachedImages } {
    const store = new ImageStore({ root: join(work, `store-${++n}`), registry: { ...registry, ...extra } });
    store.recover();
    return { store, images: new CachedImages(store) };
  }

  before(async () => {
    reg = await startRegistry({ token: { users: { [USER]: PASSWORD }, publicRepos: ['public/app'] } });
    registry = { insecure: [reg.host, reg.tokenServer!.host] };
    await pushImage(reg, 'private/app', 'v1', privateImg, { username: USER, password: PASSWORD });
    await pushImage(reg, 'public/app', 'v1', publicImg, { username: USER, password: PASSWORD });
  });
  after(async () => {
    await reg?.stop();
  });

  test(
    'namespace A pulls with its secret; B is refused the cached image ' +
      'without a secret or with a wrong one, and allowed with a valid one',
    async () => {
      const { images } = newImages();
      const ref = `${reg.host}/private/app:v1`;
      const a: PullAuth = { namespace: 'a', credentials: pullSecret(reg.host, USER, PASSWORD) };
      const got = await images.ensure(ref, 'IfNotPresent', a);
      assert.equal(got.digest, privateImg.manifestDigest);

      reg.tokenServer!.requests.splice(0);
      await refused(
        images.ensure(ref, 'IfNotPresent', { namespace: 'b' }),
        'ErrImagePull',
        /not authorized to use the cached image sha256:[0-9a-f]{64}: namespace b has not shown the registry/,
      );
      const asked = reg.tokenServer!.requests.splice(0);
      assert.ok(asked.length >= 1 && asked.every((r) => r.via === 'anonymous'), 'B was checked with the registry, anonymously');
      await refused(
        images.ensure(ref, 'IfNotPresent', { namespace: 'b', credentials: pullSecret(reg.host, USER, 'wrong') }),
        'ErrImagePull',
        /not authorized.*the credentials were refused/,
      );
      await refused(images.ensure(ref, 'Never', { namespace: 'b' }), 'ErrImageNeverPull', /not authorized/);
      // A digest reference skips the tag's resolution, not the check.
      await refused(
        images.ensure(`${reg.host}/private/app@${privateImg.manifestDigest}`, 'Always', { namespace: 'b' }),
        'ErrImagePull',
        /access denied/,
      );

      // A is served from the cache without asking again.
      reg.tokenServer!.requests.splice(0);
      assert.equal((await images.ensure(ref, 'IfNotPresent', a)).digest, privateImg.manifestDigest);
      assert.deepEqual(reg.tokenServer!.requests.splice(0), [], 'A proved access already');

      const b: PullAuth = { namespace: 'b', credentials: pullSecret(reg.host, USER, PASSWORD) };
      assert.equal((await images.ensure(ref, 'IfNotPresent', b)).digest, privateImg.manifestDigest);
      // Once proved, B's later Guests (even without the secret) use the cache; C still may not.
      assert.equal((await images.ensure(ref, 'Never', { namespace: 'b' })).digest, privateImg.manifestDigest);
      await refused(images.ensure(ref, 'Never', { namespace: 'c' }), 'ErrImageNeverPull', /namespace c/);
    },
  );

  test('a public image needs no secret, and once pulled anonymously it serves every namespace without asking', async () => {
    const { images } = newImages();
    const ref = `${reg.host}/public/app:v1`;
    assert.equal((await images.ensure(ref, 'IfNotPresent', { namespace: 'a' })).digest, publicImg.manifestDigest);
    reg.tokenServer!.requests.splice(0);
    assert.equal((await images.ensure(ref, 'Never', { namespace: 'z' })).digest, publicImg.manifestDigest);
    assert.deepEqual(reg.tokenServer!.requests.splice(0), []);
  });

  test("an image pulled with the node's credentials serves every namespace (as the kubelet's do)", async () => {
    const node = CredentialStore.fromDockerConfig(
      JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }),
      'config.json',
    );
    const { images } = newImages({ credentials: node });
    const ref = `${reg.host}/private/app:v1`;
    await images.ensure(ref, 'IfNotPresent', { namespace: 'a' });
    assert.equal((await images.ensure(ref, 'Never', { namespace: 'b' })).digest, privateImg.manifestDigest);
  });

  test('repository tokens (what the operator hands a host) pull their repository only, and prove access for the namespace', async () => {
    const { store, images } = newImages();
    const ref = `${reg.host}/private/app:v1`;
    const challenge = await registryChallenge(`http://${reg.host}`, 10_000);
    const exchange = (repository: string) =>
      exchangeToken(
        challenge!,
        repository,
        { username: USER, password: PASSWORD },
        { what: ref, base: `http://${reg.host}`, insecure: () => true, timeoutMs: 10_000 },
      );
    const expiresAt = new Date(Date.now() + 60_000).toISOString();
    const wrongRepo = await exchange('public/app');
    const right = await exchange('private/app');
    assert.ok(right.expiresInS > 0);
    // A token for another repository (listed under this one's name) is refused by the registry.
    await refused(
      images.ensure(ref, 'IfNotPresent', {
        namespace: 'a',
        tokens: [{ registry: reg.host, repository: 'private/app', token: wrongRepo.token, expiresAt }],
      }),
      'ErrImagePull',
      /pull token was refused/,
    );
    assert.equal(
      (
        await images.ensure(ref, 'IfNotPresent', {
          namespace: 'a',
          tokens: [{ registry: reg.host, repository: 'private/app', token: right.token, expiresAt }],
        })
      ).digest,
      privateImg.manifestDigest,
    );
    await refused(images.ensure(ref, 'IfNotPresent', { namespace: 'b' }), 'ErrImagePull', /not authorized/);
    // An expired token is not sent: the pull is anonymous and refused.
    await refused(
      images.ensure(ref, 'Never', {
        namespace: 'b',
        tokens: [
          { registry: reg.host, repository: 'private/app', token: right.token, expiresAt: new Date(Date.now() - 1000).toISOString() },
        ],
      }),
      'ErrImageNeverPull',
      /not authorized/,
    );
    // The records are files of mode 0600 and go with the image.
    const dir = join(store.imagesDir, '.access');
    assert.equal(statSync(join(dir, readdirSync(dir)[0]!)).mode & 0o777, 0o600);
    store.remove(ref);
    assert.deepEqual(readdirSync(dir), []);
  });
});

describe('cached private images are authorized per namespace (Basic auth)', { timeout: 60_000 }, () => {
  let reg: Registry;
  const img = smallImage('basic');
  before(async () => {
    reg = await startRegistry({ htpasswd: { username: 'u', password: 'p' } });
    await pushImage(reg, 'private/basic', 'v1', img, { username: 'u', password: 'p' });
  });
  after(async () => {
    await reg?.stop();
  });

  test('A with its secret, B without is refused, B with the secret is allowed', async () => {
    const store = new ImageStore({ root: join(work, `store-${++n}`), registry: { insecure: [reg.host] } });
    const images = new CachedImages(store);
    const ref = `${reg.host}/private/basic:v1`;
    await images.ensure(ref, 'IfNotPresent', { namespace: 'a', credentials: pullSecret(reg.host, 'u', 'p') });
    await refused(images.ensure(ref, 'IfNotPresent', { namespace: 'b' }), 'ErrImagePull', /requires a username and password/);
    assert.equal(
      (await images.ensure(ref, 'IfNotPresent', { namespace: 'b', credentials: pullSecret(reg.host, 'u', 'p') })).digest,
      img.manifestDigest,
    );
  });
});
