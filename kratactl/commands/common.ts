// What the commands that talk to the node agent share: the --agent and -n options, guest kind names,
// kubectl-style tables and ages, and how an agent's refusal is printed.
import type { Guest, GuestSet } from '../../crds/generated/types.js';
import { resolveKind } from '../../crds/kinds.js';
import { AgentClient, AgentError, agentSocket } from '../agent-client.js';
import { DEFAULT_AGENT_SOCKET } from '../../contracts/agent-api/endpoints.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { DEFAULT_NAMESPACE } from '../../crds/meta.js';
import { humanDuration } from '../../lib/table.js';

export { formatTable, humanDuration } from '../../lib/table.js';

export const AGENT_OPTIONS = {
  agent: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
} as const;

export const AGENT_HELP = `  -n, --namespace NS    the guests' namespace (default "${DEFAULT_NAMESPACE}")
      --agent SOCKET    node agent socket (default $KRATA_AGENT_SOCKET or ${DEFAULT_AGENT_SOCKET})`;

export function agentClient(values: { agent?: string }, io: IO): AgentClient {
  return new AgentClient(agentSocket(values, io.env));
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isDnsLabel(s: string): boolean {
  return s.length <= 63 && DNS_LABEL.test(s);
}

export function namespaceOf(values: { namespace?: string }): string {
  const ns = values.namespace ?? DEFAULT_NAMESPACE;
  if (!isDnsLabel(ns)) throw new UsageError(`--namespace "${ns}" is not a valid namespace name (a DNS label)`);
  return ns;
}

export function checkGuestName(name: string): string {
  if (!isDnsLabel(name))
    throw new UsageError(`"${name}" is not a valid guest name (a DNS label: lowercase letters, digits and "-", at most 63 characters)`);
  return name;
}

/** guest, guests, gst, Guest, guests.krata.dev: the words kubectl would accept for the kind. */
export function isGuestKind(word: string): boolean {
  return resolveKind(word)?.kind === 'Guest';
}

/** guestset, guestsets, gs, GuestSet, guestsets.krata.dev. */
export function isGuestSetKind(word: string): boolean {
  return resolveKind(word)?.kind === 'GuestSet';
}

/** gs/NAME or guestset/NAME (kubectl's TYPE/NAME form), or undefined for another word. */
export function guestSetRef(word: string): string | undefined {
  const slash = word.indexOf('/');
  return slash > 0 && isGuestSetKind(word.slice(0, slash)) ? word.slice(slash + 1) : undefined;
}

/** NAME READY UP-TO-DATE AVAILABLE AGE (wide: IMAGE SELECTOR), as kubectl prints Deployments. */
export function guestSetHeader(wide: boolean, allNamespaces: boolean): string[] {
  return [
    ...(allNamespaces ? ['NAMESPACE'] : []),
    'NAME',
    'READY',
    'UP-TO-DATE',
    'AVAILABLE',
    'AGE',
    ...(wide ? ['IMAGE', 'SELECTOR'] : []),
  ];
}

export function guestSetRow(s: GuestSet, wide: boolean, allNamespaces: boolean, now = Date.now()): string[] {
  const st = s.status ?? {};
  return [
    ...(allNamespaces ? [s.metadata.namespace ?? DEFAULT_NAMESPACE] : []),
    s.metadata.name,
    `${st.readyReplicas ?? 0}/${s.spec.replicas}`,
    String(st.updatedReplicas ?? 0),
    String(st.availableReplicas ?? 0),
    age(s.metadata.creationTimestamp, now),
    ...(wide ? [s.spec.template.spec.image, st.selector ?? '<none>'] : []),
  ];
}

/** Refuses kinds the node agent does not serve by name (XenHosts live in the cluster). */
export function checkKindWord(word: string, command: string): void {
  const kind = resolveKind(word);
  if (kind && kind.kind !== 'Guest' && kind.kind !== 'GuestSet')
    throw new UsageError(
      `${command}: the node agent serves Guests and GuestSets; ${kind.kind} objects live in the cluster (try kratactl host status)`,
    );
}

export function age(timestamp: string | undefined, now = Date.now()): string {
  const t = timestamp ? Date.parse(timestamp) : NaN;
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now - t);
}

/** NAME PHASE READY RESTARTS IP AGE (wide: DOMID NODE IMAGE), with NAMESPACE first for -A. */
export function guestHeader(wide: boolean, allNamespaces: boolean): string[] {
  return [
    ...(allNamespaces ? ['NAMESPACE'] : []),
    'NAME',
    'PHASE',
    'READY',
    'RESTARTS',
    'IP',
    'AGE',
    ...(wide ? ['DOMID', 'NODE', 'IMAGE'] : []),
  ];
}

export function guestRow(g: Guest, wide: boolean, allNamespaces: boolean, now = Date.now()): string[] {
  const s = g.status ?? {};
  const ready = s.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? '1/1' : '0/1';
  const phase = g.metadata.deletionTimestamp && s.phase !== 'Terminating' ? 'Terminating' : (s.phase ?? 'Pending');
  return [
    ...(allNamespaces ? [g.metadata.namespace ?? DEFAULT_NAMESPACE] : []),
    g.metadata.name,
    phase,
    ready,
    String(s.restartCount ?? 0),
    s.addresses?.ipv4 ?? '<none>',
    age(g.metadata.creationTimestamp, now),
    ...(wide ? [s.domid === undefined ? '<none>' : String(s.domid), s.node ?? '<none>', g.spec.image] : []),
  ];
}

/** Prints an agent's refusal (with its field errors) and returns the failed-request status; rethrows anything else. */
export function agentFailure(io: IO, err: unknown): number {
  if (!(err instanceof AgentError)) throw err;
  io.stderr.write(`error: ${err.message}\n`);
  for (const d of err.details)
    io.stderr.write(`  ${d.index !== undefined ? `[${d.index}] ` : ''}${d.path ? d.path + ': ' : ''}${d.message}\n`);
  return EXIT_FAILED;
}

/** Calls `fn` on SIGINT or SIGTERM instead of dying, so long-running commands can clean up; returns the removal. */
export function onInterrupt(fn: () => void): () => void {
  const handler = () => fn();
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/**
 * Runs a command that goes on until interrupted (`get -w`, `top -w`): `loop` gets a signal that SIGINT or
 * SIGTERM aborts. Ending either way is success; an agent's failure before the interrupt is printed (1).
 */
export async function untilInterrupted(io: IO, loop: (signal: AbortSignal) => Promise<void>): Promise<number> {
  const abort = new AbortController();
  const stopSignals = onInterrupt(() => abort.abort());
  try {
    await loop(abort.signal);
    return EXIT_OK;
  } catch (err) {
    if (abort.signal.aborted) return EXIT_OK;
    return agentFailure(io, err);
  } finally {
    stopSignals();
  }
}
