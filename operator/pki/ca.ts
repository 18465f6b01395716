// The krata CA: Secret krata-ca (type kubernetes.io/tls, tls.crt and tls.key) in the operator's namespace.
// Made on first start (P-256, 10 years); an existing one is used as it is, so an administrator may
// provide their own (the first certificate in tls.crt is the CA; it must be a CA and match tls.key).
// Replicas racing to create it converge: whoever loses the create reads the winner's. Nothing here logs or
// puts into an error message any part of the Secret but the certificate's subject and dates.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { createCA, pemBlock, toPem } from '../../lib/x509/index.js';
import { isConflict, isNotFound, type KubeClient } from '../kube/client.js';

export const CA_SECRET = 'krata-ca';
export const TLS_SECRET_TYPE = 'kubernetes.io/tls';
export const TLS_CRT = 'tls.crt';
export const TLS_KEY = 'tls.key';
export const CA_CRT = 'ca.crt';
export const CA_COMMON_NAME = 'krata CA';
const DAY = 24 * 3600_000;
export const CA_VALIDITY_MS = 3650 * DAY;
/** Certificates start a little in the past: the agents' and krata-api's clocks may be behind the operator's. */
export const BACKDATE_MS = 5 * 60_000;

export interface Secret {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  type?: string;
  data?: Record<string, string>;
}

export interface KrataCA {
  /** The CA certificate alone, normalized PEM: what agents and krata-api trust, and the APIService's caBundle. */
  certificatePem: string;
  privateKey: KeyObject;
  cert: X509Certificate;
}

const LABELS = { 'app.kubernetes.io/name': 'krata', 'app.kubernetes.io/part-of': 'krata', 'app.kubernetes.io/component': 'pki' };
const path = (ns: string, name?: string) =>
  `/api/v1/namespaces/${encodeURIComponent(ns)}/secrets${name ? `/${encodeURIComponent(name)}` : ''}`;

export async function getSecret(kube: KubeClient, ns: string, name: string): Promise<Secret | undefined> {
  try {
    return await kube.request<Secret>('GET', path(ns, name));
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

export const secretValue = (s: Secret, key: string): string | undefined =>
  s.data?.[key] === undefined ? undefined : Buffer.from(s.data[key], 'base64').toString('utf8');

/** Creates the Secret (no `current`) or replaces it, conditional on current's resourceVersion (a 409 if it moved). */
export function writeTlsSecret(
  kube: KubeClient,
  ns: string,
  name: string,
  data: Record<string, string>,
  current?: Secret,
): Promise<Secret> {
  const body: Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      namespace: ns,
      labels: { ...current?.metadata.labels, ...LABELS },
      ...(current?.metadata.resourceVersion ? { resourceVersion: current.metadata.resourceVersion } : {}),
    },
    type: TLS_SECRET_TYPE,
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')])),
  };
  return current ? kube.request<Secret>('PUT', path(ns, name), { body }) : kube.request<Secret>('POST', path(ns), { body });
}

/** A certificate's time, which holds whole seconds only. */
export const wholeSeconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

/** When a certificate is due for renewal: two thirds into its life. */
export function renewalTime(cert: X509Certificate): number {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  return from + ((to - from) * 2) / 3;
}

/** Whether `cert` was issued by this CA (names and signature). */
export function issuedBy(cert: X509Certificate, ca: KrataCA): boolean {
  return cert.checkIssued(ca.cert) && cert.verify(ca.cert.publicKey);
}

/** The CA from a Secret's PEM; throws saying what is wrong (never what the key is). */
export function parseCA(certPem: string | undefined, keyPem: string | undefined, now: number): KrataCA {
  const der = certPem ? pemBlock(certPem, 'CERTIFICATE') : undefined;
  if (!der) throw new Error(`${TLS_CRT} holds no PEM certificate`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch {
    throw new Error(`${TLS_CRT}: the certificate does not parse`);
  }
  let privateKey: KeyObject;
  try {
    if (!keyPem) throw new Error('missing');
    privateKey = createPrivateKey(keyPem);
  } catch {
    throw new Error(`${TLS_KEY} holds no PEM private key`);
  }
  if (!cert.ca) throw new Error(`${TLS_CRT}: ${cert.subject} is not a CA certificate (basicConstraints CA:TRUE)`);
  if (!cert.checkPrivateKey(privateKey)) throw new Error(`${TLS_KEY} is not the key of ${TLS_CRT}`);
  if (Date.parse(cert.validTo) <= now) throw new Error(`${TLS_CRT}: ${cert.subject} expired on ${new Date(cert.validTo).toISOString()}`);
  return { certificatePem: toPem('CERTIFICATE', der), privateKey, cert };
}

/** The krata CA, creating Secret `ns`/krata-ca with a new one if there is none. */
export async function ensureCA(
  kube: KubeClient,
  ns: string,
  now: number,
  log: (msg: string) => void,
): Promise<{ ca: KrataCA; resourceVersion?: string }> {
  let s = await getSecret(kube, ns, CA_SECRET);
  if (!s) {
    const made = createCA(CA_COMMON_NAME, new Date(now + CA_VALIDITY_MS));
    try {
      s = await writeTlsSecret(kube, ns, CA_SECRET, { [TLS_CRT]: made.certificatePem, [TLS_KEY]: made.privateKeyPem });
      log(`created the krata CA in Secret ${ns}/${CA_SECRET} (valid until ${new Date(now + CA_VALIDITY_MS).toISOString()})`);
    } catch (e) {
      if (!isConflict(e)) throw e;
      s = await getSecret(kube, ns, CA_SECRET);
      if (!s) throw new Error(`Secret ${ns}/${CA_SECRET} was created and deleted again while the operator read it`, { cause: e });
    }
  }
  try {
    return { ca: parseCA(secretValue(s, TLS_CRT), secretValue(s, TLS_KEY), now), resourceVersion: s.metadata.resourceVersion };
  } catch (e) {
    throw new Error(`Secret ${ns}/${CA_SECRET}: ${(e as Error).message}`, { cause: e });
  }
}
