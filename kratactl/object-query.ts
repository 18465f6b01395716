// The objects a command names, from the agent: named ones one by one (a missing one is an error that
// does not stop the others, as with kubectl), whole kinds listed and filtered by label and field
// selectors. get, delete and wait share it.
import type { Guest, GuestSet } from '../crds/generated/types.js';
import { AgentError, type AgentClient } from './agent-client.js';
import { EXIT_FAILED, UsageError, type IO } from './io.js';
import { JsonPathError } from '../lib/jsonpath.js';
import { agentFailure } from './commands/common.js';
import type { AgentKind, ObjectRefs } from './object-refs.js';
import { checkFields, FieldSelectorError, matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selectors.js';
import { resourceOf } from './object-refs.js';
import { isUuid, resolveGuest } from './guest-ref.js';

export type AgentObject = Guest | GuestSet;

export interface QueryOptions {
  namespace: string;
  allNamespaces: boolean;
  selector?: string;
  fieldSelector?: string;
}

export interface QueryResult {
  objects: AgentObject[];
  /** Named objects the agent does not have (their messages), in order. */
  missing: { kind: AgentKind; name: string; message: string }[];
}

/** Checks the selectors of a query before anything is asked of the agent. */
export function checkQuery(refs: ObjectRefs, opts: QueryOptions): void {
  if (opts.selector !== undefined) parseLabelSelector(opts.selector);
  if (opts.fieldSelector !== undefined) {
    const reqs = parseFieldSelector(opts.fieldSelector);
    for (const k of refs.kinds) checkFields(reqs, `${resourceOf(k)}`, opts.selector ?? '', opts.fieldSelector);
  }
  if (refs.named.length && (opts.selector !== undefined || opts.fieldSelector !== undefined))
    throw new UsageError('name cannot be provided when a selector is specified');
  if (refs.named.length && opts.allNamespaces) throw new UsageError('a NAME needs a namespace: use -n rather than -A');
}

/** Whether an object passes the query's selectors (for watches, which see every object). */
export function selectorMatcher(opts: QueryOptions): (o: AgentObject) => boolean {
  const labels = opts.selector === undefined ? [] : parseLabelSelector(opts.selector);
  const fields = opts.fieldSelector === undefined ? [] : parseFieldSelector(opts.fieldSelector);
  return (o) => matchesLabels(labels, o.metadata.labels ?? {}) && matchesFields(fields, o);
}

export async function queryObjects(client: AgentClient, refs: ObjectRefs, opts: QueryOptions): Promise<QueryResult> {
  checkQuery(refs, opts);
  const matches = selectorMatcher(opts);
  const objects: AgentObject[] = [];
  const missing: QueryResult['missing'] = [];
  // A Guest named by its UUID is found in any namespace (guest-ref.ts); one list serves them all.
  const byUuid = refs.named.some((r) => r.kind === 'Guest' && isUuid(r.name)) ? await client.list() : [];
  for (const { kind, name } of refs.named) {
    try {
      if (kind === 'Guest' && isUuid(name)) {
        const ref = await resolveGuest(client, name, opts.namespace, byUuid);
        objects.push(
          byUuid.find((g) => g.metadata.namespace === ref.namespace && g.metadata.name === ref.name) ??
            (await client.get(ref.namespace, ref.name)),
        );
        continue;
      }
      objects.push(kind === 'Guest' ? await client.get(opts.namespace, name) : await client.getGuestSet(opts.namespace, name));
    } catch (e) {
      if (!(e instanceof AgentError) || e.status !== 404) throw e;
      missing.push({ kind, name, message: e.message });
    }
  }
  const ns = opts.allNamespaces ? undefined : opts.namespace;
  for (const kind of refs.kinds) {
    const all: AgentObject[] = kind === 'Guest' ? await client.list(ns) : await client.listGuestSets(ns);
    objects.push(...all.filter(matches));
  }
  return { objects, missing };
}

/**
 * Prints what went wrong after parsing: a template that failed on the objects, a field selector the
 * objects do not support (in the apiserver's words, as kubectl shows them), or the agent's refusal.
 */
export function printFailure(io: IO, err: unknown): number {
  if (err instanceof FieldSelectorError) {
    io.stderr.write(`Error from server (BadRequest): ${err.message}\n`);
    return EXIT_FAILED;
  }
  if (err instanceof JsonPathError) {
    io.stderr.write(`error: ${err.message}\n`);
    return EXIT_FAILED;
  }
  return agentFailure(io, err);
}
