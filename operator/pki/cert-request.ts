// An agent's certificate request (contracts/redis/contract.ts CertRequest) checked as hostile input: a
// bounded JSON object, an SPKI PEM public key on P-256, and a proof that whoever wrote it holds the private
// key, signed over certRequestProof(host, publicKey) so that it cannot be replayed under another host's key.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { certRequestProof, type CertRequest } from '../../contracts/redis/contract.js';
import { isP256, pemBlock } from '../../lib/x509/index.js';

/** A request larger than this is refused unread (a P-256 request is about 400 bytes). */
export const MAX_CERT_REQUEST_BYTES = 8 * 1024;

export type CheckedRequest = { ok: true; publicKey: KeyObject; fingerprint: string } | { ok: false; reason: string };

/** SHA-256 of the key's SubjectPublicKeyInfo, hex: how logs and Events name a key. */
export function keyFingerprint(key: KeyObject): string {
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** Checks `raw`, the value of certRequestKey(host); the reason says what is wrong without echoing the input. */
export function checkCertRequest(host: string, raw: string): CheckedRequest {
  if (Buffer.byteLength(raw, 'utf8') > MAX_CERT_REQUEST_BYTES) return { ok: false, reason: `larger than ${MAX_CERT_REQUEST_BYTES} bytes` };
  let req: Partial<Record<keyof CertRequest, unknown>>;
  try {
    req = JSON.parse(raw) as typeof req;
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) return { ok: false, reason: 'not a JSON object' };
  const { publicKey, proof } = req;
  if (typeof publicKey !== 'string' || typeof proof !== 'string' || typeof req.time !== 'string')
    return { ok: false, reason: 'publicKey, proof and time must be strings' };
  const spki = /^\s*-----BEGIN PUBLIC KEY-----/.test(publicKey) ? pemBlock(publicKey, 'PUBLIC KEY') : undefined;
  if (!spki) return { ok: false, reason: 'publicKey is not a PEM "PUBLIC KEY" (SubjectPublicKeyInfo)' };
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    return { ok: false, reason: 'publicKey does not parse' };
  }
  if (!isP256(key)) {
    const kind = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? '?'}` : (key.asymmetricKeyType ?? '?');
    return { ok: false, reason: `publicKey is ${kind}; ECDSA P-256 is required` };
  }
  if (!/^[A-Za-z0-9+/]{1,256}={0,2}$/.test(proof) || proof.length % 4 !== 0) return { ok: false, reason: 'proof is not base64' };
  let good: boolean;
  try {
    good = verify('sha256', certRequestProof(host, publicKey), key, Buffer.from(proof, 'base64'));
  } catch {
    good = false;
  }
  if (!good) return { ok: false, reason: 'the proof does not verify with publicKey for this host' };
  return { ok: true, publicKey: key, fingerprint: keyFingerprint(key) };
}
