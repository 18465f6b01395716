// The GuestSet controller, one implementation for both modes: the node agent runs it over its store
// (single host), the operator over the Kubernetes API (cluster). `reconcile` is level-triggered: it
// reads the set and the Guests it owns, asks the planner what to create and delete, does it, and writes
// the set's status. Callers run it again on any change of the set or its Guests, and at `requeueAfterMs`.
//
// Membership is ownership: a set's Guests are those whose controller ownerReference names its uid. A
// Guest that matches the selector but has no owner is not adopted (nor counted, nor deleted): adopting
// silently would let a set delete a Guest someone created by hand. A Guest the set owns whose labels
// no longer match is still the set's, so a label edit never makes it start a replacement behind its back.
import type { Condition, Guest, GuestSet, GuestSetStatus } from '../../crds/generated/types.js';
import { GuestAPIVersion, GuestSetAPIVersion } from '../../crds/generated/types.js';
import type { OwnerReference } from '../../crds/meta.js';
import { metaTime } from '../../crds/meta.js';
import { selectorString } from '../../crds/label-selector.js';
import { formatPath, validateObject } from '../../crds/validate.js';
import { planRollout, type Counts, type Member } from './planner.js';
import { templateHash } from './revision.js';

/** The label naming a Guest's set (a Guest's set is also its controller ownerReference). */
export const SET_LABEL = 'krata.dev/guestset';
/** The label holding the template hash a Guest was made from. */
export const HASH_LABEL = 'krata.dev/template-hash';

/** What the controller needs of where the objects live: the agent's store, or the Kubernetes API. */
export interface GuestSetClient {
  getSet(namespace: string, name: string): Promise<GuestSet | undefined>;
  listSets(): Promise<GuestSet[]>;
  /** The Guests whose controller ownerReference is this set (`isOwnedBy`), deleting ones included. */
  listGuests(set: GuestSet): Promise<Guest[]>;
  /** Creates a Guest; rejects when the name is taken or the Guest is refused. */
  createGuest(guest: Guest): Promise<void>;
  deleteGuest(namespace: string, name: string): Promise<void>;
  writeStatus(set: GuestSet, status: GuestSetStatus): Promise<void>;
}

export interface ControllerOptions {
  now: () => number;
  /** A number in [0, 1): the Guests' name suffixes (tests make them predictable). */
  random?: () => number;
  /** How soon to try again after a Guest could not be created (default 10 s). */
  retryMs?: number;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** The set's controller ownerReference on `guest`, if it has one. */
export function controllerOf(guest: Guest): OwnerReference | undefined {
  return guest.metadata.ownerReferences?.find((r) => r.controller === true);
}

export function isOwnedBy(guest: Guest, set: GuestSet): boolean {
  const owner = controllerOf(guest);
  return owner?.kind === 'GuestSet' && owner.uid === set.metadata.uid;
}

/** namespace/name of the set that controls a Guest, for requeueing the set when the Guest changes. */
export function setKeyOf(guest: Guest): string | undefined {
  const owner = controllerOf(guest);
  return owner?.kind === 'GuestSet' ? `${guest.metadata.namespace ?? 'default'}/${owner.name}` : undefined;
}

// As Kubernetes' generateName: consonants and digits that spell no words.
const ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export class GuestSetController {
  constructor(
    private readonly client: GuestSetClient,
    private readonly opts: ControllerOptions,
  ) {}

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const set = await this.client.getSet(namespace, name);
    if (!set || set.metadata.deletionTimestamp) return {}; // its Guests go with it (ownerReferences)
    const now = this.opts.now();
    const invalid = validateObject(stripStatus(set)).errors;
    if (invalid.length) {
      const message = invalid.map((e) => `${formatPath(e.path)}: ${e.message}`).join('; ');
      await this.writeStatus(set, { ...(set.status ?? {}) }, { stalled: { reason: 'InvalidSpec', message } }, now);
      return {};
    }
    const revision = templateHash(set.spec.template);
    const guests = await this.client.listGuests(set);
    const planFor = (members: Guest[]) =>
      planRollout({
        replicas: set.spec.replicas,
        strategy: set.spec.strategy,
        minReadySeconds: set.spec.minReadySeconds,
        updateRevision: revision,
        members: members.map(member),
        now,
      });
    const plan = planFor(guests);
    const failures: string[] = [];
    for (const victim of plan.delete) {
      try {
        await this.client.deleteGuest(namespace, victim);
      } catch (e) {
        failures.push(`deleting guest ${victim}: ${(e as Error).message}`);
      }
    }
    const taken = new Set(guests.map((g) => g.metadata.name));
    for (let i = 0; i < plan.create; i++) {
      const guest = this.newGuest(set, revision, taken);
      try {
        await this.client.createGuest(guest);
      } catch (e) {
        failures.push(`creating guest ${guest.metadata.name}: ${(e as Error).message}`);
        break; // the rest would fail alike; try again later
      }
    }
    // The status describes the Guests as they are after this round's creations and deletions.
    const counts = plan.create || plan.delete.length ? planFor(await this.client.listGuests(set)).counts : plan.counts;
    const status: GuestSetStatus = {
      observedGeneration: set.metadata.generation ?? 1,
      replicas: counts.replicas,
      readyReplicas: counts.ready,
      updatedReplicas: counts.updated,
      availableReplicas: counts.available,
      selector: selectorString(set.spec.selector),
      updateRevision: revision,
    };
    const stalled = failures.length ? { reason: 'GuestCreateFailed', message: failures.join('; ').slice(0, 4096) } : undefined;
    await this.writeStatus(set, status, { counts, ...(stalled ? { stalled } : {}) }, now);
    const waits = [
      ...(plan.recheckAt !== undefined ? [Math.max(1, plan.recheckAt - now)] : []),
      ...(failures.length ? [this.opts.retryMs ?? 10_000] : []),
    ];
    return waits.length ? { requeueAfterMs: Math.min(...waits) } : {};
  }

