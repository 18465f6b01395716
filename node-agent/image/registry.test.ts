// The registry client's authentication against the real registry with token auth (Debian's
// docker-registry verifying RS256 JWTs from the test token server, as Docker Hub and most
// registries work), and its failure handling against a scripted node:http server.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type Registry, type TokenRequest } from '../../test/registry.js';
import { buildImage, pushImage, sha256, type BuiltImage } from '../../test/oci-images.js';
import { buildTar } from '../../lib/tar.js';
import { CredentialStore } from '../../lib/oci/credentials.js';
import { ImageStore } from './store.js';
import { parseChallenge, RegistryClient, RegistryError } from '../../lib/oci/registry.js';
import { parseReference, type ImageReference } from '../../lib/oci/reference.js';
import { LIMITS, type Descriptor } from '../../lib/oci/manifest.js';

const work = mkdtempSync(join(tmpdir(), 'krata-registry-client-test-'));
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
      { compression: 'gzip', tar: buildTar([{ path: 'srv/app', data: Buffer.from(`${text}\n`.repeat(100)) }]) },
    ],
    config: { Cmd: ['/bin/sh'] },
  });
}

const dockerConfig = (auths: Record<string, unknown>) => CredentialStore.fromDockerConfig(JSON.stringify({ auths }), 'config.json');
const basicAuth = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64');

