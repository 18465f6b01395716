// Validation and defaulting of krata objects, compiled from the CRD schemas (crds/generated/validators.ts):
// what the API server would do with the CRD (types, bounds, enums, patterns, defaults, list-map keys),
// plus what it cannot do without CEL (crds/semantics.ts) and strict unknown-field checks, all at once.
import type { ErrorObject, ValidateFunction } from 'ajv';
import { schemaAt, toAjvSchema } from './ajv-schema.js';
import type { JSONSchemaProps } from './crd-types.js';
import { KINDS, type KindInfo } from './kinds.js';
import * as generated from './generated/validators.js';
import type { FieldError, KratObject, Path } from './field-error.js';
import { PATTERN_NAMES } from './patterns.js';
import { semanticErrors } from './semantics.js';
import { closest } from '../lib/closest.js';

export type { FieldError, KratObject, Path } from './field-error.js';
export { KINDS, resolveKind, type KindInfo } from './kinds.js';

export interface ValidationResult {
  /** The defaulted object, when there were no errors. */
  object?: KratObject;
  errors: FieldError[];
}

/** The compiled validator of each kind (ajv's standalone code, generated: no schema is compiled at run time). */
const VALIDATORS = generated as unknown as Readonly<Record<string, ValidateFunction>>;

function validatorFor(info: KindInfo): ValidateFunction {
  const fn = VALIDATORS[info.kind];
  if (!fn) throw new Error(`crds/generated/validators.ts has no validator for ${info.kind}: run npm run generate`);
  return fn;
}

const ajvSchemas = new Map<string, JSONSchemaProps>();

/** The schema the validator of `info` checks, for reading what a failed keyword allowed. */
function ajvSchemaOf(info: KindInfo): JSONSchemaProps {
  let schema = ajvSchemas.get(info.kind);
  if (!schema) ajvSchemas.set(info.kind, (schema = toAjvSchema(info.schema, info.namespaced)));
  return schema;
}

/**
 * Validate one object and apply the schema's defaults. Returns every error found, never throws on
 * bad input. The input is not modified.
 */
export function validateObject(input: unknown): ValidationResult {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return { errors: [{ path: [], message: `must be a mapping with apiVersion, kind, metadata and spec (got ${describe(input)})` }] };
  }
  // Cloning and the schema checks recurse: hostile depth (from Redis, a file, a request) stops here.
  const deep = pathBeyond(input, MAX_NESTING);
  if (deep) return { errors: [{ path: deep, message: `nested deeper than ${MAX_NESTING} levels; krata objects are far shallower` }] };
  const raw = input as Record<string, unknown>;
  const kindErrors = checkKind(raw);
  if (kindErrors.length) return { errors: kindErrors };
  const info = KINDS.get(raw.kind as string)!;
  const obj = structuredClone(raw);
  const validate = validatorFor(info);
  const errors: FieldError[] = [];
  if (!validate(obj)) errors.push(...uniqueErrors(dedupe(validate.errors ?? []).map((e) => toFieldError(e, obj, info))));
  errors.push(...listMapErrors(info.schema, obj, []));
  // Cross-field rules run on every part of the object the schema found sound, so one pass reports all.
  const broken = errors.map((e) => formatPath(e.path));
  const sound = (...path: Path) => {
    const here = formatPath(path);
    return !broken.some((b) => isWithin(b, here) || isWithin(here, b));
  };
  errors.push(...semanticErrors(obj as unknown as KratObject, sound));
  errors.sort(byPath);
  return errors.length ? { errors } : { object: obj as unknown as KratObject, errors };
}

/** How deep an object may nest (a Guest nests about ten levels). */
export const MAX_NESTING = 100;

/**
 * The path to a list or mapping at level `max + 1`, or undefined. Iterative, so any depth is safe;
 * each entry links to its parent instead of copying the path, so a wide object costs O(size).
 */
