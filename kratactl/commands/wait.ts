// kratactl wait: until Guests or GuestSets meet a condition, as kubectl wait does: the objects one after
// another against one deadline, "NAME condition met" for each, kubectl's timeout message and exit 1.
// Guests are followed on the agent's watch; GuestSets (which it does not stream) are read every 500 ms.
import type { Guest } from '../../crds/generated/types.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';
import { AgentError, type AgentClient } from '../agent-client.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { printFailure, queryObjects, type AgentObject } from '../object-query.js';
import { parseObjectRefs, resourceOf, type AgentKind } from '../object-refs.js';
import { objectName } from '../output.js';
import { isMet, parseWaitFor, type WaitFor } from '../wait-conditions.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient, namespaceOf } from './common.js';
import { parseDuration } from './rollout.js';

export const WAIT_HELP = `Wait until Guests or GuestSets meet a condition (as kubectl wait).

Usage:
  kratactl wait (TYPE/NAME... | TYPE NAME... | TYPE --all | TYPE -l SEL) --for=CONDITION [options]

  --for=condition=TYPE[=STATUS]   a status condition (STATUS true by default; case does not matter)
  --for=delete                    the objects are gone (names already gone are done)
  --for=jsonpath={PATH}[=VALUE]   PATH has VALUE (or any value without =VALUE)
      --all                       every object of the type in the namespace
  -l, --selector SEL              the objects whose labels match
      --field-selector SEL        the objects whose fields match (as kratactl get)
  -A, --all-namespaces            with --all or a selector: in every namespace
      --timeout DURATION          give up after this long in all (default 30s; 0 checks once;
                                  negative: a week)
${AGENT_HELP}

Prints "guest.krata.dev/NAME condition met" for each object as it is met; exits 1 with
"timed out waiting for the condition on guests/NAME" when the time runs out.
`;

const POLL_MS = 500;
const FOREVER_MS = 7 * 24 * 3600_000;

/** The flags of `kratactl wait` (completion reads them too). */
export const WAIT_OPTIONS = {
  ...AGENT_OPTIONS,
  for: { type: 'string' },
  timeout: { type: 'string' },
  all: { type: 'boolean' },
  selector: { type: 'string', short: 'l' },
  'field-selector': { type: 'string' },
  'all-namespaces': { type: 'boolean', short: 'A' },
} as const satisfies FlagSpecs;

export async function wait(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, WAIT_OPTIONS);
  const want = parseWaitFor(values.for);
  if (positionals.length === 0)
    throw new UsageError('you must specify the type of resource to wait for (kratactl wait guest/NAME --for=...)');
  const refs = parseObjectRefs(positionals, 'wait');
  const selecting = values.all === true || values.selector !== undefined || values['field-selector'] !== undefined;
  if (refs.kinds.length && !selecting) throw new UsageError('resource(s) were provided, but no name was specified');
  if (refs.named.length && values.all) throw new UsageError('--all cannot be given with names');
  const timeoutText = values.timeout ?? '30s';
  const negative = timeoutText.startsWith('-');
  const timeoutMs = negative ? FOREVER_MS : parseDuration(timeoutText);
  if (timeoutMs === undefined)
    throw new UsageError(`invalid argument "${timeoutText}" for "--timeout" flag: a duration such as 30s, 5m or 1h`);
  const namespace = namespaceOf(values);
  const all = values['all-namespaces'] === true;
  const client = agentClient(values, io);
  const deadline = Date.now() + timeoutMs;

  const abort = new AbortController();
  const guests = new GuestWatch(client, all ? undefined : namespace, abort.signal);
  try {
    const found = await queryObjects(client, refs, {
      namespace,
      allNamespaces: all,
      selector: values.selector,
      fieldSelector: values['field-selector'],
    });
    const errors: string[] = [];
    if (want.kind !== 'delete') for (const m of found.missing) errors.push(m.message);
    // Objects of a listed kind in name order, as the apiserver lists them.
    const objects = [
      ...found.objects.slice(0, refs.named.length - found.missing.length),
      ...found.objects.slice(refs.named.length - found.missing.length).sort((a, b) => key(a).localeCompare(key(b))),
    ];
    if (objects.length === 0 && errors.length === 0 && want.kind !== 'delete') {
      io.stderr.write('error: no matching resources found\n');
      return EXIT_FAILED;
    }
    for (const obj of objects) {
      const met = await waitOne(client, guests, obj, want, deadline, timeoutMs === 0);
      const ref = `${resourceOf(obj.kind as AgentKind)}/${obj.metadata.name}`;
      if (met) io.stdout.write(`${objectName(obj)} condition met\n`);
      else errors.push(timeoutMs === 0 ? `condition not met for ${ref}` : `timed out waiting for the condition on ${ref}`);
    }
    if (errors.length === 1) io.stderr.write(`error: ${errors[0]}\n`);
    else for (const e of errors) io.stderr.write(`${e}\n`);
    return errors.length ? EXIT_FAILED : EXIT_OK;
  } catch (err) {
    return printFailure(io, guests.failure ?? err);
  } finally {
    abort.abort();
  }
}