describe('token auth against docker-registry', { timeout: 60_000 }, () => {
  const USER = 'krata';
  const PASSWORD = 's3cret';
  const IDENTITY_TOKEN = 'krata-identity-token-0123456789';
  let reg: Registry;
  let tokenHost: string;
  const publicImg = smallImage('public');
  const privateImg = smallImage('private');

  /** The token server's log since the last call. */
  function takeRequests(): TokenRequest[] {
    return reg.tokenServer!.requests.splice(0);
  }

  function newStore(registry: ConstructorParameters<typeof ImageStore>[0]['registry'] = {}): ImageStore {
    const store = new ImageStore({ root: join(work, `store-${++n}`), registry: { insecure: [reg.host, tokenHost], ...registry } });
    store.recover();
    return store;
  }

  before(async () => {
    reg = await startRegistry({
      token: { users: { [USER]: PASSWORD }, publicRepos: ['public/app'], identityTokens: { [USER]: IDENTITY_TOKEN } },
    });
    tokenHost = reg.tokenServer!.host;
    await pushImage(reg, 'public/app', 'v1', publicImg, { username: USER, password: PASSWORD });
    await pushImage(reg, 'private/app', 'v1', privateImg, { username: USER, password: PASSWORD });
    const pushes = takeRequests();
    assert.ok(
      pushes.length > 0 && pushes.every((r) => r.via === 'basic' && r.user === USER && r.status === 200),
      'the pushes authenticated at the token server',
    );
  });
  after(async () => {
    await reg?.stop();
  });

  test('the registry itself refuses anonymous requests with a Bearer challenge naming the token server', async () => {
    const res = await fetch(`${reg.url}/v2/public/app/manifests/v1`);
    await res.arrayBuffer();
    assert.equal(res.status, 401);
    const { scheme, params } = parseChallenge(res.headers.get('www-authenticate') ?? '');
    assert.equal(scheme, 'bearer');
    assert.equal(params.realm, reg.tokenServer!.realm);
    assert.equal(params.service, 'krata-test-registry');
    assert.equal(params.scope, 'repository:public/app:pull');
  });

  test('anonymous pull of a public repository goes through the bearer flow, one token for the whole pull', async () => {
    const got = await newStore().pull(`${reg.host}/public/app:v1`);
    assert.equal(got.digest, publicImg.manifestDigest);
    assert.ok(existsSync(got.path));
    const seen = takeRequests();
    assert.deepEqual(
      seen.map(({ method, via, user, scopes, status, access }) => ({ method, via, user, scopes, status, access })),
      [
        {
          method: 'GET',
          via: 'anonymous',
          user: undefined,
          scopes: ['repository:public/app:pull'],
          status: 200,
          access: [{ type: 'repository', name: 'public/app', actions: ['pull'] }],
        },
      ],
      'one anonymous token request, reused for the manifest, the config and every layer',
    );
  });

  test('the same through RegistryClient.resolve and downloadBlob', async () => {
    const client = new RegistryClient({ insecure: [reg.host, tokenHost] });
    const ref = parseReference(`${reg.host}/public/app:v1`);
    const resolved = await client.resolve(ref);
    assert.equal(resolved.digest, publicImg.manifestDigest);
    const layer = resolved.manifest.layers[1]!;
    const file = join(work, `blob-${++n}`);
    await client.downloadBlob(ref, layer, file);
    assert.equal(statSync(file).size, layer.size);
    assert.equal(takeRequests().length, 1);
  });

  test('a private repository is refused without credentials, with an error that says so', async () => {
    const store = newStore();
    await assert.rejects(store.pull(`${reg.host}/private/app:v1`), (e: Error) => {
      assert.ok(e instanceof RegistryError);
      assert.match(e.message, /private\/app:v1/);
      assert.match(
        e.message,
        /HTTP 401: access denied \(no credentials for this registry: add them to a docker config\.json or an image pull secret\)/,
      );
      return true;
    });
    assert.deepEqual(store.list(), []);
    const seen = takeRequests();
    assert.equal(seen.length, 1, 'asked once; a token that grants nothing is final');
    assert.deepEqual([seen[0]!.via, seen[0]!.scopes, seen[0]!.access], ['anonymous', ['repository:private/app:pull'], []]);
  });

  test('a token service over plain http is refused unless its host is listed as insecure', async () => {
    const store = new ImageStore({ root: join(work, `store-${++n}`), registry: { insecure: [reg.host] } });
    await assert.rejects(
      store.pull(`${reg.host}/public/app:v1`),
      new RegExp(`token service http://${tokenHost.replace(/\./g, '\\.')} is not https`),
    );
    assert.deepEqual(takeRequests(), [], 'nothing was sent to it');
  });

  test('a docker config.json credential (auth) is sent to the token server as Basic', async () => {
    const credentials = dockerConfig({ [reg.host]: { auth: basicAuth(USER, PASSWORD) } });
    const got = await newStore({ credentials }).pull(`${reg.host}/private/app:v1`);
    assert.equal(got.digest, privateImg.manifestDigest);
    const seen = takeRequests();
    assert.equal(seen.length, 1);
    assert.deepEqual([seen[0]!.method, seen[0]!.via, seen[0]!.user, seen[0]!.status], ['GET', 'basic', USER, 200]);
    assert.deepEqual(
      seen[0]!.access,
      [{ type: 'repository', name: 'private/app', actions: ['pull'] }],
      'pull only: the client asks for no more',
    );
  });

  test('a wrong password is refused by the token server, and the error says the credentials were refused', async () => {
    const credentials = dockerConfig({ [reg.host]: { username: USER, password: 'wrong' } });
    await assert.rejects(
      newStore({ credentials }).pull(`${reg.host}/private/app:v1`),
      /token service http:\/\/127\.0\.0\.1:\d+ answered HTTP 401 \(the credentials were refused\)/,
    );
    const seen = takeRequests();
    assert.deepEqual(
      seen.map((r) => [r.via, r.user, r.status]),
      [['basic', USER, 401]],
      'a refusal is final: not retried',
    );
  });

  test('an identity token (docker login with OAuth) is exchanged with a refresh-token POST', async () => {
    const credentials = dockerConfig({ [`https://${reg.host}/v1/`]: { auth: basicAuth('<token>', ''), identitytoken: IDENTITY_TOKEN } });
    assert.deepEqual(credentials.lookup(reg.host), { identityToken: IDENTITY_TOKEN });
    const got = await newStore({ credentials }).pull(`${reg.host}/private/app:v1`);
    assert.equal(got.digest, privateImg.manifestDigest);
    const seen = takeRequests();
    assert.deepEqual(
      seen.map(({ method, via, user, scopes, status }) => ({ method, via, user, scopes, status })),
      [{ method: 'POST', via: 'refresh_token', user: USER, scopes: ['repository:private/app:pull'], status: 200 }],
    );
    const stale = dockerConfig({ [reg.host]: { identitytoken: 'revoked' } });
    await assert.rejects(
      newStore({ credentials: stale }).pull(`${reg.host}/private/app:v1`),
      /answered HTTP 401 \(the credentials were refused\)/,
    );
    assert.deepEqual(
      takeRequests().map((r) => [r.method, r.via, r.status]),
      [['POST', 'refresh_token', 401]],
    );
  });
});

// --- failure handling against a scripted server ---

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

