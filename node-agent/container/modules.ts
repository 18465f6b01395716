// The node agent's components as inversify container modules: each binds its services (ids.ts) and,
// if it runs, a component (COMPONENTS) that the agent starts in binding order and stops in reverse.
// agent.ts says which modules an agent is made of; tests and benchmarks rebind the doubles.
import { ContainerModule } from 'inversify';
import { join } from 'node:path';
import { optional, provide } from '../../lib/container.js';
import { systemClock } from '../../lib/clock.js';
import type { Component } from '../../lib/lifecycle.js';
import { CredentialStore } from '../../lib/oci/credentials.js';
import { Semaphore } from '../../lib/semaphore.js';
import { startApiServer, type ApiServer } from '../api/server.js';
import { TlsApiListener } from '../api/tls-listener.js';
import { AgentIdentity } from '../follower/agent-identity.js';
import { AgentMetrics } from '../controller/metrics.js';
import { assembleGuestController } from '../controller/assemble.js';
import type { Phase } from '../../lib/phase-timer.js';
import type { GuestController } from '../controller/controller.js';
import { EventRecorder } from '../reconcile/events.js';
import { Ipam } from '../reconcile/ipam.js';
import { readBootId } from '../reconcile/host-restart.js';
import { AGENT_COMMAND, waitForImageCache } from '../image/cache-lock.js';
import type { ClusterMode } from '../follower/cluster-mode.js';
import { PullTokens } from '../follower/pull-tokens.js';
import type { Log } from '../follower/redis-link.js';
import { ImageStore } from '../image/store.js';
import { describeConflict, desiredNetwork, type PortConflict } from '../net/desired.js';
import { dialSocketPath, KratanetDialer, NoNetworkDialer } from '../net/kratanet-dialer.js';
import { NetSupervisor } from '../net/supervisor.js';
import { FakeHypervisor } from '../runtime/fake-hypervisor.js';
import type { Hypervisor } from '../runtime/hypervisor.js';
import { NodeAgentService, CachedImages } from '../service/agent-service.js';
import { GuestStore } from '../store/guest-store.js';
import { GuestSetStore } from '../store/guestset-store.js';
import { HostGuestSets } from '../controller/guestsets.js';
import { SecretStore } from '../store/secret-store.js';
import { ApplySetStore } from '../store/applyset-store.js';
import { UsageSampler } from '../usage/sampler.js';
import { Prober } from '../probe/prober.js';
import type { AgentConfig } from './config.js';
import {
  AGENT,
  AGENT_IDENTITY,
  API_SERVER,
  CLOCK,
  CLUSTER_MODE,
  COMPONENTS,
  CONFIG,
  EVENT_RECORDER,
  GUEST_DIALER,
  GUEST_STORE,
  GUESTSET_CONTROLLER,
  GUESTSET_STORE,
  HYPERVISOR,
  IMAGE_PROVIDER,
  IMAGE_STORE,
  IPAM,
  LOG,
  METRICS,
  NET_SUPERVISOR,
  PULL_AUTH,
  PULL_SLOTS,
  PULL_TOKENS,
  GUEST_CONTROLLER,
  PROBER,
  SECRET_STORE,
  APPLYSET_STORE,
  TLS_LISTENER,
  USAGE_SAMPLER,
} from './ids.js';

/** What the agent is told, where it logs, and its time (the system clock; tests rebind CLOCK). */
export const baseModule = (config: AgentConfig, log: Log) =>
  new ContainerModule(({ bind }) => {
    bind(CONFIG).toConstantValue(config);
    bind(LOG).toConstantValue(log);
    bind(CLOCK).toConstantValue(systemClock);
  });

/** The hypervisor: Xen, or the in-memory test double (--fake-hypervisor). Closed last. */
export const runtimeModule = new ContainerModule(({ bind }) => {
  provide(bind, HYPERVISOR, [CONFIG, CLOCK, LOG], async (config, clock, log): Promise<Hypervisor> => {
    if ('fake' in config.hypervisor) {
      log.warn({}, 'running guests on the in-memory test double (--fake-hypervisor): no Xen domains are created');
      return new FakeHypervisor(config.hypervisor.fake, clock);
    }
    // Loaded only here: the Xen modules cost seconds to load under TCG, and the fake needs none of them.
    const { XenHypervisor } = await import('../runtime/xen-hypervisor.js');
    return XenHypervisor.open({ stateDir: config.stateDir, ...config.hypervisor.xen });
  });
  provide(bind, COMPONENTS, [HYPERVISOR], (hv): Component => ({
    name: 'hypervisor',
    stop: () => void (hv as { close?: () => Promise<void> | void }).close?.(),
  }));
});

