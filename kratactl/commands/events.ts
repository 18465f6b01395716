// kratactl events: the events the node agent records about Guests (GET /v1/events, what describe shows),
// as `kubectl events` prints them: LAST SEEN TYPE REASON OBJECT MESSAGE, oldest first, NAMESPACE first
// with -A; -w follows new and repeated events (the agent has no event stream: it is read every 2 s).
import { stringify } from 'yaml';
import type { GuestEvent } from '../../contracts/agent-api/types.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { parseObjectRefs } from '../object-refs.js';
import { isUuid, resolveGuest } from '../guest-ref.js';
import { tabwrite } from '../printers.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient, agentFailure, humanDuration, namespaceOf, untilInterrupted } from './common.js';

export const EVENTS_HELP = `List the events the node agent recorded about Guests (as kubectl events).

Usage: kratactl events [-n NS | -A] [--for guest/NAME] [--types Normal,Warning] [-w] [-o yaml|json] [options]

      --for guest/NAME     only the events of this Guest
      --types T,...        only events of these types (Normal, Warning)
  -w, --watch              after the list, print events as they come (until interrupted)
      --no-headers         no header line
  -o, --output FORMAT      yaml or json: the events as a core/v1 EventList
  -A, --all-namespaces     events of every namespace
${AGENT_HELP}
`;

const POLL_MS = 2000;

/** The flags of `kratactl events` (completion reads them too). */
export const EVENTS_OPTIONS = {
  ...AGENT_OPTIONS,
  for: { type: 'string' },
  types: { type: 'string' },
  watch: { type: 'boolean', short: 'w' },
  'no-headers': { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  'all-namespaces': { type: 'boolean', short: 'A' },
} as const satisfies FlagSpecs;

export async function events(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, EVENTS_OPTIONS);
  if (positionals.length) throw new UsageError(`events takes no arguments (got ${positionals.join(' ')}); use --for guest/NAME`);
  const output = values.output;
  if (output !== undefined && output !== 'yaml' && output !== 'json')
    throw new UsageError(`--output must be yaml or json, not "${output}"`);
  if (values.watch && output) throw new UsageError('--watch prints rows; leave out -o');
  let name: string | undefined;
  if (values.for !== undefined) {
    const refs = parseObjectRefs([values.for], 'events');
    if (refs.named.length !== 1 || refs.named[0]!.kind !== 'Guest') throw new UsageError('--for takes guest/NAME');
    name = refs.named[0]!.name;
  }
  const types = values.types?.split(',').map((t) => t.trim());
  for (const t of types ?? [])
    if (t !== 'Normal' && t !== 'Warning') throw new UsageError(`--types: "${t}" is not an event type (Normal, Warning)`);
  const all = values['all-namespaces'] === true;
  if (all && name) throw new UsageError('--for needs a namespace: use -n rather than -A');
  let namespace = all ? undefined : namespaceOf(values);
  const client = agentClient(values, io);
  const read = async () =>
    (await client.events(namespace, name)).filter((e) => e.namespace !== '' && (types === undefined || types.includes(e.type)));

  let list: GuestEvent[];
  try {
    if (name !== undefined && isUuid(name)) ({ namespace, name } = await resolveGuest(client, name, namespace!));
    list = await read();
  } catch (err) {
    return agentFailure(io, err);
  }
  if (output) {
    io.stdout.write(formatEventList(list, output));
    return EXIT_OK;
  }
  const header = [...(all ? ['NAMESPACE'] : []), 'LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE'];
  const rows = (es: GuestEvent[], now: number) => es.map((e) => eventRow(e, all, now));
  if (!values.watch) {
    if (list.length === 0) {
      io.stderr.write(all ? 'No events found.\n' : `No events found in ${namespace} namespace.\n`);
      return EXIT_OK;
    }
    io.stdout.write(tabwrite([...(values['no-headers'] ? [] : [header]), ...rows(list, Date.now())]));
    return EXIT_OK;
  }
  // A stream cannot be measured in advance: the first screen sets the columns, later rows follow them.
  const widths = header.map((h, i) => Math.max(h.length + 3, ...rows(list, Date.now()).map((r) => r[i]!.length + 3), i === 0 ? 12 : 6));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('') + '\n';
  if (!values['no-headers']) io.stdout.write(line(header));
  const seen = new Map<string, string>();
  const show = (es: GuestEvent[]) => {
    const now = Date.now();
    for (const e of es) {
      const id = `${e.namespace}/${e.name}/${e.type}/${e.reason}/${e.message}`;
      const version = `${e.count}/${e.lastTime}`;
      if (seen.get(id) === version) continue;
      seen.set(id, version);
      io.stdout.write(line(eventRow(e, all, now)));
    }
  };
  show(list);
  return untilInterrupted(io, async (signal) => {
    while (!signal.aborted) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
        signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
      if (!signal.aborted) show(await read());
    }
  });
}

/** kubectl events' interval: the age, or "AGE (xN over FIRST)" for a repeated event. */
function interval(e: GuestEvent, now: number): string {
  const since = (t: string) => humanDuration(now - Date.parse(t));
  return e.count > 1 ? `${since(e.lastTime)} (x${e.count} over ${since(e.firstTime)})` : since(e.firstTime);
}

function eventRow(e: GuestEvent, all: boolean, now: number): string[] {
  return [...(all ? [e.namespace] : []), interval(e, now), e.type, e.reason, `Guest/${e.name}`, e.message.trim()];
}

/** The events as core/v1 Events in an EventList, as `kubectl events -o` prints them. */
function formatEventList(list: GuestEvent[], format: 'yaml' | 'json'): string {
  const items = list.map((e) => ({
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `${e.name}.${Date.parse(e.firstTime).toString(16)}`, namespace: e.namespace },
    involvedObject: { apiVersion: 'krata.dev/v1alpha1', kind: 'Guest', name: e.name, namespace: e.namespace },
    type: e.type,
    reason: e.reason,
    message: e.message,
    count: e.count,
    firstTimestamp: e.firstTime.replace(/\.\d+Z$/, 'Z'),
    lastTimestamp: e.lastTime.replace(/\.\d+Z$/, 'Z'),
    source: { component: 'krata-node-agent' },
  }));
  const doc = { apiVersion: 'v1', items, kind: 'EventList', metadata: { resourceVersion: '' } };
  return format === 'json' ? JSON.stringify(doc, null, 2) + '\n' : stringify(doc, { version: '1.1', lineWidth: 0 });
}
