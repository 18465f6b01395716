// kratactl apply -f PATH...: validate everything, then hand it to the node agent in one batch.
import { AgentClient, AgentError } from '../agent-client.js';
import { DEFAULT_AGENT_SOCKET } from '../../contracts/agent-api/endpoints.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { formatProblem, loadManifests } from '../manifests.js';
import { formatObjects, objectName, type OutputFormat } from '../output.js';
import { stringify } from 'yaml';
import type { PullSecret } from '../../contracts/agent-api/pull-secret.js';
import { parseFlags } from '../../lib/cli-flags.js';
import { applySetId } from '../../contracts/agent-api/applyset.js';
import { ApplySetRun, applySetName, labelMember, type PruneTarget } from '../applyset.js';

export const APPLY_HELP = `Create or update Guests, XenHosts and image pull Secrets from manifests.

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
and nothing is applied unless all documents are valid.

A single host also takes v1 Secrets of type kubernetes.io/dockerconfigjson (or kubernetes.io/dockercfg):
a Guest's spec.imagePullSecrets names them, in its own namespace. The agent keeps them (mode 0600)
and never shows their data; output here shows it as REDACTED.
`;

const FORMATS: OutputFormat[] = ['yaml', 'json', 'name'];

export async function apply(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(normalizeDryRun(argv), {
    filename: { type: 'string', short: 'f', multiple: true },
    recursive: { type: 'boolean', short: 'R' },
    namespace: { type: 'string', short: 'n' },
    'dry-run': { type: 'string' },
    output: { type: 'string', short: 'o' },
    agent: { type: 'string' },
    prune: { type: 'boolean' },
    applyset: { type: 'string' },
  });
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
  const setNamespace = values.namespace ?? 'default';
  if (setName !== undefined)
    for (const o of [...loaded.secrets, ...loaded.objects]) labelMember(o.object, applySetId(setName, setNamespace));
  const objects = loaded.objects.map((o) => o.object);
  // Secrets go first (the agent stores them before the Guests that name them); errors index this batch.
  const batch = [...loaded.secrets, ...loaded.objects];
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
  const client = new AgentClient(values.agent ?? io.env.KRATA_AGENT_SOCKET ?? DEFAULT_AGENT_SOCKET);
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
            [...loaded.secrets, ...loaded.objects].map((o) => o.object),
            dryRun !== 'none',
          );
    if (dryRun === 'client') io.stdout.write(show());
    else {
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
