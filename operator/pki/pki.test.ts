// The operator's certificate authority against a real kube-apiserver and Redis: the krata CA made once and
// kept (across restarts and racing replicas) or taken from an administrator; agents' requests answered
// with certificates for their own key and host name, bad ones refused with an Event and one log line;
// krata-api's Secrets issued and renewed two thirds into their life; the APIService's caBundle kept.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { KRATA_API_CLIENT_NAME, agentServerName } from '../../contracts/krata-api/agent-tls.js';
import { APISERVICE_NAME } from '../../contracts/krata-api/subresources.js';
import { certKey, certRequestKey, type IssuedCertificate } from '../../contracts/redis/contract.js';
import type { XenHost } from '../../crds/generated/types.js';
import { resolve } from '../../lib/container.js';
import { createCA, newKeyPair } from '../../lib/x509/index.js';
import { certRequest } from '../../test/cert-request.js';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import { startTestOperator } from '../../test/harness/operator.js';
import { startKube, waitFor, type TestKube } from '../../test/kube/operator-env.js';
import { startRedis, type TestRedis } from '../../test/redis.js';
import { PKI } from '../container/ids.js';
import { AGENT_CERT_VALIDITY_MS, AgentCertificates, CERT_ISSUED, CERT_REQUEST_REJECTED } from './agent-certs.js';
import { CA_SECRET, ensureCA, parseCA, secretValue, type KrataCA, type Secret } from './ca.js';
import { CLIENT_SECRET, SERVING_SECRET, ensureCaBundle, ensureKrataApiCertificates } from './krata-api-certs.js';
import { OperatorPki } from './pki.js';

const DAY = 24 * 3600_000;
let kube: TestKube;
let redis: TestRedis;
let r: Redis;
const limit = { timeout: 120_000 };

before(async () => {
  [kube, redis] = await Promise.all([startKube(), startRedis()]);
  r = new Redis(redis.url);
});
after(async () => {
  r?.disconnect();
  await Promise.all([kube?.stop(), redis?.stop()]);
});

const namespace = (name: string) =>
  kube.client.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } });
const getSecret = (ns: string, name: string) => kube.client.request<Secret>('GET', `/api/v1/namespaces/${ns}/secrets/${name}`);
const xenHost = (name: string) => kube.client.createXenHost(name);
const newCA = (now = Date.now()): KrataCA => {
  const c = createCA('test CA', new Date(now + 3650 * DAY));
  return parseCA(c.certificatePem, c.privateKeyPem, now);
};
async function issued(host: string): Promise<IssuedCertificate | null> {
  const raw = await r.get(certKey(host));
  return raw === null ? null : (JSON.parse(raw) as IssuedCertificate);
}
async function events(name: string, reason: string): Promise<{ message: string; type: string }[]> {
  const list = await kube.client.request<{ items: { message: string; type: string }[] }>('GET', '/api/v1/namespaces/default/events', {
    query: { fieldSelector: `involvedObject.name=${name},reason=${reason}` },
  });
  return list.items;
}
/** `openssl verify -CAfile ca -purpose P` of a PEM. */
function opensslVerify(caPem: string, certPem: string, purpose: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'krata-pki-'));
  try {
    writeFileSync(join(dir, 'ca.pem'), caPem);
    writeFileSync(join(dir, 'cert.pem'), certPem);
    const v = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), '-purpose', purpose, join(dir, 'cert.pem')], {
      encoding: 'utf8',
    });
    return (v.stdout + v.stderr).trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the krata CA is made once in Secret krata-ca: racing replicas agree, later starts reuse it', limit, async () => {
  await namespace('pki-ca');
  const logs: string[] = [];
  const now = Date.now();
  const [a, b] = await Promise.all([
    ensureCA(kube.client, 'pki-ca', now, (m) => logs.push(m)),
    ensureCA(kube.client, 'pki-ca', now, (m) => logs.push(m)),
  ]);
  assert.equal(a.ca.certificatePem, b.ca.certificatePem, 'two replicas starting together use one CA');
  assert.equal(logs.filter((l) => l.startsWith('created the krata CA')).length, 1, logs.join('\n'));
  assert.ok(!logs.join('\n').includes('PRIVATE KEY'), 'the key is never logged');
  const s = await getSecret('pki-ca', CA_SECRET);
  assert.equal(s.type, 'kubernetes.io/tls');
  const cert = new X509Certificate(secretValue(s, 'tls.crt')!);
  assert.equal(cert.ca, true);
  assert.equal(cert.subject, 'CN=krata CA');
  assert.ok(Math.abs(Date.parse(cert.validTo) - (now + 3650 * DAY)) < 5000, `valid for 10 years: ${cert.validTo}`);
  assert.ok(cert.checkPrivateKey(createPrivateKey(secretValue(s, 'tls.key')!)));
  const writes = kube.client.writes;
  const again = await ensureCA(kube.client, 'pki-ca', now + DAY, () => undefined);
  assert.equal(again.ca.certificatePem, a.ca.certificatePem);
  assert.equal(kube.client.writes, writes, 'nothing written when the CA exists');
});

