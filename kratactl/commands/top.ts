// kratactl top [NAME]: what the running Guests use, as `kubectl top pods` prints it; -w refreshes.
import type { Writable } from 'node:stream';
import { stringify } from 'yaml';
import type { AgentClient, GuestUsage } from '../agent-client.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient, agentFailure, formatTable, namespaceOf, untilInterrupted } from './common.js';
import { usageHeader, usageRow } from '../../contracts/agent-api/usage-figures.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';
import { guestWord, resolveGuest } from '../guest-ref.js';

export const TOP_HELP = `Show what running Guests use: CPU, memory, vCPUs, and the guest's own load and processes.

Usage: kratactl top [NAME] [options]

Columns: CPU(cores) in millicores over the agent's last sampling interval (<unknown> until it has two
samples); CPU% of the vCPUs online; MEMORY(bytes) what the guest reports in use (total minus
available), else what Xen has given the domain; MEMORY% of its maximum; VCPUS online/max; LOAD(1m)
and PROCS as the guest reports them over its control channel (- while the channel is not up);
CHANNEL the channel's state (up, connecting, incompatible, closed).

  -A, --all-namespaces  guests of every namespace (adds a NAMESPACE column)
  -w, --watch           refresh every --interval seconds until interrupted (Ctrl+C): the screen
                        is redrawn on a terminal, tables are appended otherwise
      --interval SECS   seconds between refreshes with -w (default 2, at least 0.1)
      --no-headers      no header line
  -o, --output FORMAT   json or yaml: the figures as the agent gives them
${AGENT_HELP}
`;

const FORMATS = ['json', 'yaml'];
/** The terminal's clear: cursor home, then erase the screen. */
const CLEAR = '\x1b[H\x1b[2J';

interface TopOptions {
  namespace?: string;
  name?: string;
  noHeaders: boolean;
}

/** The flags of `kratactl top` (completion reads them too). */
export const TOP_OPTIONS = {
  ...AGENT_OPTIONS,
  'all-namespaces': { type: 'boolean', short: 'A' },
  watch: { type: 'boolean', short: 'w' },
  interval: { type: 'string' },
  'no-headers': { type: 'boolean' },
  output: { type: 'string', short: 'o' },
} as const satisfies FlagSpecs;

export async function top(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, TOP_OPTIONS);
  if (positionals.length > 1) throw new UsageError(`top takes at most one NAME (got ${positionals.join(' ')})`);
  const name = positionals[0] === undefined ? undefined : guestWord(positionals[0]);
  const all = values['all-namespaces'] === true;
  if (all && name) throw new UsageError('a NAME needs a namespace: use -n rather than -A');
  const output = values.output;
  if (output !== undefined && !FORMATS.includes(output)) throw new UsageError(`--output must be json or yaml, not "${output}"`);
  if (values.watch && output !== undefined) throw new UsageError('--watch prints tables; leave out --output');
  if (values.interval !== undefined && !values.watch) throw new UsageError('--interval is for --watch');
  const interval = intervalSeconds(values.interval);
  const opts: TopOptions = { namespace: all ? undefined : namespaceOf(values), name, noHeaders: values['no-headers'] === true };
  const client = agentClient(values, io);
  try {
    if (name !== undefined) Object.assign(opts, await resolveGuest(client, name, opts.namespace!));
    if (values.watch) return await watch(io, client, opts, interval);
    const usage = await read(client, opts);
    if (output === 'json') io.stdout.write(JSON.stringify(name ? usage[0] : { items: usage }, null, 2) + '\n');
    else if (output === 'yaml') io.stdout.write(stringify(name ? usage[0] : { items: usage }, { version: '1.1', lineWidth: 0 }));
    else io.stdout.write(table(usage, opts, io.stderr));
    return EXIT_OK;
  } catch (err) {
    return agentFailure(io, err);
  }
}

function intervalSeconds(value: string | undefined): number {
  if (value === undefined) return 2;
  const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!(n >= 0.1 && n <= 86_400)) throw new UsageError(`--interval must be a number of seconds from 0.1 to 86400, not "${value}"`);
  return n;
}

async function read(client: AgentClient, opts: TopOptions): Promise<GuestUsage[]> {
  if (opts.name) return [await client.guestUsage(opts.namespace!, opts.name)];
  return client.usage(opts.namespace);
}

/** The table, or '' with kubectl's "No resources found" said on stderr when no Guest runs. */
function table(usage: GuestUsage[], opts: TopOptions, stderr: Writable): string {
  if (usage.length === 0) {
    stderr.write(opts.namespace === undefined ? 'No running guests found.\n' : `No running guests found in namespace ${opts.namespace}.\n`);
    return '';
  }
  const all = opts.namespace === undefined;
  const rows = usage.map((u) => usageRow(u, all));
  if (opts.noHeaders) return formatTable(rows);
  return formatTable([usageHeader(all), ...rows]);
}

/** Tables every `interval` seconds until interrupted: redrawn in place on a terminal, appended (a blank line between) otherwise. */
async function watch(io: IO, client: AgentClient, opts: TopOptions, interval: number): Promise<number> {
  const tty = (io.stdout as Writable & { isTTY?: boolean }).isTTY === true;
  return untilInterrupted(io, async (signal) => {
    let printed = false;
    while (!signal.aborted) {
      const text = table(await read(client, opts), opts, io.stderr);
      if (signal.aborted) break;
      if (tty) io.stdout.write(CLEAR + text);
      else if (text) io.stdout.write((printed ? '\n' : '') + text);
      printed ||= text !== '';
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, interval * 1000);
        signal.addEventListener('abort', done, { once: true });
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
      });
    }
  });
}
