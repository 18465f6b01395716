// GuestSets in a cluster: the shared controller (workloads/guestset/) on a work queue, fed by a GuestSet
// informer and by the Guest informer (a change of a Guest queues the set that controls it). Every
// replica keeps the informer warm; only the leader reconciles, from the moment it leads.
import type { Guest, GuestSet } from '../crds/generated/types.js';
import { systemClock } from '../lib/clock.js';
import { WorkQueue } from '../lib/work-queue.js';
import { GuestSetController, setKeyOf } from '../workloads/guestset/controller.js';
import { KubeGuestSetClient } from './guestset-client.js';
import type { KubeClient } from './kube/client.js';
import { keyOf, type Informer } from './kube/informer.js';

export class ClusterGuestSets {
  readonly queue: WorkQueue;
  private leading = false;

  constructor(
    kube: KubeClient,
    readonly sets: Informer<GuestSet>,
    guests: Informer<Guest>,
    opts: { workers: number; log: (msg: string, err?: unknown) => void },
  ) {
    const controller = new GuestSetController(new KubeGuestSetClient(kube, () => sets.list()), { now: () => Date.now() });
    this.queue = new WorkQueue(
      async (key) => {
        const [namespace, name] = key.split('/') as [string, string];
        return controller.reconcile(namespace, name);
      },
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
    await this.sets.synced();
    this.leading = true;
    for (const s of this.sets.list()) this.queue.add(keyOf(s));
  }

  async stop(): Promise<void> {
    this.leading = false;
    this.queue.stop();
    await this.sets.stop();
  }
}
