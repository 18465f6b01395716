// The operator: informers (on every replica, so a new leader starts warm), and, on the leader only,
// what leader.ts makes (Redis, the Guest controller, the host tracker, status reports, the publisher),
// started in order and polled while it leads.
import type { Guest, XenHost } from '../crds/generated/types.js';
import type { GuestController } from './guest-controller.js';
import type { HostTracker } from './host-tracker.js';
import type { KubeClient } from './kube/client.js';
import { Informer, keyOf } from './kube/informer.js';
import type { LeaderParts, StartLeading } from './leader.js';

export interface OperatorOptions {
  /** Heartbeat poll and epoch check period. */
  pollMs?: number;
  log: (msg: string, err?: unknown) => void;
}

export class Operator {
  controller?: GuestController;
  tracker?: HostTracker;
  private leading = false;
  private readonly held = new Set<string>();
  private parts?: LeaderParts;
  private timer?: NodeJS.Timeout;

  /**
   * `guests` and `hosts` watch the Guests and XenHosts of `kube`; `startLeading` makes what the leader
   * runs (operator/container/modules.ts binds all three).
   */
  constructor(
    readonly kube: KubeClient,
    readonly guests: Informer<Guest>,
    readonly hosts: Informer<XenHost>,
    private readonly startLeading: StartLeading,
    private readonly opts: OperatorOptions,
  ) {
    const onGuest = (g: Guest) => {
      this.controller?.track(g, keyOf(g));
      this.enqueue(keyOf(g));
    };
    for (const ev of ['add', 'update', 'resync'] as const) this.guests.on(ev, onGuest);
    this.guests.on('delete', (g: Guest) => this.enqueue(keyOf(g)));
    const onHost = (h: XenHost) => this.controller?.enqueueForHost(h.metadata.name);
    for (const ev of ['add', 'update', 'delete'] as const) this.hosts.on(ev, onHost);
  }

  /** Keys that change while a new leader starts are held, not lost (a Guest deleted meanwhile included). */
  private enqueue(key: string): void {
    if (this.controller) this.controller.queue.add(key);
    else if (this.leading) this.held.add(key);
  }

  /** Informers only: what every replica runs. */
  async start(): Promise<void> {
    this.guests.start();
    this.hosts.start();
  }

  get synced(): Promise<void> {
    return Promise.all([this.guests.synced(), this.hosts.synced()]).then(() => undefined);
  }

  get isLeading(): boolean {
    return this.leading;
  }

  /** Called when this replica becomes leader. */
  async lead(): Promise<void> {
    this.leading = true;
    await this.synced;
    const { log } = this.opts;
    const hooks = { enqueue: (key: string) => this.enqueue(key), enqueueForHost: (name: string) => this.controller?.enqueueForHost(name) };
    this.parts = this.startLeading(hooks);
    const { publisher, reports, tracker, controller } = this.parts;
    this.tracker = tracker;
    for (const g of this.guests.list()) controller.track(g, keyOf(g));
    await tracker.poll();
    const hostNames = () => [...new Set([...this.hosts.list().map((h) => h.metadata.name), ...publisher.hosts()])];
    await reports.load(hostNames());
    await publisher.republish(() => controller.desiredState(), hostNames());
    reports.start(hostNames);
    this.controller = controller;
    for (const g of this.guests.list()) controller.queue.add(keyOf(g));
    for (const key of this.held) controller.queue.add(key);
    this.held.clear();
    this.parts.endpoints.start().catch((e: unknown) => log('endpoint slices did not start', e));
    log(`leading: ${this.guests.list().length} guests, ${this.hosts.list().length} hosts, epoch ${publisher.epoch}`);

    const poll = async () => {
      try {
        await tracker.poll();
        // Redis restarted empty (or was flushed): Kubernetes is the source of truth, publish it again.
        if (await publisher.epochLost()) {
          log('the Redis epoch is gone (Redis lost its data): republishing every host from Kubernetes');
          await publisher.republish(() => controller.desiredState(), hostNames());
        }
      } catch (e) {
        log('host poll failed', e);
      }
      if (this.leading) this.timer = setTimeout(poll, this.opts.pollMs ?? 5000);
    };
    this.timer = setTimeout(poll, this.opts.pollMs ?? 5000);
  }

  async stop(): Promise<void> {
    this.leading = false;
    clearTimeout(this.timer);
    this.controller?.queue.stop();
    await Promise.race([this.controller?.queue.idle(), new Promise((r) => setTimeout(r, 5000))]);
    await Promise.all([this.guests.stop(), this.hosts.stop()]);
    await this.parts?.endpoints.stop();
    await this.parts?.reports.stop();
    await this.parts?.publisher.close().catch(() => undefined);
    this.parts?.disconnect();
  }
}