/** Durable state: the guests (a stored guest that cannot be read is logged and left) and IP reservations. */
export const storeModule = new ContainerModule(({ bind }) => {
  provide(bind, GUEST_STORE, [CONFIG, LOG], async (config, log) => {
    // The image cache has one writer: this agent, for as long as it runs (an offline writer that holds
    // the cache delays the start). The lock is released when the process exits.
    await waitForImageCache(join(config.stateDir, 'images'), AGENT_COMMAND, (e) => log.warn({}, `${e.message}; waiting for it to finish`));
    const problems: string[] = [];
    const store = new GuestStore(config.stateDir, problems);
    for (const p of problems) log.error({ problem: p }, 'a stored guest could not be read; it is left in place');
    return store;
  });
  provide(bind, IPAM, [CONFIG], (config) => new Ipam(config.stateDir, config.ipam));
});

/** The image cache (what interrupted jobs left is removed) and the reconciler's view of it. */
export const imagesModule = new ContainerModule(({ bind }) => {
  provide(bind, IMAGE_STORE, [CONFIG, LOG], async ({ stateDir, images }, log) => {
    const credentials = await CredentialStore.fromFiles(images.dockerConfigs);
    for (const w of credentials.warnings) log.warn({}, w);
    const { insecure, mirrors, dockerConfigs: _, ...bounds } = images;
    const store = new ImageStore({ root: join(stateDir, 'images'), registry: { credentials, mirrors, insecure }, ...bounds });
    const recovered = store.recover();
    for (const d of recovered.damaged) log.error({ problem: d }, 'removed a cached image whose files disagree');
    if (recovered.removed.length) log.info({ removed: recovered.removed }, 'removed what interrupted image jobs left');
    return store;
  });
  provide(bind, IMAGE_PROVIDER, [IMAGE_STORE], (images) => new CachedImages(images));
});

/**
 * Single host: GuestSets, kept beside the Guests and run by the controller the operator runs in a
 * cluster (workloads/guestset/). Started after the Guest controller, so a set's Guests are reconciled
 * as soon as they are made.
 */
export const guestSetsModule = new ContainerModule(({ bind }) => {
  provide(bind, GUESTSET_STORE, [CONFIG, LOG], (config, log) => {
    const problems: string[] = [];
    const store = new GuestSetStore(config.stateDir, problems);
    for (const p of problems) log.error({ problem: p }, 'a stored guestset could not be read; it is left in place');
    return store;
  });
  provide(bind, GUESTSET_CONTROLLER, [GUEST_STORE, GUESTSET_STORE, CLOCK, LOG, optional(METRICS)], (guests, sets, clock, log, metrics) => {
    const c = new HostGuestSets(
      guests,
      sets,
      clock,
      (key, err) => log.warn({ guestset: key }, `guestset: ${(err as Error)?.message ?? String(err)}`),
      metrics?.reconciles.observer('guestset'),
    );
    metrics?.reconciles.queue('guestset', () => c.queue.length);
    return c;
  });
  provide(bind, COMPONENTS, [GUESTSET_CONTROLLER], (c): Component => ({
    name: 'guestset controller',
    start: () => c.start(),
    stop: () => c.stop(),
  }));
});

/** Single host: pull credentials are the namespace's Secrets, applied through the local API; and ApplySet parents. */
export const secretsModule = new ContainerModule(({ bind }) => {
  provide(bind, SECRET_STORE, [CONFIG], (config) => new SecretStore(config.stateDir));
  provide(bind, APPLYSET_STORE, [CONFIG, LOG], (config, log) => {
    const problems: string[] = [];
    const store = new ApplySetStore(config.stateDir, problems);
    for (const p of problems) log.error({ problem: p }, 'a stored applyset parent could not be read; it is left in place');
    return store;
  });
  provide(bind, PULL_AUTH, [SECRET_STORE], (secrets) => (g) => secrets.forGuest(g));
});

