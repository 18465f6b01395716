// Image pull secrets in cluster mode, every part real: kube-apiserver (envtest) holding the Secrets,
// the operator in process, Redis, and docker-registry with token auth (and one with Basic auth only).
// A Guest naming imagePullSecrets gets a desired record with a short-lived token scoped to pulling its
// repository, which pulls the image; the password never reaches Redis.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { desiredKey, heartbeatKey, parseDesired, type DesiredGuest, type Heartbeat } from '../../contracts/redis/contract.js';
import type { Guest } from '../../crds/generated/types.js';
import { CachedImages } from '../../node-agent/service/agent-service.js';
import { ImageStore } from '../../node-agent/image/store.js';
import { startRedis, type TestRedis } from '../redis.js';
import { startRegistry, type Registry } from '../registry.js';
import { buildImage, pushImage } from '../oci-images.js';
import { buildTar } from '../../lib/tar.js';
import { newGuest, startKube, waitFor, type TestKube } from '../kube/operator-env.js';
import { startTestOperator, type TestOperator } from '../harness/operator.js';
import { PullTokenIssuer } from '../../operator/pull-tokens.js';
import { KubeError } from '../../operator/kube/client.js';

const HOST = 'xen-pull.example';
const USER = 'puller';
const PASSWORD = 'pull-s3cret-0123456789';
const work = mkdtempSync(join(tmpdir(), 'krata-pull-tokens-test-'));