test('the operator with --pki-namespace: its CA survives a restart, and an agent request that appears is answered', limit, async () => {
  await namespace('pki-op');
  await xenHost('xen-op');
  const config = { redis: { url: redis.url }, pki: { namespace: 'pki-op', intervalMs: 100 } };
  const said: string[] = [];
  let op = await startTestOperator(kube.client, config, (m) => said.push(m));
  let ca: X509Certificate;
  try {
    const s = await waitFor(() => getSecret('pki-op', CA_SECRET).catch(() => undefined), 'Secret krata-ca');
    ca = new X509Certificate(secretValue(s, 'tls.crt')!);
    await waitFor(() => getSecret('pki-op', CLIENT_SECRET).catch(() => undefined), 'Secret krata-api-client');
    const keys = newKeyPair();
    await r.set(certRequestKey('xen-op'), certRequest('xen-op', keys));
    const answer = await waitFor(() => issued('xen-op'), 'the certificate of xen-op', 5000);
    const cert = new X509Certificate(answer.certificate);
    assert.ok(cert.verify(ca.publicKey));
    assert.ok(cert.publicKey.equals(keys.publicKey));
    assert.equal(cert.subjectAltName, `DNS:${agentServerName('xen-op')}`);
  } finally {
    await op.stop();
  }
  const before = await getSecret('pki-op', CA_SECRET);
  op = await startTestOperator(kube.client, config, (m) => said.push(m));
  try {
    const pki = await resolve(op.container, PKI);
    await waitFor(() => pki.authority, 'the restarted operator has its CA');
    assert.equal(pki.authority!.cert.fingerprint256, ca.fingerprint256, 'the same CA after a restart');
    assert.equal((await getSecret('pki-op', CA_SECRET)).metadata.resourceVersion, before.metadata.resourceVersion);
  } finally {
    await op.stop();
  }
  assert.equal(said.filter((l) => l.startsWith('created the krata CA')).length, 1);
  assert.equal(said.filter((l) => l.includes('Issued a certificate')).length, 1, 'the restart did not issue again');
  assert.ok(!said.join('\n').includes('PRIVATE KEY'));
  await r.del(certRequestKey('xen-op'), certKey('xen-op'));
});

