// `krata-node-agent image pull|import|ls|rm|prune --state DIR`: the image cache while no node agent
// runs, for `kratactl image --offline` (which runs this; kratactl imports no other program). Writers
// take the cache's lock (cache-lock.ts), so they fail while an agent runs. Output is NDJSON on stdout:
// {"progress": PullEvent}, then {"result": ...} or {"error": "...", "usage"?: true, "holder"?: LockHolder}
// per operation; exit status 0 when all succeeded, 1 when one failed, 2 for bad usage. With
// --stop-on-eof it stops when its standard input ends: kratactl holds that pipe, so a kratactl that is
// killed does not leave a writer behind.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_STATE_DIR } from '../contracts/agent-api/endpoints.js';
import { CredentialStore } from '../lib/oci/credentials.js';
import { parsePlatform } from '../lib/oci/platform.js';
import { parseMirrorFlags } from '../lib/oci/registry.js';
import { GuestStore } from './store/guest-store.js';
import { CacheLocked, lockImageCache } from './image/cache-lock.js';
import { importImage } from './image/import.js';
import { ImageStore } from './image/store.js';

export const IMAGE_COMMAND_HELP = `Usage: krata-node-agent image COMMAND --state DIR [options]

The image cache without a running node agent; kratactl image --offline runs this. Output is NDJSON.

  pull REFERENCE          pull (or find in the cache) and pack an image
  import PATH             import an OCI layout directory or a docker save tarball (--name REF)
  ls                      list cached images
  rm IMAGE...             remove images no stored Guest uses
  prune                   remove unused images, least recently used first, until the cache fits
                          --budget BYTES (0 or absent: all of them)

  --state DIR             the agent's state directory (default /var/lib/krata)
  --docker-config FILE    registry credentials (repeatable; default /root/.docker/config.json)
  --pull-secret-file FILE credentials from a Kubernetes pull secret, YAML or JSON (repeatable)
  --insecure-registry H   reach registry H[:PORT] over plain http (repeatable)
  --mirror REG=URL        registry mirror (repeatable)
  --platform OS/ARCH[/V]  platform to pick from multi-platform images (default: this host's)
  --stop-on-eof           stop when standard input ends (kratactl keeps it open while it waits)
`;

class Usage extends Error {}

type Line = { progress: unknown } | { result: unknown } | { error: string; usage?: true; holder?: unknown };

const print = (line: Line) => process.stdout.write(JSON.stringify(line) + '\n');

export async function imageCommand(argv: string[], out: (line: Line) => void = print): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(IMAGE_COMMAND_HELP);
    return 0;
  }
  try {
    return await run(argv, out);
  } catch (e) {
    if (e instanceof Usage || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      out({ error: (e as Error).message, usage: true });
      return 2;
    }
    out({ error: (e as Error).message, ...(e instanceof CacheLocked ? { holder: e.holder ?? null } : {}) });
    return 1;
  }
}

async function run(argv: string[], out: (line: Line) => void): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      state: { type: 'string', default: DEFAULT_STATE_DIR },
      'docker-config': { type: 'string', multiple: true },
      'pull-secret-file': { type: 'string', multiple: true },
      'insecure-registry': { type: 'string', multiple: true },
      mirror: { type: 'string', multiple: true },
      platform: { type: 'string' },
      name: { type: 'string' },
      budget: { type: 'string' },
      'stop-on-eof': { type: 'boolean' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values['stop-on-eof']) {
    // What a writer leaves when stopped here, recover() removes at the next writer's start.
    process.stdin.on('end', () => process.exit(1));
    process.stdin.resume();
  }
  const state = values.state!;
  const root = join(state, 'images');
  const progress = (e: unknown) => out({ progress: e });
  switch (sub) {
    case 'ls':
    case 'list': {
      // Reads need no lock: an image's metadata file is its commit point (store.ts).
      out({ result: new ImageStore({ root }).list() });
      return 0;
    }
    case 'pull':
    case 'import': {
      if (positionals.length !== 1) throw new Usage(`image ${sub} takes one ${sub === 'pull' ? 'REFERENCE' : 'PATH'}`);
      const store = await openStore(root, values);
      const what = positionals[0]!;
      const name = values.name ? { name: values.name } : {};
      const img =
        sub === 'pull' ? await store.pull(what, { onEvent: progress }) : await importImage(store, what, { onEvent: progress, ...name });
      out({ result: img });
      return 0;
    }
    case 'rm': {
      if (positionals.length === 0) throw new Usage('image rm takes one or more IMAGE (name, digest or digest prefix)');
      const store = await openStore(root, values);
      const inUse = storedGuestImages(state);
      let status = 0;
      for (const p of positionals) {
        try {
          out({ result: store.remove(p, inUse) });
        } catch (e) {
          out({ error: (e as Error).message });
          status = 1;
        }
      }
      return status;
    }
    case 'prune': {
      const budget = values.budget ?? '0';
      if (!/^\d{1,15}$/.test(budget))
        throw new Usage(`--budget must be a whole number of bytes, not ${JSON.stringify(budget.slice(0, 100))}`);
      const store = await openStore(root, values);
      out({ result: store.gc(storedGuestImages(state), Number(budget)) });
      return 0;
    }
    default:
      throw new Usage(
        sub ? `unknown image command "${sub}" (pull, import, ls, rm, prune)` : 'image needs a command: pull, import, ls, rm or prune',
      );
  }
}

/** The store for a writer: the cache's lock first (held until exit), then what dead writers left goes. */
async function openStore(root: string, values: Record<string, unknown>): Promise<ImageStore> {
  const registry = await registryOptions(values);
  lockImageCache(root, `krata-node-agent image`);
  const store = new ImageStore({ root, registry });
  for (const d of store.recover().damaged) process.stderr.write(`warning: removed a cached image whose files disagree: ${d}\n`);
  return store;
}

async function registryOptions(values: Record<string, unknown>) {
  let credentials = await CredentialStore.fromFiles((values['docker-config'] as string[] | undefined) ?? ['/root/.docker/config.json']);
  for (const f of (values['pull-secret-file'] as string[] | undefined) ?? []) credentials = credentials.merge(pullSecretFile(f));
  for (const w of credentials.warnings) process.stderr.write(`warning: ${w}\n`);
  let mirrors: Record<string, string[]>;
  try {
    mirrors = parseMirrorFlags((values.mirror as string[] | undefined) ?? []);
  } catch (e) {
    throw new Usage((e as Error).message);
  }
  let platform;
  try {
    platform = values.platform ? parsePlatform(values.platform as string) : undefined;
  } catch (e) {
    throw new Usage((e as Error).message);
  }
  return { credentials, mirrors, insecure: (values['insecure-registry'] as string[] | undefined) ?? [], ...(platform ? { platform } : {}) };
}

function pullSecretFile(file: string): CredentialStore {
  const text = readFileSync(file, 'utf8');
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new Usage(`--pull-secret-file ${file}: not YAML or JSON (${(e as Error).message.split('\n')[0]})`);
  }
  return CredentialStore.fromPullSecret(doc, file);
}

/**
 * Images the host's stored Guests last ran from: with the agent stopped their domains may still run
 * (the next agent adopts them), so rm and prune leave those images alone as the agent would.
 */
function storedGuestImages(state: string): Set<string> {
  const guests = new GuestStore(state).list();
  return new Set(guests.map((g) => g.status?.imageDigest).filter((d): d is string => !!d));
}
