// Printing objects the way kubectl users read them: YAML or JSON, keys in the schema's order
// (apiVersion, kind, metadata, spec, status; spec fields as the CRD lists them), not insertion order.
import { stringify } from 'yaml';
import type { JSONSchemaProps } from '../crds/crd-types.js';
import { KINDS } from '../crds/kinds.js';
import type { KratObject } from '../crds/validate.js';

const META_ORDER = [
  'name',
  'generateName',
  'namespace',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'labels',
  'annotations',
];

export function canonical(object: KratObject): KratObject {
  const schema = KINDS.get(object.kind)!.schema;
  const ordered = order(object, schema) as Record<string, unknown>;
  if (object.metadata) ordered.metadata = orderKeys(object.metadata as unknown as Record<string, unknown>, META_ORDER);
  return ordered as unknown as KratObject;
}

function order(value: unknown, schema: JSONSchemaProps | undefined): unknown {
  if (Array.isArray(value)) return value.map((item) => order(item, schema?.items));
  if (value === null || typeof value !== 'object') return value;
  const known = Object.keys(schema?.properties ?? {});
  const out = orderKeys(value as Record<string, unknown>, known.length ? known : Object.keys(value).sort());
  for (const [k, v] of Object.entries(out)) {
    const sub = schema?.properties?.[k] ?? (typeof schema?.additionalProperties === 'object' ? schema.additionalProperties : undefined);
    out[k] = order(v, sub);
  }
  return out;
}

function orderKeys(obj: Record<string, unknown>, preferred: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of preferred) if (k in obj) out[k] = obj[k];
  for (const k of Object.keys(obj)) if (!(k in out)) out[k] = obj[k];
  return out;
}

export type OutputFormat = 'yaml' | 'json' | 'name';

export function formatObjects(objects: KratObject[], format: OutputFormat): string {
  const list = objects.map(canonical);
  switch (format) {
    case 'json':
      return (
        (list.length === 1 ? JSON.stringify(list[0], null, 2) : JSON.stringify({ apiVersion: 'v1', kind: 'List', items: list }, null, 2)) +
        '\n'
      );
    case 'name':
      return list.map((o) => `${objectName(o)}\n`).join('');
    case 'yaml':
      // Strings that YAML 1.1 would read as something else (yes, 0755, 1:30) are quoted, so that the
      // output applies again with the same meaning.
      return list.map((o) => stringify(o, { version: '1.1', lineWidth: 0 })).join('---\n');
  }
}

/** kubectl's NAME form: guest.krata.dev/web (kind in lower case, singular, with the group). */
export function objectName(o: { kind: string; metadata: { name: string } }): string {
  if (o.kind === 'Secret') return `secret/${o.metadata.name}`; // the core group has no suffix
  return `${o.kind.toLowerCase()}.${KINDS.get(o.kind)?.crd.spec.group ?? 'krata.dev'}/${o.metadata.name}`;
}