test("an administrator's CA in krata-ca is used as it is; one that is no CA or has the wrong key is refused", limit, async () => {
  await namespace('pki-admin');
  const dir = mkdtempSync(join(tmpdir(), 'krata-pki-'));
  try {
    const gen = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '30',
        '-subj',
        '/O=Example/CN=Example Platform CA',
        '-keyout',
        join(dir, 'ca.key'),
        '-out',
        join(dir, 'ca.crt'),
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(gen.status, 0, gen.stderr);
    const caPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const put = (data: Record<string, string>) =>
      kube.client.request('POST', '/api/v1/namespaces/pki-admin/secrets', {
        body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: CA_SECRET }, type: 'kubernetes.io/tls', data },
      });
    // A leaf is no CA: refused, and left alone.
    const leafKeys = newKeyPair();
    const notCA = createCA('x', new Date(Date.now() + DAY));
    await put({
      'tls.crt': b64(notCA.certificatePem),
      'tls.key': b64(leafKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string),
    });
    await assert.rejects(
      ensureCA(kube.client, 'pki-admin', Date.now(), () => undefined),
      (e: Error) => {
        assert.match(e.message, /^Secret pki-admin\/krata-ca: tls.key is not the key of tls.crt$/);
        return true;
      },
    );
    await kube.client.request('DELETE', `/api/v1/namespaces/pki-admin/secrets/${CA_SECRET}`);
    await put({ 'tls.crt': b64(caPem), 'tls.key': b64(readFileSync(join(dir, 'ca.key'), 'utf8')) });
    const { ca } = await ensureCA(kube.client, 'pki-admin', Date.now(), () => undefined);
    assert.equal(ca.cert.fingerprint256, new X509Certificate(caPem).fingerprint256);
    // Its certificates chain to it, for the purpose they serve.
    await xenHost('xen-admin');
    const agents = new AgentCertificates(r, {
      getHost: (n) =>
        n === 'xen-admin'
          ? ({ apiVersion: 'krata.dev/v1alpha1', kind: 'XenHost', metadata: { name: n, uid: 'u' }, spec: {} } as XenHost)
          : undefined,
      now: () => Date.now(),
      log: () => undefined,
      event: () => undefined,
      pinKey: async () => undefined,
    });
    await r.set(certRequestKey('xen-admin'), certRequest('xen-admin'));
    assert.deepEqual(await agents.sync(ca), ['xen-admin']);
    const answer = (await issued('xen-admin'))!;
    assert.equal(answer.ca, ca.certificatePem);
    assert.match(opensslVerify(caPem, answer.certificate, 'sslserver'), /: OK$/);
    assert.match(opensslVerify(caPem, answer.certificate, 'sslclient'), /unsuitable certificate purpose/);
    const { certificate } = answer;
    assert.equal(new X509Certificate(certificate).issuer, 'O=Example\nCN=Example Platform CA');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await r.del(certRequestKey('xen-admin'), certKey('xen-admin'));
  }
});