describe('RegistryClient against a scripted server', { timeout: 30_000 }, () => {
  let server: Server;
  let host: string;
  let handler: Handler = (_req, res) => res.writeHead(500).end();
  /** Paths requested, in order. */
  let requests: string[] = [];
  const img = smallImage('scripted');
  const manifestDesc: Descriptor = { mediaType: img.manifestMediaType, digest: img.manifestDigest, size: img.manifest.length };
  const layer = img.layers[1]!;
  const layerDesc: Descriptor = { mediaType: layer.mediaType, digest: layer.digest, size: layer.size };
  let ref: ImageReference;

  const client = (opts: ConstructorParameters<typeof RegistryClient>[0] = {}) => new RegistryClient({ insecure: [host], ...opts });
  const serveManifest = (res: ServerResponse, extra: Record<string, string> = {}) =>
    res
      .writeHead(200, {
        'content-type': img.manifestMediaType,
        'content-length': img.manifest.length,
        'docker-content-digest': img.manifestDigest,
        ...extra,
      })
      .end(img.manifest);
  const count = (suffix: string) => requests.filter((p) => p.endsWith(suffix)).length;

  before(async () => {
    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      handler(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('no port');
    host = `127.0.0.1:${addr.port}`;
    ref = parseReference(`${host}/test/app:v1`);
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function script(h: Handler): void {
    requests = [];
    handler = h;
  }

  test('503 twice, then the manifest: retried with backoff', async () => {
    let calls = 0;
    script((_req, res) => {
      if (++calls <= 2) res.writeHead(503, { 'content-type': 'text/plain' }).end('busy');
      else serveManifest(res);
    });
    const resolved = await client().resolve(ref);
    assert.equal(resolved.digest, img.manifestDigest);
    assert.deepEqual(requests, Array(3).fill('/v2/test/app/manifests/v1'));
  });

  test('429 is retried too; 503 that never ends gives up after the attempts, naming the status', async () => {
    let calls = 0;
    script((_req, res) => {
      if (++calls === 1) res.writeHead(429).end();
      else serveManifest(res);
    });
    assert.equal((await client().resolve(ref)).digest, img.manifestDigest);
    assert.equal(requests.length, 2);
    script((_req, res) => res.writeHead(503, { 'content-type': 'text/plain' }).end('maintenance'));
    await assert.rejects(
      client({ attempts: 3 }).resolve(ref),
      (e: Error) => e instanceof RegistryError && e.status === 503 && /HTTP 503: maintenance/.test(e.message),
    );
    assert.equal(requests.length, 3);
  });

  test('an error response whose body stalls or never ends does not hang the client', async () => {
    // 503 with a body that stops after a few bytes: bounded by the idle timeout, then retried.
    script((_req, res) => {
      res.writeHead(503, { 'content-type': 'text/plain', 'content-length': 1000 });
      res.write('overloa');
    });
    const t0 = Date.now();
    await assert.rejects(
      client({ idleTimeoutMs: 300, attempts: 2 }).resolve(ref),
      (e: Error) => e instanceof RegistryError && e.status === 503 && /HTTP 503: overloa$/.test(e.message),
    );
    assert.ok(Date.now() - t0 < 5_000);
    assert.equal(requests.length, 2);
    // 500 with an endless body: the start of it is enough for the message; the rest is given up.
    let closed!: () => void;
    const connectionClosed = new Promise<void>((r) => (closed = r));
    script((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      let open = true;
      res.on('close', () => {
        open = false;
        closed();
      });
      const chunk = Buffer.alloc(16 * 1024, 'x');
      const pump = () => {
        while (open) if (!res.write(chunk)) return void res.once('drain', pump);
      };
      pump();
    });
    await assert.rejects(
      client({ attempts: 1 }).resolve(ref),
      (e: Error) => e instanceof RegistryError && e.status === 500 && /HTTP 500: x{300}$/.test(e.message),
    );
    await Promise.race([
      connectionClosed,
      new Promise((_, reject) => setTimeout(() => reject(new Error('the connection was left open')), 2_000)),
    ]);
  });

  test('404 is final: not retried, and the error names the reference and says not found', async () => {
    script((_req, res) => res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'));
    const missing = parseReference(`${host}/test/app:nope`);
    await assert.rejects(client().resolve(missing), (e: Error) => {
      assert.ok(e instanceof RegistryError);
      assert.equal(e.status, 404);
      assert.match(
        e.message,
        new RegExp(
          `^${host.replace(/\./g, '\\.')}/test/app:nope: GET ` +
            `http://${host.replace(/\./g, '\\.')}/v2/test/app/manifests/nope: HTTP 404: not found \\(.*MANIFEST_UNKNOWN`,
        ),
      );
      return true;
    });
    assert.equal(requests.length, 1);
  });

  test('a manifest whose Docker-Content-Digest differs from its content is refused (and not retried)', async () => {
    const other = sha256(Buffer.from('something else'));
    script((_req, res) => serveManifest(res, { 'docker-content-digest': other }));
    await assert.rejects(
      client().resolve(ref),
      new RegExp(`has digest ${img.manifestDigest}, expected ${other} \\(tampered or corrupt\\)`),
    );
    assert.equal(requests.length, 1);
    // By digest, the content must be that digest whatever the headers say.
    script((_req, res) => serveManifest(res, { 'docker-content-digest': img.manifestDigest }));
    const byDigest = parseReference(`${host}/test/app@${other}`);
    await assert.rejects(client().resolve(byDigest), /tampered or corrupt/);
    assert.deepEqual(requests, [`/v2/test/app/manifests/${other}`]);
  });

  test('a manifest over 4 MiB is refused from its Content-Length, without reading it', async () => {
    let closed!: () => void;
    const connectionClosed = new Promise<void>((r) => (closed = r));
    script((_req, res) => {
      res.on('close', () => closed());
      res.writeHead(200, { 'content-type': img.manifestMediaType, 'content-length': LIMITS.manifestBytes + 1 });
      res.write(Buffer.alloc(1024, 0x20)); // and then nothing: reading on would stall, not fail this way
    });
    const t0 = Date.now();
    await assert.rejects(
      client({ idleTimeoutMs: 5_000 }).resolve(ref),
      new RegExp(`is ${LIMITS.manifestBytes + 1} bytes, more than the ${LIMITS.manifestBytes} allowed`),
    );
    assert.ok(Date.now() - t0 < 2_000, 'refused at once');
    assert.equal(requests.length, 1);
    // The connection is given up, not left open holding the unread body.
    await Promise.race([
      connectionClosed,
      new Promise((_, reject) => setTimeout(() => reject(new Error('the connection was left open')), 2_000)),
    ]);
  });

  test('a chunked manifest over 4 MiB is refused once it passes the limit; the endless body is given up', async () => {
    let sent = 0;
    let closed!: () => void;
    const connectionClosed = new Promise<void>((r) => (closed = r));
    script((_req, res) => {
      res.writeHead(200, { 'content-type': img.manifestMediaType }); // no Content-Length: chunked
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let open = true;
      res.on('close', () => {
        open = false;
        closed();
      });
      // An endless body, sent as fast as the client reads it: only the limit ends this request.
      const pump = () => {
        while (open) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    });
    await assert.rejects(client().resolve(ref), new RegExp(`is more than the ${LIMITS.manifestBytes} bytes allowed`));
    assert.equal(requests.length, 1, 'not retried');
    await Promise.race([
      connectionClosed,
      new Promise((_, reject) => setTimeout(() => reject(new Error('the connection was left open')), 2_000)),
    ]);
    assert.ok(sent > LIMITS.manifestBytes, `the server got past the limit (${sent} bytes)`);
  });

  test('a blob that stalls longer than idleTimeoutMs fails with "no data for"', async () => {
    script((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': layer.size });
      res.write(layer.data.subarray(0, 10)); // then silence
    });
    const file = join(work, `blob-${++n}`);
    const t0 = Date.now();
    await assert.rejects(
      client({ idleTimeoutMs: 300, attempts: 2 }).downloadBlob(ref, layerDesc, file),
      new RegExp(`blob ${layer.digest}: no data for 300 ms`),
    );
    const took = Date.now() - t0;
    assert.ok(took >= 600 && took < 5_000, `two attempts of 300 ms each (took ${took} ms)`);
    assert.equal(count(`/blobs/${layer.digest}`), 2, 'a stall is transient: retried');
  });

  test('a server that sends no headers in time fails the same way', async () => {
    script(() => undefined); // never answers
    await assert.rejects(
      client({ idleTimeoutMs: 300, attempts: 1 }).resolve(ref),
      /cannot reach http:\/\/127\.0\.0\.1:\d+: .*no response in 300 ms/,
    );
  });

  test('a blob larger than its descriptor says is refused: from Content-Length, or while streaming', async () => {
    const bigger = Buffer.concat([layer.data, Buffer.from('trailing junk')]);
    script((_req, res) => res.writeHead(200, { 'content-length': bigger.length }).end(bigger));
    const file = join(work, `blob-${++n}`);
    await assert.rejects(
      client().downloadBlob(ref, layerDesc, file),
      new RegExp(
        `blob ${layer.digest} from http://${host.replace(/\./g, '\\.')} is ` +
          `${bigger.length} bytes, the manifest says ${layer.size}: refused`,
      ),
    );
    assert.equal(requests.length, 1, 'not retried');
    // Refused from the header alone: the rest of the body is neither waited for nor read.
    let closed!: () => void;
    const connectionClosed = new Promise<void>((r) => (closed = r));
    script((_req, res) => {
      res.on('close', () => closed());
      res.writeHead(200, { 'content-length': 1 << 30 }).write(layer.data.subarray(0, 10));
    });
    await assert.rejects(
      client({ idleTimeoutMs: 5_000 }).downloadBlob(ref, layerDesc, file),
      new RegExp(`is ${1 << 30} bytes, the manifest says ${layer.size}: refused`),
    );
    await Promise.race([
      connectionClosed,
      new Promise((_, reject) => setTimeout(() => reject(new Error('the connection was left open')), 2_000)),
    ]);
    script((_req, res) => {
      res.writeHead(200); // chunked
      res.write(bigger.subarray(0, 100));
      setTimeout(() => res.end(bigger.subarray(100)), 20);
    });
    await assert.rejects(
      client().downloadBlob(ref, layerDesc, file),
      new RegExp(`blob ${layer.digest} from .* is larger than the ${layer.size} bytes the manifest says: refused`),
    );
    assert.equal(requests.length, 1);
    // Right size, wrong bytes.
    const flipped = Buffer.from(layer.data);
    flipped[flipped.length - 1] ^= 0xff;
    script((_req, res) => res.writeHead(200, { 'content-length': flipped.length }).end(flipped));
    await assert.rejects(client().downloadBlob(ref, layerDesc, file), /does not match its digest .*refused/);
    // The config (read into memory) has the same bound.
    script((_req, res) => res.writeHead(200).end(Buffer.concat([img.config, Buffer.from('x')])));
    const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: img.configDigest, size: img.config.length };
    await assert.rejects(
      client().fetchBlob(ref, configDesc, LIMITS.configBytes),
      new RegExp(`blob ${img.configDigest} is more than the ${img.config.length} bytes allowed`),
    );
    script((_req, res) => res.writeHead(200).end(img.config));
    assert.deepEqual(await client().fetchBlob(ref, configDesc, LIMITS.configBytes), img.config);
  });

  test('a whole pull from the scripted registry works (the script serves the image it claims)', async () => {
    const blobs = new Map([[img.configDigest, img.config], ...img.layers.map((l) => [l.digest, l.data] as const)]);
    script((req, res) => {
      const m = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '');
      if (req.url === '/v2/test/app/manifests/v1') return serveManifest(res);
      const blob = m && blobs.get(m[1]!);
      if (blob) return res.writeHead(200, { 'content-length': blob.length }).end(blob);
      res.writeHead(404).end();
    });
    const store = new ImageStore({ root: join(work, `store-${++n}`), registry: { insecure: [host] } });
    assert.equal((await store.pull(`${host}/test/app:v1`)).digest, manifestDesc.digest);
  });
});

test('parseChallenge', () => {
  assert.deepEqual(
    parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push"'),
    {
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull,push' },
    },
  );
  // Unquoted values, spaces around the separators, parameter names in any case.
  assert.deepEqual(parseChallenge('Basic realm=krata-test'), { scheme: 'basic', params: { realm: 'krata-test' } });
  assert.deepEqual(parseChallenge('  BEARER  Realm = "http://a/token" , Service=reg '), {
    scheme: 'bearer',
    params: { realm: 'http://a/token', service: 'reg' },
  });
  assert.equal(parseChallenge('bAsIc realm="x"').scheme, 'basic');
  // Escapes inside quotes; an error parameter after the scope.
  assert.deepEqual(parseChallenge('Bearer realm="a \\"quoted\\" realm",scope="repository:a/b:pull",error="insufficient_scope"').params, {
    realm: 'a "quoted" realm',
    scope: 'repository:a/b:pull',
    error: 'insufficient_scope',
  });
  // A comma inside quotes does not end the value; an unquoted value ends at the comma.
  assert.deepEqual(parseChallenge('Bearer scope="repository:x:pull,push",realm=http://r/t,service=s').params, {
    scope: 'repository:x:pull,push',
    realm: 'http://r/t',
    service: 's',
  });
  assert.deepEqual(parseChallenge(''), { scheme: '', params: {} });
  assert.deepEqual(parseChallenge('Negotiate'), { scheme: 'negotiate', params: {} });
});
