// A GuestSet template's revision: a short hash of the template, the same whatever order its keys were
// written in (the API server and a YAML file may order them differently).
import { createHash } from 'node:crypto';
import type { GuestTemplate } from '../../crds/generated/types.js';

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
  );
}

/** Ten lowercase hex digits: a label value, as pod-template-hash is. */
export function templateHash(template: GuestTemplate): string {
  return createHash('sha256')
    .update(JSON.stringify(canonical(template)))
    .digest('hex')
    .slice(0, 10);
}
