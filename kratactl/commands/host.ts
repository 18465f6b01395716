// kratactl host status: what the node agent reports about its machine (Xen, capacity, guests).
import { stringify } from 'yaml';
import type { HostTlsStatus } from '../../contracts/agent-api/types.js';
import type { HostStatus } from '../agent-client.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { agentClient, agentFailure } from './common.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';

export const HOST_HELP = `Show the node agent's host.

Usage: kratactl host status [options]

  -o, --output FORMAT   yaml or json (default: a summary for people)
      --agent SOCKET    node agent socket (default $KRATA_AGENT_SOCKET or /run/krata/agent.sock)
`;

/** The flags of `kratactl host` (completion reads them too). */
export const HOST_OPTIONS = { agent: { type: 'string' }, output: { type: 'string', short: 'o' } } as const satisfies FlagSpecs;

export async function host(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, HOST_OPTIONS);
  const [sub, ...extra] = positionals;
  if (sub !== 'status') throw new UsageError(sub ? `unknown host command "${sub}" (status)` : 'host needs a command: status');
  if (extra.length) throw new UsageError(`host status takes no arguments (got ${extra.join(' ')})`);
  const output = values.output;
  if (output !== undefined && output !== 'yaml' && output !== 'json')
    throw new UsageError(`--output must be yaml or json, not "${output}"`);
  try {
    const status = await agentClient(values, io).host();
    if (output === 'json') io.stdout.write(JSON.stringify(status, null, 2) + '\n');
    else if (output === 'yaml') io.stdout.write(stringify(status, { version: '1.1', lineWidth: 0 }));
    else io.stdout.write(summary(status));
    return EXIT_OK;
  } catch (err) {
    return agentFailure(io, err);
  }
}

function summary(h: HostStatus): string {
  const rows: [string, string][] = [
    ['Xen version', h.xenVersion],
    ['Kernel', h.kernelVersion],
    ['Agent version', h.agentVersion],
    ['CPUs', `${h.cpus} (${h.allocatedCpus} allocated to guests)`],
    ['Memory', `${h.totalMemoryMiB} MiB total, ${h.freeMemoryMiB} MiB free, ${h.allocatedMemoryMiB} MiB allocated to guests`],
    ['Guests', `${h.guests.total} (${h.guests.running} running)`],
  ];
  if (h.tls) rows.push(['TLS listener', tlsSummary(h.tls)]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, v]) => `${(k + ':').padEnd(width)}${v}\n`).join('');
}

/** Cluster mode: where krata-api reaches the agent, and until when its certificate holds. */
function tlsSummary(t: HostTlsStatus): string {
  const parts = [
    t.listening
      ? `listening on ${t.listen}`
      : `${t.listen}, ${t.problem ?? (t.notAfter ? 'not listening' : 'waiting for a certificate from the operator')}`,
  ];
  if (t.advertise) parts.push(`advertised as ${t.advertise}`);
  if (t.notAfter) parts.push(`certificate valid until ${t.notAfter}`);
  if (t.refused) parts.push(`${t.refused} clients refused`);
  return parts.join(', ');
}
