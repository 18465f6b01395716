// kratactl apply -f PATH...: validate everything, then hand it to the node agent in one batch.
import { parseArgs } from 'node:util';
import { AgentClient, AgentError, DEFAULT_AGENT_SOCKET } from '../agent-client.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { formatProblem, loadManifests } from '../manifests.js';
import { formatObjects, type OutputFormat } from '../output.js';

export const APPLY_HELP = `Create or update Guests and XenHosts from manifests.

Usage: kratactl apply -f PATH [-f PATH...] [options]

  -f, --filename PATH   a file, a directory of .yaml/.yml/.json files, or - for stdin;
                        multi-document YAML is read document by document
  -R, --recursive       also read subdirectories of directories
  -n, --namespace NS    namespace for objects that name none (default "default")
      --dry-run         validate and default, print the result, change nothing
  -o, --output FORMAT   yaml (default with --dry-run), json, or name
      --agent SOCKET    node agent socket (default $KRATA_AGENT_SOCKET or ${DEFAULT_AGENT_SOCKET})

Every problem in every document is reported (file:line:column, the field's path, what is wrong),
and nothing is applied unless all documents are valid.
`;

const FORMATS: OutputFormat[] = ['yaml', 'json', 'name'];

export async function apply(argv: string[], io: IO): Promise<number> {
  const { values } = parseArgs({
    args: normalizeDryRun(argv),
    options: {
      filename: { type: 'string', short: 'f', multiple: true },
      recursive: { type: 'boolean', short: 'R' },
      namespace: { type: 'string', short: 'n' },
      'dry-run': { type: 'boolean' },
      output: { type: 'string', short: 'o' },
      agent: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const files = values.filename ?? [];
  if (files.length === 0) throw new UsageError('apply needs at least one -f PATH (a file, a directory, or - for stdin)');
  const dryRun = values['dry-run'] ?? false;
  const output = (values.output ?? (dryRun ? 'yaml' : undefined)) as OutputFormat | undefined;
  if (output !== undefined && !FORMATS.includes(output)) throw new UsageError(`--output must be one of ${FORMATS.join(', ')}, not "${output}"`);
  if (values.namespace !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(values.namespace)) {
    throw new UsageError(`--namespace "${values.namespace}" is not a valid namespace name (a DNS label)`);
  }

  const loaded = await loadManifests(files, { recursive: values.recursive, namespace: values.namespace, stdin: io.stdin });
  for (const w of loaded.warnings) io.stderr.write(formatProblem(w, 'warning') + '\n');
  if (loaded.problems.length) {
    for (const p of loaded.problems) io.stderr.write(formatProblem(p) + '\n');
    const n = loaded.problems.length;
    io.stderr.write(`${n} error${n === 1 ? '' : 's'}; nothing was applied\n`);
    return EXIT_FAILED;
  }
  const objects = loaded.objects.map((o) => o.object);
  if (dryRun) {
    io.stdout.write(formatObjects(objects, output!));
    return EXIT_OK;
  }

  const client = new AgentClient(values.agent ?? io.env.KRATA_AGENT_SOCKET ?? DEFAULT_AGENT_SOCKET);
  try {
    const results = await client.apply(objects);
    if (output && output !== 'name') io.stdout.write(formatObjects(objects, output));
    else for (const r of results) io.stdout.write(`${r.kind.toLowerCase()}.krata.dev/${r.name} ${r.action}\n`);
    return EXIT_OK;
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    io.stderr.write(`error: ${err.message}\n`);
    for (const d of err.details) {
      const origin = d.index !== undefined ? loaded.objects[d.index] : undefined;
      io.stderr.write(`  ${origin ? `${origin.file}:${origin.line}: ` : ''}${d.path ? d.path + ': ' : ''}${d.message}\n`);
    }
    return EXIT_FAILED;
  }
}

/** kubectl spells it --dry-run=client; accept that, --dry-run=server (the same here), and =none. */
function normalizeDryRun(argv: string[]): string[] {
  return argv.flatMap((a) => {
    if (a === '--dry-run=client' || a === '--dry-run=server') return ['--dry-run'];
    if (a === '--dry-run=none') return [];
    if (a.startsWith('--dry-run=')) throw new UsageError(`--dry-run takes client, server or none, not "${a.slice(10)}"`);
    return [a];
  });
}
