// The operator's components as inversify container modules: each binds its services (ids.ts) and, if
// it runs, a component (COMPONENTS) that the operator starts in binding order and stops in reverse.
// daemon.ts says which modules an operator is made of; in-process tests rebind the Kubernetes client.
import { ContainerModule } from 'inversify';
import { Redis } from 'ioredis';
import { createServer } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Guest, GuestSet, XenHost } from '../../crds/generated/types.js';
import { optional, provide } from '../../lib/container.js';
import { ReconcileMetrics } from '../../lib/reconcile-metrics.js';
import type { Component } from '../../lib/lifecycle.js';
import { KubeClient } from '../kube/client.js';
import { Informer } from '../kube/informer.js';
import { LeaderElector } from '../kube/leader-election.js';
import { leaderParts, type StartLeading } from '../leader.js';
import { ClusterGuestSets } from '../guestsets.js';
import { Operator } from '../operator.js';
import { redisCredentials } from '../redis-credentials.js';
import { OperatorPki } from '../pki/pki.js';
import { redisOptions } from '../../contracts/redis/options.js';
import type { OperatorConfig } from './config.js';
import {
  COMPONENTS,
  CONFIG,
  GUEST_INFORMER,
  HOST_INFORMER,
  KUBE,
  LEADERSHIP,
  LOG,
  METRICS_REGISTRY,
  OPERATOR,
  PKI,
  GUESTSETS,
  GUESTSET_INFORMER,
  READINESS,
  RECONCILE_METRICS,
  REDIS_AUTH,
  SAY,
  START_LEADING,
  type Leadership,
  type OperatorLog,
} from './ids.js';

/** What the operator is told and where it logs; SAY is the controllers' view of the log. */
export const baseModule = (config: OperatorConfig, log: OperatorLog) =>
  new ContainerModule(({ bind }) => {
    bind(CONFIG).toConstantValue(config);
    bind(LOG).toConstantValue(log);
    provide(bind, SAY, [LOG], (log) => (msg, err) => {
      if (err) log.warn({ err: err instanceof Error ? err.message : String(err) }, msg);
      else log.info({}, msg);
    });
  });

/** The Kubernetes API client, and the Guest and XenHost informers (every replica keeps them warm). */
export const kubeModule = new ContainerModule(({ bind }) => {
  provide(bind, KUBE, [CONFIG], (config) => KubeClient.fromKubeconfig(config.kubeconfig));
  provide(bind, GUEST_INFORMER, [KUBE, SAY], (kube, say) => new Informer<Guest>(kube, 'guests', { log: say }));
  provide(bind, HOST_INFORMER, [KUBE, SAY], (kube, say) => new Informer<XenHost>(kube, 'xenhosts', { log: say }));
  provide(bind, GUESTSET_INFORMER, [KUBE, SAY], (kube, say) => new Informer<GuestSet>(kube, 'guestsets', { log: say }));
});

/**
 * GuestSets: the informer on every replica, the controller (workloads/guestset/) on the leader once it
 * leads. Started after the operator (whose component starts leading) and stopped before it.
 */
export const guestSetModule = new ContainerModule(({ bind }) => {
  provide(
    bind,
    GUESTSETS,
    [CONFIG, KUBE, GUESTSET_INFORMER, GUEST_INFORMER, SAY, optional(RECONCILE_METRICS)],
    (config, kube, sets, guests, say, metrics) => {
      const observe = metrics?.observer('guestset');
      const gs = new ClusterGuestSets(kube, sets, guests, { workers: config.workers, log: say, ...(observe ? { observe } : {}) });
      metrics?.queue('guestset', () => gs.queue.length);
      return gs;
    },
  );
  provide(bind, COMPONENTS, [GUESTSETS, LEADERSHIP, SAY], (gs, leadership, say): Component => ({
    name: 'guestsets',
    start() {
      gs.start();
      leadership.leading.then(
        () => gs.lead().catch((e: unknown) => say('guestsets: starting to reconcile failed', e)),
        () => undefined,
      );
    },
    stop: () => gs.stop(),
  }));
});

