// GuestSets on a single host: the shared controller (workloads/guestset/) run over the agent's stores.
// A set's change or a change of one of its Guests queues the set; deleting a set deletes its Guests
// (as Kubernetes' garbage collector does with ownerReferences), and a Guest whose owning set is gone
// (the agent stopped between the two) is deleted at start.
import type { Guest, GuestSet, GuestSetStatus } from '../../crds/generated/types.js';
import { validateObject } from '../../crds/validate.js';
import type { Clock } from '../../lib/clock.js';
import { timed, type ReconcileObserver } from '../../lib/reconcile-metrics.js';
import { WorkQueue } from '../../lib/work-queue.js';
import type { WatchEvent } from '../../contracts/agent-api/types.js';
import { GuestSetController, controllerOf, isOwnedBy, setKeyOf, type GuestSetClient } from '../../workloads/guestset/controller.js';
import { guestKey, type GuestStore } from '../store/guest-store.js';
import { setKey, type GuestSetStore } from '../store/guestset-store.js';

/** GuestSetClient over the agent's stores. */
export class StoreGuestSetClient implements GuestSetClient {
  constructor(
    private readonly guests: GuestStore,
    private readonly sets: GuestSetStore,
    private readonly clock: Clock,
  ) {}

  async getSet(namespace: string, name: string) {
    return this.sets.get(setKey(namespace, name));
  }

  async listSets() {
    return this.sets.list();
  }

  async listGuests(set: GuestSet) {
    return this.guests.list(set.metadata.namespace ?? 'default').filter((g) => isOwnedBy(g, set));
  }

  async createGuest(guest: Guest) {
    const key = guestKey(guest.metadata.namespace ?? 'default', guest.metadata.name);
    // put() would update a Guest of that name: never take over one the set did not make.
    if (this.guests.get(key)) throw new Error(`guest ${key} already exists`);
    const r = validateObject(guest);
    if (!r.object) throw new Error(r.errors.map((e) => e.message).join('; '));
    this.guests.put(r.object as Guest, new Date(this.clock.now()));
  }

  async deleteGuest(namespace: string, name: string) {
    this.guests.markDeleted(guestKey(namespace, name), new Date(this.clock.now()));
  }

  async writeStatus(set: GuestSet, status: GuestSetStatus) {
    this.sets.setStatus(setKey(set.metadata.namespace ?? 'default', set.metadata.name), status);
  }
}

export class HostGuestSets {
  readonly queue: WorkQueue;
  private readonly controller: GuestSetController;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly guests: GuestStore,
    private readonly sets: GuestSetStore,
    private readonly clock: Clock,
    onError: (key: string, err: unknown) => void = () => undefined,
    observe?: ReconcileObserver,
  ) {
    this.controller = new GuestSetController(new StoreGuestSetClient(guests, sets, clock), { now: () => clock.now() });
    this.queue = new WorkQueue(
      timed(async (key) => {
        const [namespace, name] = key.split('/') as [string, string];
        return this.controller.reconcile(namespace, name);
      }, observe),
      { concurrency: 1, clock },
      onError,
    );
  }

  start(): void {
    const onSet = (key: string) => {
      if (!this.sets.get(key)) this.collectGarbage();
      this.queue.add(key);
    };
    const onGuest = (e: WatchEvent) => {
      const key = setKeyOf(e.object);
      if (key && this.sets.get(key)) this.queue.add(key);
    };
    this.sets.on('change', onSet);
    this.guests.on('change', onGuest);
    this.unsubscribe.push(
      () => this.sets.off('change', onSet),
      () => this.guests.off('change', onGuest),
    );
    this.collectGarbage();
    for (const s of this.sets.list()) this.queue.add(setKey(s.metadata.namespace ?? 'default', s.metadata.name));
  }

  stop(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    this.queue.stop();
  }

  /** Deletes the Guests whose controlling GuestSet no longer exists (same name and uid). */
  collectGarbage(): void {
    const now = new Date(this.clock.now());
    for (const g of this.guests.list()) {
      const owner = controllerOf(g);
      if (owner?.kind !== 'GuestSet' || g.metadata.deletionTimestamp) continue;
      const set = this.sets.get(setKey(g.metadata.namespace ?? 'default', owner.name));
      if (set?.metadata.uid !== owner.uid) this.guests.markDeleted(guestKey(g.metadata.namespace ?? 'default', g.metadata.name), now);
    }
  }
}