test(
  'agent requests: answered for the key and host they name; bad ones refused once with an Event; renewed and replaced',
  limit,
  async () => {
    const hosts = new Map<string, XenHost>();
    for (const h of ['xen-a', 'xen-b', 'xen-c', 'xen-d', 'xen-e']) hosts.set(h, await xenHost(h));
    let now = Date.now();
    const logs: string[] = [];
    const agents = new AgentCertificates(r, {
      getHost: (n) => hosts.get(n),
      now: () => now,
      log: (m) => logs.push(m),
      // The XenHost cache as the informer would have it once the pin landed.
      pinKey: async (n, agentKey) => {
        const h = hosts.get(n)!;
        hosts.set(n, { ...h, status: { ...h.status, agentKey } });
      },
      event: (host, type, reason, message) =>
        void kube.client.createEvent({
          namespace: 'default',
          involved: { kind: 'XenHost', apiVersion: 'krata.dev/v1alpha1', name: host.metadata.name, uid: host.metadata.uid! },
          type,
          reason,
          message,
        }),
    });
    const ca = newCA(now);
    const keyA = newKeyPair();
    await r.set(certRequestKey('xen-a'), certRequest('xen-a', keyA));
    await r.set(certRequestKey('xen-b'), certRequest('xen-b', newKeyPair(), 'xen-a')); // a proof made for another host
    await r.set(certRequestKey('xen-c'), certRequest('xen-c', generateKeyPairSync('ec', { namedCurve: 'secp384r1' })));
    await r.set(certRequestKey('xen-d'), '\x00garbage');
    await r.set(certRequestKey('xen-e'), JSON.stringify({ pad: 'x'.repeat(20_000) }));
    await r.set(certRequestKey('xen-ghost'), certRequest('xen-ghost')); // no XenHost of that name
    await r.set('krata:host:Not_A_Host:cert-request', certRequest('not-a-host'));
    await r.lpush(certRequestKey('xen-list'), 'x'); // not a string

    assert.deepEqual(await agents.sync(ca), ['xen-a']);
    const a1 = (await issued('xen-a'))!;
    const cert = new X509Certificate(a1.certificate);
    assert.ok(cert.verify(ca.cert.publicKey) && cert.checkIssued(ca.cert), 'issued by the krata CA');
    assert.ok(cert.publicKey.equals(keyA.publicKey), 'for the requested key');
    assert.equal(cert.subjectAltName, `DNS:${agentServerName('xen-a')}`);
    assert.equal(cert.checkHost(agentServerName('xen-a')), agentServerName('xen-a'));
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'serverAuth only');
    assert.equal(cert.ca, false);
    assert.equal(a1.ca, ca.certificatePem);
    assert.equal(Date.parse(a1.notAfter), Date.parse(cert.validTo));
    assert.ok(Math.abs(Date.parse(a1.notAfter) - (now + AGENT_CERT_VALIDITY_MS)) < 1000, '90 days');
    for (const h of ['xen-b', 'xen-c', 'xen-d', 'xen-e', 'xen-ghost', 'xen-list']) assert.equal(await issued(h), null, `${h} not answered`);
    const refusals = () => logs.filter((l) => / refused: |no XenHost/.test(l));
    assert.deepEqual(refusals().sort(), [
      'a certificate request under host name xen-ghost, which is no XenHost, is not answered',
      'certificate request of host xen-b refused: the proof does not verify with publicKey for this host',
      'certificate request of host xen-c refused: publicKey is EC secp384r1; ECDSA P-256 is required',
      'certificate request of host xen-d refused: not JSON',
      'certificate request of host xen-e refused: larger than 8192 bytes',
    ]);
    for (const h of ['xen-b', 'xen-c', 'xen-d', 'xen-e'])
      await waitFor(async () => (await events(h, CERT_REQUEST_REJECTED)).length === 1, `a ${CERT_REQUEST_REJECTED} Event on ${h}`);
    const issuedEvents = await waitFor(async () => {
      const e = await events('xen-a', CERT_ISSUED);
      return e.length ? e : undefined;
    }, `a ${CERT_ISSUED} Event on xen-a`);
    assert.equal(issuedEvents[0]!.type, 'Normal');
    assert.match(issuedEvents[0]!.message, /^Issued a certificate for xen-a\.agents\.krata\.internal to key sha256:[0-9a-f]{64} until /);

    // Nothing changed: nothing issued, written or said again.
    const said = logs.length;
    now += DAY;
    assert.deepEqual(await agents.sync(ca), []);
    assert.equal((await issued('xen-a'))!.certificate, a1.certificate);
    assert.equal(logs.length, said);

    // Two thirds into its life the certificate is renewed, for the same key.
    now += 59 * DAY;
    assert.deepEqual(await agents.sync(ca), ['xen-a']);
    const a2 = new X509Certificate((await issued('xen-a'))!.certificate);
    assert.notEqual(a2.serialNumber, cert.serialNumber);
    assert.ok(a2.publicKey.equals(keyA.publicKey));
    assert.deepEqual(await agents.sync(ca), []);

    // The first key is pinned in the XenHost's status: another key under xen-a's name (another node, as
    // agents share one Redis user; or xen-a reinstalled) is refused, once, until the pin is removed.
    assert.match(hosts.get('xen-a')!.status!.agentKey!, /^sha256:[0-9a-f]{64}$/);
    const keyA2 = newKeyPair();
    await r.set(certRequestKey('xen-a'), certRequest('xen-a', keyA2));
    assert.deepEqual(await agents.sync(ca), []);
    assert.ok(new X509Certificate((await issued('xen-a'))!.certificate).publicKey.equals(keyA.publicKey), 'the answer is unchanged');
    assert.match(logs.at(-1)!, /xen-a refused: its key sha256:[0-9a-f]{64} is not the key this host was first certified for/);
    const said2 = logs.length;
    assert.deepEqual(await agents.sync(ca), []);
    assert.equal(logs.length, said2, 'said once');
    // An administrator removes the pin (a reinstalled host): the new key is served and pinned.
    const { agentKey: _old, ...unpinned } = hosts.get('xen-a')!.status!;
    hosts.set('xen-a', { ...hosts.get('xen-a')!, status: unpinned });
    assert.deepEqual(await agents.sync(ca), ['xen-a']);
    assert.ok(new X509Certificate((await issued('xen-a'))!.certificate).publicKey.equals(keyA2.publicKey));
    assert.notEqual(hosts.get('xen-a')!.status!.agentKey, _old);

    // The answer lost (Redis restarted, the agent wrote its request again): answered again.
    await r.del(certKey('xen-a'));
    assert.deepEqual(await agents.sync(ca), ['xen-a']);
    // A fixed request is answered; the host that became a XenHost is answered.
    await r.set(certRequestKey('xen-b'), certRequest('xen-b'));
    hosts.set('xen-ghost', await xenHost('xen-ghost'));
    assert.deepEqual((await agents.sync(ca)).sort(), ['xen-b', 'xen-ghost']);
    // Another CA (an administrator replaced krata-ca): every certificate is issued again by it.
    const ca2 = newCA(now);
    assert.deepEqual((await agents.sync(ca2)).sort(), ['xen-a', 'xen-b', 'xen-ghost']);
    assert.ok(new X509Certificate((await issued('xen-b'))!.certificate).verify(ca2.cert.publicKey));
    assert.equal((await issued('xen-b'))!.ca, ca2.certificatePem);
    assert.equal(await r.exists('krata:host:Not_A_Host:cert'), 0);
  },
);