/**
 * The certificate authority (operator/pki/): on the leader once it leads, with a Redis connection of its
 * own (made on first use, so a standby holds none); a XenHost that appears gets a pass at once.
 */
export const pkiModule = new ContainerModule(({ bind }) => {
  provide(bind, PKI, [CONFIG, KUBE, HOST_INFORMER, REDIS_AUTH, SAY], (config, kube, hosts, auth, say) => {
    const redis = new Redis({
      ...redisOptions(config.redis.url),
      ...(auth.redisUsername ? { username: auth.redisUsername } : {}),
      ...(auth.redisPassword ? { password: auth.redisPassword } : {}),
      connectionName: 'krata-operator-pki',
      enableReadyCheck: false,
      lazyConnect: true,
    });
    let down = false;
    redis.on('error', (e) => {
      if (!down) say('redis (pki) unavailable; retrying', e);
      down = true;
    });
    redis.on('ready', () => (down = false));
    const { namespace, intervalMs } = config.pki!;
    return new OperatorPki(kube, redis, hosts, { namespace, ...(intervalMs ? { intervalMs } : {}), log: say });
  });
  provide(bind, COMPONENTS, [PKI, LEADERSHIP, HOST_INFORMER], (pki, leadership, hosts): Component => ({
    name: 'pki',
    start() {
      hosts.on('add', () => pki.poke());
      leadership.leading.then(
        () => pki.start(),
        () => undefined,
      );
    },
    stop: () => pki.stop(),
  }));
});

/** Who the operator is to Redis (the Secrets it manages are made here, before anything starts). */
export const redisModule = new ContainerModule(({ bind }) => {
  provide(bind, REDIS_AUTH, [CONFIG, KUBE, LOG], ({ redis }, kube, log) => {
    return redisCredentials(kube, redis.url, redis.passwordFile, redis.credentialsNamespace, (msg) => log.info({}, msg));
  });
});

/**
 * Leader election (--leader-elect), or leading at once. Losing the Lease ends the process (a restart
 * starts clean), as controller-runtime does.
 */
export const leaderElectionModule = new ContainerModule(({ bind }) => {
  provide(bind, LEADERSHIP, [CONFIG, KUBE, OPERATOR, LOG, SAY], (config, kube, operator, log, say): Leadership => {
    let elector: LeaderElector | undefined;
    let endWith!: (code: number) => void;
    const ended = new Promise<number>((r) => (endWith = r));
    let led!: () => void;
    let failed!: (e: unknown) => void;
    const leading = new Promise<void>((resolve, reject) => ((led = resolve), (failed = reject)));
    leading.catch(() => undefined); // said through `ended`; a test that awaits `leading` sees it too
    const onLead = () =>
      operator.lead().then(led, (e) => {
        log.error({ err: (e as Error).message }, 'starting to lead failed');
        failed(e);
        endWith(1);
      });
    const { identity, leaderElection } = config;
    return {
      ended,
      leading,
      start() {
        if (!leaderElection) return void onLead();
        elector = new LeaderElector(kube, {
          ...leaderElection,
          identity,
          onStartedLeading: () => {
            log.info({ identity }, 'became leader');
            void onLead();
          },
          onStoppedLeading: () => {
            log.error({ identity }, 'lost the lease; exiting so a fresh process waits for it');
            endWith(1);
          },
          log: say,
        });
        void elector.run();
      },
      stop: async () => elector?.stop(),
    };
  });
});

/**
 * What the leader runs, made anew each time this replica starts leading (leader.ts): the Redis
 * connections, the desired-state publisher, status reports, the host tracker, the Guest controller.
 */
export const leaderModule = new ContainerModule(({ bind }) => {
  provide(
    bind,
    START_LEADING,
    [CONFIG, KUBE, GUEST_INFORMER, HOST_INFORMER, REDIS_AUTH, SAY, optional(RECONCILE_METRICS)],
    (config, kube, guests, hosts, redisAuth, say, metrics): StartLeading => {
      const observe = metrics?.observer('guest');
      const opts = {
        ...(observe ? { observe } : {}),
        redisUrl: config.redis.url,
        ...redisAuth,
        rescheduleAfterMs: config.rescheduleAfterMs,
        forceDeleteAfterMs: config.forceDeleteAfterMs,
        workers: config.workers,
        insecureRegistries: config.insecureRegistries,
        log: say,
      };
      return (hooks) => leaderParts(kube, guests, hosts, opts, hooks);
    },
  );
});

