// kratactl diff -f FILE: what `apply` would change, as kubectl diff shows it. The agent checks the
// batch first (a server-side dry run, all or nothing, as apply); then each Guest and GuestSet as it is
// against what apply would make of it: apply replaces spec, labels and annotations, so only those are
// compared (status and what the agent sets in metadata are left out). Exit 0: no differences, 1:
// differences, 2 and more: an error. $KRATA_EXTERNAL_DIFF (like KUBECTL_EXTERNAL_DIFF) names a program
// run on the two directories of YAML files instead of the built-in `diff -u -N`.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { KratObject } from '../../crds/validate.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';
import { unifiedDiff } from '../../lib/unified-diff.js';
import { AgentError } from '../agent-client.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { formatProblem, loadManifests } from '../manifests.js';
import type { AgentObject } from '../object-query.js';
import { canonical } from '../output.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient } from './common.js';

export const DIFF_HELP = `Show what kratactl apply -f would change, as a unified diff of the YAML (as kubectl diff).

Usage: kratactl diff -f PATH [-f PATH...] [options]

  -f, --filename PATH   manifests: a file, a directory, or - for stdin
  -R, --recursive       also read subdirectories of directories
${AGENT_HELP}

Only what apply sets is compared: spec, labels and annotations. Exit status: 0 no differences,
1 differences, 2 an error. KRATA_EXTERNAL_DIFF="PROGRAM [ARGS]" runs PROGRAM on the live and the
applied directory instead (its exit status is kratactl's).
`;

const DIFF_DIFFERENT = 1;
const DIFF_ERROR = 2;

/** The flags of `kratactl diff` (completion reads them too). */
export const DIFF_OPTIONS = {
  ...AGENT_OPTIONS,
  filename: { type: 'string', short: 'f', multiple: true },
  recursive: { type: 'boolean', short: 'R' },
} as const satisfies FlagSpecs;

export async function diff(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, DIFF_OPTIONS);
  if (positionals.length) throw new UsageError(`diff takes files with -f, not arguments (got ${positionals.join(' ')})`);
  const files = values.filename ?? [];
  if (files.length === 0) throw new UsageError('diff needs at least one -f PATH (a file, a directory, or - for stdin)');
  const loaded = await loadManifests(files, { recursive: values.recursive, namespace: values.namespace, stdin: io.stdin, secrets: true });
  for (const w of loaded.warnings) io.stderr.write(formatProblem(w, 'warning') + '\n');
  if (loaded.problems.length) {
    for (const p of loaded.problems) io.stderr.write(formatProblem(p) + '\n');
    return DIFF_ERROR;
  }
  if (loaded.secrets.length) io.stderr.write('note: Secrets are not compared (the agent never shows their data)\n');
  const client = agentClient(values, io);
  const pairs: { file: string; live: string; merged: string }[] = [];
  try {
    await client.apply([...loaded.secrets.map((s) => s.object), ...loaded.objects.map((o) => o.object)], true);
    for (const { object } of loaded.objects) {
      if (object.kind !== 'Guest' && object.kind !== 'GuestSet') continue;
      const ns = object.metadata.namespace ?? values.namespace ?? 'default';
      const live = await readLive(client, object.kind, ns, object.metadata.name);
      const file = `krata.dev.v1alpha1.${object.kind}.${ns}.${object.metadata.name}`;
      pairs.push({ file, live: live ? yamlOf(applied(live)) : '', merged: yamlOf(applied(object, ns)) });
    }
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    io.stderr.write(`error: ${err.message}\n`);
    for (const d of err.details)
      io.stderr.write(`  ${d.index !== undefined ? `[${d.index}] ` : ''}${d.path ? d.path + ': ' : ''}${d.message}\n`);
    return DIFF_ERROR;
  }
  const external = io.env.KRATA_EXTERNAL_DIFF?.trim();
  if (external) return externalDiff(external, pairs, io);
  let status = EXIT_OK;
  for (const p of pairs) {
    const text = unifiedDiff(p.live, p.merged, `LIVE/${p.file}`, `MERGED/${p.file}`);
    if (!text) continue;
    io.stdout.write(`diff -u -N LIVE/${p.file} MERGED/${p.file}\n${text}`);
    status = DIFF_DIFFERENT;
  }
  return status;
}

async function readLive(client: ReturnType<typeof agentClient>, kind: string, ns: string, name: string): Promise<AgentObject | undefined> {
  try {
    return kind === 'Guest' ? await client.get(ns, name) : await client.getGuestSet(ns, name);
  } catch (e) {
    if (e instanceof AgentError && e.status === 404) return undefined;
    throw e;
  }
}

/** The part of an object apply owns: kind, name, namespace, labels, annotations and spec. */
function applied(o: KratObject | AgentObject, namespace?: string): KratObject {
  const { labels, annotations } = o.metadata as { labels?: Record<string, string>; annotations?: Record<string, string> };
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    metadata: {
      name: o.metadata.name,
      namespace: namespace ?? o.metadata.namespace ?? 'default',
      ...(labels ? { labels } : {}),
      ...(annotations ? { annotations } : {}),
    },
    spec: (o as { spec: unknown }).spec,
  } as KratObject;
}

function yamlOf(o: KratObject): string {
  return stringify(canonical(o), { version: '1.1', lineWidth: 0 });
}

/** kubectl's way with an external program: the two directories as its last arguments, its exit status passed on. */
function externalDiff(command: string, pairs: { file: string; live: string; merged: string }[], io: IO): number {
  const dir = mkdtempSync(join(tmpdir(), 'kratactl-diff-'));
  try {
    const live = join(dir, 'LIVE');
    const merged = join(dir, 'MERGED');
    for (const d of [live, merged]) mkdirSync(d);
    for (const p of pairs) {
      if (p.live) writeFileSync(join(live, p.file), p.live);
      writeFileSync(join(merged, p.file), p.merged);
    }
    const [program, ...args] = command.split(/\s+/);
    const r = spawnSync(program!, [...args, live, merged], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (r.error) {
      io.stderr.write(`error: KRATA_EXTERNAL_DIFF: cannot run ${program}: ${r.error.message}\n`);
      return DIFF_ERROR;
    }
    io.stdout.write(r.stdout);
    io.stderr.write(r.stderr);
    return r.status ?? DIFF_ERROR;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
