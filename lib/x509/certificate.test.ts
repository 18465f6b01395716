// Certificates from lib/x509 as others see them: Node's X509Certificate parses and verifies them, Debian's
// `openssl verify` accepts them for their purpose only, and a real TLS handshake with mutual
// authentication succeeds with the right ones and fails with a stranger's CA, a wrong name or a wrong purpose.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCA, createCertificate, isP256, newKeyPair, type CertificateUsage } from './index.js';

const HOUR = 3600_000;
const later = (ms: number) => new Date(Date.now() + ms);

interface Issuer {
  certificatePem: string;
  privateKey: KeyObject;
}
function ca(name: string): Issuer {
  const c = createCA(name, later(24 * HOUR));
  return { certificatePem: c.certificatePem, privateKey: createPrivateKey(c.privateKeyPem) };
}
function leaf(issuer: Issuer, cn: string, usage: CertificateUsage, dnsNames: string[] = []) {
  const { publicKey, privateKey } = newKeyPair();
  const certificatePem = createCertificate({ subjectCommonName: cn, issuer, publicKey, notAfter: later(HOUR), dnsNames, usage });
  return { certificatePem, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, publicKey };
}

function withDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'krata-x509-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `openssl verify -CAfile ca -purpose P cert`: true when it says OK. */
function opensslVerify(caPem: string, certPem: string, purpose: 'sslserver' | 'sslclient'): boolean {
  return withDir((dir) => {
    writeFileSync(join(dir, 'ca.pem'), caPem);
    writeFileSync(join(dir, 'cert.pem'), certPem);
    const r = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), '-purpose', purpose, join(dir, 'cert.pem')], {
      encoding: 'utf8',
    });
    return r.status === 0 && /: OK$/m.test(r.stdout);
  });
}

