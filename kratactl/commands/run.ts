// kratactl run IMAGE [-- CMD ARGS...]: docker run for krata. Builds a Guest from flags, checks it as
// apply would, hands it to the node agent, waits until it runs, then attaches to its console.
// Progress goes to stderr so that stdout carries only the guest's own output.
import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Guest } from '../../crds/generated/types.js';
import { formatPath, validateObject } from '../../crds/validate.js';
import { AgentError, type AgentClient } from '../agent-client.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { objectName } from '../output.js';
import { attachSession, followConsoleSize } from './attach.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient, agentFailure, checkGuestName, namespaceOf, onInterrupt } from './common.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';

export const RUN_HELP = `Run an image as a new Guest and attach to its console.

Usage: kratactl run IMAGE [options] [--] [COMMAND [ARG...]]

COMMAND and ARGs replace the image's Cmd (as with docker run); put them after -- when they
start with "-".

      --name NAME        the Guest's name (default: from the image, e.g. alpine-x7k2p)
      --cpus N           vCPUs (default 1)
      --memory SIZE      memory, e.g. 256Mi or 1Gi (default 512Mi)
  -e, --env KEY=VALUE    an environment variable (repeatable)
  -t, --tty              give the process a terminal (for interactive shells)
      --restart POLICY   Never (default), OnFailure or Always
      --rm               delete the guest when kratactl is done with it: the process ended, you
                         detached (Ctrl+]), or kratactl was interrupted
${AGENT_HELP}
`;

/** kubectl's generateName alphabet: no vowels (no words), no look-alikes (0/o, 1/l). */
const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** "docker.io/library/alpine:3.19" → "alpine-x7k2p": the repository's last part and a random suffix. */
export function generateName(image: string): string {
  const repo = image.split('@')[0]!.replace(/:[^/]*$/, '');
  const base =
    (repo.split('/').pop() ?? '')
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 57)
      .replace(/-+$/, '') || 'guest';
  let suffix = '';
  for (let i = 0; i < 5; i++) suffix += SUFFIX_ALPHABET[randomInt(SUFFIX_ALPHABET.length)];
  return `${base}-${suffix}`;
}

/** What `run` and `launch` build a Guest from: their flags, as strings, before any check. */
export interface GuestFlags {
  name?: string;
  cpus?: string;
  memory?: string;
  env?: string[];
  tty?: boolean;
  restart?: string;
  /** Absolute paths on the host (spec.kernel.path, spec.initrd.path). */
  kernel?: string;
  initrd?: string;
}

/** The Guest the flags describe, checked as apply would: the object, or the validator's errors (usage errors thrown). */
export function guestFromFlags(flags: GuestFlags, image: string, command: string[], namespace: string) {
  const name = flags.name === undefined ? generateName(image) : checkGuestName(flags.name);
  if (flags.cpus !== undefined && !/^\d{1,3}$/.test(flags.cpus))
    throw new UsageError(`--cpus takes a whole number of vCPUs, not "${flags.cpus}"`);
  const restart = flags.restart ?? 'Never';
  if (!['Never', 'OnFailure', 'Always'].includes(restart))
    throw new UsageError(`--restart must be Never, OnFailure or Always, not "${restart}"`);
  const env = (flags.env ?? []).map((kv) => {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`-e ${JSON.stringify(kv)}: expected KEY=VALUE`);
    return { name: kv.slice(0, eq), value: kv.slice(eq + 1) };
  });
  const draft = {
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name, namespace },
    spec: {
      image,
      ...(command.length ? { args: command } : {}),
      ...(env.length ? { env } : {}),
      ...(flags.tty ? { tty: true } : {}),
      resources: {
        ...(flags.cpus !== undefined ? { cpus: Number(flags.cpus) } : {}),
        ...(flags.memory !== undefined ? { memory: flags.memory } : {}),
      },
      ...(flags.kernel !== undefined ? { kernel: { path: flags.kernel } } : {}),
      ...(flags.initrd !== undefined ? { initrd: { path: flags.initrd } } : {}),
      restartPolicy: restart,
    },
  };
  return { name, checked: validateObject(draft) };
}
/** The flags of `kratactl run` (completion reads them too). */
export const RUN_OPTIONS = {
  ...AGENT_OPTIONS,
  name: { type: 'string' },
  cpus: { type: 'string' },
  memory: { type: 'string' },
  env: { type: 'string', short: 'e', multiple: true },
  tty: { type: 'boolean', short: 't' },
  restart: { type: 'string' },
  rm: { type: 'boolean' },
} as const satisfies FlagSpecs;

export async function run(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, RUN_OPTIONS);
  const [image, ...command] = positionals;
  if (!image) throw new UsageError('run needs an IMAGE');
  const namespace = namespaceOf(values);
  const client = agentClient(values, io);
  const name = await createGuest(client, guestFromFlags(values, image, command, namespace), namespace, io);
  if (name === undefined) return EXIT_FAILED;
  return followGuest(client, namespace, name, io, { attach: true, rm: values.rm === true });
}

/** Hands a built Guest to the agent (refusing a name in use); its name, or undefined once the failure is printed. */
export async function createGuest(
  client: AgentClient,
  { name, checked }: ReturnType<typeof guestFromFlags>,
  namespace: string,
  io: IO,
): Promise<string | undefined> {
  if (!checked.object) {
    for (const e of checked.errors) io.stderr.write(`error: Guest "${name}": ${formatPath(e.path)}: ${e.message}\n`);
    return undefined;
  }
  try {
    if (await exists(client, namespace, name)) {
      io.stderr.write(`error: guest "${name}" already exists in namespace "${namespace}"\n`);
      return undefined;
    }
    await client.apply([checked.object]);
  } catch (err) {
    agentFailure(io, err);
    return undefined;
  }
  io.stderr.write(`${objectName(checked.object)} created\n`);
  return name;
}