/**
 * The local API's implementation: refuses writes in cluster mode, keeps Secrets on a single host. The
 * usage sampler is bound here too (the service and /metrics share it); it reads Xen's figures in the
 * background to keep CPU rates fresh.
 */
export const serviceModule = new ContainerModule(({ bind }) => {
  provide(bind, USAGE_SAMPLER, [GUEST_STORE, HYPERVISOR, CLOCK], (store, hv, clock) => new UsageSampler(store, hv, { clock }));
  provide(bind, COMPONENTS, [USAGE_SAMPLER], (sampler): Component => ({
    name: 'usage sampler',
    start: () => sampler.start(),
    stop: () => sampler.stop(),
  }));
  provide(
    bind,
    AGENT,
    [
      CONFIG,
      GUEST_STORE,
      HYPERVISOR,
      EVENT_RECORDER,
      optional(IMAGE_STORE),
      CLOCK,
      PULL_SLOTS,
      optional(SECRET_STORE),
      USAGE_SAMPLER,
      optional(GUESTSET_STORE),
      GUEST_DIALER,
      optional(APPLYSET_STORE),
    ],
    (config, store, hv, recorder, images, clock, pullSlots, secrets, usage, guestSets, dialer, applySets) =>
      new NodeAgentService(store, hv, recorder, images, clock, {
        pullSlots,
        usage,
        dialer,
        ...(config.cluster
          ? { managedBy: `Redis ${config.cluster.redisName}` }
          : { secrets, ...(guestSets ? { guestSets } : {}), ...(applySets ? { applySets } : {}) }),
      }),
  );
});

/** The local API on its unix socket; GET /v1/host includes the TLS listener's state when there is one. */
export const apiModule = new ContainerModule(({ bind }) => {
  provide(bind, API_SERVER, [CONFIG, AGENT, LOG, optional(TLS_LISTENER)], (config, agent, log, tls) => {
    let server: ApiServer | undefined;
    const api = config.api!;
    return {
      name: 'api',
      get server() {
        return server;
      },
      async start() {
        server = await startApiServer(agent, {
          socketPath: api.socketPath,
          ...(api.group ? { group: api.group } : {}),
          log: (m) => log.error({}, m),
          ...(tls ? { tlsStatus: () => tls.status() } : {}),
        });
      },
      stop: () => server?.close(),
    };
  });
  provide(bind, COMPONENTS, [API_SERVER], (api) => api);
});

/**
 * Cluster mode: the TLS listener krata-api reaches the agent on, with the agent's key (made once, kept
 * in STATE/tls) and the certificate the follower asks the operator for through Redis.
 */
export const tlsModule = new ContainerModule(({ bind }) => {
  provide(bind, AGENT_IDENTITY, [CONFIG, CLOCK, LOG], (config, clock, log) =>
    AgentIdentity.open(config.stateDir, config.cluster!.host, clock.now(), (m) => log.warn({}, m)),
  );
  provide(bind, TLS_LISTENER, [CONFIG, AGENT, AGENT_IDENTITY, LOG], (config, agent, identity, log) => {
    const { host, port, advertise } = config.tls!;
    return new TlsApiListener(agent, { host, port, identity, log, ...(advertise ? { advertise } : {}) });
  });
  provide(bind, COMPONENTS, [TLS_LISTENER], (listener): Component => ({
    name: 'tls listener',
    start: () => listener.start(),
    stop: () => listener.stop(),
  }));
});

/** Prometheus metrics on their own listener. The queue gauge reads the reconciler once it exists (one module per container). */
export const metricsModule = () =>
  new ContainerModule(({ bind, onActivation }) => {
    let controller: GuestController | undefined;
    onActivation<GuestController>(GUEST_CONTROLLER, (_ctx, c) => (controller = c));
    provide(
      bind,
      METRICS,
      [GUEST_STORE, optional(IMAGE_STORE), optional(USAGE_SAMPLER), optional(TLS_LISTENER)],
      (store, images, usage, tls) => {
        const metrics = new AgentMetrics(store, () => controller?.queue, images, usage && (() => usage.sample()));
        if (tls) metrics.countTlsRefusals(() => tls.refused);
        return metrics;
      },
    );
    provide(bind, COMPONENTS, [CONFIG, METRICS], (config, metrics): Component => {
      let server: Awaited<ReturnType<AgentMetrics['listen']>> | undefined;
      return {
        name: 'metrics',
        start: async () => void (server = await metrics.listen(config.metrics!)),
        stop: () => void server?.close(),
      };
    });
  });

