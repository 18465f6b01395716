// The validators as code: ajv's standalone output for every served kind, so kratactl and the daemons
// load compiled functions instead of compiling the schemas at every start (ajv's compile of the three
// CRDs takes most of a second on a small host).
import { Ajv, _ } from 'ajv';
import standalone from 'ajv/dist/standalone/index.js';
import type { CustomResourceDefinition } from '../crd-types.js';
import { AJV_OPTIONS, FORMATS, KUBERNETES_EXTENSIONS, toAjvSchema } from '../ajv-schema.js';

/** The compiler the generated code comes from; tests compile with it too, to compare behaviour. */
export function newAjv(code?: { source: true; esm: true }): Ajv {
  const ajv = new Ajv({ ...AJV_OPTIONS, ...(code && { code: { ...code, formats: _`formats` } }) });
  ajv.addVocabulary(KUBERNETES_EXTENSIONS);
  for (const [name, format] of Object.entries(FORMATS)) ajv.addFormat(name, format as never);
  return ajv;
}

/** The served kinds of `crds`, each with the schema ajv checks. */
export function servedSchemas(crds: readonly CustomResourceDefinition[]): Map<string, ReturnType<typeof toAjvSchema>> {
  const out = new Map<string, ReturnType<typeof toAjvSchema>>();
  for (const crd of crds)
    for (const v of crd.spec.versions.filter((v) => v.served))
      out.set(crd.spec.names.kind, toAjvSchema(v.schema.openAPIV3Schema, crd.spec.scope === 'Namespaced'));
  return out;
}

const RUNTIME = 'require("ajv/dist/runtime/ucs2length")';

/** crds/generated/validators.ts: one exported validate function per kind, named by the kind. */
export function validatorsModule(crds: readonly CustomResourceDefinition[], header: string): string {
  const ajv = newAjv({ source: true, esm: true });
  const refs: Record<string, string> = {};
  for (const [kind, schema] of servedSchemas(crds)) {
    ajv.addSchema(schema, kind);
    refs[kind] = kind;
  }
  const code = standalone.default(ajv, refs);
  const left = code.replaceAll(RUNTIME, 'ucs2length').match(/require\([^)]*\)/);
  if (left) throw new Error(`ajv's standalone code needs ${left[0]}, which the generator does not import`);
  return (
    header +
    '// @ts-nocheck: ajv standalone code for the schemas in crds.ts as crds/ajv-schema.ts rewrites them.\n' +
    "import ucs2length from 'ajv/dist/runtime/ucs2length.js';\n" +
    "import { FORMATS as formats } from '../ajv-schema.js';\n" +
    code.replaceAll(RUNTIME, 'ucs2length').replace(/^"use strict";/, '') +
    '\n'
  );
}
