// kratactl get [guests] [NAME]: the node agent's Guests as a kubectl-style table, or as objects.
import { stringify } from 'yaml';
import type { Guest, GuestSet } from '../../crds/generated/types.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { canonical, formatObjects, objectName } from '../output.js';
import {
  AGENT_HELP,
  AGENT_OPTIONS,
  agentClient,
  agentFailure,
  checkGuestName,
  checkKindWord,
  formatTable,
  guestHeader,
  guestRow,
  guestSetHeader,
  guestSetRow,
  isGuestKind,
  isGuestSetKind,
  namespaceOf,
  untilInterrupted,
} from './common.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';

export const GET_HELP = `List Guests or GuestSets, or show one.

Usage: kratactl get [guests|guest|gst] [NAME] [options]
       kratactl get guestsets|guestset|gs [NAME] [options]

  -o, --output FORMAT   wide (adds DOMID, NODE, IMAGE), yaml, json or name
  -w, --watch           after the list, print a row each time a guest changes (until interrupted)
  -A, --all-namespaces  guests of every namespace
${AGENT_HELP}
`;

const FORMATS = ['wide', 'yaml', 'json', 'name'];

/** The flags of `kratactl get` (completion reads them too). */
export const GET_OPTIONS = {
  ...AGENT_OPTIONS,
  output: { type: 'string', short: 'o' },
  watch: { type: 'boolean', short: 'w' },
  'all-namespaces': { type: 'boolean', short: 'A' },
} as const satisfies FlagSpecs;

export async function get(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, GET_OPTIONS);
  const args = [...positionals];
  const sets = args[0] !== undefined && isGuestSetKind(args[0]);
  if (sets || (args[0] !== undefined && isGuestKind(args[0]))) args.shift();
  else if (args[0] !== undefined) checkKindWord(args[0], 'get');
  if (args.length > 1) throw new UsageError(`get takes at most one NAME (got ${args.join(' ')})`);
  const name = args[0] === undefined ? undefined : checkGuestName(args[0]);
  const output = values.output;
  if (output !== undefined && !FORMATS.includes(output))
    throw new UsageError(`--output must be one of ${FORMATS.join(', ')}, not "${output}"`);
  const all = values['all-namespaces'] === true;
  if (all && name) throw new UsageError('a NAME needs a namespace: use -n rather than -A');
  if (values.watch && (output === 'yaml' || output === 'json'))
    throw new UsageError('--watch prints table rows or names; use -o wide or -o name');
  const namespace = namespaceOf(values);
  const client = agentClient(values, io);

  try {
    if (sets) {
      if (values.watch) throw new UsageError('--watch follows guests; for a set use kratactl rollout status gs/NAME');
      const found = name ? [await client.getGuestSet(namespace, name)] : await client.listGuestSets(all ? undefined : namespace);
      if (output === 'yaml' || output === 'json') io.stdout.write(name ? formatObjects(found, output) : formatList(found, output));
      else if (output === 'name') for (const s of found) io.stdout.write(`${objectName(s)}\n`);
      else if (found.length === 0) io.stderr.write(all ? 'No guestsets found.\n' : `No guestsets found in namespace ${namespace}.\n`);
      else {
        const wide = output === 'wide';
        io.stdout.write(formatTable([guestSetHeader(wide, all), ...found.map((s) => guestSetRow(s, wide, all))]));
      }
      return EXIT_OK;
    }
    if (values.watch) return await watchGuests(io, client, { namespace: all ? undefined : namespace, name, output });
    const guests = name ? [await client.get(namespace, name)] : await client.list(all ? undefined : namespace);
    if (output === 'yaml' || output === 'json') {
      io.stdout.write(name ? formatObjects(guests, output) : formatList(guests, output));
    } else if (output === 'name') {
      for (const g of guests) io.stdout.write(`${objectName(g)}\n`);
    } else if (guests.length === 0) {
      io.stderr.write(all ? 'No guests found.\n' : `No guests found in namespace ${namespace}.\n`);
    } else {
      const wide = output === 'wide';
      io.stdout.write(formatTable([guestHeader(wide, all), ...guests.map((g) => guestRow(g, wide, all))]));
    }
    return EXIT_OK;
  } catch (err) {
    return agentFailure(io, err);
  }
}

/** Lists print as kubectl prints them: one List object, items in the schema's key order. */
function formatList(guests: (Guest | GuestSet)[], format: 'yaml' | 'json'): string {
  const list = { apiVersion: 'v1', kind: 'List', items: guests.map(canonical), metadata: { resourceVersion: '' } };
  return format === 'json' ? JSON.stringify(list, null, 2) + '\n' : stringify(list, { version: '1.1', lineWidth: 0 });
}

/**
 * Rows as guests change. The width of each column is fixed by the header and the first rows (a stream
 * cannot be measured in advance); a row is printed only when something other than its age changed.
 */
async function watchGuests(
  io: IO,
  client: ReturnType<typeof agentClient>,
  opts: { namespace?: string; name?: string; output?: string },
): Promise<number> {
  const wide = opts.output === 'wide';
  const all = opts.namespace === undefined;
  const header = guestHeader(wide, all);
  const widths = header.map((h) => Math.max(h.length, h === 'NAME' || h === 'NAMESPACE' ? 20 : h === 'IP' ? 15 : h === 'IMAGE' ? 0 : 8));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ') + '\n';
  const ageColumn = header.indexOf('AGE');
  const last = new Map<string, string>();
  if (opts.output !== 'name') io.stdout.write(line(header));
  return untilInterrupted(io, async (signal) => {
    for await (const e of client.watch({ namespace: opts.namespace, signal })) {
      const g = e.object;
      if (opts.name && g.metadata.name !== opts.name) continue;
      const id = `${g.metadata.namespace}/${g.metadata.name}`;
      if (opts.output === 'name') {
        if (e.type !== 'MODIFIED') io.stdout.write(`${objectName(g)}${e.type === 'DELETED' ? ' deleted' : ''}\n`);
        continue;
      }
      const row = guestRow(g, wide, all);
      if (e.type === 'DELETED') row[header.indexOf('PHASE')] = 'Deleted';
      const key = row.filter((_, i) => i !== ageColumn).join('\0');
      if (last.get(id) === key) continue;
      if (e.type === 'DELETED') last.delete(id);
      else last.set(id, key);
      io.stdout.write(line(row));
    }
  });
}