/**
 * The prober: each running guest's probes, exec over HYPERVISOR's channels, tcpSocket and httpGet
 * through GUEST_DIALER (bound with kratanet; without it those probes fail saying so). Listed before
 * the controller, so it stops after it: no worker outlives the agent.
 */
export const probeModule = new ContainerModule(({ bind }) => {
  provide(
    bind,
    PROBER,
    [HYPERVISOR, optional(GUEST_DIALER), CLOCK, EVENT_RECORDER],
    (hv, dialer, clock, events) => new Prober({ channel: (domid) => hv.channel(domid), clock, events, ...(dialer ? { dialer } : {}) }),
  );
  provide(bind, COMPONENTS, [PROBER], (prober): Component => ({ name: 'prober', start: () => undefined, stop: () => prober.stopAll() }));
});

/**
 * The controller: events, the pull slots, and the Guest controller (controller/assemble.ts puts its
 * machinery and the reconcile decisions together). Stopping lets a create or
 * stop in progress finish (bounded), so no half-built domain is left behind.
 */
/** A launch's phases as one log field: {"queue pickup": 1.2, ...} in ms (a phase marked twice adds up). */
function launchPhaseFields(phases: readonly Phase[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of phases) out[p.name] = Math.round(((out[p.name] ?? 0) + p.ms) * 10) / 10;
  return out;
}

export const controllerModule = new ContainerModule(({ bind }) => {
  provide(bind, EVENT_RECORDER, [CONFIG, CLOCK, LOG], (config, clock, log) => {
    if (!config.logEvents) return new EventRecorder(clock, config.eventsPerGuest);
    return new EventRecorder(clock, config.eventsPerGuest, (e) => {
      const fields = { guest: e.name ? `${e.namespace}/${e.name}` : undefined, reason: e.reason, count: e.count };
      log[e.type === 'Warning' ? 'warn' : 'info'](fields, e.message);
    });
  });
  provide(bind, PULL_SLOTS, [CONFIG], (config) => new Semaphore(config.pullConcurrency ?? 4));
  provide(
    bind,
    GUEST_CONTROLLER,
    [
      CONFIG,
      GUEST_STORE,
      HYPERVISOR,
      IMAGE_PROVIDER,
      IPAM,
      EVENT_RECORDER,
      CLOCK,
      PULL_SLOTS,
      optional(PULL_AUTH),
      optional(METRICS),
      optional(PROBER),
      LOG,
    ],
    (config, store, hv, images, ipam, recorder, clock, pullSlots, pullAuth, metrics, probes, log) => {
      const observeLaunch = metrics?.launchObserver();
      const bootId = config.bootId ?? ('xen' in config.hypervisor ? readBootId() : undefined);
      return assembleGuestController(
        { store, hv, images, ipam, recorder, clock, ...(probes ? { probes } : {}) },
        {
          ...(pullAuth ? { pullAuth } : {}),
          stateDir: config.stateDir,
          kernel: config.kernel,
          initrd: config.initrd,
          nodeName: config.nodeName,
          ...(config.nameservers ? { nameservers: config.nameservers } : {}),
          ...(config.concurrency !== undefined ? { concurrency: config.concurrency } : {}),
          pullSlots,
          ...(config.resyncMs !== undefined ? { resyncMs: config.resyncMs } : {}),
          ...(metrics ? { observe: metrics.reconciles.observer('guest') } : {}),
          ...(config.hostPorts ? { hostPorts: config.hostPorts } : {}),
          ...(bootId !== undefined ? { bootId } : {}),
          onHostRestart: (r) => {
            if (r.restarted)
              log.warn(
                {
                  previousBootId: r.previous,
                  bootId,
                  restarted: r.settled.filter((g) => g.restart).map((g) => g.key),
                  ended: r.settled.filter((g) => !g.restart).map((g) => g.key),
                },
                "the host restarted since the agent last ran: its guests' domains are gone (HostRestarted)",
              );
          },
          onLaunch: (r) => {
            observeLaunch?.(r);
            log.debug({ guest: r.key, domid: r.domid, phases: launchPhaseFields(r.phases) }, 'launched');
          },
        },
      );
    },
  );
  provide(bind, COMPONENTS, [GUEST_CONTROLLER], (controller): Component => ({
    name: 'controller',
    start: () => controller.run(),
    async stop() {
      controller.stop();
      await Promise.race([controller.queue.idle(), new Promise((r) => setTimeout(r, 30_000).unref())]);
    },
  }));
});

