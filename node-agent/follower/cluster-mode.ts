// Cluster mode, wired: the host's desired state comes from Redis (the operator writes it from
// Kubernetes), status and heartbeats go back. Starting never waits for Redis: the agent runs its
// guests and its local API whether Redis is there or not, and catches up when it is.
import type { RedisOptions } from 'ioredis';
import { checkHostName } from '../../contracts/redis/contract.js';
import type { GuestStore } from '../store/guest-store.js';
import type { Hypervisor } from '../runtime/hypervisor.js';
import type { Clock } from '../../lib/clock.js';
import type { AgentIdentity } from './agent-identity.js';
import { CertRequester } from './cert-requester.js';
import { DesiredFollower } from './desired-follower.js';
import type { PullTokens } from './pull-tokens.js';
import { HeartbeatSender } from './heartbeat.js';
import { RedisLink, type Log } from './redis-link.js';
import { StatusPublisher } from './status-publisher.js';

export interface ClusterModeOptions {
  redis: RedisOptions;
  /** How logs name the Redis (the URL without its password). */
  redisName: string;
  /** This XenHost's name. */
  host: string;
  store: GuestStore;
  hv: Hypervisor;
  log: Log;
  clock?: Clock;
  /** Intervals, shortened by tests. */
  pollMs?: number;
  resyncMs?: number;
  heartbeatMs?: number;
  coalesceMs?: number;
  /** Where the desired records' pull tokens go (the reconciler reads them). */
  pullTokens?: PullTokens;
  /** The TLS listener's identity: its certificate is asked for through Redis (none without it). */
  identity?: AgentIdentity;
  /** How often the certificate's answer is read while waiting for one (tests shorten it). */
  certWaitMs?: number;
  /** What the heartbeat says krata-api reaches the TLS listener at ("address:port"), when it listens. */
  apiEndpoint?: () => string | undefined;
}

export interface ClusterMode {
  link: RedisLink;
  follower: DesiredFollower;
  publisher: StatusPublisher;
  heartbeat: HeartbeatSender;
  /** Asks for the TLS listener's certificate (with `identity`). */
  certificates?: CertRequester;
  /** Stops the job worker, the timers and the connection (guests keep running). */
  stop(): Promise<void>;
}

export function startClusterMode(o: ClusterModeOptions): ClusterMode {
  const host = checkHostName(o.host);
  const link = new RedisLink(o.redis, o.redisName, o.log);
  const publisher = new StatusPublisher(link, host, o.store, { coalesceMs: o.coalesceMs, clock: o.clock });
  const follower = new DesiredFollower(link, host, o.store, publisher, o.log, {
    pollMs: o.pollMs,
    resyncMs: o.resyncMs,
    clock: o.clock,
    pullTokens: o.pullTokens,
  });
  const heartbeat = new HeartbeatSender(link, host, o.hv, o.store, () => follower.appliedEpoch, {
    intervalMs: o.heartbeatMs,
    clock: o.clock,
    apiEndpoint: o.apiEndpoint,
  });
  const certificates = o.identity && new CertRequester(link, o.identity, o.log, { clock: o.clock, waitMs: o.certWaitMs });
  publisher.start();
  follower.start();
  heartbeat.start();
  certificates?.start();
  return {
    link,
    follower,
    publisher,
    heartbeat,
    ...(certificates ? { certificates } : {}),
    async stop() {
      heartbeat.stop();
      await certificates?.stop();
      await follower.stop();
      await publisher.stop();
      await link.close();
    },
  };
}
