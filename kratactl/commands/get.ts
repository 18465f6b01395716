// kratactl get [guests] [NAME]: the node agent's Guests as a kubectl-style table, or as objects.
import { stringify } from 'yaml';
import type { Guest, GuestSet } from '../../crds/generated/types.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { canonical, formatObjects, objectName } from '../output.js';
import {
  AGENT_HELP,
  AGENT_OPTIONS,
  agentClient,
  formatTable,
  guestHeader,
  guestRow,
  guestSetHeader,
  guestSetRow,
  namespaceOf,
  untilInterrupted,
} from './common.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';
import { parseObjectRefs } from '../object-refs.js';
import { checkQuery, printFailure, queryObjects, selectorMatcher, type AgentObject } from '../object-query.js';
import { customColumnRows, executeJsonPath, labelsColumn, parseOutput, sortObjects, type Printer } from '../printers.js';

export const GET_HELP = `List Guests or GuestSets, or show some.

Usage: kratactl get [guests|guest|gst] [NAME...] [options]
       kratactl get guestsets|guestset|gs [NAME...] [options]
       kratactl get TYPE/NAME... [options]        (guest/web gs/api; TYPE1,TYPE2 lists both)

  -o, --output FORMAT        wide (adds DOMID, NODE, IMAGE), yaml, json, name,
                             jsonpath=TEMPLATE, jsonpath-file=FILE (kubectl's JSONPath template),
                             custom-columns=HEADER:PATH,..., custom-columns-file=FILE
  -l, --selector SEL         only objects whose labels match (a=b, a!=b, a in (x,y), a notin (x), a, !a)
      --field-selector SEL   only objects whose fields match (metadata.name, metadata.namespace,
                             status.phase, spec.nodeName, status.node; =, ==, !=; comma = and)
      --sort-by PATH         sort by a JSONPath (.metadata.name, {.status.restartCount})
      --no-headers           tables and custom columns without their header line
      --show-labels          a LABELS column at the end of the table
  -w, --watch                after the list, print a row each time a guest changes (until interrupted)
  -A, --all-namespaces       objects of every namespace
${AGENT_HELP}
`;

/** The flags of `kratactl get` (completion reads them too). */
export const GET_OPTIONS = {
  ...AGENT_OPTIONS,
  output: { type: 'string', short: 'o' },
  watch: { type: 'boolean', short: 'w' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  selector: { type: 'string', short: 'l' },
  'field-selector': { type: 'string' },
  'sort-by': { type: 'string' },
  'no-headers': { type: 'boolean' },
  'show-labels': { type: 'boolean' },
} as const satisfies FlagSpecs;

export async function get(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, GET_OPTIONS);
  const refs = parseObjectRefs(positionals, 'get', 'Guest');
  const printer = parseOutput(values.output);
  const all = values['all-namespaces'] === true;
  const query = { namespace: namespaceOf(values), allNamespaces: all, selector: values.selector, fieldSelector: values['field-selector'] };
  try {
    checkQuery(refs, query);
  } catch (err) {
    return printFailure(io, err);
  }
  const watchable =
    refs.kinds.length === 1 && refs.kinds[0] === 'Guest' ? true : refs.named.length === 1 && refs.named[0]!.kind === 'Guest';
  if (values.watch && printer.kind !== 'table' && printer.kind !== 'name')
    throw new UsageError('--watch prints table rows or names; use -o wide or -o name');
  if (values.watch && !watchable) throw new UsageError('--watch follows guests; for a set use kratactl rollout status gs/NAME');
  const client = agentClient(values, io);

  try {
    if (values.watch)
      return await watchGuests(io, client, {
        namespace: all ? undefined : query.namespace,
        name: refs.named[0]?.name,
        output: printer.kind === 'name' ? 'name' : values.output,
        matches: selectorMatcher(query),
      });
    const found = await queryObjects(client, refs, query);
    let objects = found.objects;
    if (values['sort-by'] !== undefined) objects = sortObjects(objects, values['sort-by']);
    io.stdout.write(
      printObjects(objects, printer, {
        single: refs.single,
        allNamespaces: all,
        noHeaders: values['no-headers'] === true,
        showLabels: values['show-labels'] === true,
      }),
    );
    for (const m of found.missing) io.stderr.write(`error: ${m.message}\n`);
    if (objects.length === 0 && found.missing.length === 0 && printer.kind === 'table') {
      const what = refs.kinds.length === 1 && refs.kinds[0] === 'GuestSet' ? 'guestsets' : refs.kinds.length === 1 ? 'guests' : 'resources';
      io.stderr.write(all ? `No ${what} found.\n` : `No ${what} found in namespace ${query.namespace}.\n`);
    }
    return found.missing.length ? EXIT_FAILED : EXIT_OK;
  } catch (err) {
    return printFailure(io, err);
  }
}

/** The objects in the printer's format; tables one per kind (a blank line between), as kubectl prints them. */
function printObjects(
  objects: AgentObject[],
  printer: Printer,
  opts: { single: boolean; allNamespaces: boolean; noHeaders: boolean; showLabels: boolean },
): string {
  const items = objects.map(canonical) as AgentObject[];
  switch (printer.kind) {
    case 'yaml':
    case 'json':
      if (!opts.single) return formatList(items, printer.kind);
      return items.length ? formatObjects(items, printer.kind) : '';
    case 'name':
      return items.map((o) => `${objectName(o)}\n`).join('');
    case 'jsonpath':
      if (!opts.single) return executeJsonPath(printer, listOf(items));
      return items.length ? executeJsonPath(printer, items[0]) : '';
    case 'custom-columns':
      return customColumnRows(items, printer.columns, opts.noHeaders);
    case 'table': {
      const tables: string[] = [];
      for (const kind of ['Guest', 'GuestSet'] as const) {
        const ofKind = items.filter((o) => o.kind === kind);
        if (ofKind.length === 0) continue;
        const header = kind === 'Guest' ? guestHeader(printer.wide, opts.allNamespaces) : guestSetHeader(printer.wide, opts.allNamespaces);
        const rows = ofKind.map((o) =>
          kind === 'Guest'
            ? guestRow(o as Guest, printer.wide, opts.allNamespaces)
            : guestSetRow(o as GuestSet, printer.wide, opts.allNamespaces),
        );
        const labelled = opts.showLabels
          ? [[...header, 'LABELS'], ...rows.map((r, i) => [...r, labelsColumn(ofKind[i]!.metadata.labels)])]
          : [header, ...rows];
        tables.push(formatTable(opts.noHeaders ? labelled.slice(1) : labelled));
      }
      return tables.join('\n');
    }
  }
}

function listOf(items: AgentObject[]) {
  return { apiVersion: 'v1', items, kind: 'List', metadata: { resourceVersion: '' } };
}

/** Lists print as kubectl prints them: one List object, items in the schema's key order. */
export function formatList(guests: (Guest | GuestSet)[], format: 'yaml' | 'json'): string {
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
  opts: { namespace?: string; name?: string; output?: string; matches: (g: Guest) => boolean },
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
      if ((opts.name && g.metadata.name !== opts.name) || !opts.matches(g)) continue;
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
