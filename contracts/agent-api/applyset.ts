// ApplySets (KEP-3659) on a single host: `kratactl apply --prune --applyset=NAME` records the set of
// objects it applied in a parent object, labels each member with the set's id, and deletes members that
// are no longer applied. In a cluster kubectl keeps the parent in a Secret; on a single host the node
// agent keeps it, apart from its pull Secrets, as a Secret-shaped record with no data, so that the set's
// id is the one kubectl computes for `--applyset=NAME` in the same namespace.
import { createHash } from 'node:crypto';
import type { FieldError } from '../../crds/validate.js';
import { isNamespaceName, isPullSecretName } from './pull-secret.js';

/** On the parent: the set's id. */
export const APPLYSET_ID_LABEL = 'applyset.kubernetes.io/id';
/** On each member: the id of the set it belongs to. */
export const APPLYSET_PART_OF_LABEL = 'applyset.kubernetes.io/part-of';
/** On the parent: who manages the set, `NAME/VERSION` (kratactl/0.1.0). */
export const APPLYSET_TOOLING_ANNOTATION = 'applyset.kubernetes.io/tooling';
/** On the parent: the members' kinds, `Kind.group` (`Kind` for the core group), sorted, comma-separated. */
export const APPLYSET_GROUP_KINDS_ANNOTATION = 'applyset.kubernetes.io/contains-group-kinds';
/** On the parent: the members' namespaces other than the parent's own, sorted, comma-separated. */
export const APPLYSET_NAMESPACES_ANNOTATION = 'applyset.kubernetes.io/additional-namespaces';

/** The parent as the agent stores it: a Secret's shape, no data; labels and annotations as above. */
export interface ApplySetParent {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
}

/**
 * The KEP's id of the set whose parent is `kind.group` NAME in NAMESPACE: `applyset-` + base64url (no
 * padding) of sha256(`NAME.NAMESPACE.KIND.GROUP`) + `-v1`, as kubectl computes it.
 */
export function applySetId(name: string, namespace: string, kind = 'Secret', group = ''): string {
  const hash = createHash('sha256').update(`${name}.${namespace}.${kind}.${group}`).digest('base64url');
  return `applyset-${hash}-v1`;
}

/** The parent's annotations hold lists: none, one or a few hundred words; more is refused. */
const MAX_ANNOTATION = 64 * 1024;
const MAX_ENTRIES = 64;
const QUALIFIED_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** A comma-separated list annotation as a sorted, de-duplicated list. */
export function listAnnotation(value: string | undefined): string[] {
  return [
    ...new Set(
      (value ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ].sort();
}

/** Checks a parent the agent is asked to store (at `namespace`/`name` when given): bounded, labelled with its own id. */
export function validateApplySetParent(
  input: unknown,
  at?: { namespace: string; name: string },
): { object?: ApplySetParent; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const o = input as Partial<ApplySetParent> | null;
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return { errors: [{ path: [], message: 'must be a mapping' }] };
  if (o.apiVersion !== 'v1' || o.kind !== 'Secret') errors.push({ path: ['kind'], message: 'expected apiVersion v1, kind Secret' });
  const m = o.metadata;
  if (m === null || typeof m !== 'object' || Array.isArray(m))
    return { errors: [...errors, { path: ['metadata'], message: 'must be a mapping' }] };
  if (!isPullSecretName(m.name)) errors.push({ path: ['metadata', 'name'], message: 'must be a DNS subdomain' });
  if (!isNamespaceName(m.namespace)) errors.push({ path: ['metadata', 'namespace'], message: 'must be a DNS label' });
  if (at && (m.name !== at.name || m.namespace !== at.namespace))
    errors.push({ path: ['metadata'], message: `name and namespace must be those of the path (${at.namespace}/${at.name})` });
  for (const k of Object.keys(o)) if (!['apiVersion', 'kind', 'metadata'].includes(k)) errors.push({ path: [k], message: 'unknown field' });
  for (const k of Object.keys(m))
    if (!['name', 'namespace', 'labels', 'annotations'].includes(k)) errors.push({ path: ['metadata', k], message: 'unknown field' });
  for (const field of ['labels', 'annotations'] as const) {
    const map = m[field] as unknown;
    if (map === null || typeof map !== 'object' || Array.isArray(map)) {
      errors.push({ path: ['metadata', field], message: 'must be a mapping of strings' });
      continue;
    }
    const entries = Object.entries(map);
    if (entries.length > MAX_ENTRIES) errors.push({ path: ['metadata', field], message: `at most ${MAX_ENTRIES} entries` });
    for (const [k, v] of entries) {
      if (!QUALIFIED_KEY.test(k) || k.length > 317) errors.push({ path: ['metadata', field, k], message: 'not a qualified name' });
      if (typeof v !== 'string' || v.length > MAX_ANNOTATION)
        errors.push({ path: ['metadata', field, k], message: `must be a string of at most ${MAX_ANNOTATION} characters` });
    }
  }
  if (errors.length) return { errors };
  const id = applySetId(m.name!, m.namespace!);
  if (m.labels![APPLYSET_ID_LABEL] !== id)
    return { errors: [{ path: ['metadata', 'labels', APPLYSET_ID_LABEL], message: `must be this parent's id, ${id}` }] };
  const object: ApplySetParent = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: m.name!, namespace: m.namespace!, labels: { ...m.labels! }, annotations: { ...m.annotations! } },
  };
  return { object, errors: [] };
}