test(
  "krata-api's Secrets: issued by the CA for the Service's names and the client name, renewed two thirds into their life",
  limit,
  async () => {
    await namespace('pki-api');
    let now = Date.now();
    const ca = newCA(now);
    const logs: string[] = [];
    const due = await ensureKrataApiCertificates(kube.client, 'pki-api', ca, now, (m) => logs.push(m));
    assert.ok(Math.abs(due - (now + 60 * DAY)) < 5 * 60_000 + 1000, 'renewal due in about 60 days');
    const serving = await getSecret('pki-api', SERVING_SECRET);
    assert.equal(serving.type, 'kubernetes.io/tls');
    const s = new X509Certificate(secretValue(serving, 'tls.crt')!);
    assert.equal(s.subjectAltName, 'DNS:krata-api.pki-api.svc, DNS:krata-api.pki-api.svc.cluster.local');
    assert.ok(s.checkPrivateKey(createPrivateKey(secretValue(serving, 'tls.key')!)));
    assert.ok(s.verify(ca.cert.publicKey));
    assert.match(opensslVerify(ca.certificatePem, secretValue(serving, 'tls.crt')!, 'sslserver'), /: OK$/);
    assert.match(opensslVerify(ca.certificatePem, secretValue(serving, 'tls.crt')!, 'sslclient'), /unsuitable/);
    const client = await getSecret('pki-api', CLIENT_SECRET);
    assert.equal(client.type, 'kubernetes.io/tls');
    const c = new X509Certificate(secretValue(client, 'tls.crt')!);
    assert.equal(c.subject, `CN=${KRATA_API_CLIENT_NAME}`);
    assert.equal(c.subjectAltName, `DNS:${KRATA_API_CLIENT_NAME}`);
    assert.equal(secretValue(client, 'ca.crt'), ca.certificatePem);
    assert.ok(c.checkPrivateKey(createPrivateKey(secretValue(client, 'tls.key')!)));
    assert.match(opensslVerify(ca.certificatePem, secretValue(client, 'tls.crt')!, 'sslclient'), /: OK$/);
    assert.match(opensslVerify(ca.certificatePem, secretValue(client, 'tls.crt')!, 'sslserver'), /unsuitable/);
    assert.equal(logs.length, 2, logs.join('\n'));

    // A day later: nothing to do.
    let writes = kube.client.writes;
    now += DAY;
    await ensureKrataApiCertificates(kube.client, 'pki-api', ca, now, () => undefined);
    assert.equal(kube.client.writes, writes);
    // 61 days in: both renewed.
    now += 60 * DAY;
    await ensureKrataApiCertificates(kube.client, 'pki-api', ca, now, () => undefined);
    assert.equal(kube.client.writes, writes + 2);
    assert.notEqual(new X509Certificate(secretValue(await getSecret('pki-api', SERVING_SECRET), 'tls.crt')!).serialNumber, s.serialNumber);
    const renewed = await getSecret('pki-api', CLIENT_SECRET);
    assert.notEqual(new X509Certificate(secretValue(renewed, 'tls.crt')!).serialNumber, c.serialNumber);
    // A Secret someone emptied of its CA is made whole.
    writes = kube.client.writes;
    const { ['ca.crt']: _gone, ...rest } = renewed.data!;
    await kube.client.request('PUT', `/api/v1/namespaces/pki-api/secrets/${CLIENT_SECRET}`, { body: { ...renewed, data: rest } });
    await ensureKrataApiCertificates(kube.client, 'pki-api', ca, now, () => undefined);
    assert.equal(secretValue(await getSecret('pki-api', CLIENT_SECRET), 'ca.crt'), ca.certificatePem);
    assert.equal(kube.client.writes, writes + 2, 'the PUT above and one repair');
  },
);

