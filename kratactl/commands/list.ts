// kratactl list: krata's table of guests, every namespace unless -n says one: NAME, UUID (the ID
// launch printed), PHASE, the addresses and the image; -o yaml|json|name as get prints them.
import type { Guest } from '../../crds/generated/types.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { objectName } from '../output.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient, agentFailure, formatTable, namespaceOf } from './common.js';
import { formatList } from './get.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';

export const LIST_HELP = `List the guests of this host with their UUIDs (krata's list).

Usage: kratactl list [options]

  -o, --output FORMAT   yaml, json or name (default: a table)
      --no-headers      the table without its header
${AGENT_HELP}
    (default: every namespace)
`;

const FORMATS = ['yaml', 'json', 'name'];

export function listRow(g: Guest): string[] {
  const s = g.status ?? {};
  const phase = g.metadata.deletionTimestamp ? 'Terminating' : (s.phase ?? 'Pending');
  return [
    g.metadata.namespace ?? 'default',
    g.metadata.name,
    s.uuid ?? '<none>',
    phase,
    s.addresses?.ipv4 ?? '<none>',
    s.addresses?.ipv6 ?? '<none>',
    g.spec.image,
  ];
}

/** The flags of `kratactl list` (completion reads them too). */
export const LIST_OPTIONS = {
  ...AGENT_OPTIONS,
  output: { type: 'string', short: 'o' },
  'no-headers': { type: 'boolean' },
} as const satisfies FlagSpecs;

export async function list(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, LIST_OPTIONS);
  if (positionals.length) throw new UsageError(`list takes no arguments (got ${positionals.join(' ')}); see kratactl get NAME`);
  const output = values.output;
  if (output !== undefined && !FORMATS.includes(output))
    throw new UsageError(`--output must be one of ${FORMATS.join(', ')}, not "${output}"`);
  const namespace = values.namespace === undefined ? undefined : namespaceOf(values);
  try {
    const guests = await agentClient(values, io).list(namespace);
    if (output === 'yaml' || output === 'json') io.stdout.write(formatList(guests, output));
    else if (output === 'name') for (const g of guests) io.stdout.write(`${objectName(g)}\n`);
    else if (guests.length === 0) io.stderr.write(namespace ? `No guests found in namespace ${namespace}.\n` : 'No guests found.\n');
    else {
      const header = ['NAMESPACE', 'NAME', 'UUID', 'PHASE', 'IPV4', 'IPV6', 'IMAGE'];
      const rows = guests.map(listRow);
      io.stdout.write(formatTable(values['no-headers'] ? rows : [header, ...rows]));
    }
    return EXIT_OK;
  } catch (err) {
    return agentFailure(io, err);
  }
}
