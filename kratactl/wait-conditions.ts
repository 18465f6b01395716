// What `kratactl wait --for=...` waits for, read and checked as kubectl wait does: `condition=TYPE[=STATUS]`
// (case-insensitive, not met while the condition's or the status's observedGeneration is behind the
// object's generation), `delete`, and `jsonpath={PATH}[=VALUE]` (one value that prints as VALUE, or any value).
import { goText } from '../lib/go-format.js';
import { JsonPath, JsonPathError, relaxedJsonPath } from '../lib/jsonpath.js';
import { UsageError } from './io.js';

export type WaitFor =
  { kind: 'delete' } | { kind: 'condition'; type: string; status: string } | { kind: 'jsonpath'; path: JsonPath; value?: string };

export function parseWaitFor(forArg: string | undefined): WaitFor {
  const f = forArg ?? '';
  if (f.toLowerCase() === 'delete') return { kind: 'delete' };
  if (f.startsWith('condition=')) {
    const rest = f.slice('condition='.length);
    const eq = rest.indexOf('=');
    const type = eq < 0 ? rest : rest.slice(0, eq);
    const status = eq < 0 ? 'true' : rest.slice(eq + 1);
    if (type === '') throw new UsageError(`unrecognized condition: "${f}"`);
    return { kind: 'condition', type, status };
  }
  if (f.startsWith('jsonpath=')) {
    const input = f.slice('jsonpath='.length);
    // The value starts after the first '=' that follows the path's closing brace (a filter may hold '==').
    const close = input.lastIndexOf('}');
    const eq = input.indexOf('=', close < 0 ? 0 : close);
    const expr = eq < 0 ? input : input.slice(0, eq);
    let value: string | undefined;
    if (eq >= 0) {
      value = input.slice(eq + 1).replace(/^['"]+|['"]+$/g, '');
      if (value === '') throw new UsageError('jsonpath wait has to have a value after equal sign');
    }
    if (expr === '')
      throw new UsageError(
        `jsonpath wait format must be --for=jsonpath='{.status.readyReplicas}'=3 or --for=jsonpath='{.status.readyReplicas}'`,
      );
    try {
      return { kind: 'jsonpath', path: new JsonPath(relaxedJsonPath(expr)), ...(value !== undefined ? { value } : {}) };
    } catch (e) {
      if (e instanceof JsonPathError) throw new UsageError(`error parsing jsonpath ${expr}, ${e.message}`);
      throw e;
    }
  }
  throw new UsageError(`unrecognized condition: "${f}"`);
}

interface Conditioned {
  metadata: { generation?: number };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string; observedGeneration?: number }[] };
}

/** Whether `obj` (present) meets a condition or jsonpath wait; a JsonPathError for a path that matches several values. */
export function isMet(want: Exclude<WaitFor, { kind: 'delete' }>, obj: Conditioned): boolean {
  if (want.kind === 'condition') {
    for (const c of obj.status?.conditions ?? []) {
      if (c.type.toLowerCase() !== want.type.toLowerCase()) continue;
      const generation = obj.metadata.generation;
      const observed = c.observedGeneration ?? obj.status?.observedGeneration;
      if (generation !== undefined && observed !== undefined && observed < generation) return false;
      return c.status.toLowerCase() === want.status.toLowerCase();
    }
    return false;
  }
  const results = want.path.findResults(obj);
  if (results.length === 0 || results[0]!.length === 0) return false;
  if (results.length > 1) throw new JsonPathError('given jsonpath expression matches more than one list');
  if (results[0]!.length > 1) throw new JsonPathError('given jsonpath expression matches more than one value');
  if (want.value === undefined) return true;
  const v = results[0]![0];
  if (v !== null && typeof v === 'object') throw new JsonPathError('jsonpath leads to a nested object or list which is not supported');
  return goText(v).trim() === want.value.trim();
}
