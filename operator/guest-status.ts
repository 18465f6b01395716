// A Guest's status as the operator writes it: the agent's report for the Guest's current uid on its
// host, plus what only the operator knows (placement, the host's health), shaped for GitOps tools:
// observedGeneration, and Ready / Reconciling / Stalled conditions that Flux's kstatus reads, as do
// krata's Argo CD health scripts (manifests/gitops/argocd/; Argo CD has none of its own for them).
// Pure, so the same inputs give the same status and unchanged status is no write.
import { isDeepStrictEqual } from 'node:util';
import type { StatusReport } from '../contracts/redis/contract.js';
import type { Condition, Guest, GuestStatus } from '../crds/generated/types.js';
import { POLICY_REASONS } from './placement.js';

export interface StatusInputs {
  guest: Guest;
  /** The host the Guest is placed on, if any. */
  node?: string;
  /** Why it is not placed. */
  unschedulable?: { reason: string; message: string };
  /** The agent's latest report from `node` for this Guest (any uid; checked here). */
  report?: StatusReport;
  /** Whether `node`'s agent is reporting (heartbeat current). */
  hostReady: boolean;
  now: string;
}

function setCondition(list: Condition[], old: Condition[] | undefined, c: Omit<Condition, 'lastTransitionTime'>, now: string): void {
  const prev = old?.find((o) => o.type === c.type);
  const next: Condition = { ...c, lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : now };
  const i = list.findIndex((o) => o.type === c.type);
  if (i >= 0) list[i] = next;
  else list.push(next);
}

export function deriveStatus(inp: StatusInputs): GuestStatus {
  const { guest, node, now } = inp;
  const generation = guest.metadata.generation ?? 1;
  const old = guest.status?.conditions;
  const report = inp.report && inp.report.uid === guest.metadata.uid && inp.report.status ? inp.report.status : undefined;
  const s: GuestStatus = report ? structuredClone(report) : { phase: 'Pending', observedGeneration: generation };
  delete s.node;
  if (node) s.node = node;
  const conditions: Condition[] = [];
  // The agent's lastTransitionTimes come from its clock; the operator's own conditions keep theirs.
  if (node)
    setCondition(
      conditions,
      old,
      { type: 'Scheduled', status: 'True', observedGeneration: generation, reason: 'Scheduled', message: `placed on ${node}` },
      now,
    );
  else if (inp.unschedulable)
    setCondition(
      conditions,
      old,
      {
        type: 'Scheduled',
        status: 'False',
        observedGeneration: generation,
        reason: inp.unschedulable.reason,
        message: inp.unschedulable.message,
      },
      now,
    );
  for (const c of report?.conditions ?? []) conditions.push({ ...c });
  const cond = (type: string, status: Condition['status'], reason: string, message: string) =>
    setCondition(conditions, old, { type, status, observedGeneration: generation, reason, message }, now);

  if (!node) {
    s.phase = 'Pending';
    s.observedGeneration = generation;
    const why = inp.unschedulable ?? { reason: 'Pending', message: 'waiting for placement' };
    cond('Ready', 'False', why.reason, why.message);
    cond('Reconciling', 'True', why.reason, why.message);
    // Refused by the admins' policy (a host port, nodeName): waiting will not help, a change will.
    const refused = POLICY_REASONS.has(why.reason);
    cond('Stalled', refused ? 'True' : 'False', why.reason, refused ? why.message : '');
  } else if (!inp.hostReady && s.phase !== 'Succeeded' && s.phase !== 'Failed') {
    s.phase = 'Unknown';
    cond('Ready', 'Unknown', 'NodeNotReady', `the node agent on ${node} is not reporting`);
    cond('Reconciling', 'True', 'NodeNotReady', `waiting for ${node}`);
  } else if (!report) {
    s.phase = guest.metadata.deletionTimestamp ? 'Terminating' : 'Pending';
    s.observedGeneration = guest.status?.observedGeneration ?? 0;
    cond('Ready', 'False', 'WaitingForHost', `waiting for the node agent on ${node}`);
    cond('Reconciling', 'True', 'WaitingForHost', `waiting for the node agent on ${node}`);
  } else if ((report.observedGeneration ?? 0) < generation) {
    // The agent has not acted on this generation yet: kstatus must not call the old state current.
    cond(
      'Reconciling',
      'True',
      'Progressing',
      `the node agent has generation ${report.observedGeneration ?? 0}, the spec is at ${generation}`,
    );
  }
  // Reconciling and Stalled are abnormal-true conditions (kstatus): absent means False, and leaving the
  // False ones out keeps every Guest object smaller for the API server, etcd and every watcher.
  s.conditions = conditions.filter((c) => c.status !== 'False' || (c.type !== 'Reconciling' && c.type !== 'Stalled'));
  // A message that says something, even where the agent had nothing to add.
  for (const c of s.conditions) if (!c.message) c.message = c.reason;
  return s;
}

/** Whether writing `next` over `current` would change anything. */
export function statusChanged(current: GuestStatus | undefined, next: GuestStatus): boolean {
  return !isDeepStrictEqual(JSON.parse(JSON.stringify(current ?? {})), JSON.parse(JSON.stringify(next)));
}
