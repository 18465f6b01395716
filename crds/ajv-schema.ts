// The CRD schemas as ajv checks them, shared by the code generator (which compiles them to
// crds/generated/validators.ts) and the validator (which reads them for "did you mean").
import type { JSONSchemaProps } from './crd-types.js';
import { objectMetaSchema } from './meta.js';

/** Kubernetes' schema extensions: keywords ajv accepts without checking (the validator checks list-map keys itself). */
export const KUBERNETES_EXTENSIONS = [
  'x-kubernetes-int-or-string',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-embedded-resource',
];

/** The options the validators are compiled with (codegen) and compiled again with (tests). */
export const AJV_OPTIONS = { allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true } as const;

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** The schema formats krata uses, as the API server checks them; the generated validators import this. */
export const FORMATS = {
  'date-time': { type: 'string', validate: (s: string) => RFC3339.test(s) && !Number.isNaN(Date.parse(s)) },
  int32: { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 },
  int64: { type: 'number', validate: (n: number) => Number.isSafeInteger(n) },
} as const;

/**
 * The schema as ajv should check it: the API server's strict field validation (unknown fields are
 * errors) becomes additionalProperties: false, int-or-string becomes a type union, and metadata gets
 * the ObjectMeta rules the API server applies itself.
 */
export function toAjvSchema(schema: JSONSchemaProps, namespaced: boolean): JSONSchemaProps {
  return strictCopy({
    ...schema,
    properties: { ...schema.properties, metadata: objectMetaSchema(namespaced) },
    required: [...new Set(['apiVersion', 'kind', 'metadata', ...(schema.required ?? [])])],
  });
}

function strictCopy(s: JSONSchemaProps): JSONSchemaProps {
  const out: JSONSchemaProps & { type?: unknown } = { ...s };
  if (s['x-kubernetes-int-or-string']) {
    delete out.anyOf;
    out.type = ['integer', 'string'] as unknown as 'string';
  }
  if (s.properties) {
    out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, strictCopy(v)]));
    if (s.additionalProperties === undefined && !s['x-kubernetes-preserve-unknown-fields']) out.additionalProperties = false;
  }
  if (typeof s.additionalProperties === 'object') out.additionalProperties = strictCopy(s.additionalProperties);
  if (s.items) out.items = strictCopy(s.items);
  return out;
}

/** The part of `schema` an ajv schemaPath (`#/properties/spec/additionalProperties`) points to. */
export function schemaAt(schema: JSONSchemaProps, pointer: string): unknown {
  let node: unknown = schema;
  for (const raw of pointer.replace(/^#\/?/, '').split('/').filter(Boolean)) {
    const seg = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    node = node && typeof node === 'object' ? (node as Record<string, unknown>)[seg] : undefined;
  }
  return node;
}