describe('the operator turns image pull secrets into repository tokens', { timeout: 120_000 }, () => {
  let kube: TestKube;
  let redis: TestRedis;
  let reg: Registry;
  let basicReg: Registry;
  let op: TestOperator;
  let client: Redis;
  const img = buildImage({
    layers: [{ compression: 'gzip', tar: buildTar([{ path: 'etc/motd', data: Buffer.from('private') }]) }],
    config: { Cmd: ['/bin/sh'] },
  });

  const dockerConfig = (host: string, password = PASSWORD) =>
    Buffer.from(JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${USER}:${password}`).toString('base64') } } })).toString('base64');
  const createSecret = (name: string, host: string, namespace = 'default') =>
    kube.client.request('POST', `/api/v1/namespaces/${namespace}/secrets`, {
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name },
        type: 'kubernetes.io/dockerconfigjson',
        data: { '.dockerconfigjson': dockerConfig(host) },
      },
    });
  const guest = (name: string, image: string, secrets: string[]): Guest => {
    const g = newGuest(name);
    g.spec = { ...g.spec, image, imagePullSecrets: secrets.map((s) => ({ name: s })) } as Guest['spec'];
    return g;
  };
  async function record(name: string, pred: (d: DesiredGuest) => boolean): Promise<DesiredGuest> {
    let got: DesiredGuest | undefined;
    await waitFor(async () => {
      const raw = await client.hget(desiredKey(HOST), `default/${name}`);
      got = raw ? parseDesired(raw) : undefined;
      return !!got && pred(got);
    }, `the desired record of ${name}`);
    return got!;
  }

  before(async () => {
    [kube, redis, reg, basicReg] = await Promise.all([
      startKube(),
      startRedis(),
      startRegistry({ token: { users: { [USER]: PASSWORD } } }),
      startRegistry({ htpasswd: { username: USER, password: PASSWORD } }),
    ]);
    await pushImage(reg, 'team/app', 'v1', img, { username: USER, password: PASSWORD });
    client = new Redis(redis.url);
    const hb: Heartbeat = {
      host: HOST,
      time: new Date().toISOString(),
      agentVersion: 'test',
      xenVersion: '4.17',
      kernelVersion: '6.1',
      capacity: { cpus: 16, memoryMiB: 65536 },
      freeMemoryMiB: 65536,
      guests: 0,
      running: 0,
      epoch: '',
    };
    await client.set(heartbeatKey(HOST), JSON.stringify(hb), 'EX', 600);
    await kube.client.createXenHost(HOST);
    const insecureRegistries = [reg.host, reg.tokenServer!.host, basicReg.host];
    op = await startTestOperator(kube.client, { redis: { url: redis.url }, workers: 2, pollMs: 500, insecureRegistries });
  });
  after(async () => {
    await op?.stop();
    client?.disconnect();
    await Promise.all([kube?.stop(), redis?.stop(), reg?.stop(), basicReg?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  test(
    'a Guest with imagePullSecrets gets a pull-only token for its ' + 'repository, never the password, and the token pulls the image',
    async () => {
      await createSecret('regcred', reg.host);
      reg.tokenServer!.requests.splice(0);
      await kube.client.createGuest(guest('private', `${reg.host}/team/app:v1`, ['regcred']));
      const d = await record('private', (r) => (r.pullAuth?.tokens.length ?? 0) > 0);
      assert.equal(d.pullAuth!.tokens.length, 1);
      const t = d.pullAuth!.tokens[0]!;
      assert.deepEqual([t.registry, t.repository], [reg.host, 'team/app']);
      assert.ok(
        Date.parse(t.expiresAt) > Date.now() && Date.parse(t.expiresAt) <= Date.now() + 301_000,
        'short-lived (the token service says 300 s)',
      );
      const asked = reg.tokenServer!.requests.filter((r) => r.via === 'basic');
      assert.ok(asked.length >= 1);
      assert.deepEqual(asked[0]!.access, [{ type: 'repository', name: 'team/app', actions: ['pull'] }], 'pull only, this repository only');

      // Nothing in Redis holds the password or the Secret's data, in any key.
      const secretData = dockerConfig(reg.host);
      for (const key of await client.keys('*')) {
        const type = await client.type(key);
        const dump =
          type === 'hash'
            ? JSON.stringify(await client.hgetall(key))
            : type === 'string'
              ? ((await client.get(key)) ?? '')
              : type === 'list'
                ? JSON.stringify(await client.lrange(key, '0', '-1'))
                : type === 'stream'
                  ? JSON.stringify(await client.xrange(key, '-', '+'))
                  : type === 'zset'
                    ? JSON.stringify(await client.zrange(key, '0', '-1'))
                    : '';
        for (const secret of [PASSWORD, Buffer.from(`${USER}:${PASSWORD}`).toString('base64'), secretData])
          assert.ok(!dump.includes(secret), `${key} holds a secret`);
      }

      // The token is what a host pulls with.
      const store = new ImageStore({ root: join(work, 'images'), registry: { insecure: [reg.host, reg.tokenServer!.host] } });
      const images = new CachedImages(store);
      assert.equal(
        (await images.ensure(`${reg.host}/team/app:v1`, 'IfNotPresent', { namespace: 'default', tokens: d.pullAuth!.tokens })).digest,
        img.manifestDigest,
      );
    },
  );

  test('a missing Secret, and a registry with Basic auth only, give no token and a record that says why', async () => {
    await kube.client.createGuest(guest('missing', `${reg.host}/team/app:v1`, ['nope']));
    const m = await record('missing', (r) => !!r.pullAuth);
    assert.deepEqual(m.pullAuth!.tokens, []);
    assert.match(m.pullAuth!.problems!.join('\n'), /image pull secret default\/nope not found/);

    await createSecret('basiccred', basicReg.host);
    await kube.client.createGuest(guest('basic', `${basicReg.host}/team/app:v1`, ['basiccred']));
    const b = await record('basic', (r) => !!r.pullAuth);
    assert.deepEqual(b.pullAuth!.tokens, []);
    assert.match(b.pullAuth!.problems!.join('\n'), /accepts only Basic auth: krata does not send passwords to hosts through Redis/);
    assert.ok(!JSON.stringify(b).includes(PASSWORD));
  });

  test('a Guest without imagePullSecrets has no pullAuth', async () => {
    await kube.client.createGuest(guest('plain', `${reg.host}/team/app:v1`, []));
    const p = await record('plain', () => true);
    assert.equal(p.pullAuth, undefined);
  });

  test(
    'tokens are shared by Guests of one namespace, Secret list and ' + 'image, renewed at half life, and kept while a renewal fails',
    async () => {
      let now = Date.now();
      const secrets = new Map([
        ['ns/cred', { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': dockerConfig(reg.host) } }],
      ]);
      let reads = 0;
      const issuer = new PullTokenIssuer(
        {
          getSecret: async (namespace, name) => {
            reads++;
            const s = secrets.get(`${namespace}/${name}`);
            if (!s) throw new KubeError(404, 'not found');
            return s;
          },
        },
        { insecure: [reg.host, reg.tokenServer!.host], now: () => now },
      );
      const g = (name: string, namespace = 'ns') =>
        ({ ...guest(name, `${reg.host}/team/app:v1`, ['cred']), metadata: { name, namespace } }) as Guest;
      const [a, b] = await Promise.all([issuer.forGuest(g('a')), issuer.forGuest(g('b'))]);
      assert.equal(reads, 1, 'one exchange for both');
      assert.equal(a.auth!.tokens[0]!.token, b.auth!.tokens[0]!.token);
      assert.ok(a.renewInMs! > 140_000 && a.renewInMs! <= 150_000, `renewed at half of 300 s: ${a.renewInMs}`);
      assert.deepEqual((await issuer.forGuest(g('c', 'other'))).auth!.problems, [
        'image pull secret other/cred not found',
        `no image pull secret of the Guest (cred) has credentials for ${reg.host}`,
      ]);

      now += 151_000;
      secrets.delete('ns/cred');
      const kept = await issuer.forGuest(g('a'));
      assert.equal(kept.auth!.tokens[0]!.token, a.auth!.tokens[0]!.token, 'the working token stays until it expires');
      assert.match(kept.auth!.problems!.join('\n'), /ns\/cred not found/);
      now += 150_000;
      assert.deepEqual((await issuer.forGuest(g('a'))).auth!.tokens, [], 'expired: gone');
    },
  );
});
