// kratactl image pull|import|ls|rm|prune: the host's image cache, used directly (as root, on the
// host whose cache it is) until the node agent serves these through its API; a pull with a namespace's
// pull Secrets (-n, --pull-secret) already goes through the agent, which keeps the Secrets.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { AgentClient } from '../agent-client.js';
import { DEFAULT_AGENT_SOCKET, DEFAULT_STATE_DIR } from '../../contracts/agent-api/endpoints.js';
import { namespaceOf } from './common.js';
import { isPullSecretName } from '../../contracts/agent-api/pull-secret.js';
import { parse as parseYaml } from 'yaml';
import { CredentialStore } from '../../lib/oci/credentials.js';
import { importImage } from '../../node-agent/image/import.js';
import { parsePlatform } from '../../lib/oci/platform.js';
import { parseMirrorFlags } from '../../lib/oci/registry.js';
import { ImageStore } from '../../node-agent/image/store.js';
import { type StoredImage } from '../../contracts/agent-api/types.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { ProgressBars } from '../progress.js';

export const IMAGE_HELP = `Manage the host's image cache: OCI images packed as squashfs root filesystems.

Usage:
  kratactl image pull REFERENCE [options]     pull (or find in the cache) and pack an image
  kratactl image import PATH [options]        import an OCI layout directory or a docker save tarball
  kratactl image ls [-o table|wide|json]      list cached images
  kratactl image rm IMAGE...                  remove images (by name, digest or digest prefix)
  kratactl image prune [--budget SIZE]        remove the least recently used images until the cache
                                              fits SIZE (e.g. 20G; 0 or absent: remove all)

Options:
      --store DIR               krata's state directory (default $KRATA_STORE or /var/lib/krata)
      --agent SOCKET            the node agent, asked which images its Guests use before rm and
                                prune (default $KRATA_AGENT_SOCKET or /run/krata/agent.sock)
      --insecure-registry HOST  reach HOST[:PORT] over plain http (repeatable)
      --mirror REGISTRY=URL     try URL before REGISTRY, e.g. docker.io=https://mirror.example (repeatable)
      --docker-config FILE      credentials from a docker config.json (repeatable; default
                                $DOCKER_CONFIG/config.json and ~/.docker/config.json)
      --pull-secret-file FILE   credentials from a Kubernetes pull secret file, YAML or JSON (repeatable)
      --platform OS/ARCH[/VAR]  platform to pick from multi-platform images (default: this host's)
      --name REFERENCE          (import) the name to give the image
  -q, --quiet                   no progress output; print the image's digest

Through the node agent (pull only; its cache and registry settings apply, so --store, --docker-config,
--pull-secret-file, --mirror, --insecure-registry and --platform are refused beside these):
      --pull-secret NAME        pull with the agent's image pull Secret NAME of the namespace, one
                                stored with kratactl apply (repeatable)
  -n, --namespace NS            the namespace of those Secrets (default "default")
  -o, --output FORMAT           table (default), wide or json
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

function secretCredentials(file: string): CredentialStore {
  const text = readFileSync(file, 'utf8');
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new UsageError(`--pull-secret-file ${file}: not YAML or JSON (${(e as Error).message.split('\n')[0]})`);
  }
  return CredentialStore.fromPullSecret(doc, file);
}

async function openStore(values: Record<string, unknown>, io: IO): Promise<ImageStore> {
  const state = (values.store as string | undefined) ?? io.env.KRATA_STORE ?? DEFAULT_STATE_DIR;
  const configs = (values['docker-config'] as string[] | undefined) ?? [
    ...(io.env.DOCKER_CONFIG ? [join(io.env.DOCKER_CONFIG, 'config.json')] : []),
    join(io.env.HOME ?? homedir(), '.docker', 'config.json'),
  ];
  let credentials = await CredentialStore.fromFiles(configs);
  for (const f of (values['pull-secret-file'] as string[] | undefined) ?? []) credentials = credentials.merge(secretCredentials(f));
  for (const w of credentials.warnings) io.stderr.write(`warning: ${w}\n`);
  let mirrors: Record<string, string[]>;
  try {
    mirrors = parseMirrorFlags((values.mirror as string[] | undefined) ?? []);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const store = new ImageStore({
    root: join(state, 'images'),
    registry: {
      credentials,
      mirrors,
      insecure: (values['insecure-registry'] as string[] | undefined) ?? [],
      ...(values.platform ? { platform: parsePlatform(values.platform as string) } : {}),
    },
  });
  return store;
}

/** Options only a pull in this process uses; a pull through the agent uses the agent's. */
const DIRECT_ONLY = ['store', 'docker-config', 'pull-secret-file', 'mirror', 'insecure-registry', 'platform'] as const;
const MAX_PULL_SECRETS = 64; // the agent API's limit

/** -n and --pull-secret, checked: a pull through the agent with a namespace's Secrets. */
function agentPullOptions(values: Record<string, unknown>): { namespace: string; pullSecrets: string[] } {
  for (const o of DIRECT_ONLY) if (values[o] !== undefined) throw new UsageError(`--${o} is for a pull by kratactl itself; with -n/--pull-secret the node agent pulls, with its own cache and registry settings`);
  const namespace = namespaceOf(values as { namespace?: string });
  const names = [...new Set((values['pull-secret'] as string[] | undefined) ?? [])];
  for (const n of names) {
    if (!isPullSecretName(n)) throw new UsageError(`--pull-secret ${JSON.stringify(String(n).slice(0, 100))} is not a Secret name (a DNS subdomain: lowercase ` + `letters, digits, "-" and ".", at most 253 characters); credentials from a file are --pull-secret-file FILE`);
  }
  if (names.length > MAX_PULL_SECRETS) throw new UsageError(`--pull-secret: at most ${MAX_PULL_SECRETS} Secrets, not ${names.length}`);
  return { namespace, pullSecrets: names };
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
    rows.push([i.names[0] ?? '<none>', wide ? i.digest : i.digest.slice(0, 19), formatBytes(i.size), i.lastUsedAt.replace(/\.\d+Z$/, 'Z'), ...(wide ? [platform, i.path] : [])]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) io.stdout.write(r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('   ') + '\n');
}

/**
 * Images the host's Guests use, asked of the node agent when it runs (its cache is this one): rm and
 * prune leave them alone. Without an agent nothing runs from the cache.
 */
async function imagesInUse(values: Record<string, unknown>, io: IO): Promise<Set<string>> {
  const socket = (values.agent as string | undefined) ?? io.env.KRATA_AGENT_SOCKET ?? DEFAULT_AGENT_SOCKET;
  if (!existsSync(socket)) return new Set();
  const guests = await new AgentClient(socket).list();
  return new Set(guests.map((g) => g.status?.imageDigest).filter((d): d is string => !!d));
}

export async function image(argv: string[], io: IO): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
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
    },
    strict: true,
    allowPositionals: true,
  });
  const output = values.output ?? 'table';
  if (!['table', 'wide', 'json'].includes(output)) throw new UsageError(`--output must be table, wide or json, not "${output}"`);
  const viaAgent = values.namespace !== undefined || values['pull-secret'] !== undefined;
  if (viaAgent && sub !== undefined && sub !== 'pull') throw new UsageError(`image ${sub}: -n/--namespace and --pull-secret are for image pull (through the node agent)`);
  switch (sub) {
    case 'pull':
    case 'import': {
      if (positionals.length !== 1) throw new UsageError(`image ${sub} takes one ${sub === 'pull' ? 'REFERENCE' : 'PATH'}`);
      const agentPull = viaAgent ? agentPullOptions(values) : undefined;
      const socket = values.agent ?? io.env.KRATA_AGENT_SOCKET ?? DEFAULT_AGENT_SOCKET;
      if (agentPull && !existsSync(socket)) {
        // No agent: nobody holds the namespace's Secrets, and this process must not guess at them.
        io.stderr.write(`error: -n/--namespace and --pull-secret pull through the node agent, ` + `which keeps the Secrets, and there is no agent at ${socket} (start ` + `krata-node-agent or give --agent SOCKET); without an agent, pull directly ` + `with credentials from --docker-config or --pull-secret-file FILE\n`);
        return EXIT_FAILED;
      }
      const store = agentPull ? undefined : await openStore(values, io);
      const bars = values.quiet ? undefined : new ProgressBars(io.stderr);
      try {
        const onEvent = bars?.onEvent.bind(bars);
        const img = agentPull
          ? await new AgentClient(socket).pullImage(positionals[0]!, onEvent, { ...agentPull, hint: ' (-n and --pull-secret need it; without it, pull directly with --pull-secret-file FILE)' })
          : sub === 'pull'
            ? await store!.pull(positionals[0]!, { onEvent })
            : await importImage(store!, positionals[0]!, { onEvent, ...(values.name ? { name: values.name } : {}) });
        bars?.finish();
        if (values.output === 'json') io.stdout.write(JSON.stringify(img, null, 2) + '\n');
        else if (values.quiet) io.stdout.write(`${img.digest}\n`);
        else io.stdout.write(`${img.names.at(-1)} ${img.digest} ${formatBytes(img.size)}\n`);
        return EXIT_OK;
      } catch (e) {
        bars?.finish();
        io.stderr.write(`error: ${(e as Error).message}\n`);
        return EXIT_FAILED;
      }
    }
    case 'ls':
    case 'list': {
      const store = await openStore(values, io);
      printImages(store.list(), output, io);
      return EXIT_OK;
    }
    case 'rm': {
      if (positionals.length === 0) throw new UsageError('image rm takes one or more IMAGE (name, digest or digest prefix)');
      const store = await openStore(values, io);
      let status = EXIT_OK;
      for (const p of positionals) {
        try {
          const img = store.remove(p, await imagesInUse(values, io));
          io.stdout.write(`removed ${img.names[0] ?? img.digest} (${img.digest})\n`);
        } catch (e) {
          io.stderr.write(`error: ${(e as Error).message}\n`);
          status = EXIT_FAILED;
        }
      }
      return status;
    }
    case 'prune': {
      const store = await openStore(values, io);
      const result = store.gc(await imagesInUse(values, io), values.budget ? parseSize(values.budget) : 0);
      for (const img of result.removed) io.stdout.write(`removed ${img.names[0] ?? img.digest} (${formatBytes(img.size)})\n`);
      io.stdout.write(`freed ${formatBytes(result.freedBytes)}, cache holds ${formatBytes(result.keptBytes)}\n`);
      return EXIT_OK;
    }
    default:
      throw new UsageError(sub ? `unknown image command "${sub}" (pull, import, ls, rm, prune)` : 'image needs a command: pull, import, ls, rm or prune');
  }
}
