// The operator: informers (on every replica, so a new leader starts warm), and, on the leader only,
// the Guest controller, the host tracker, the status follower and the Redis publisher.
import { Redis, type RedisOptions } from 'ioredis';
import type { Guest, XenHost } from '../crds/generated/types.js';
import { DesiredPublisher } from './desired-publisher.js';
import { GuestController } from './guest-controller.js';
import { HostTracker, XEN_NODE_LABEL } from './host-tracker.js';
import { PullTokenIssuer } from './pull-tokens.js';
import { isNotFound, type KubeClient } from './kube/client.js';
import { Informer, keyOf } from './kube/informer.js';
import { StatusReports } from './status-reports.js';
import { redisOptions } from '../contracts/redis/options.js';

export interface OperatorOptions {
  redisUrl: string;
  /** ACL user and password; otherwise whatever the URL says. */
  redisUsername?: string;
  redisPassword?: string;
  rescheduleAfterMs: number;
  forceDeleteAfterMs: number;
  workers: number;
  /** Heartbeat poll and epoch check period. */
  pollMs?: number;
  log: (msg: string, err?: unknown) => void;
  /** Registries (and token services) the operator reaches over plain http for pull tokens. */
  insecureRegistries?: string[];
}

/** Whether a Node of that name carries krata.dev/xen=true (only `get` on nodes: no list, no watch). */
export async function nodeIsXenHost(kube: KubeClient, name: string): Promise<boolean> {
  try {
    const node = await kube.request<{ metadata?: { labels?: Record<string, string> } }>('GET', `/api/v1/nodes/${encodeURIComponent(name)}`);
    return node.metadata?.labels?.[XEN_NODE_LABEL] === 'true';
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

export class Operator {
  controller?: GuestController;
  tracker?: HostTracker;
  private leading = false;
  private readonly held = new Set<string>();
  private readonly redis: Redis[] = [];
  private publisher?: DesiredPublisher;
  private reports?: StatusReports;
  private timer?: NodeJS.Timeout;

  /** `guests` and `hosts` watch the Guests and XenHosts of `kube` (operator/container/modules.ts makes them). */
  constructor(
    readonly kube: KubeClient,
    readonly guests: Informer<Guest>,
    readonly hosts: Informer<XenHost>,
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
    await Promise.all([this.guests.start(), this.hosts.start()]);
  }

  get synced(): Promise<void> {
    return Promise.all([this.guests.synced(), this.hosts.synced()]).then(() => undefined);
  }

  get isLeading(): boolean {
    return this.leading;
  }

  private connect(name: string, extra: RedisOptions = {}): Redis {
    // No ready check: krata's Redis user may not run INFO (cluster/redis-acl.ts), and there is no
    // persisted dataset to wait for.
    const auth = { ...(this.opts.redisUsername ? { username: this.opts.redisUsername } : {}), ...(this.opts.redisPassword ? { password: this.opts.redisPassword } : {}) };
    // The URL parsed here, not by ioredis: its own parse wins over options, and turns `user@` into an empty password.
    const r = new Redis({ ...redisOptions(this.opts.redisUrl), ...auth, connectionName: `krata-operator-${name}`, enableReadyCheck: false, ...extra });
    let down = false;
    r.on('error', (e) => {
      if (!down) this.opts.log(`redis (${name}) unavailable; retrying`, e);
      down = true;
    });
    r.on('ready', () => {
      if (down) this.opts.log(`redis (${name}) reachable again`);
      down = false;
    });
    this.redis.push(r);
    return r;
  }

  /** Called when this replica becomes leader. */
  async lead(): Promise<void> {
    this.leading = true;
    await this.synced;
    const { log } = this.opts;
    const main = this.connect('main', { maxRetriesPerRequest: null });
    const publisher = (this.publisher = new DesiredPublisher(main, log));
    const reports = (this.reports = new StatusReports(this.connect('status'), main, (key) => this.enqueue(key), log));
    const tracker = (this.tracker = new HostTracker(main, {
      hosts: () => this.hosts.list(),
      getHost: (name) => this.hosts.get(name),
      vouched: (name) => nodeIsXenHost(this.kube, name),
      register: async (name) => {
        await this.kube.createXenHost(name);
        log(`registered XenHost ${name} (its Node is labelled ${XEN_NODE_LABEL}=true and its agent heartbeats)`);
      },
      writeStatus: async (name, status) => void (await this.kube.applyXenHostStatus(name, status)),
      onReadyChange: (name, ready) => {
        log(`XenHost ${name} is ${ready ? 'ready' : 'not reporting'}`);
        this.controller?.enqueueForHost(name);
      },
      log,
    }));
    const controller = new GuestController(this.kube, this.guests, this.hosts, tracker, publisher, reports, {
      rescheduleAfterMs: this.opts.rescheduleAfterMs,
      forceDeleteAfterMs: this.opts.forceDeleteAfterMs,
      workers: this.opts.workers,
      log,
      pullTokens: new PullTokenIssuer(this.kube, { insecure: this.opts.insecureRegistries }),
    });
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
    await this.reports?.stop();
    await this.publisher?.close().catch(() => undefined);
    for (const r of this.redis) r.disconnect();
  }
}
