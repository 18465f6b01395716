// An agent's certificate request (contracts/redis/contract.ts CertRequest) as the node agent writes it,
// for the operator's PKI tests: the key's SPKI PEM and its signature over the host's proof.
import { sign, type KeyObject } from 'node:crypto';
import { certRequestProof, type CertRequest } from '../contracts/redis/contract.js';
import { newKeyPair } from '../lib/x509/index.js';

/** JSON of a request for `host` by `keys`, its proof signed for `signedFor` (the host itself unless a test lies). */
export function certRequest(host: string, keys: { publicKey: KeyObject; privateKey: KeyObject } = newKeyPair(), signedFor = host): string {
  const publicKey = keys.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const hash = keys.privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  const proof = sign(hash, certRequestProof(signedFor, publicKey), keys.privateKey).toString('base64');
  const req: CertRequest = { publicKey, proof, time: new Date().toISOString() };
  return JSON.stringify(req);
}
