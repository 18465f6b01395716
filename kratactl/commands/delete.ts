// kratactl delete guest NAME... | -f FILE: stop and remove Guests (shutdown, grace period, destroy).
import type { AgentError } from '../agent-client.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { formatProblem, loadManifests } from '../manifests.js';
import { objectName } from '../output.js';
import { isPullSecretName } from '../../contracts/agent-api/pull-secret.js';
import {
  AGENT_HELP,
  AGENT_OPTIONS,
  agentClient,
  agentFailure,
  checkGuestName,
  checkKindWord,
  isGuestKind,
  isGuestSetKind,
  namespaceOf,
} from './common.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';

export const DELETE_HELP = `Delete Guests: their process is asked to stop, then the domain is destroyed after the grace period.
Image pull Secrets of a single host are deleted by name or from their manifests.

Usage:
  kratactl delete guest NAME... [options]
  kratactl delete guestset|gs NAME... [options]   (the set's Guests are deleted with it)
  kratactl delete secret NAME... [options]
  kratactl delete -f PATH [-f PATH...] [options]

  -f, --filename PATH     delete the Guests and Secrets a manifest describes (a file, a directory, or -)
  -R, --recursive         also read subdirectories of directories
      --wait              return only once each guest's domain and resources are gone
      --grace-period N    seconds between the stop request and destroying the domain
                          (default: the guest's terminationGracePeriodSeconds)
${AGENT_HELP}
`;

/** The flags of `kratactl delete` (completion reads them too). */
export const DELETE_OPTIONS = {
  ...AGENT_OPTIONS,
  filename: { type: 'string', short: 'f', multiple: true },
  recursive: { type: 'boolean', short: 'R' },
  wait: { type: 'boolean' },
  'grace-period': { type: 'string' },
} as const satisfies FlagSpecs;

export async function del(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, DELETE_OPTIONS);
  const grace = values['grace-period'];
  if (grace !== undefined && !/^\d{1,5}$/.test(grace))
    throw new UsageError(`--grace-period takes a whole number of seconds, not "${grace}"`);
  const namespace = namespaceOf(values);
  const targets: { namespace: string; name: string }[] = [];
  const secrets: { namespace: string; name: string }[] = [];
  const sets: { namespace: string; name: string }[] = [];
  if (values.filename?.length) {
    if (positionals.length) throw new UsageError('give either -f PATH or guest NAME..., not both');
    const loaded = await loadManifests(values.filename, {
      recursive: values.recursive,
      namespace: values.namespace,
      stdin: io.stdin,
      secrets: true,
    });
    if (loaded.problems.length) {
      for (const p of loaded.problems) io.stderr.write(formatProblem(p) + '\n');
      io.stderr.write('nothing was deleted\n');
      return EXIT_FAILED;
    }
    for (const { object } of loaded.objects) {
      if (object.kind === 'GuestSet') sets.push({ namespace: object.metadata.namespace ?? namespace, name: object.metadata.name });
      else if (object.kind !== 'Guest')
        io.stderr.write(`warning: skipping ${objectName(object)}: the node agent serves Guests and GuestSets only\n`);
      else targets.push({ namespace: object.metadata.namespace ?? namespace, name: object.metadata.name });
    }
    for (const { object } of loaded.secrets)
      secrets.push({ namespace: object.metadata.namespace ?? namespace, name: object.metadata.name });
  } else if (positionals[0] === 'secret' || positionals[0] === 'secrets') {
    const names = positionals.slice(1);
    if (names.length === 0) throw new UsageError('delete secret needs at least one NAME');
    for (const name of names) {
      if (!isPullSecretName(name)) throw new UsageError(`"${name as string}" is not a Secret name (a DNS subdomain)`);
      secrets.push({ namespace, name });
    }
  } else if (positionals[0] !== undefined && isGuestSetKind(positionals[0])) {
    const names = positionals.slice(1);
    if (names.length === 0) throw new UsageError('delete guestset needs at least one NAME');
    for (const name of names) sets.push({ namespace, name: checkGuestName(name) });
  } else {
    const [kind, ...names] = positionals;
    if (kind === undefined) throw new UsageError('delete needs guest NAME... or -f PATH');
    if (!isGuestKind(kind)) {
      checkKindWord(kind, 'delete');
      throw new UsageError(`delete needs a kind first: kratactl delete guest ${kind}`);
    }
    if (names.length === 0) throw new UsageError('delete guest needs at least one NAME');
    for (const name of names) targets.push({ namespace, name: checkGuestName(name) });
  }

  const client = agentClient(values, io);
  let status = EXIT_OK;
  for (const t of secrets) {
    try {
      await client.deleteSecret(t.namespace, t.name);
      io.stdout.write(`secret/${t.name} deleted\n`);
    } catch (err) {
      status = agentFailure(io, err);
      if ((err as AgentError).status === undefined) return status;
    }
  }
  for (const t of sets) {
    try {
      await client.deleteGuestSet(t.namespace, t.name);
      io.stdout.write(`${objectName({ kind: 'GuestSet', metadata: t })} deleted\n`);
    } catch (err) {
      status = agentFailure(io, err);
      if ((err as AgentError).status === undefined) return status;
    }
  }
  for (const t of targets) {
    try {
      await client.delete(t.namespace, t.name, {
        wait: values.wait,
        ...(grace !== undefined ? { gracePeriodSeconds: Number(grace) } : {}),
      });
      io.stdout.write(`${objectName({ kind: 'Guest', metadata: t })} deleted\n`);
    } catch (err) {
      status = agentFailure(io, err);
      if ((err as AgentError).status === undefined) break; // the agent is unreachable: the rest would fail alike
    }
  }
  return status;
}
