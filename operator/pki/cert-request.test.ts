import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { newKeyPair } from '../../lib/x509/index.js';
import { certRequest } from '../../test/cert-request.js';
import { MAX_CERT_REQUEST_BYTES, checkCertRequest, keyFingerprint } from './cert-request.js';

const refused = (host: string, raw: string) => {
  const r = checkCertRequest(host, raw);
  assert.equal(r.ok, false, raw.slice(0, 100));
  return (r as { reason: string }).reason;
};

test('a request with a P-256 key and its proof for this host is accepted, and names the key', () => {
  const keys = newKeyPair();
  const r = checkCertRequest('xen-1', certRequest('xen-1', keys));
  assert.ok(r.ok);
  assert.ok(r.publicKey.equals(keys.publicKey));
  assert.equal(r.fingerprint, keyFingerprint(keys.publicKey));
  assert.match(r.fingerprint, /^[0-9a-f]{64}$/);
});

test('requests that are not JSON objects with three strings are refused, saying why without echoing them', () => {
  assert.equal(refused('xen-1', 'not json {'), 'not JSON');
  assert.equal(refused('xen-1', '[1,2]'), 'not a JSON object');
  assert.equal(refused('xen-1', 'null'), 'not a JSON object');
  assert.equal(refused('xen-1', '"a string"'), 'not a JSON object');
  const ok = JSON.parse(certRequest('xen-1')) as Record<string, unknown>;
  assert.match(refused('xen-1', JSON.stringify({ ...ok, proof: 12 })), /must be strings/);
  assert.match(refused('xen-1', JSON.stringify({ ...ok, time: undefined })), /must be strings/);
  assert.match(refused('xen-1', JSON.stringify({ ...ok, pad: 'x'.repeat(MAX_CERT_REQUEST_BYTES) })), /larger than 8192 bytes/);
});

test('keys: only an SPKI PEM of a P-256 key', () => {
  const ok = JSON.parse(certRequest('xen-1')) as Record<string, string>;
  const { privateKey } = newKeyPair();
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  assert.match(
    refused('xen-1', JSON.stringify({ ...ok, publicKey: privatePem })),
    /not a PEM "PUBLIC KEY"/,
    'a private key is no public key',
  );
  assert.match(refused('xen-1', JSON.stringify({ ...ok, publicKey: 'hello' })), /not a PEM "PUBLIC KEY"/);
  const broken = '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n';
  assert.match(refused('xen-1', JSON.stringify({ ...ok, publicKey: broken })), /does not parse/);
  assert.match(refused('xen-1', certRequest('xen-1', generateKeyPairSync('ec', { namedCurve: 'secp384r1' }))), /EC secp384r1; ECDSA P-256/);
  assert.match(refused('xen-1', certRequest('xen-1', generateKeyPairSync('ed25519'))), /is ed25519; ECDSA P-256/);
  assert.match(refused('xen-1', certRequest('xen-1', generateKeyPairSync('rsa', { modulusLength: 1024 }))), /is rsa; ECDSA P-256/);
});

test("proofs: signed by the request's key over this host's proof, nothing else", () => {
  const keys = newKeyPair();
  assert.match(refused('xen-1', certRequest('xen-1', keys, 'xen-2')), /does not verify/, "another host's request replayed");
  const mine = JSON.parse(certRequest('xen-1', keys)) as Record<string, string>;
  const other = JSON.parse(certRequest('xen-1')) as Record<string, string>;
  assert.match(refused('xen-1', JSON.stringify({ ...mine, proof: other.proof })), /does not verify/, 'signed by another key');
  assert.match(refused('xen-1', JSON.stringify({ ...mine, proof: 'not base64!' })), /not base64/);
  assert.match(refused('xen-1', JSON.stringify({ ...mine, proof: '' })), /not base64/);
  assert.match(refused('xen-1', JSON.stringify({ ...mine, proof: 'AAAA' })), /does not verify/, 'not a DER signature');
  assert.match(refused('xen-1', JSON.stringify({ ...mine, proof: 'A'.repeat(400) })), /not base64/, 'too long for a signature');
});
