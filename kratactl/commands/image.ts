// kratactl image pull|import|ls|rm|prune: the host's image cache, through the node agent that owns it
// (its local API); with --offline, while no agent runs, through `krata-node-agent image` on the cache
// itself (offline-images.ts). Only one of them writes the cache at a time: the agent holds its lock.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { AgentClient, AgentError } from '../agent-client.js';
import { DEFAULT_AGENT_SOCKET, DEFAULT_STATE_DIR } from '../../contracts/agent-api/endpoints.js';
import { namespaceOf } from './common.js';
import { isPullSecretName } from '../../contracts/agent-api/pull-secret.js';
import { type PruneResult, type PullEvent, type StoredImage } from '../../contracts/agent-api/types.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { ProgressBars } from '../progress.js';
import { tarDirectory } from '../dir-tar.js';
import { OfflineImages } from '../offline-images.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';

export const IMAGE_HELP = `Manage the host's image cache: OCI images packed as squashfs root filesystems. The node agent owns
the cache: kratactl image asks it (its registry settings and credentials apply). --offline works on
the cache itself while no agent runs.

Usage:
  kratactl image pull REFERENCE [options]     pull (or find in the cache) and pack an image
  kratactl image import PATH [options]        import an OCI layout directory or a docker save tarball
  kratactl image ls [-o table|wide|json]      list cached images
  kratactl image rm IMAGE...                  remove images (by name, digest or digest prefix) no Guest uses
  kratactl image prune [--budget SIZE]        remove the least recently used images no Guest uses until
                                              the cache fits SIZE (e.g. 20G; 0 or absent: remove all)

Options:
      --agent SOCKET            the node agent (default $KRATA_AGENT_SOCKET or /run/krata/agent.sock)
      --name REFERENCE          (import) the name to give the image
  -o, --output FORMAT           table (default), wide or json
  -q, --quiet                   no progress output; print the image's digest

Pull with the agent's image pull Secrets:
      --pull-secret NAME        pull with the agent's image pull Secret NAME of the namespace, one
                                stored with kratactl apply (repeatable)
  -n, --namespace NS            the namespace of those Secrets (default "default")

Without a node agent (kratactl runs krata-node-agent image, as root on the host; it refuses while an
agent runs, which holds the cache's lock):
      --offline                 work on the cache itself; these options are for it alone:
      --store DIR               krata's state directory (default $KRATA_STORE or /var/lib/krata)
      --insecure-registry HOST  reach HOST[:PORT] over plain http (repeatable)
      --mirror REGISTRY=URL     try URL before REGISTRY, e.g. docker.io=https://mirror.example (repeatable)
      --docker-config FILE      credentials from a docker config.json (repeatable; default
                                $DOCKER_CONFIG/config.json and ~/.docker/config.json)
      --pull-secret-file FILE   credentials from a Kubernetes pull secret file, YAML or JSON (repeatable)
      --platform OS/ARCH[/VAR]  platform to pick from multi-platform images (default: this host's)
`;

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?$/i.exec(s.trim());
  if (!m) throw new UsageError(`--budget ${JSON.stringify(s)} is not a size (e.g. 500M, 20G)`);
  const unit = (m[2] ?? 'b').toLowerCase()[0]!;
  return Math.round(Number(m[1]) * 1024 ** ('bkmgt'.indexOf(unit) || 0));
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function printImages(images: StoredImage[], format: string, io: IO): void {
  if (format === 'json') {
    io.stdout.write(JSON.stringify(images, null, 2) + '\n');
    return;
  }
  const wide = format === 'wide';
  const rows = [['NAME', 'DIGEST', 'SIZE', 'LAST USED', ...(wide ? ['PLATFORM', 'PATH'] : [])]];
  for (const i of images) {
    const platform = `${i.config.os}/${i.config.architecture}${i.config.variant ? `/${i.config.variant}` : ''}`;
    rows.push([
      i.names[0] ?? '<none>',
      wide ? i.digest : i.digest.slice(0, 19),
      formatBytes(i.size),
      i.lastUsedAt.replace(/\.\d+Z$/, 'Z'),
      ...(wide ? [platform, i.path] : []),
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) io.stdout.write(r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('   ') + '\n');
}

/** What kratactl image asks: the node agent, or (--offline) krata-node-agent image. */
interface ImageBackend {
  pull(reference: string, onEvent: (e: PullEvent) => void): Promise<StoredImage>;
  importImage(path: string, name: string | undefined, onEvent: (e: PullEvent) => void): Promise<StoredImage>;
  list(): Promise<StoredImage[]>;
  remove(refs: string[]): Promise<({ image: StoredImage } | { error: string })[]>;
  prune(budgetBytes: number): Promise<PruneResult>;
}

/** Options of --offline alone: through the agent, its own cache and registry settings apply. */
const OFFLINE_ONLY = ['store', 'docker-config', 'pull-secret-file', 'mirror', 'insecure-registry', 'platform'] as const;
const MAX_PULL_SECRETS = 64; // the agent API's limit

/** -n and --pull-secret, checked: a pull through the agent with a namespace's Secrets. */
function pullSecretOptions(values: Record<string, unknown>): { namespace: string; pullSecrets: string[] } {
  const namespace = namespaceOf(values as { namespace?: string });
  const names = [...new Set((values['pull-secret'] as string[] | undefined) ?? [])];
  for (const n of names) {
    if (!isPullSecretName(n))
      throw new UsageError(
        `--pull-secret ${JSON.stringify(String(n).slice(0, 100))} is not a Secret name ` +
          '(a DNS subdomain: lowercase letters, digits, "-" and ".", at most 253 characters); ' +
          'credentials from a file are --offline --pull-secret-file FILE',
      );
  }
  if (names.length > MAX_PULL_SECRETS) throw new UsageError(`--pull-secret: at most ${MAX_PULL_SECRETS} Secrets, not ${names.length}`);
  return { namespace, pullSecrets: names };
}

function agentBackend(client: AgentClient, secrets: { namespace: string; pullSecrets: string[] } | undefined): ImageBackend {
  const hint = ' Without one, add --offline to work on the cache itself (as root; --store DIR, default /var/lib/krata).';
  return {
    pull: (reference, onEvent) => client.pullImage(reference, onEvent, { ...secrets, hint }),
    importImage(path, name, onEvent) {
      const st = statSync(path, { throwIfNoEntry: false });
      if (!st) throw new Error(`${path}: no such file or directory`);
      // The agent never opens a client's path: the file, or the layout directory as a tarball, is sent.
      const data = st.isDirectory() ? Readable.from(tarDirectory(path)) : createReadStream(path, { highWaterMark: 1 << 20 });
      return client.importImage(data, { source: path, hint, ...(name !== undefined ? { name } : {}) }, onEvent);
    },
    list: () => client.images(hint),
    async remove(refs) {
      const out: ({ image: StoredImage } | { error: string })[] = [];
      for (const ref of refs) {
        try {
          out.push({ image: await client.removeImage(ref, hint) });
        } catch (e) {
          if (!(e instanceof AgentError) || e.status === undefined) throw e; // no agent: once, not per image
          out.push({ error: e.message });
        }
      }
      return out;
    },
    prune: (budgetBytes) => client.pruneImages(budgetBytes, hint),
  };
}

/** krata-node-agent image's flags: the state directory and kratactl's registry settings, spelled out. */
function offlineFlags(values: Record<string, unknown>, io: IO): string[] {
  const state = (values.store as string | undefined) ?? io.env.KRATA_STORE ?? DEFAULT_STATE_DIR;
  const configs = (values['docker-config'] as string[] | undefined) ?? [
    ...(io.env.DOCKER_CONFIG ? [join(io.env.DOCKER_CONFIG, 'config.json')] : []),
    join(io.env.HOME ?? homedir(), '.docker', 'config.json'),
  ];
  const many = (flag: string, list: unknown) => ((list as string[] | undefined) ?? []).flatMap((v) => [`--${flag}`, v]);
  return [
    '--state',
    state,
    ...many('docker-config', configs),
    ...many('pull-secret-file', values['pull-secret-file']),
    ...many('mirror', values.mirror),
    ...many('insecure-registry', values['insecure-registry']),
    ...(values.platform ? ['--platform', values.platform as string] : []),
  ];
}

/** The flags of `kratactl image` (completion reads them too). */
export const IMAGE_OPTIONS = {
  offline: { type: 'boolean' },
  store: { type: 'string' },
  agent: { type: 'string' },
  'insecure-registry': { type: 'string', multiple: true },
  mirror: { type: 'string', multiple: true },
  'docker-config': { type: 'string', multiple: true },
  'pull-secret-file': { type: 'string', multiple: true },
  'pull-secret': { type: 'string', multiple: true },
  namespace: { type: 'string', short: 'n' },
  platform: { type: 'string' },
  name: { type: 'string' },
  budget: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  output: { type: 'string', short: 'o' },
} as const satisfies FlagSpecs;

export async function image(argv: string[], io: IO): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseFlags(rest, IMAGE_OPTIONS);
  const output = values.output ?? 'table';
  if (!['table', 'wide', 'json'].includes(output)) throw new UsageError(`--output must be table, wide or json, not "${output}"`);
  const withSecrets = values.namespace !== undefined || values['pull-secret'] !== undefined;
  if (withSecrets && sub !== undefined && sub !== 'pull')
    throw new UsageError(`image ${sub}: -n/--namespace and --pull-secret are for image pull (through the node agent)`);
  if (values.offline) {
    if (withSecrets) {
      throw new UsageError(
        '-n/--namespace and --pull-secret name Secrets the node agent keeps; ' +
          'with --offline, credentials come from --docker-config or --pull-secret-file FILE',
      );
    }
    if (values.agent !== undefined) throw new UsageError('--agent names the node agent, which --offline does without');
  } else {
    for (const o of OFFLINE_ONLY) {
      if (values[o] === undefined) continue;
      const instead =
        o === 'pull-secret-file' ? '; to pull through it with a pull secret, kratactl apply -f FILE and give --pull-secret NAME' : '';
      const why = 'through the node agent, its own cache and registry settings apply';
      throw new UsageError(`--${o} is for --offline (kratactl on the cache itself); ${why}${instead}`);
    }
  }
  if (sub === undefined) throw new UsageError('image needs a command: pull, import, ls, rm or prune');
  if (!['pull', 'import', 'ls', 'list', 'rm', 'prune'].includes(sub))
    throw new UsageError(`unknown image command "${sub}" (pull, import, ls, rm, prune)`);
  if ((sub === 'pull' || sub === 'import') && positionals.length !== 1) {
    throw new UsageError(`image ${sub} takes one ${sub === 'pull' ? 'REFERENCE' : 'PATH'}`);
  }
  if (sub === 'rm' && positionals.length === 0) throw new UsageError('image rm takes one or more IMAGE (name, digest or digest prefix)');
  const budget = values.budget ? parseSize(values.budget) : 0;

  let backend: ImageBackend;
  if (values.offline) backend = new OfflineImages(offlineFlags(values, io), io);
  else {
    const socket = values.agent ?? io.env.KRATA_AGENT_SOCKET ?? DEFAULT_AGENT_SOCKET;
    const secrets = withSecrets ? pullSecretOptions(values) : undefined;
    if (secrets && !existsSync(socket)) {
      // No agent: nobody holds the namespace's Secrets, and this process must not guess at them.
      io.stderr.write(
        'error: -n/--namespace and --pull-secret pull through the node agent, which keeps the Secrets, ' +
          `and there is no agent at ${socket} ` +
          '(start krata-node-agent or give --agent SOCKET); without an agent, pull with --offline and credentials from ' +
          '--docker-config or --pull-secret-file FILE\n',
      );
      return EXIT_FAILED;
    }
    backend = agentBackend(new AgentClient(socket), secrets);
  }
  try {
    return await imageCommand({ sub, positionals, values, output, budget }, backend, io);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    io.stderr.write(`error: ${(e as Error).message}\n`);
    return EXIT_FAILED;
  }
}

interface Request {
  sub: string;
  positionals: string[];
  values: { quiet?: boolean; output?: string; name?: string };
  output: string;
  budget: number;
}

async function imageCommand({ sub, positionals, values, output, budget }: Request, backend: ImageBackend, io: IO): Promise<number> {
  switch (sub) {
    case 'pull':
    case 'import': {
      const bars = values.quiet ? undefined : new ProgressBars(io.stderr);
      const onEvent = (e: PullEvent) => bars?.onEvent(e);
      let img: StoredImage;
      try {
        const what = positionals[0]!;
        img = sub === 'pull' ? await backend.pull(what, onEvent) : await backend.importImage(what, values.name, onEvent);
      } finally {
        bars?.finish();
      }
      if (values.output === 'json') io.stdout.write(JSON.stringify(img, null, 2) + '\n');
      else if (values.quiet) io.stdout.write(`${img.digest}\n`);
      else io.stdout.write(`${img.names.at(-1)} ${img.digest} ${formatBytes(img.size)}\n`);
      return EXIT_OK;
    }
    case 'ls':
    case 'list':
      printImages(await backend.list(), output, io);
      return EXIT_OK;
    case 'rm': {
      let status = EXIT_OK;
      for (const r of await backend.remove(positionals)) {
        if ('image' in r) io.stdout.write(`removed ${r.image.names[0] ?? r.image.digest} (${r.image.digest})\n`);
        else {
          io.stderr.write(`error: ${r.error}\n`);
          status = EXIT_FAILED;
        }
      }
      return status;
    }
    default: {
      const result = await backend.prune(budget);
      for (const img of result.removed) io.stdout.write(`removed ${img.names[0] ?? img.digest} (${formatBytes(img.size)})\n`);
      io.stdout.write(`freed ${formatBytes(result.freedBytes)}, cache holds ${formatBytes(result.keptBytes)}\n`);
      return EXIT_OK;
    }
  }
}
