// kratactl delete guest NAME... | -f FILE: stop and remove Guests (shutdown, grace period, destroy).
import type { AgentError } from '../agent-client.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { formatProblem, loadManifests } from '../manifests.js';
import { objectName } from '../output.js';
import { isPullSecretName } from '../../contracts/agent-api/pull-secret.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient, agentFailure, namespaceOf } from './common.js';
import { parseObjectRefs } from '../object-refs.js';
import { printFailure, queryObjects } from '../object-query.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';

export const DELETE_HELP = `Delete Guests: their process is asked to stop, then the domain is destroyed after the grace period.
Image pull Secrets of a single host are deleted by name or from their manifests.

Usage:
  kratactl delete guest NAME... [options]
  kratactl delete guestset|gs NAME... [options]   (the set's Guests are deleted with it)
  kratactl delete TYPE/NAME... [options]          (guest/web gs/api)
  kratactl delete TYPE --all | -l SELECTOR [options]
  kratactl delete secret NAME... [options]
  kratactl delete -f PATH [-f PATH...] [options]

  -f, --filename PATH     delete the Guests and Secrets a manifest describes (a file, a directory, or -)
  -R, --recursive         also read subdirectories of directories
      --all               every object of the type in the namespace (names already gone are fine)
  -l, --selector SEL      the objects whose labels match (as kratactl get)
      --field-selector S  the objects whose fields match (as kratactl get)
  -A, --all-namespaces    with --all or a selector: in every namespace
      --ignore-not-found  a name that is not there is not an error
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
  all: { type: 'boolean' },
  'ignore-not-found': { type: 'boolean' },
  selector: { type: 'string', short: 'l' },
  'field-selector': { type: 'string' },
  'all-namespaces': { type: 'boolean', short: 'A' },
} as const satisfies FlagSpecs;

export async function del(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, DELETE_OPTIONS);
  const grace = values['grace-period'];
  if (grace !== undefined && !/^\d{1,5}$/.test(grace))
    throw new UsageError(`--grace-period takes a whole number of seconds, not "${grace}"`);
  const namespace = namespaceOf(values);
  const targets: { namespace: string; name: string }[] = [];
  const secrets: { namespace: string; name: string }[] = [];
  const missing: string[] = [];
  const selecting = values.all === true || values.selector !== undefined || values['field-selector'] !== undefined;
  const sets: { namespace: string; name: string }[] = [];
  if (values.filename?.length) {
    if (positionals.length || selecting) throw new UsageError('give either -f PATH or guest NAME..., not both');
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
  } else if (positionals.length === 0 && !selecting) {
    throw new UsageError('delete needs guest NAME..., TYPE/NAME..., TYPE --all, TYPE -l SELECTOR or -f PATH');
  } else {
    const refs = parseObjectRefs(positionals, 'delete', 'Guest');
    if (refs.kinds.length && !selecting) throw new UsageError('resource(s) were provided, but no name was specified');
    if (refs.named.length && values.all) throw new UsageError('--all cannot be given with names');
    const client = agentClient(values, io);
    try {
      const found = await queryObjects(client, refs, {
        namespace,
        allNamespaces: values['all-namespaces'] === true,
        selector: values.selector,
        fieldSelector: values['field-selector'],
      });
      // kubectl ignores names already gone with --all, and wherever --ignore-not-found says so.
      if (!(values['ignore-not-found'] ?? values.all)) for (const m of found.missing) missing.push(m.message);
      for (const o of found.objects) {
        const t = { namespace: o.metadata.namespace ?? namespace, name: o.metadata.name };
        (o.kind === 'GuestSet' ? sets : targets).push(t);
      }
      if (selecting && found.objects.length === 0) io.stdout.write('No resources found\n');
    } catch (err) {
      return printFailure(io, err);
    }
  }

  const client = agentClient(values, io);
  let status = EXIT_OK;
  for (const m of missing) {
    io.stderr.write(`error: ${m}\n`);
    status = EXIT_FAILED;
  }
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
      if (values['ignore-not-found'] && (err as AgentError).status === 404) continue;
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
      if (values['ignore-not-found'] && (err as AgentError).status === 404) continue;
      status = agentFailure(io, err);
      if ((err as AgentError).status === undefined) break; // the agent is unreachable: the rest would fail alike
    }
  }
  return status;
}
