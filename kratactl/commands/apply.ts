// kratactl apply -f PATH...: validate everything, then hand it to the node agent in one batch.
import { AgentClient, AgentError, agentSocket } from '../agent-client.js';
import { DEFAULT_AGENT_SOCKET } from '../../contracts/agent-api/endpoints.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { formatProblem, loadManifests } from '../manifests.js';
import { formatObjects, objectName, type OutputFormat } from '../output.js';
import { stringify } from 'yaml';
import type { PullSecret } from '../../contracts/agent-api/pull-secret.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';
import { applySetId } from '../../contracts/agent-api/applyset.js';
import { ApplySetRun, applySetName, labelMember, type PruneTarget } from '../applyset.js';

export const APPLY_HELP = `Create or update Guests, GuestSets and image pull Secrets from manifests.

Usage: kratactl apply -f PATH [-f PATH...] [options]

  -f, --filename PATH   a file, a directory of .yaml/.yml/.json files, or - for stdin;
                        multi-document YAML is read document by document
  -R, --recursive       also read subdirectories of directories
  -n, --namespace NS    namespace for objects that name none (default "default")
      --dry-run[=client|server]
                        validate and default here and print the result (client, the
                        default), or also have the node agent check it (server); nothing changes
  -o, --output FORMAT   yaml (default with --dry-run), json, or name
      --prune           with --applyset: delete the set's Guests, GuestSets and Secrets that these
                        manifests no longer hold (with --dry-run: print them, delete nothing)
      --applyset NAME   the set (KEP-3659 ApplySet) whose members are labelled
                        applyset.kubernetes.io/part-of; its parent, NAME in -n's namespace, is kept
                        by the node agent. Objects outside the set are never pruned
      --agent SOCKET    node agent socket (default $KRATA_AGENT_SOCKET or ${DEFAULT_AGENT_SOCKET})

Every problem in every document is reported (file:line:column, the field's path, what is wrong),
and nothing is applied unless all documents are valid. XenHosts are validated too, but they live in
the cluster (kubectl apply): sent to a node agent they are skipped with a note.

A single host also takes v1 Secrets of type kubernetes.io/dockerconfigjson (or kubernetes.io/dockercfg):
a Guest's spec.imagePullSecrets names them, in its own namespace. The agent keeps them (mode 0600)
and never shows their data; output here shows it as REDACTED.
`;

const FORMATS: OutputFormat[] = ['yaml', 'json', 'name'];

/** Kinds a single node agent does not take: applied to an agent they are skipped with a note. */
const CLUSTER_KINDS = new Set(['XenHost']);

/** The flags of `kratactl apply` (completion reads them too). */
export const APPLY_OPTIONS = {
  filename: { type: 'string', short: 'f', multiple: true },
  recursive: { type: 'boolean', short: 'R' },
  namespace: { type: 'string', short: 'n' },
  'dry-run': { type: 'string' },
  output: { type: 'string', short: 'o' },
  agent: { type: 'string' },
  prune: { type: 'boolean' },
  applyset: { type: 'string' },
} as const satisfies FlagSpecs;

