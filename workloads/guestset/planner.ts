// The rollout planner of a GuestSet: given the set's Guests (revision, readiness, age), which to create
// and which to delete now. Pure and level-triggered: the controller calls it on every change and does
// what it says; repeated calls converge. The rules are a Deployment's, applied to single Guests rather
// than ReplicaSets: RollingUpdate keeps at most replicas+maxSurge Guests and at least
// replicas-maxUnavailable available ones; Recreate deletes every old Guest and creates new ones only
// once the old ones are gone.
import type { GuestSetStrategy } from '../../crds/generated/types.js';

export interface Member {
  name: string;
  /** Its template hash (krata.dev/template-hash). */
  revision: string;
  /** Its Ready condition is True. */
  ready: boolean;
  /** Since when it has been Ready (ms); undefined counts as just now. */
  readySince?: number;
  /** Its creation time (ms). */
  created: number;
  /** It is being deleted: not counted, but an old one still holds Recreate back. */
  deleting: boolean;
}

export interface PlanInput {
  replicas: number;
  strategy: GuestSetStrategy;
  minReadySeconds: number;
  /** The hash of the set's current template. */
  updateRevision: string;
  members: Member[];
  now: number;
}

export interface Counts {
  /** Members not being deleted. */
  replicas: number;
  ready: number;
  available: number;
  /** Members of the update revision (not being deleted). */
  updated: number;
  /** Members of an older revision (not being deleted). */
  old: number;
}

export interface Plan {
  /** How many Guests of the update revision to create. */
  create: number;
  /** Guests to delete, by name. */
  delete: string[];
  counts: Counts;
  /** When a Ready Guest becomes available by time alone (minReadySeconds): plan again then (ms). */
  recheckAt?: number;
}

/** A number or a percentage of `total`, as intstr.GetScaledValueFromIntOrPercent. */
export function scaled(value: number | string | undefined, total: number, roundUp: boolean, fallback: string): number {
  const v = value ?? fallback;
  if (typeof v === 'number') return v;
  const pct = Number.parseInt(v, 10);
  const exact = (pct * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

/** maxSurge and maxUnavailable resolved against replicas; both 0 would block, so unavailable becomes 1 (as Deployments). */
export function rollingLimits(strategy: GuestSetStrategy, replicas: number): { surge: number; unavailable: number } {
  const surge = scaled(strategy.rollingUpdate?.maxSurge, replicas, true, '25%');
  let unavailable = Math.min(scaled(strategy.rollingUpdate?.maxUnavailable, replicas, false, '25%'), replicas);
  if (surge === 0 && unavailable === 0) unavailable = 1;
  return { surge, unavailable };
}

/** Scale-down order: not Ready first, then an old revision, then the newest. */
export function deletionOrder(updateRevision: string): (a: Member, b: Member) => number {
  return (a, b) =>
    Number(a.ready) - Number(b.ready) ||
    Number(a.revision === updateRevision) - Number(b.revision === updateRevision) ||
    b.created - a.created ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

export function planRollout(input: PlanInput): Plan {
  const { replicas, updateRevision, now } = input;
  const minReadyMs = input.minReadySeconds * 1000;
  const isAvailable = (m: Member) => m.ready && (minReadyMs === 0 || (m.readySince !== undefined && now - m.readySince >= minReadyMs));
  const live = input.members.filter((m) => !m.deleting);
  const updated = live.filter((m) => m.revision === updateRevision);
  const old = live.filter((m) => m.revision !== updateRevision);
  const available = live.filter(isAvailable);
  const counts: Counts = {
    replicas: live.length,
    ready: live.filter((m) => m.ready).length,
    available: available.length,
    updated: updated.length,
    old: old.length,
  };
  const waiting = live.filter((m) => m.ready && !isAvailable(m) && m.readySince !== undefined).map((m) => m.readySince! + minReadyMs);
  const recheckAt = waiting.length ? Math.min(...waiting) : undefined;
  const plan = (create: number, del: Member[]): Plan => ({
    create: Math.max(0, create),
    delete: del.map((m) => m.name),
    counts,
    ...(recheckAt !== undefined ? { recheckAt } : {}),
  });
  const order = deletionOrder(updateRevision);
  const pick = (from: Member[], n: number) => [...from].sort(order).slice(0, Math.max(0, n));

  // Nothing old: plain scaling of the current revision.
  if (old.length === 0) {
    if (input.strategy.type === 'Recreate' && input.members.some((m) => m.deleting && m.revision !== updateRevision)) {
      return plan(0, pick(updated, updated.length - replicas)); // old Guests still shutting down: wait for them
    }
    return plan(replicas - updated.length, pick(updated, updated.length - replicas));
  }

  if (input.strategy.type === 'Recreate') return plan(0, pick(old, old.length).concat(pick(updated, updated.length)));

  const { surge, unavailable } = rollingLimits(input.strategy, replicas);
  const excessNew = pick(updated, updated.length - replicas);
  const create = Math.min(replicas - updated.length, replicas + surge - live.length);
  // Old Guests go while availability allows: first those not available (deleting them costs nothing),
  // then available ones down to replicas - maxUnavailable.
  const minAvailable = replicas - unavailable;
  const newUnavailable = updated.filter((m) => !isAvailable(m)).length;
  let budget = live.length - excessNew.length - minAvailable - newUnavailable;
  const del: Member[] = [...excessNew];
  if (budget > 0) {
    const unhealthy = pick(
      old.filter((m) => !isAvailable(m)),
      budget,
    );
    del.push(...unhealthy);
    budget -= unhealthy.length;
    const healthyBudget = Math.min(budget, available.filter((m) => !excessNew.includes(m)).length - minAvailable);
    del.push(
      ...pick(
        old.filter((m) => isAvailable(m)),
        healthyBudget,
      ),
    );
  }
  return plan(create, del);
}
