// What the leader runs, made anew each time this replica starts leading: two Redis connections, the
// desired-state publisher, the status report follower, the host tracker and the Guest controller.
// operator/container/modules.ts binds `leaderParts` as the Operator's StartLeading.
import { Redis, type RedisOptions } from 'ioredis';
import type { Guest, XenHost } from '../crds/generated/types.js';
import { redisOptions } from '../contracts/redis/options.js';
import type { ReconcileObserver } from '../lib/reconcile-metrics.js';
import { DesiredPublisher } from './desired-publisher.js';
import { GuestController } from './guest-controller.js';
import { HostTracker, XEN_NODE_LABEL } from './host-tracker.js';
import { isNotFound, type KubeClient } from './kube/client.js';
import type { Informer } from './kube/informer.js';
import { PullTokenIssuer } from './pull-tokens.js';
import { ServiceEndpoints } from './service-endpoints.js';
import { StatusReports } from './status-reports.js';

export interface LeaderOptions {
  redisUrl: string;
  /** ACL user and password; otherwise whatever the URL says. */
  redisUsername?: string;
  redisPassword?: string;
  rescheduleAfterMs: number;
  forceDeleteAfterMs: number;
  workers: number;
  log: (msg: string, err?: unknown) => void;
  /** Registries (and token services) the operator reaches over plain http for pull tokens. */
  insecureRegistries?: string[];
  /** Told each Guest reconcile's duration and error (metrics). */
  observe?: ReconcileObserver;
}

/** What the leader's parts ask of the Operator. */
export interface LeaderHooks {
  /** Queue a Guest's key (held while the leader starts). */
  enqueue(key: string): void;
  /** Queue the Guests of a host (once the controller runs). */
  enqueueForHost(name: string): void;
}

export interface LeaderParts {
  publisher: DesiredPublisher;
  reports: StatusReports;
  tracker: HostTracker;
  controller: GuestController;
  /** EndpointSlices of Services that name a GuestSet. */
  endpoints: ServiceEndpoints;
  /** Drops the Redis connections. */
  disconnect(): void;
}

export type StartLeading = (hooks: LeaderHooks) => LeaderParts;

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

export function leaderParts(
  kube: KubeClient,
  guests: Informer<Guest>,
  hosts: Informer<XenHost>,
  opts: LeaderOptions,
  hooks: LeaderHooks,
): LeaderParts {
  const { log } = opts;
  const redis: Redis[] = [];
  const connect = (name: string, extra: RedisOptions = {}): Redis => {
    // No ready check: krata's Redis user may not run INFO (contracts/redis/acl.ts), and there is no
    // persisted dataset to wait for.
    const auth = {
      ...(opts.redisUsername ? { username: opts.redisUsername } : {}),
      ...(opts.redisPassword ? { password: opts.redisPassword } : {}),
    };
    // The URL parsed here, not by ioredis: its own parse wins over options, and turns `user@` into an empty password.
    const r = new Redis({
      ...redisOptions(opts.redisUrl),
      ...auth,
      connectionName: `krata-operator-${name}`,
      enableReadyCheck: false,
      ...extra,
    });
    let down = false;
    r.on('error', (e) => {
      if (!down) log(`redis (${name}) unavailable; retrying`, e);
      down = true;
    });
    r.on('ready', () => {
      if (down) log(`redis (${name}) reachable again`);
      down = false;
    });
    redis.push(r);
    return r;
  };
  const main = connect('main', { maxRetriesPerRequest: null });
  const publisher = new DesiredPublisher(main, log);
  const reports = new StatusReports(connect('status'), main, (key) => hooks.enqueue(key), log);
  const tracker = new HostTracker(main, {
    hosts: () => hosts.list(),
    getHost: (name) => hosts.get(name),
    vouched: (name) => nodeIsXenHost(kube, name),
    register: async (name) => {
      await kube.createXenHost(name);
      log(`registered XenHost ${name} (its Node is labelled ${XEN_NODE_LABEL}=true and its agent heartbeats)`);
    },
    writeStatus: async (name, status) => void (await kube.applyXenHostStatus(name, status)),
    onReadyChange: (name, ready) => {
      log(`XenHost ${name} is ${ready ? 'ready' : 'not reporting'}`);
      hooks.enqueueForHost(name);
    },
    log,
  });
  const controller = new GuestController(kube, guests, hosts, tracker, publisher, reports, {
    rescheduleAfterMs: opts.rescheduleAfterMs,
    forceDeleteAfterMs: opts.forceDeleteAfterMs,
    workers: opts.workers,
    log,
    pullTokens: new PullTokenIssuer(kube, { insecure: opts.insecureRegistries }),
    ...(opts.observe ? { observe: opts.observe } : {}),
  });
  const endpoints = new ServiceEndpoints(kube, guests, hosts, { log });
  return { publisher, reports, tracker, controller, endpoints, disconnect: () => redis.forEach((r) => r.disconnect()) };
}