export async function apply(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(normalizeDryRun(argv), APPLY_OPTIONS);
  if (values.prune && values.applyset === undefined)
    throw new UsageError('--prune needs --applyset=NAME: the set whose members may be pruned (its parent is kept by the node agent)');
  if (values.applyset !== undefined && !values.prune) throw new UsageError('--applyset is for --prune');
  const setName = values.applyset === undefined ? undefined : applySetName(values.applyset);
  if (positionals.length) throw new UsageError(`apply takes files with -f, not arguments (got ${positionals.join(' ')})`);
  const files = values.filename ?? [];
  if (files.length === 0) throw new UsageError('apply needs at least one -f PATH (a file, a directory, or - for stdin)');
  const dryRun = values['dry-run'] ?? 'none';
  if (!['client', 'server', 'none'].includes(dryRun)) throw new UsageError(`--dry-run takes client, server or none, not "${dryRun}"`);
  const output = (values.output ?? (dryRun !== 'none' ? 'yaml' : undefined)) as OutputFormat | undefined;
  if (output !== undefined && !FORMATS.includes(output))
    throw new UsageError(`--output must be one of ${FORMATS.join(', ')}, not "${output}"`);
  if (values.namespace !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(values.namespace)) {
    throw new UsageError(`--namespace "${values.namespace}" is not a valid namespace name (a DNS label)`);
  }

  const loaded = await loadManifests(files, { recursive: values.recursive, namespace: values.namespace, stdin: io.stdin, secrets: true });
  for (const w of loaded.warnings) io.stderr.write(formatProblem(w, 'warning') + '\n');
  if (loaded.problems.length) {
    for (const p of loaded.problems) io.stderr.write(formatProblem(p) + '\n');
    const n = loaded.problems.length;
    io.stderr.write(`${n} error${n === 1 ? '' : 's'}; nothing was applied\n`);
    return EXIT_FAILED;
  }
  // A node agent serves Guests, GuestSets and Secrets; XenHosts live in the cluster, so a directory that
  // holds one (manifests/examples/) still applies on a single host. A client dry run shows everything.
  const cluster = dryRun === 'client' ? [] : loaded.objects.filter((o) => CLUSTER_KINDS.has(o.object.kind));
  for (const o of cluster)
    io.stderr.write(
      `note: ${o.file}:${o.line}: skipped ${o.object.kind} "${o.object.metadata.name}": ` +
        `${o.object.kind} objects live in the cluster (kubectl apply); a node agent takes Guests, GuestSets and Secrets\n`,
    );
  const local = loaded.objects.filter((o) => !cluster.includes(o));
  const objects = local.map((o) => o.object);
  const setNamespace = values.namespace ?? 'default';
  if (setName !== undefined) for (const o of [...loaded.secrets, ...local]) labelMember(o.object, applySetId(setName, setNamespace));
  // Secrets go first (the agent stores them before the Guests that name them); errors index this batch.
  const batch = [...loaded.secrets, ...local];
  const show = () =>
    [
      formatSecrets(
        loaded.secrets.map((s) => s.object),
        output!,
      ),
      objects.length ? formatObjects(objects, output!) : '',
    ]
      .filter(Boolean)
      .join(output === 'yaml' ? '---\n' : '');
  // A client dry run needs no agent, unless it is to say what --prune would delete.
  if (dryRun === 'client' && setName === undefined) {
    io.stdout.write(show());
    return EXIT_OK;
  }
  if (batch.length === 0 && setName === undefined) return EXIT_OK;

  const client = new AgentClient(agentSocket(values, io.env));
  // Pruned objects are said as kubectl says them, on stdout unless it carries YAML or JSON.
  const how = { client: ' (dry run)', server: ' (server dry run)' }[dryRun] ?? '';
  const pruned = (t: PruneTarget) =>
    (output === 'yaml' || output === 'json' ? io.stderr : io.stdout).write(`${objectName({ kind: t.kind, metadata: t })} pruned${how}\n`);
  try {
    const set =
      setName === undefined
        ? undefined
        : await ApplySetRun.begin(
            client,
            setName,
            setNamespace,
            [...loaded.secrets, ...local].map((o) => o.object),
            dryRun !== 'none',
          );
    if (dryRun === 'client') io.stdout.write(show());
    else if (batch.length) {
      const results = await client.apply(
        batch.map((o) => o.object),
        dryRun === 'server',
      );
      if (output && output !== 'name') io.stdout.write(show());
      else for (const r of results) io.stdout.write(`${objectName(r)} ${r.action}${dryRun === 'server' ? ' (server dry run)' : ''}\n`);
    }
    if (set) {
      const stale = await set.stale();
      if (dryRun === 'none') {
        await set.prune(stale, pruned);
        await set.finish();
      } else stale.forEach(pruned);
    }
    return EXIT_OK;
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    io.stderr.write(`error: ${err.message}\n`);
    for (const d of err.details) {
      const origin = d.index !== undefined ? batch[d.index] : undefined;
      io.stderr.write(`  ${origin ? `${origin.file}:${origin.line}: ` : ''}${d.path ? d.path + ': ' : ''}${d.message}\n`);
    }
    return EXIT_FAILED;
  }
}

/** Secrets as output shows them: their data never, only its keys. */
function formatSecrets(secrets: PullSecret[], format: OutputFormat): string {
  if (secrets.length === 0) return '';
  if (format === 'name') return secrets.map((s) => `${objectName(s)}\n`).join('');
  const redacted = secrets.map((s) => ({ ...s, data: Object.fromEntries(Object.keys(s.data).map((k) => [k, 'REDACTED'])) }));
  return format === 'json'
    ? redacted.map((s) => JSON.stringify(s, null, 2) + '\n').join('')
    : redacted.map((s) => stringify(s)).join('---\n');
}

/** kubectl spells it --dry-run[=client|server|none]; a bare --dry-run means client. */
function normalizeDryRun(argv: string[]): string[] {
  return argv.map((a) => (a === '--dry-run' ? '--dry-run=client' : a));
}