export function pathBeyond(value: unknown, max: number): Path | undefined {
  interface Entry {
    node: object;
    depth: number;
    key?: string | number;
    parent?: Entry;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const stack: Entry[] = [{ node: value, depth: 0 }];
  while (stack.length) {
    const e = stack.pop()!;
    if (e.depth >= max) {
      const path: Path = [];
      for (let at: Entry | undefined = e; at?.parent; at = at.parent) path.unshift(at.key!);
      return path;
    }
    const isList = Array.isArray(e.node);
    for (const [k, v] of Object.entries(e.node)) {
      if (v !== null && typeof v === 'object')
        stack.push({ node: v as object, depth: e.depth + 1, key: isList ? Number(k) : k, parent: e });
    }
  }
  return undefined;
}

function checkKind(raw: Record<string, unknown>): FieldError[] {
  const known = [...KINDS.keys()].join(', ');
  if (raw.kind === undefined) return [{ path: ['kind'], message: `required field is missing (krata serves ${known})` }];
  if (typeof raw.kind !== 'string') return [{ path: ['kind'], message: `must be a string (got ${describe(raw.kind)})` }];
  const info = KINDS.get(raw.kind);
  if (!info) {
    const hint =
      typeof raw.apiVersion === 'string' && !raw.apiVersion.startsWith('krata.dev/') ? ` (${raw.apiVersion} is not a krata API)` : '';
    return [{ path: ['kind'], message: `unknown kind "${raw.kind}"${hint}: krata serves ${known}` }];
  }
  if (raw.apiVersion === undefined) return [{ path: ['apiVersion'], message: `required field is missing (use ${info.apiVersion})` }];
  if (raw.apiVersion !== info.apiVersion) {
    return [{ path: ['apiVersion'], message: `${info.kind} is served as ${info.apiVersion}, not ${JSON.stringify(raw.apiVersion)}` }];
  }
  return [];
}

/** ajv reports a failed `type` for each branch of a union; keep one error per path and keyword. */
function dedupe(errors: ErrorObject[]): ErrorObject[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = `${e.instancePath}|${e.keyword}|${JSON.stringify(e.params)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function pointerToPath(pointer: string, root: unknown): Path {
  if (!pointer) return [];
  const path: Path = [];
  let node: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const key = Array.isArray(node) ? Number(seg) : seg;
    path.push(key);
    node = node && typeof node === 'object' ? (node as Record<string, unknown>)[key as string] : undefined;
  }
  return path;
}

function valueAt(root: unknown, path: Path): unknown {
  let node = root;
  for (const seg of path) node = node && typeof node === 'object' ? (node as Record<string | number, unknown>)[seg] : undefined;
  return node;
}

/** One error per path and message (an out-of-range number fails several keywords the same way). */
function uniqueErrors(errors: FieldError[]): FieldError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = `${formatPath(e.path)}|${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** A number beyond a double (1e400 in YAML or JSON reads as Infinity, which JSON shows as null). */
export const OUT_OF_RANGE = 'number out of range (beyond about ±1.8e308, so it reads as infinity)';

function toFieldError(e: ErrorObject, root: unknown, info: KindInfo): FieldError {
  const path = pointerToPath(e.instancePath, root);
  const value = valueAt(root, path);
  if (typeof value === 'number' && !Number.isFinite(value) && e.keyword !== 'required' && !e.keyword.startsWith('additionalProp')) {
    return { path, message: OUT_OF_RANGE };
  }
  const got = `got ${describe(value)}`;
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return { path: [...path, p.missingProperty as string], message: 'required field is missing' };
    case 'additionalProperty':
    case 'additionalProperties': {
      const name = p.additionalProperty as string;
      const parentSchema = schemaAt(ajvSchemaOf(info), e.schemaPath.replace(/\/additionalProperties$/, '')) as JSONSchemaProps | undefined;
      const suggestion = closest(name, Object.keys(parentSchema?.properties ?? {}));
      return {
        path: [...path, name],
        message: `unknown field "${name}"${suggestion ? ` (did you mean "${suggestion}"?)` : ''}`,
        onKey: true,
      };
    }
    case 'type': {
      const want = ([] as string[]).concat(p.type as string | string[]);
      const article = (t: string) => (t === 'integer' || t === 'array' || t === 'object' ? `an ${t}` : `a ${t}`);
      let message = `must be ${want.map((t) => article(t === 'object' ? 'mapping' : t)).join(' or ')} (${got})`;
      if (want.length === 1 && want[0] === 'string' && typeof value === 'boolean') {
        message += '; YAML reads yes/no/on/off/true/false as booleans, so quote it';
      }
      return { path, message };
    }
    case 'enum':
      return { path, message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')} (${got})` };
    case 'pattern': {
      const name = PATTERN_NAMES.get(p.pattern as string) ?? `/${p.pattern as string}/`;
      return { path, message: `must match ${name} (${got})` };
    }
    case 'format':
      return { path, message: `must be ${p.format === 'date-time' ? 'an RFC 3339 date-time' : `a valid ${p.format as string}`} (${got})` };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { path, message: `must be ${p.comparison as string} ${p.limit as number} (${got})` };
    case 'minLength':
      return { path, message: (p.limit as number) === 1 ? 'must not be empty' : `must be at least ${p.limit as number} characters long` };
    case 'maxLength':
      return { path, message: `must be at most ${p.limit as number} characters long (got ${(value as string).length})` };
    case 'minItems':
      return { path, message: `must have at least ${p.limit as number} items` };
    case 'maxItems':
      return { path, message: `must have at most ${p.limit as number} items (got ${(value as unknown[]).length})` };
    case 'maxProperties':
      return { path, message: `must have at most ${p.limit as number} entries (got ${Object.keys(value as object).length})` };
    default:
      return { path, message: e.message ?? `fails ${e.keyword}` };
  }
}

/** x-kubernetes-list-type map and set: the API server rejects duplicate keys and items. */
function listMapErrors(schema: JSONSchemaProps, value: unknown, path: Path): FieldError[] {
  if (value === null || typeof value !== 'object') return [];
  const errors: FieldError[] = [];
  if (Array.isArray(value)) {
    const listType = schema['x-kubernetes-list-type'];
    const keys = schema['x-kubernetes-list-map-keys'] ?? [];
    if (listType === 'map' || listType === 'set') {
      const firstAt = new Map<string, number>();
      value.forEach((item, i) => {
        const id =
          listType === 'map' && item && typeof item === 'object'
            ? JSON.stringify(keys.map((k) => (item as Record<string, unknown>)[k]))
            : JSON.stringify(item);
        const first = firstAt.get(id);
        if (first === undefined) firstAt.set(id, i);
        else {
          const what =
            listType === 'map'
              ? keys.map((k) => `${k}=${JSON.stringify((item as Record<string, unknown>)[k])}`).join(', ')
              : JSON.stringify(item);
          errors.push({ path: [...path, i], message: `duplicate entry (${what}), first at ${formatPath([...path, first])}` });
        }
      });
    }
    if (schema.items) value.forEach((item, i) => errors.push(...listMapErrors(schema.items!, item, [...path, i])));
    return errors;
  }
  for (const [k, v] of Object.entries(value)) {
    const sub = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
    if (sub) errors.push(...listMapErrors(sub, v, [...path, k]));
  }
  return errors;
}

/** spec.env[2].name */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out || '(document)';
}

/** Whether formatted path `inner` is `outer` or lies below it. */
function isWithin(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer + '.') || inner.startsWith(outer + '[') || outer === '(document)';
}

function byPath(a: FieldError, b: FieldError): number {
  return formatPath(a.path) < formatPath(b.path) ? -1 : formatPath(a.path) > formatPath(b.path) ? 1 : 0;
}

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number' && !Number.isFinite(value)) return 'a number out of range';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${typeof value} ${text.slice(0, 57)}..."` : `${typeof value} ${text}`;
}
