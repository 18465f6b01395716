// `v1 Secret` documents of the two image pull secret types, as kratactl applies them to a single host
// and the agent stores them. Checked as the API server would (names, type, base64 data, size), and
// the credentials inside parsed, so a broken secret is refused at apply rather than at a pull.
// stringData is folded into data (base64), as the API server does. Error messages never quote values.
import type { FieldError } from '../../crds/validate.js';
import { CredentialError, CredentialStore } from '../../lib/oci/credentials.js';

export const PULL_SECRET_TYPES = {
  'kubernetes.io/dockerconfigjson': '.dockerconfigjson',
  'kubernetes.io/dockercfg': '.dockercfg',
} as const;
export type PullSecretType = keyof typeof PULL_SECRET_TYPES;

export interface PullSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  type: PullSecretType;
  /** key → base64 of the docker config. */
  data: Record<string, string>;
}

/** As Kubernetes: a Secret's data, all of it, is at most 1 MiB. */
export const MAX_SECRET_BYTES = 1024 * 1024;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const isPullSecretName = (s: unknown): s is string => typeof s === 'string' && s.length <= 253 && SUBDOMAIN.test(s);
export const isNamespaceName = (s: unknown): s is string => typeof s === 'string' && s.length <= 63 && LABEL.test(s);

/** Whether a document is a Secret (of any type): such documents are checked here, not by the CRD validator. */
export function isSecretDocument(doc: unknown): boolean {
  return (
    doc !== null &&
    typeof doc === 'object' &&
    (doc as { kind?: unknown }).kind === 'Secret' &&
    (doc as { apiVersion?: unknown }).apiVersion === 'v1'
  );
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function stringMap(v: unknown, path: (string | number)[], errors: FieldError[]): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v) || !Object.values(v).every((x) => typeof x === 'string')) {
    errors.push({ path, message: 'must be a mapping of strings' });
    return undefined;
  }
  return v as Record<string, string>;
}

export function validatePullSecret(input: unknown): { object?: PullSecret; errors: FieldError[] } {
  const errors: FieldError[] = [];
  if (!isObject(input)) return { errors: [{ path: [], message: 'must be a mapping' }] };
  for (const k of Object.keys(input)) {
    if (!['apiVersion', 'kind', 'metadata', 'type', 'data', 'stringData', 'immutable'].includes(k))
      errors.push({ path: [k], message: 'unknown field', onKey: true });
  }
  if (input.apiVersion !== 'v1' || input.kind !== 'Secret') errors.push({ path: ['kind'], message: 'expected apiVersion v1, kind Secret' });
  const meta = input.metadata;
  let metadata: PullSecret['metadata'] | undefined;
  if (!isObject(meta)) errors.push({ path: ['metadata'], message: 'must be a mapping with a name' });
  else {
    if (!isPullSecretName(meta.name))
      errors.push({
        path: ['metadata', 'name'],
        message: 'must be a DNS subdomain (lower-case letters, digits, "-" and ".", at most 253 characters)',
      });
    if (meta.namespace !== undefined && !isNamespaceName(meta.namespace))
      errors.push({
        path: ['metadata', 'namespace'],
        message: 'must be a DNS label (lower-case letters, digits and "-", at most 63 characters)',
      });
    for (const k of Object.keys(meta)) {
      if (!['name', 'namespace', 'labels', 'annotations'].includes(k))
        errors.push({
          path: ['metadata', k],
          message: 'not kept for a Secret on a single host (name, namespace, labels and annotations are)',
          onKey: true,
        });
    }
    const labels = stringMap(meta.labels, ['metadata', 'labels'], errors);
    const annotations = stringMap(meta.annotations, ['metadata', 'annotations'], errors);
    metadata = {
      name: meta.name as string,
      ...(meta.namespace !== undefined && { namespace: meta.namespace as string }),
      ...(labels && { labels }),
      ...(annotations && { annotations }),
    };
  }
  const type = input.type;
  const key = typeof type === 'string' && Object.hasOwn(PULL_SECRET_TYPES, type) ? PULL_SECRET_TYPES[type as PullSecretType] : undefined;
  if (!key)
    errors.push({
      path: ['type'],
      message:
        `a single host keeps image pull secrets only: kubernetes.io/dockerconfigjson or ` +
        `kubernetes.io/dockercfg${typeof type === 'string' ? `, not ${JSON.stringify(type.slice(0, 100))}` : ''}`,
    });
  const data: Record<string, string> = { ...(stringMap(input.data, ['data'], errors) ?? {}) };
  const stringData = stringMap(input.stringData, ['stringData'], errors) ?? {};
  for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(v, 'utf8').toString('base64');
  if (key) {
    for (const k of Object.keys(data))
      if (k !== key)
        errors.push({
          path: [Object.hasOwn(stringData, k) ? 'stringData' : 'data', k],
          message: `a ${String(type)} secret holds ${key} only`,
          onKey: true,
        });
    if (!Object.hasOwn(data, key)) errors.push({ path: ['data'], message: `must hold ${key}` });
  }
  const size = Object.values(data).reduce((n, v) => n + v.length, 0);
  if (size > (MAX_SECRET_BYTES / 3) * 4 + 4) errors.push({ path: ['data'], message: `larger than ${MAX_SECRET_BYTES} bytes` });
  if (errors.length) return { errors };
  const secret: PullSecret = { apiVersion: 'v1', kind: 'Secret', metadata: metadata!, type: type as PullSecretType, data };
  try {
    CredentialStore.fromPullSecret(secret, `Secret ${metadata!.name}`);
  } catch (e) {
    if (!(e instanceof CredentialError)) throw e;
    return { errors: [{ path: ['data', key!], message: e.message }] };
  }
  return { object: secret, errors: [] };
}
