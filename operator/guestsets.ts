// GuestSets in a cluster: the shared controller (workloads/guestset/) on a work queue, fed by a GuestSet
// informer and by the Guest informer (a change of a Guest queues the set that controls it). Every
// replica keeps the informer warm; only the leader reconciles, from the moment it leads. Guests whose
// set is gone are deleted here too: Kubernetes' garbage collector does it where kube-controller-manager
// runs, and this does not depend on it (an API server alone, as in the tests, has none).
import type { Guest, GuestSet } from '../crds/generated/types.js';
import { systemClock } from '../lib/clock.js';
import { WorkQueue } from '../lib/work-queue.js';
import { timed, type ReconcileObserver } from '../lib/reconcile-metrics.js';
import { controllerOf, GuestSetController, setKeyOf } from '../workloads/guestset/controller.js';
import { KubeGuestSetClient } from './guestset-client.js';
import type { KubeClient } from './kube/client.js';
import { keyOf, type Informer } from './kube/informer.js';

export class ClusterGuestSets {
  readonly queue: WorkQueue;
  private leading = false;

  constructor(
    kube: KubeClient,
    readonly sets: Informer<GuestSet>,
    private readonly guests: Informer<Guest>,
    opts: { workers: number; log: (msg: string, err?: unknown) => void; observe?: ReconcileObserver },
  ) {
    const client = new KubeGuestSetClient(kube, () => sets.list());
    const controller = new GuestSetController(client, { now: () => Date.now() });
    this.queue = new WorkQueue(
      timed(async (key) => {
        const [namespace, name] = key.split('/') as [string, string];
        const result = await controller.reconcile(namespace, name);
        // The Guests a deleted set (or an earlier set of this name) controlled.
        const live = await client.getSet(namespace, name);
        for (const g of guests.list()) {
          if (setKeyOf(g) !== key || g.metadata.deletionTimestamp) continue;
          if (live && !live.metadata.deletionTimestamp && controllerOf(g)?.uid === live.metadata.uid) continue;
          await client.deleteGuest(namespace, g.metadata.name);
        }
        return result;
      }, opts.observe),
      { concurrency: opts.workers, clock: systemClock },
      (key, err, retryInMs) => opts.log(`guestset ${key}: reconcile failed, retrying in ${retryInMs} ms`, err),
    );
    const onSet = (s: GuestSet) => this.enqueue(keyOf(s));
    for (const ev of ['add', 'update', 'resync', 'delete'] as const) sets.on(ev, onSet);
    const onGuest = (g: Guest) => {
      const key = setKeyOf(g);
      if (key) this.enqueue(key);
    };
    for (const ev of ['add', 'update', 'delete'] as const) guests.on(ev, onGuest);
  }

  private enqueue(key: string): void {
    if (this.leading) this.queue.add(key);
  }

  start(): void {
    this.sets.start();
  }

  /** From now on this replica reconciles: every known set is queued. */
  async lead(): Promise<void> {
    await Promise.all([this.sets.synced(), this.guests.synced()]);
    this.leading = true;
    for (const s of this.sets.list()) this.queue.add(keyOf(s));
    // Sets deleted while no replica led: their Guests name them.
    for (const g of this.guests.list()) {
      const key = setKeyOf(g);
      if (key) this.queue.add(key);
    }
  }

  async stop(): Promise<void> {
    this.leading = false;
    this.queue.stop();
    await this.sets.stop();
  }
}
