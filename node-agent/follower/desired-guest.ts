// One field of a host's desired hash → a Guest for the store, or an error saying why not. Redis is
// shared infrastructure: whatever a field holds is checked as the local API checks a manifest (the
// CRD validator, with the schema's defaults), plus what the agent builds paths and keys from.
import { COMPLETE_FIELD, PULL_AUTH_LIMITS, fieldOf, parseDesired, type DesiredPullAuth } from '../../contracts/redis/contract.js';
import type { Guest } from '../../crds/generated/types.js';
import { formatPath, validateObject } from '../../crds/validate.js';

/** The largest field value accepted (the local API takes manifests up to 1 MiB too). */
export const MAX_DESIRED_BYTES = 1024 * 1024;
/** Kubernetes uids are UUIDs; the agent puts them in domain names and xenstore keys, so nothing else gets through. */
const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function desiredGuest(field: string, raw: string): Guest {
  return desiredEntry(field, raw).guest;
}

/** A desired-hash field: the Guest, and its pull tokens (kept in memory by the agent, never in the store). */
export function desiredEntry(field: string, raw: string): { guest: Guest; pullAuth?: DesiredPullAuth } {
  if (field === COMPLETE_FIELD) throw new Error(`${COMPLETE_FIELD} is the completeness marker, not a Guest`);
  const bytes = Buffer.byteLength(raw);
  if (bytes > MAX_DESIRED_BYTES) throw new Error(`the value is ${bytes} bytes, over the ${MAX_DESIRED_BYTES}-byte limit`);
  let d;
  try {
    d = parseDesired(raw);
  } catch (e) {
    throw new Error(`not a desired Guest: ${(e as Error).message}`, { cause: e });
  }
  if (field !== fieldOf(d.namespace, d.name))
    throw new Error(`the field does not name the Guest it holds (${fieldOf(String(d.namespace), String(d.name)).slice(0, 200)})`);
  if (!UID.test(d.uid)) throw new Error('uid: expected a UUID');
  if (!Number.isSafeInteger(d.generation) || d.generation < 1) throw new Error('generation: expected a positive integer');
  if (d.deleting !== undefined && (typeof d.deleting !== 'object' || d.deleting === null || typeof d.deleting.since !== 'string'))
    throw new Error('deleting: expected {since, gracePeriodSeconds?}');
  const metadata: Record<string, unknown> = { name: d.name, namespace: d.namespace, uid: d.uid, generation: d.generation };
  if (d.labels !== undefined) metadata.labels = d.labels;
  if (d.annotations !== undefined) metadata.annotations = d.annotations;
  if (d.owner !== undefined) {
    const o = d.owner as unknown;
    if (!isObject(o) || ![o.kind, o.name, o.uid].every((v) => boundedString(v, 253)))
      throw new Error('owner: expected {kind, name, uid} (strings of at most 253 bytes)');
    metadata.ownerReferences = [{ apiVersion: 'krata.dev/v1alpha1', kind: o.kind, name: o.name, uid: o.uid, controller: true }];
  }
  if (d.deleting) {
    metadata.deletionTimestamp = d.deleting.since;
    if (d.deleting.gracePeriodSeconds !== undefined) metadata.deletionGracePeriodSeconds = d.deleting.gracePeriodSeconds;
  }
  const r = validateObject({ apiVersion: 'krata.dev/v1alpha1', kind: 'Guest', metadata, spec: d.spec });
  if (!r.object)
    throw new Error(
      `invalid Guest: ${r.errors
        .slice(0, 5)
        .map((e) => `${formatPath(e.path)}: ${e.message}`)
        .join('; ')}${r.errors.length > 5 ? ` (and ${r.errors.length - 5} more)` : ''}`,
    );
  return { guest: r.object as Guest, ...(d.pullAuth !== undefined && { pullAuth: checkPullAuth(d.pullAuth) }) };
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const boundedString = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && Buffer.byteLength(v) <= max;

/** pullAuth as contract.ts describes it, bounded; anything else refuses the whole entry. */
function checkPullAuth(p: unknown): DesiredPullAuth {
  const L = PULL_AUTH_LIMITS;
  if (!isObject(p) || !Array.isArray(p.tokens) || p.tokens.length > L.tokens)
    throw new Error(`pullAuth: expected {tokens: [at most ${L.tokens}], problems?}`);
  const tokens = p.tokens.map((t, i) => {
    if (
      !isObject(t) ||
      !boundedString(t.registry, 255) ||
      !boundedString(t.repository, 255) ||
      !boundedString(t.token, L.tokenBytes) ||
      !boundedString(t.expiresAt, 64) ||
      !Number.isFinite(Date.parse(t.expiresAt))
    ) {
      throw new Error(`pullAuth.tokens[${i}]: expected {registry, repository, token, expiresAt}`);
    }
    // The token goes into an HTTP header: no line breaks or other control characters.
    if (!/^[\x21-\x7e]+$/.test(t.token)) throw new Error(`pullAuth.tokens[${i}].token: not a bearer token`);
    return { registry: t.registry, repository: t.repository, token: t.token, expiresAt: t.expiresAt };
  });
  const problems = p.problems;
  if (
    problems !== undefined &&
    (!Array.isArray(problems) || problems.length > L.problems || !problems.every((x) => boundedString(x, L.problemBytes)))
  )
    throw new Error(`pullAuth.problems: expected at most ${L.problems} short strings`);
  return { tokens, ...(problems !== undefined && { problems: problems as string[] }) };
}