test('a CA: self-signed, CA:TRUE, its validity, parsed and verified by Node', () => {
  const notAfter = new Date('2036-12-06T02:00:00.750Z');
  const { certificatePem, privateKeyPem } = createCA('krata CA', notAfter);
  const x = new X509Certificate(certificatePem);
  assert.equal(x.subject, 'CN=krata CA');
  assert.equal(x.issuer, 'CN=krata CA');
  assert.equal(x.ca, true);
  assert.equal(new Date(x.validTo).getTime(), Date.parse('2036-12-06T02:00:00Z'), 'whole seconds');
  assert.ok(new Date(x.validFrom).getTime() <= Date.now());
  assert.ok(x.checkIssued(x));
  assert.ok(x.verify(x.publicKey));
  const key = createPrivateKey(privateKeyPem);
  assert.ok(isP256(key));
  assert.ok(x.checkPrivateKey(key));
  assert.match(privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.equal(x.subjectAltName, undefined);
  const text = spawnSync('openssl', ['x509', '-noout', '-text'], { input: certificatePem, encoding: 'utf8' }).stdout;
  assert.match(text, /Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
  assert.match(text, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  assert.doesNotMatch(text, /Extended Key Usage/);
});

test('leaves: subject, DNS names, validity, issued by and verified against their CA only', () => {
  const root = ca('root');
  const other = ca('root'); // same name, other key: only the key tells them apart
  const notBefore = new Date('2026-01-01T00:00:00Z');
  const notAfter = new Date('2060-01-01T00:00:00Z'); // GeneralizedTime
  const { publicKey } = newKeyPair();
  const pem = createCertificate({
    subjectCommonName: 'xen-1.agents.krata.internal',
    issuer: root,
    publicKey,
    notBefore,
    notAfter,
    dnsNames: ['xen-1.agents.krata.internal', 'other.example'],
    usage: 'server',
  });
  const x = new X509Certificate(pem);
  assert.equal(x.subject, 'CN=xen-1.agents.krata.internal');
  assert.equal(x.issuer, 'CN=root');
  assert.equal(x.subjectAltName, 'DNS:xen-1.agents.krata.internal, DNS:other.example');
  assert.equal(x.ca, false);
  assert.equal(new Date(x.validFrom).getTime(), notBefore.getTime());
  assert.equal(new Date(x.validTo).getTime(), notAfter.getTime());
  assert.ok(x.publicKey.equals(publicKey), 'the certificate holds the key it was made for');
  assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extKeyUsage serverAuth');
  const rootX = new X509Certificate(root.certificatePem);
  const otherX = new X509Certificate(other.certificatePem);
  assert.ok(x.checkIssued(rootX));
  assert.ok(x.verify(rootX.publicKey));
  assert.equal(x.verify(otherX.publicKey), false);
  assert.equal(x.checkHost('xen-1.agents.krata.internal'), 'xen-1.agents.krata.internal');
  assert.equal(x.checkHost('xen-2.agents.krata.internal'), undefined);
  // The authority key id names the CA's key: OpenSSL's chain building tells same-named CAs apart by it.
  assert.equal(x.checkIssued(otherX), false);
  assert.deepEqual(new X509Certificate(leaf(root, 'c', 'client').certificatePem).keyUsage, ['1.3.6.1.5.5.7.3.2']);
  assert.deepEqual(new X509Certificate(leaf(root, 'b', 'server+client').certificatePem).keyUsage!.sort(), [
    '1.3.6.1.5.5.7.3.1',
    '1.3.6.1.5.5.7.3.2',
  ]);
});

test('serial numbers: random 16-byte positive ones by default, or the one given', () => {
  const root = ca('root');
  const serials = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const s = new X509Certificate(leaf(root, 'x', 'server').certificatePem).serialNumber;
    assert.match(s, /^[4-7][0-9A-F]{31}$/, 'positive, 16 bytes, no leading zero byte');
    serials.add(s);
  }
  assert.equal(serials.size, 20);
  const { publicKey } = newKeyPair();
  const given = createCertificate({
    subjectCommonName: 'x',
    issuer: root,
    publicKey,
    notAfter: later(HOUR),
    usage: 'client',
    serialNumber: Buffer.from([0x00, 0x00, 0x9a, 0x01]),
  });
  assert.equal(new X509Certificate(given).serialNumber, '9A01', 'the magnitude, leading zeros dropped');
});

test('openssl verify accepts each certificate for its purpose and refuses the other purpose and a stranger CA', () => {
  const root = ca('krata CA');
  const stranger = ca('krata CA');
  const server = leaf(root, 'server', 'server', ['a.example']).certificatePem;
  const client = leaf(root, 'client', 'client').certificatePem;
  const both = leaf(root, 'both', 'server+client', ['b.example']).certificatePem;
  assert.equal(opensslVerify(root.certificatePem, server, 'sslserver'), true);
  assert.equal(opensslVerify(root.certificatePem, server, 'sslclient'), false);
  assert.equal(opensslVerify(root.certificatePem, client, 'sslclient'), true);
  assert.equal(opensslVerify(root.certificatePem, client, 'sslserver'), false);
  assert.equal(opensslVerify(root.certificatePem, both, 'sslserver'), true);
  assert.equal(opensslVerify(root.certificatePem, both, 'sslclient'), true);
  assert.equal(opensslVerify(stranger.certificatePem, server, 'sslserver'), false);
  assert.equal(opensslVerify(root.certificatePem, root.certificatePem, 'sslserver'), false, 'the CA cannot serve TLS itself');
});

test("an administrator's CA made by openssl (RSA, or P-384 with a multi-part name) issues certificates openssl accepts", () => {
  withDir((dir) => {
    for (const [name, keyArgs, subject] of [
      ['rsa', ['-newkey', 'rsa:2048'], '/O=Example Corp/OU=Platform/CN=Example Root'],
      ['p384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp384r1'], '/CN=Example EC Root'],
    ] as const) {
      const keyFile = join(dir, `${name}.key`);
      const certFile = join(dir, `${name}.crt`);
      const r = spawnSync(
        'openssl',
        [
          'req',
          '-x509',
          ...keyArgs,
          '-nodes',
          '-keyout',
          keyFile,
          '-out',
          certFile,
          '-days',
          '2',
          '-subj',
          subject,
          '-addext',
          'basicConstraints=critical,CA:TRUE',
          '-addext',
          'keyUsage=critical,keyCertSign,cRLSign',
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, r.stderr);
      const issuer = { certificatePem: readFileSync(certFile, 'utf8'), privateKey: createPrivateKey(readFileSync(keyFile)) };
      const server = leaf(issuer, 'svc', 'server', ['svc.example']).certificatePem;
      assert.equal(opensslVerify(issuer.certificatePem, server, 'sslserver'), true, name);
      const x = new X509Certificate(server);
      assert.equal(x.issuer, new X509Certificate(issuer.certificatePem).subject, `${name}: the issuer name is the CA's, verbatim`);
      assert.ok(x.checkIssued(new X509Certificate(issuer.certificatePem)));
    }
  });
});

test('bad options are refused before anything is signed', () => {
  const root = ca('root');
  const { publicKey, privateKey } = newKeyPair();
  const base = { subjectCommonName: 'x', issuer: root, publicKey, notAfter: later(HOUR), usage: 'server' as const };
  assert.throws(() => createCertificate({ ...base, dnsNames: ['bad_name.example'] }), /DNS name "bad_name.example" is not valid/);
  assert.throws(() => createCertificate({ ...base, dnsNames: ['a..b'] }), /is not valid/);
  assert.throws(() => createCertificate({ ...base, subjectCommonName: 'x'.repeat(65) }), /1 to 64 characters/);
  assert.throws(() => createCertificate({ ...base, subjectCommonName: '' }), /1 to 64 characters/);
  assert.throws(() => createCertificate({ ...base, isCA: true }), /contradicts usage 'server'/);
  assert.throws(() => createCertificate({ ...base, notBefore: later(2 * HOUR) }), /notAfter must be after notBefore/);
  assert.throws(() => createCertificate({ ...base, serialNumber: Buffer.alloc(21, 1) }), /1 to 20 bytes/);
  assert.throws(() => createCertificate({ ...base, serialNumber: Buffer.from([0, 0]) }), /positive/);
  assert.throws(() => createCertificate({ ...base, publicKey: privateKey }), /must be a public key/);
  assert.throws(() => createCertificate({ ...base, issuer: { ...root, privateKey } }), /does not match its certificate/);
  const notCA = leaf(root, 'leaf', 'server');
  assert.throws(
    () =>
      createCertificate({ ...base, issuer: { certificatePem: notCA.certificatePem, privateKey: createPrivateKey(notCA.privateKeyPem) } }),
    /not a CA certificate/,
  );
  assert.throws(
    () => createCertificate({ subjectCommonName: 'x', publicKey, notAfter: later(HOUR), usage: 'ca' }),
    /needs the subject privateKey/,
  );
  assert.throws(
    () => createCertificate({ ...base, usage: 'ca', issuer: undefined, privateKey, dnsNames: ['a.example'] }),
    /names no DNS names/,
  );
  assert.ok(isP256(publicKey));
  assert.equal(isP256(generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey), false);
  assert.equal(isP256(generateKeyPairSync('ed25519').publicKey), false);
});

/** A TLS server asking for a client certificate, and one connection to it; resolves with what each side saw. */
async function handshake(
  server: { ca: string; cert: string; key: string },
  client: { ca: string; cert: string; key: string; servername: string },
): Promise<{ ok: true; clientCN: string } | { ok: false; error: string }> {
  let peerCN = '';
  const srv = createServer({ ...server, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (s: TLSSocket) => {
    peerCN = String(s.getPeerCertificate().subject?.CN ?? '');
    s.end('hello');
  });
  srv.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  try {
    return await new Promise((resolve) => {
      const sock = connect({ host: '127.0.0.1', port, ...client });
      let got = '';
      sock.on('data', (d: Buffer) => (got += d.toString()));
      sock.on('end', () => resolve(got === 'hello' ? { ok: true, clientCN: peerCN } : { ok: false, error: `read ${JSON.stringify(got)}` }));
      sock.on('error', (e: NodeJS.ErrnoException) => resolve({ ok: false, error: `${e.code ?? ''} ${e.message}` }));
    });
  } finally {
    await new Promise((r) => srv.close(r));
  }
}

test('mutual TLS with these certificates: the right pair talks; a stranger CA, another name or another purpose is refused', async () => {
  const root = ca('krata CA');
  const stranger = ca('krata CA');
  const serverCert = leaf(root, 'xen-1.agents.krata.internal', 'server', ['xen-1.agents.krata.internal']);
  const clientCert = leaf(root, 'krata-api.clients.krata.internal', 'client', ['krata-api.clients.krata.internal']);
  const server = { ca: root.certificatePem, cert: serverCert.certificatePem, key: serverCert.privateKeyPem };
  const client = {
    ca: root.certificatePem,
    cert: clientCert.certificatePem,
    key: clientCert.privateKeyPem,
    servername: 'xen-1.agents.krata.internal',
  };

  assert.deepEqual(await handshake(server, client), { ok: true, clientCN: 'krata-api.clients.krata.internal' });

  // The client reached a host whose certificate names another host.
  const r1 = await handshake(server, { ...client, servername: 'xen-2.agents.krata.internal' });
  assert.equal(r1.ok, false);
  assert.match((r1 as { error: string }).error, /ERR_TLS_CERT_ALTNAME_INVALID/);
  // A server certified by another CA.
  const fake = leaf(stranger, 'xen-1.agents.krata.internal', 'server', ['xen-1.agents.krata.internal']);
  const r2 = await handshake({ ...server, cert: fake.certificatePem, key: fake.privateKeyPem }, client);
  assert.equal(r2.ok, false);
  assert.match((r2 as { error: string }).error, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/i);
  // A client certified by another CA, and a client presenting a server certificate of the right CA.
  const strangerClient = leaf(stranger, 'krata-api.clients.krata.internal', 'client');
  assert.equal((await handshake(server, { ...client, cert: strangerClient.certificatePem, key: strangerClient.privateKeyPem })).ok, false);
  const wrongPurpose = leaf(root, 'krata-api.clients.krata.internal', 'server');
  assert.equal((await handshake(server, { ...client, cert: wrongPurpose.certificatePem, key: wrongPurpose.privateKeyPem })).ok, false);
  // And without any client certificate.
  assert.equal((await handshake(server, { ca: client.ca, servername: client.servername } as typeof client)).ok, false);
});
