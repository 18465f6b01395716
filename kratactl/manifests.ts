// From `-f` arguments to validated, defaulted objects, or to every problem at once with file, line,
// column and field path. Nothing is returned as applicable unless every document is valid.
import type { Readable } from 'node:stream';
import { formatPath, KINDS, validateObject, type KratObject } from '../crds/validate.js';
import { parseSource, type ParsedDocument } from './documents.js';
import { readSources } from './sources.js';
import { isSecretDocument, validatePullSecret, type PullSecret } from '../contracts/agent-api/pull-secret.js';

export { DEFAULT_NAMESPACE } from '../crds/meta.js';
import { DEFAULT_NAMESPACE } from '../crds/meta.js';

export interface Problem {
  file: string;
  line?: number;
  column?: number;
  /** "Guest default/web", when the document says what it is. */
  object?: string;
  message: string;
}

export interface LoadedObject {
  object: KratObject;
  file: string;
  line: number;
}

export interface LoadedSecret {
  object: PullSecret;
  file: string;
  line: number;
}

export interface LoadResult {
  objects: LoadedObject[];
  /** Image pull Secrets (`v1 Secret`), with `secrets: true` only; elsewhere a Secret is an unknown kind. */
  secrets: LoadedSecret[];
  problems: Problem[];
  warnings: Problem[];
}

export interface LoadOptions {
  recursive?: boolean;
  /** -n: the namespace for objects that name none; objects naming another one are an error. */
  namespace?: string;
  stdin?: Readable;
  /** Take image pull Secrets too (apply). */
  secrets?: boolean;
}

export async function loadManifests(paths: string[], options: LoadOptions = {}): Promise<LoadResult> {
  const read = await readSources(paths, options);
  const result: LoadResult = { objects: [], secrets: [], problems: [...read.errors], warnings: [] };
  const documents: ParsedDocument[] = [];
  for (const source of read.sources) {
    const parsed = parseSource(source);
    result.problems.push(...parsed.errors);
    documents.push(...parsed.documents.flatMap(expandList));
  }
  if (read.sources.length > 0 && documents.length === 0 && result.problems.length === 0) {
    result.problems.push({ file: read.sources.map((s) => s.name).join(', '), message: 'no objects found' });
  }

  const seen = new Map<string, { file: string; line: number }>();
  for (const doc of documents) {
    if (options.secrets && isSecretDocument(doc.value)) {
      loadSecret(doc, options.namespace, result, seen);
      continue;
    }
    const { object, errors } = validateObject(doc.value);
    const label = describeObject(doc.value);
    for (const e of errors) {
      const at = doc.locate(e.path, e.onKey);
      result.problems.push({ file: doc.source.name, ...at, object: label, message: `${formatPath(e.path)}: ${e.message}` });
    }
    if (!object) continue;
    const start = doc.locate([]);
    const namespaceProblem = settleNamespace(object, options.namespace, doc, result.warnings);
    if (namespaceProblem) {
      result.problems.push({ file: doc.source.name, ...doc.locate(['metadata', 'namespace']), object: label, message: namespaceProblem });
      continue;
    }
    if (object.status !== undefined) {
      result.warnings.push({
        file: doc.source.name,
        ...doc.locate(['status'], true),
        object: label,
        message: 'status is written by krata; ignored',
      });
      delete object.status;
    }
    const id = `${object.kind} ${object.metadata.namespace ? object.metadata.namespace + '/' : ''}${object.metadata.name}`;
    const first = seen.get(id);
    if (first) {
      result.problems.push({
        file: doc.source.name,
        ...doc.locate(['metadata', 'name']),
        object: label,
        message: `metadata.name: ${id} is defined twice (first at ${first.file}:${first.line})`,
      });
      continue;
    }
    seen.set(id, { file: doc.source.name, line: start.line });
    result.objects.push({ object, file: doc.source.name, line: start.line });
  }
  const order = [...paths.map((p) => (p === '-' ? '<stdin>' : p)), ...read.sources.map((s) => s.name)];
  result.problems = sortProblems(result.problems, order);
  result.warnings = sortProblems(result.warnings, order);
  return result;
}