/**
 * After createGuest: waits until the guest runs (phases on stderr), calls `onRunning` with it, then with
 * `attach` joins its console until it ends or the user detaches and reports how it ended; `rm` deletes it
 * at the end whatever happened.
 */
export async function followGuest(
  client: AgentClient,
  namespace: string,
  name: string,
  io: IO,
  opts: { attach: boolean; rm?: boolean; onRunning?: (g: Guest) => void },
): Promise<number> {
  const label = `${namespace}/${name}`;
  const abort = new AbortController();
  let socket: Duplex | undefined;
  const stopSignals = onInterrupt(() => {
    abort.abort();
    socket?.destroy();
  });
  try {
    const started = await waitUntilRunning(client, namespace, name, io, abort.signal, opts.attach);
    if (started.guest) opts.onRunning?.(started.guest);
    if (started.phase !== 'Running') return started.phase === 'Succeeded' && !opts.attach ? EXIT_OK : EXIT_FAILED;
    if (!opts.attach) return EXIT_OK;
    try {
      socket = await client.attach(namespace, name, { logs: true });
    } catch (err) {
      // The process may have ended between Running and the attach: its end is reported below.
      if (!(err instanceof AgentError) || err.status !== 409) throw err;
    }
    if (socket && !abort.signal.aborted) {
      const stopSize = followConsoleSize(client, namespace, name, io);
      const how = await attachSession(socket, io, label).finally(stopSize);
      if (how === 'detached') return EXIT_OK;
    }
    if (abort.signal.aborted) return EXIT_FAILED;
    return await reportEnd(client, namespace, name, io);
  } catch (err) {
    return agentFailure(io, err);
  } finally {
    stopSignals();
    if (opts.rm) await remove(client, namespace, name, io);
  }
}

async function exists(client: AgentClient, namespace: string, name: string): Promise<boolean> {
  try {
    await client.get(namespace, name);
    return true;
  } catch (err) {
    if (err instanceof AgentError && err.status === 404) return false;
    throw err;
  }
}

/** Follows the guest until it runs; reports each phase on the way, and why it did not start. */
async function waitUntilRunning(
  client: AgentClient,
  namespace: string,
  name: string,
  io: IO,
  signal: AbortSignal,
  attaching = true,
): Promise<{ phase: string; guest?: Guest }> {
  let shown = '';
  try {
    for await (const e of client.watch({ namespace, signal })) {
      const g = e.object;
      if (g.metadata.name !== name) continue;
      if (e.type === 'DELETED') {
        io.stderr.write(`error: guest ${namespace}/${name} was deleted before it ran\n`);
        return { phase: 'Deleted' };
      }
      const s = g.status ?? {};
      const phase = s.phase ?? 'Pending';
      const line = `${phase}${s.reason ? ` (${s.reason}${s.message ? `: ${s.message}` : ''})` : ''}`;
      if (line !== shown && phase !== 'Running') io.stderr.write(`waiting for ${namespace}/${name}: ${line}\n`);
      shown = line;
      if (phase === 'Running') return { phase, guest: g };
      if (phase === 'Failed') {
        io.stderr.write(`error: guest ${namespace}/${name} failed${s.reason ? `: ${s.reason}` : ''}${s.message ? `: ${s.message}` : ''}\n`);
        return { phase, guest: g };
      }
      if (phase === 'Succeeded') {
        if (attaching) io.stderr.write(`guest ${namespace}/${name} finished before it could be attached; see kratactl logs ${name}\n`);
        return { phase, guest: g };
      }
    }
    throw new AgentError('the node agent closed the watch before the guest ran');
  } catch (err) {
    if (signal.aborted) {
      io.stderr.write('interrupted\n');
      return { phase: 'Interrupted' };
    }
    throw err;
  }
}

/** After the console closed: the process's exit status, once the agent has recorded it (briefly waited for). */
async function reportEnd(client: AgentClient, namespace: string, name: string, io: IO): Promise<number> {
  let last: Guest | undefined;
  try {
    for await (const e of client.watch({ namespace, signal: AbortSignal.timeout(3000) })) {
      if (e.object.metadata.name !== name) continue;
      last = e.object;
      const phase = e.object.status?.phase;
      if (e.type === 'DELETED' || phase === 'Succeeded' || phase === 'Failed' || phase === 'Pending') break;
    }
  } catch {
    // the status is a courtesy; the session itself is over
  }
  const s = last?.status;
  if (s?.exitCode !== undefined) io.stderr.write(`${namespace}/${name} exited with code ${s.exitCode}\n`);
  else if (s?.signal !== undefined) io.stderr.write(`${namespace}/${name} was killed by signal ${s.signal}\n`);
  return s && ((s.exitCode ?? 0) !== 0 || s.signal !== undefined) ? EXIT_FAILED : EXIT_OK;
}

async function remove(client: AgentClient, namespace: string, name: string, io: IO): Promise<void> {
  try {
    await client.delete(namespace, name, { wait: true });
    io.stderr.write(`guest.krata.dev/${name} deleted\n`);
  } catch (err) {
    if (err instanceof AgentError && err.status === 404) return;
    io.stderr.write(`error: could not delete ${namespace}/${name} (--rm): ${(err as Error).message}\n`);
  }
}