/**
 * The operator: informers on every replica, what the leader runs while it leads (operator.ts).
 * Stopped before the Lease is released, so two leaders never act at once.
 */
export const operatorModule = new ContainerModule(({ bind }) => {
  provide(
    bind,
    OPERATOR,
    [CONFIG, KUBE, GUEST_INFORMER, HOST_INFORMER, START_LEADING, SAY],
    (config, kube, guests, hosts, startLeading, say) => {
      const opts = { ...(config.pollMs !== undefined ? { pollMs: config.pollMs } : {}), log: say };
      return new Operator(kube, guests, hosts, startLeading, opts);
    },
  );
  provide(bind, READINESS, [], () => ({ synced: false }));
  provide(bind, COMPONENTS, [OPERATOR, LEADERSHIP, READINESS, LOG], (operator, leadership, readiness, log): Component => ({
    name: 'operator',
    async start() {
      await operator.start();
      void operator.synced.then(() => {
        readiness.synced = true;
        log.info({ guests: operator.guests.list().length, hosts: operator.hosts.list().length }, 'caches synced');
      });
      leadership.start();
    },
    async stop() {
      await operator.stop();
      // Releasing the Lease lets the other replica take over at once instead of after its expiry.
      await leadership.stop();
    },
  }));
});

function listen(addr: string, handler: Parameters<typeof createServer>[1]): Promise<ReturnType<typeof createServer>> {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i) || undefined;
  const port = Number(addr.slice(i + 1));
  const server = createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

/** An HTTP listener as a component: listens at start, closes at stop. */
function serving(name: string, addr: string, handler: Parameters<typeof createServer>[1]): Component {
  let server: ReturnType<typeof createServer> | undefined;
  return { name, start: async () => void (server = await listen(addr, handler)), stop: () => void server?.close() };
}

/** /healthz and /readyz (ready once the informers have synced). */
export const healthModule = new ContainerModule(({ bind }) => {
  provide(bind, COMPONENTS, [CONFIG, READINESS], (config, readiness) =>
    serving('health', config.healthAddr!, (req, res) => {
      const ok = req.url === '/healthz' || (req.url === '/readyz' && readiness.synced);
      res.writeHead(ok ? 200 : req.url === '/readyz' ? 503 : 404, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
    }),
  );
});

/**
 * Prometheus metrics: the process (unprefixed, as in the node agent and krata-api), the controllers'
 * reconciles (lib/reconcile-metrics.ts, the node agent's names), leadership, unattributed hosts,
 * Kubernetes writes.
 */
export const metricsModule = new ContainerModule(({ bind }) => {
  provide(bind, METRICS_REGISTRY, [], () => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 500 });
    return registry;
  });
  provide(bind, RECONCILE_METRICS, [METRICS_REGISTRY], (registry) => new ReconcileMetrics(registry));
  provide(
    bind,
    COMPONENTS,
    [CONFIG, METRICS_REGISTRY, RECONCILE_METRICS, OPERATOR, KUBE],
    (config, registry, reconciles, operator, kube) => {
      reconciles.queue('guest', () => operator.controller?.queue.length ?? 0);
      new Gauge({
        name: 'krata_operator_leader',
        help: '1 while this replica holds the Lease',
        registers: [registry],
        collect() {
          this.set(operator.isLeading ? 1 : 0);
        },
      });
      new Gauge({
        name: 'krata_operator_unattributed_hosts',
        help: 'Names heartbeating in Redis without a XenHost or a Node labelled krata.dev/xen=true (ignored)',
        registers: [registry],
        collect() {
          this.set(operator.tracker?.ignoredHosts ?? 0);
        },
      });
      new Counter({
        name: 'krata_operator_kube_writes_total',
        help: 'Writes to the Kubernetes API since start',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(kube.writes);
        },
      });
      return serving('metrics', config.metricsAddr!, async (req, res) => {
        if (req.url !== '/metrics') return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
      });
    },
  );
});