const key = (o: AgentObject) => `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;

/** Until `obj` meets `want` (true) or the deadline passes (false); `once` checks the present state only. */
async function waitOne(client: AgentClient, guests: GuestWatch, obj: AgentObject, want: WaitFor, deadline: number, once: boolean) {
  const k = key(obj);
  const ns = obj.metadata.namespace ?? 'default';
  const read = async (): Promise<AgentObject | null> => {
    if (obj.kind === 'Guest') {
      const seen = guests.state.get(k);
      if (seen !== undefined) return seen;
    }
    try {
      return obj.kind === 'Guest' ? await client.get(ns, obj.metadata.name) : await client.getGuestSet(ns, obj.metadata.name);
    } catch (e) {
      if (e instanceof AgentError && e.status === 404) return null;
      throw e;
    }
  };
  const check = (o: AgentObject | null) => (want.kind === 'delete' ? o === null : o !== null && isMet(want, o));
  if (!once && Date.now() >= deadline) return false; // kubectl: the time is shared, and it is out
  if (obj.kind === 'Guest') guests.start();
  for (;;) {
    if (check(await read())) return true;
    if (once) return false;
    const left = deadline - Date.now();
    if (left <= 0) break;
    await guests.changed(obj.kind === 'Guest' ? left : Math.min(left, POLL_MS));
  }
  // A deletion the watch had no chance to show (before it started): the agent's word at the end.
  if (want.kind === 'delete') {
    guests.state.delete(k);
    return check(await read());
  }
  return false;
}

/** The agent's Guests as its watch reports them (null: deleted), shared by every object waited for. */
class GuestWatch {
  readonly state = new Map<string, Guest | null>();
  failure: Error | undefined;
  private started = false;
  private wake: (() => void)[] = [];

  constructor(
    private readonly client: AgentClient,
    private readonly namespace: string | undefined,
    private readonly signal: AbortSignal,
  ) {}

  start(): void {
    if (this.started) return;
    this.started = true;
    void (async () => {
      try {
        for await (const e of this.client.watch({ namespace: this.namespace, signal: this.signal }))
          this.update(key(e.object), e.type === 'DELETED' ? null : e.object);
      } catch (e) {
        if (!this.signal.aborted) this.failure = e as Error;
      }
      this.notify();
    })();
  }

  private update(k: string, value: Guest | null): void {
    this.state.set(k, value);
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = [];
    for (const w of wake) w();
  }

  /** Resolves on the next change, or after `ms`; rejects if the watch failed. */
  async changed(ms: number): Promise<void> {
    this.rethrow();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake.push(done);
    });
    this.rethrow();
  }

  private rethrow(): void {
    if (this.failure) throw this.failure;
  }
}
