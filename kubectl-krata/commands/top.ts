// kubectl krata top [NAME]: what running Guests use, through krata-api's top subresource, printed as
// kratactl top prints it (contracts/agent-api/usage-figures.ts). Without NAME: the namespace's Guests whose
// phase is Running, each asked in turn (one that stopped meanwhile is left out).
import { stringify } from 'yaml';
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import { usageHeader, usageRow } from '../../contracts/agent-api/usage-figures.js';
import { subresourcePath } from '../../contracts/krata-api/subresources.js';
import { formatTable } from '../../lib/table.js';
import { guestName, parseFlags } from '../args.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { KUBE_HELP, KUBE_OPTIONS, Kube } from '../kube.js';
import { ServerError } from '../server-error.js';

export const TOP_HELP = `Show what running Guests use: CPU, memory, vCPUs, and the guest's own load and processes.

Usage: kubectl krata top [[guest/]NAME] [options]

Columns (as kratactl top): CPU(cores) in millicores over the agent's last sampling interval
(<unknown> until it has two samples); CPU% of the vCPUs online; MEMORY(bytes) what the guest reports
in use, else what Xen has given the domain; MEMORY% of its maximum; VCPUS online/max; LOAD(1m) and
PROCS as the guest reports them (- while its control channel is not up); CHANNEL the channel's state.

      --no-headers      no header line
  -o, --output FORMAT   json or yaml: the figures as krata-api gives them
${KUBE_HELP}
`;

/** Guests asked at once when listing. */
const PARALLEL = 8;

export async function top(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    ...KUBE_OPTIONS,
    'no-headers': { type: 'boolean' },
    output: { type: 'string', short: 'o' },
  });
  if (positionals.length > 1) throw new UsageError(`top takes at most one NAME (got ${positionals.join(' ')})`);
  const name = positionals[0] === undefined ? undefined : guestName(positionals[0]);
  const output = values.output;
  if (output !== undefined && output !== 'json' && output !== 'yaml')
    throw new UsageError(`--output must be json or yaml, not "${output}"`);
  const kube = Kube.connect(values, io.env);
  const usage = name ? [await usageOf(kube, name)] : await running(kube);
  if (output === 'json') io.stdout.write(JSON.stringify(name ? usage[0] : { items: usage }, null, 2) + '\n');
  else if (output === 'yaml') io.stdout.write(stringify(name ? usage[0] : { items: usage }, { version: '1.1', lineWidth: 0 }));
  else if (usage.length === 0) io.stderr.write(`No running guests found in namespace ${kube.namespace}.\n`);
  else {
    const rows = usage.map((u) => usageRow(u, false));
    io.stdout.write(formatTable(values['no-headers'] ? rows : [usageHeader(false), ...rows]));
  }
  return EXIT_OK;
}

function usageOf(kube: Kube, name: string): Promise<GuestUsage> {
  return kube.getJson<GuestUsage>(subresourcePath(kube.namespace, name, 'top'));
}

/** The usage of every Running Guest of the namespace, by name. */
async function running(kube: Kube): Promise<GuestUsage[]> {
  const names = (await kube.listGuests())
    .filter((g) => g.status?.phase === 'Running')
    .map((g) => g.metadata.name)
    .sort();
  const out = new Array<GuestUsage | undefined>(names.length);
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const i = next++;
      try {
        out[i] = await usageOf(kube, names[i]!);
      } catch (e) {
        // Stopped or gone since the list: not running, so not shown.
        if (!(e instanceof ServerError && (e.code === 404 || e.code === 409))) throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, names.length) }, worker));
  return out.filter((u): u is GuestUsage => u !== undefined);
}