/** A `v1 Secret`: checked as an image pull secret, namespaced like a Guest. Values are never quoted. */
function loadSecret(
  doc: ParsedDocument,
  flag: string | undefined,
  result: LoadResult,
  seen: Map<string, { file: string; line: number }>,
): void {
  const { object, errors } = validatePullSecret(doc.value);
  const label = describeObject(doc.value);
  for (const e of errors)
    result.problems.push({
      file: doc.source.name,
      ...doc.locate(e.path, e.onKey),
      object: label,
      message: `${formatPath(e.path)}: ${e.message}`,
    });
  if (!object) return;
  const meta = object.metadata;
  if (meta.namespace !== undefined && flag !== undefined && meta.namespace !== flag) {
    result.problems.push({
      file: doc.source.name,
      ...doc.locate(['metadata', 'namespace']),
      object: label,
      message: `metadata.namespace: "${meta.namespace}" does not match --namespace "${flag}"`,
    });
    return;
  }
  meta.namespace ??= flag ?? DEFAULT_NAMESPACE;
  const id = `Secret ${meta.namespace}/${meta.name}`;
  const start = doc.locate([]);
  const first = seen.get(id);
  if (first) {
    result.problems.push({
      file: doc.source.name,
      ...doc.locate(['metadata', 'name']),
      object: label,
      message: `metadata.name: ${id} is defined twice (first at ${first.file}:${first.line})`,
    });
    return;
  }
  seen.set(id, { file: doc.source.name, line: start.line });
  result.secrets.push({ object, file: doc.source.name, line: start.line });
}

/**
 * `kind: List` (what `kubectl get -o yaml` and `kratactl apply -o json` print for several objects) stands
 * for its items; each item keeps its own place in the file.
 */
function expandList(doc: ParsedDocument): ParsedDocument[] {
  const v = doc.value as { apiVersion?: unknown; kind?: unknown; items?: unknown } | null;
  if (v === null || typeof v !== 'object' || v.kind !== 'List' || v.apiVersion !== 'v1' || !Array.isArray(v.items)) return [doc];
  return v.items.map((item, i) => ({
    source: doc.source,
    index: doc.index,
    value: item as unknown,
    locate: (path, onKey) => doc.locate(['items', i, ...path], onKey),
  }));
}

/** Namespaced kinds get -n or "default"; cluster-scoped kinds lose a namespace (as the API server does). */
function settleNamespace(object: KratObject, flag: string | undefined, doc: ParsedDocument, warnings: Problem[]): string | undefined {
  const meta = object.metadata;
  if (!KINDS.get(object.kind)!.namespaced) {
    if (meta.namespace !== undefined) {
      warnings.push({
        file: doc.source.name,
        ...doc.locate(['metadata', 'namespace'], true),
        object: describeObject(object),
        message: `metadata.namespace: ${object.kind} is cluster-scoped; namespace "${meta.namespace}" ignored`,
      });
      delete meta.namespace;
    }
    return undefined;
  }
  if (meta.namespace !== undefined && flag !== undefined && meta.namespace !== flag) {
    return `metadata.namespace: "${meta.namespace}" does not match --namespace "${flag}"`;
  }
  meta.namespace ??= flag ?? DEFAULT_NAMESPACE;
  return undefined;
}

/** `Guest "web"` from whatever the document holds, or nothing when it does not say. */
function describeObject(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const v = value as { kind?: unknown; metadata?: { name?: unknown } };
  const kind = typeof v.kind === 'string' ? v.kind : undefined;
  const name = typeof v.metadata?.name === 'string' ? v.metadata.name : undefined;
  if (!kind) return name ? `"${name}"` : undefined;
  return name ? `${kind} "${name}"` : kind;
}

export function formatProblem(p: Problem, severity: 'error' | 'warning' = 'error'): string {
  const where = p.line === undefined ? p.file : `${p.file}:${p.line}:${p.column}`;
  return `${where}: ${severity}: ${p.object ? p.object + ': ' : ''}${p.message}`;
}

/** In file order (as read), then by position. */
function sortProblems(problems: Problem[], fileOrder: string[]): Problem[] {
  const ranks = new Map<string, number>();
  for (const f of [...fileOrder].reverse()) ranks.set(f, fileOrder.indexOf(f));
  const rank = (f: string) => ranks.get(f) ?? fileOrder.length;
  return [...problems].sort((a, b) => rank(a.file) - rank(b.file) || (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}
