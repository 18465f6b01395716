// krata-api's identities, issued by the krata CA into Secrets in the operator's namespace, and the
// APIService's trust in them:
//   krata-api-serving  tls.crt, tls.key          what the kube-apiserver reaches krata-api's Service by
//                                                (DNS krata-api.NS.svc, krata-api.NS.svc.cluster.local)
//   krata-api-client   tls.crt, tls.key, ca.crt  what krata-api presents to agents (KRATA_API_CLIENT_NAME),
//                                                and the CA that agents' certificates chain to
// Each is renewed two thirds into its life, and replaced when it no longer fits (another CA, other names,
// tampered). APIService v1alpha1.subresources.krata.dev, when it exists, gets the CA as spec.caBundle.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { PatchStrategy } from '@kubernetes/client-node';
import { KRATA_API_CLIENT_NAME } from '../../contracts/krata-api/agent-tls.js';
import { APISERVICE_NAME } from '../../contracts/krata-api/subresources.js';
import { createCertificate, newKeyPair, type CertificateUsage } from '../../lib/x509/index.js';
import { isConflict, isNotFound, type KubeClient } from '../kube/client.js';
import {
  BACKDATE_MS,
  CA_CRT,
  TLS_CRT,
  TLS_KEY,
  TLS_SECRET_TYPE,
  getSecret,
  issuedBy,
  renewalTime,
  secretValue,
  wholeSeconds,
  writeTlsSecret,
  type KrataCA,
  type Secret,
} from './ca.js';

export const SERVING_SECRET = 'krata-api-serving';
export const CLIENT_SECRET = 'krata-api-client';
/** The Service the APIService points at (krata-api's manifests). */
export const KRATA_API_SERVICE = 'krata-api';
export const KRATA_API_CERT_VALIDITY_MS = 90 * 24 * 3600_000;
const EKU = { server: '1.3.6.1.5.5.7.3.1', client: '1.3.6.1.5.5.7.3.2' };

interface Identity {
  secret: string;
  commonName: string;
  dnsNames: string[];
  usage: Extract<CertificateUsage, 'server' | 'client'>;
  /** Whether the Secret carries the CA as ca.crt. */
  withCA: boolean;
}

export function servingNames(ns: string): string[] {
  return [`${KRATA_API_SERVICE}.${ns}.svc`, `${KRATA_API_SERVICE}.${ns}.svc.cluster.local`];
}

function identities(ns: string): Identity[] {
  const serving = servingNames(ns);
  return [
    {
      secret: SERVING_SECRET,
      commonName: serving[0]!.length <= 64 ? serving[0]! : KRATA_API_SERVICE,
      dnsNames: serving,
      usage: 'server',
      withCA: false,
    },
    { secret: CLIENT_SECRET, commonName: KRATA_API_CLIENT_NAME, dnsNames: [KRATA_API_CLIENT_NAME], usage: 'client', withCA: true },
  ];
}

/** The renewal time of the Secret's certificate if it still fits `id` and `ca`; undefined when it must be (re)issued. */
function currentRenewal(s: Secret | undefined, id: Identity, ca: KrataCA, now: number): number | undefined {
  if (!s || s.type !== TLS_SECRET_TYPE) return undefined;
  try {
    const cert = new X509Certificate(secretValue(s, TLS_CRT) ?? '');
    const key = secretValue(s, TLS_KEY);
    if (!key || !cert.checkPrivateKey(createPrivateKey(key))) return undefined;
    if (id.withCA && secretValue(s, CA_CRT) !== ca.certificatePem) return undefined;
    const renewAt = renewalTime(cert);
    const fits =
      issuedBy(cert, ca) &&
      cert.subjectAltName === id.dnsNames.map((n) => `DNS:${n}`).join(', ') &&
      cert.subject === `CN=${id.commonName}` &&
      isDeepEqual(extKeyUsage(cert), [EKU[id.usage]]) &&
      Date.parse(cert.validFrom) <= now &&
      now < renewAt;
    return fits ? renewAt : undefined;
  } catch {
    return undefined;
  }
}

/** Node names extendedKeyUsage `keyUsage` (20) and, newer, `extKeyUsage` too. */
const extKeyUsage = (cert: X509Certificate): string[] | undefined =>
  (cert as X509Certificate & { extKeyUsage?: string[] }).extKeyUsage ?? cert.keyUsage;
const isDeepEqual = (a: string[] | undefined, b: string[]) => !!a && a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Makes krata-api's two Secrets fit the CA and be within two thirds of their life; returns when the first
 * of them is due for renewal. A Secret another writer changed meanwhile is left for the next round.
 */
export async function ensureKrataApiCertificates(
  kube: KubeClient,
  ns: string,
  ca: KrataCA,
  now: number,
  log: (msg: string) => void,
): Promise<number> {
  let next = Infinity;
  for (const id of identities(ns)) {
    const s = await getSecret(kube, ns, id.secret);
    const renewAt = currentRenewal(s, id, ca, now);
    if (renewAt !== undefined) {
      next = Math.min(next, renewAt);
      continue;
    }
    const { publicKey, privateKey } = newKeyPair();
    const notBefore = wholeSeconds(now - BACKDATE_MS);
    const notAfter = wholeSeconds(now + KRATA_API_CERT_VALIDITY_MS);
    const certificate = createCertificate({
      subjectCommonName: id.commonName,
      issuer: { certificatePem: ca.certificatePem, privateKey: ca.privateKey },
      publicKey,
      notBefore,
      notAfter,
      dnsNames: id.dnsNames,
      usage: id.usage,
    });
    const data: Record<string, string> = {
      [TLS_CRT]: certificate,
      [TLS_KEY]: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      ...(id.withCA ? { [CA_CRT]: ca.certificatePem } : {}),
    };
    try {
      await writeTlsSecret(kube, ns, id.secret, data, s);
    } catch (e) {
      if (!isConflict(e)) throw e;
      next = Math.min(next, now); // someone else wrote it: look again next round
      continue;
    }
    log(`${s ? 'renewed' : 'issued'} krata-api's ${id.usage} certificate in Secret ${ns}/${id.secret} (until ${notAfter.toISOString()})`);
    next = Math.min(next, notBefore.getTime() + ((notAfter.getTime() - notBefore.getTime()) * 2) / 3);
  }
  return next;
}

const APISERVICE_PATH = `/apis/apiregistration.k8s.io/v1/apiservices/${APISERVICE_NAME}`;

/** Sets the APIService's spec.caBundle to the CA when it exists and differs; true when it patched. */
export async function ensureCaBundle(kube: KubeClient, ca: KrataCA, log: (msg: string) => void): Promise<boolean> {
  let svc: { spec?: { caBundle?: string } };
  try {
    svc = await kube.request('GET', APISERVICE_PATH);
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
  const bundle = Buffer.from(ca.certificatePem, 'utf8').toString('base64');
  if (svc.spec?.caBundle === bundle) return false;
  await kube.request('PATCH', APISERVICE_PATH, { body: { spec: { caBundle: bundle } }, contentType: PatchStrategy.MergePatch });
  log(`set APIService ${APISERVICE_NAME} spec.caBundle to the krata CA`);
  return true;
}