/**
 * Cluster mode: pull credentials are the operator's tokens, and the Redis follower, status publisher
 * and heartbeat run (and, with a TLS listener, the request for its certificate). Stopping takes no more
 * desired state in, then sends the last reports (bounded).
 */
export const followerModule = new ContainerModule(({ bind }) => {
  provide(bind, PULL_TOKENS, [], () => new PullTokens());
  provide(bind, PULL_AUTH, [PULL_TOKENS], (tokens) => (g) => tokens.forGuest(g));
  provide(
    bind,
    CLUSTER_MODE,
    [CONFIG, GUEST_STORE, HYPERVISOR, CLOCK, LOG, PULL_TOKENS, optional(AGENT_IDENTITY), optional(TLS_LISTENER)],
    (config, store, hv, clock, log, pullTokens, identity, tls) => {
      let mode: ClusterMode | undefined;
      return {
        name: 'cluster mode',
        get mode() {
          return mode;
        },
        async start() {
          // Loaded here, not at the top: Redis and BullMQ are a third of the files an agent would load.
          const { startClusterMode } = await import('../follower/cluster-mode.js');
          mode = startClusterMode({
            ...config.cluster!,
            store,
            hv,
            clock,
            log,
            pullTokens,
            ...(identity ? { identity } : {}),
            ...(tls ? { apiEndpoint: () => tls.endpoint } : {}),
          });
        },
        stop: () => mode?.stop(),
      };
    },
  );
  provide(bind, COMPONENTS, [CLUSTER_MODE], (cluster) => cluster);
});

/**
 * kratanet, the guests' userspace network: follows every change to the store. Started last so that it
 * stops first: it shares the terminal's and the service's signals, and must not be restarted while the
 * agent winds down; the others do not wait for it to exit.
 */
export const networkModule = new ContainerModule(({ bind }) => {
  provide(bind, NET_SUPERVISOR, [LOG], (log) => {
    return new NetSupervisor({ log: (level, msg, fields) => log[level]({ subsystem: 'network', ...fields }, msg) });
  });
  provide(bind, GUEST_DIALER, [CONFIG, LOG], (config, log) => {
    const path = dialSocketPath(config.stateDir);
    if (path) return new KratanetDialer(path);
    log.warn(
      { subsystem: 'network' },
      `${config.stateDir} is too long a path for kratanet's dial socket: tcpSocket and httpGet probes fail`,
    );
    return new NoNetworkDialer(`the state directory's path is too long for kratanet's dial socket`);
  });
  provide(bind, COMPONENTS, [CONFIG, NET_SUPERVISOR, GUEST_STORE, IPAM, LOG], (config, supervisor, store, ipam, log): Component => {
    let reported = new Set<string>();
    const dialSocket = dialSocketPath(config.stateDir);
    const push = () => {
      const conflicts: PortConflict[] = [];
      supervisor.update(desiredNetwork(store, ipam, { ...config.network, ...(dialSocket ? { dialSocket } : {}) }, conflicts));
      // Each conflict once, not at every status write.
      const now = new Set(conflicts.map(describeConflict));
      for (const c of conflicts) {
        const port = `${c.protocol}/${c.hostPort}`;
        if (!reported.has(describeConflict(c))) log.warn({ guest: c.guest, holder: c.holder, port }, describeConflict(c));
      }
      reported = now;
    };
    let timer: NodeJS.Timeout | undefined;
    const onChange = () => {
      timer ??= setTimeout(() => {
        timer = undefined;
        push();
      }, 100);
    };
    return {
      name: 'network',
      start() {
        store.on('change', onChange);
        push();
      },
      stop() {
        store.off('change', onChange);
        clearTimeout(timer);
        return supervisor.stop();
      },
      stopInBackground: true,
    };
  });
});

/** Without kratanet (--network off): dials to guests fail as Unavailable (tests rebind GUEST_DIALER to a double). */
export const noNetworkModule = new ContainerModule(({ bind }) => {
  provide(bind, GUEST_DIALER, [], () => new NoNetworkDialer());
});