test('the APIService gets the CA as its caBundle when it exists, and is left alone when it has it', limit, async () => {
  const ca = newCA();
  const path = `/apis/apiregistration.k8s.io/v1/apiservices/${APISERVICE_NAME}`;
  assert.equal(await ensureCaBundle(kube.client, ca, () => undefined), false, 'no APIService yet: nothing to do');
  await kube.client.request('POST', '/apis/apiregistration.k8s.io/v1/apiservices', {
    body: {
      apiVersion: 'apiregistration.k8s.io/v1',
      kind: 'APIService',
      metadata: { name: APISERVICE_NAME },
      spec: {
        group: 'subresources.krata.dev',
        version: 'v1alpha1',
        groupPriorityMinimum: 1000,
        versionPriority: 15,
        service: { namespace: 'pki-api', name: 'krata-api', port: 443 },
        caBundle: Buffer.from('stale').toString('base64'),
      },
    },
  });
  try {
    const logs: string[] = [];
    assert.equal(await ensureCaBundle(kube.client, ca, (m) => logs.push(m)), true);
    const got = await kube.client.request<{ spec: { caBundle: string; service: { name: string } } }>('GET', path);
    assert.equal(Buffer.from(got.spec.caBundle, 'base64').toString(), ca.certificatePem);
    assert.equal(got.spec.service.name, 'krata-api', 'the rest of the spec is kept');
    assert.deepEqual(logs, [`set APIService ${APISERVICE_NAME} spec.caBundle to the krata CA`]);
    const writes = kube.client.writes;
    assert.equal(await ensureCaBundle(kube.client, ca, () => undefined), false);
    assert.equal(kube.client.writes, writes);
  } finally {
    await kube.client.request('DELETE', path);
  }
});

test(
  'the PKI loop: a CA that cannot be read is retried each pass and logged once; the Kubernetes side is checked every 5 minutes',
  limit,
  async () => {
    await namespace('pki-loop');
    const clock = new FakeClock(Date.now());
    const logs: string[] = [];
    // The admin put something unusable there.
    await kube.client.request('POST', '/api/v1/namespaces/pki-loop/secrets', {
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: CA_SECRET },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': '', 'tls.key': '' },
      },
    });
    const pki = new OperatorPki(
      kube.client,
      new Redis(redis.url),
      { get: () => undefined },
      { namespace: 'pki-loop', clock, log: (m) => logs.push(m) },
    );
    try {
      await pki.pass();
      await pki.pass();
      assert.equal(pki.authority, undefined);
      assert.deepEqual(logs, ['pki: ca failed; retrying every pass']);
      await kube.client.request('DELETE', `/api/v1/namespaces/pki-loop/secrets/${CA_SECRET}`);
      await pki.pass();
      assert.ok(pki.authority, 'made once the bad Secret is gone');
      assert.ok(logs.includes('pki: ca recovered'));
      await getSecret('pki-loop', CLIENT_SECRET);
      // Deleted behind its back: a minute later it is not looked at yet; five minutes later it is made again.
      await kube.client.request('DELETE', `/api/v1/namespaces/pki-loop/secrets/${CLIENT_SECRET}`);
      clock.advance(60_000);
      await pki.pass();
      await assert.rejects(getSecret('pki-loop', CLIENT_SECRET), /not found/);
      clock.advance(5 * 60_000);
      await pki.pass();
      await getSecret('pki-loop', CLIENT_SECRET);
    } finally {
      await pki.stop();
    }
  },
);