  private newGuest(set: GuestSet, revision: string, taken: Set<string>): Guest {
    const { namespace = 'default', name, uid } = set.metadata;
    // A Guest's name is a DNS label of at most 63 characters: the set's name is cut to leave room.
    const base = name.slice(0, 57).replace(/-+$/, '');
    let guestName: string;
    do guestName = `${base}-${this.suffix()}`;
    while (taken.has(guestName));
    taken.add(guestName);
    const tpl = set.spec.template;
    return {
      apiVersion: GuestAPIVersion,
      kind: 'Guest',
      metadata: {
        name: guestName,
        namespace,
        labels: { ...(tpl.metadata?.labels ?? {}), [SET_LABEL]: name, [HASH_LABEL]: revision },
        ...(tpl.metadata?.annotations ? { annotations: { ...tpl.metadata.annotations } } : {}),
        ownerReferences: [
          { apiVersion: GuestSetAPIVersion, kind: 'GuestSet', name, uid: uid ?? '', controller: true, blockOwnerDeletion: true },
        ],
      },
      spec: structuredClone(tpl.spec),
    };
  }

  private suffix(): string {
    const random = this.opts.random ?? Math.random;
    let s = '';
    for (let i = 0; i < 5; i++) s += ALPHABET[Math.floor(random() * ALPHABET.length) % ALPHABET.length];
    return s;
  }

  /** Writes status with kstatus conditions, keeping each condition's lastTransitionTime while its status holds. */
  private async writeStatus(
    set: GuestSet,
    status: GuestSetStatus,
    why: { counts?: Counts; stalled?: { reason: string; message: string } },
    now: number,
  ): Promise<void> {
    const generation = set.metadata.generation ?? 1;
    const conditions = setConditions(set.spec.replicas, why.counts, why.stalled).map((c): Condition => ({
      ...c,
      observedGeneration: generation,
      lastTransitionTime: metaTime(now),
    }));
    const previous = set.status?.conditions ?? [];
    const next: GuestSetStatus = {
      ...status,
      observedGeneration: generation,
      conditions: conditions.map((c) => {
        const old = previous.find((p) => p.type === c.type);
        return old && old.status === c.status ? { ...c, lastTransitionTime: old.lastTransitionTime } : c;
      }),
    };
    if (JSON.stringify(next) === JSON.stringify(set.status ?? {})) return;
    await this.client.writeStatus(set, next);
  }
}

type ConditionCore = Pick<Condition, 'type' | 'status' | 'reason' | 'message'>;

/**
 * Ready, Reconciling and Stalled as kstatus reads them: done (Ready=True, Reconciling=False) when every
 * replica is of the current template and available and no other Guest is left; Stalled when the set
 * cannot make progress without a change (an invalid spec, Guests that cannot be created).
 */
export function setConditions(
  replicas: number,
  counts: Counts | undefined,
  stalled?: { reason: string; message: string },
): ConditionCore[] {
  if (!counts) {
    const { reason, message } = stalled!;
    return [
      { type: 'Ready', status: 'False', reason, message },
      { type: 'Reconciling', status: 'False', reason, message },
      { type: 'Stalled', status: 'True', reason, message },
    ];
  }
  const c = counts;
  const progress = `${c.updated} of ${replicas} updated, ${c.available} available, ${c.replicas} in all`;
  let reason: string | undefined;
  if (c.old > 0) reason = 'RollingUpdate';
  else if (c.replicas < replicas) reason = 'ScalingUp';
  else if (c.replicas > replicas) reason = 'ScalingDown';
  else if (c.available < replicas) reason = 'WaitingForAvailable';
  const done = reason === undefined;
  return [
    done
      ? { type: 'Ready', status: 'True', reason: 'Available', message: `${replicas} of ${replicas} replicas updated and available` }
      : { type: 'Ready', status: 'False', reason: reason!, message: progress },
    done
      ? { type: 'Reconciling', status: 'False', reason: 'Complete', message: progress }
      : { type: 'Reconciling', status: 'True', reason: reason!, message: progress },
    stalled
      ? { type: 'Stalled', status: 'True', reason: stalled.reason, message: stalled.message }
      : { type: 'Stalled', status: 'False', reason: 'Progressing', message: 'no errors' },
  ];
}

function member(g: Guest): Member {
  const ready = g.status?.conditions?.find((c) => c.type === 'Ready');
  const since = ready?.status === 'True' ? Date.parse(ready.lastTransitionTime) : NaN;
  return {
    name: g.metadata.name,
    revision: g.metadata.labels?.[HASH_LABEL] ?? '',
    ready: ready?.status === 'True',
    ...(Number.isNaN(since) ? {} : { readySince: since }),
    created: Date.parse(g.metadata.creationTimestamp ?? '') || 0,
    deleting: g.metadata.deletionTimestamp !== undefined,
  };
}

/** The set as its author wrote it (the validator checks what a user may write; status is the controller's). */
function stripStatus(set: GuestSet): GuestSet {
  const { status: _status, ...rest } = set;
  return rest as GuestSet;
}
