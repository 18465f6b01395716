// krata-api's components as inversify container modules: each binds its services (ids.ts) and, if it
// runs, a component (COMPONENTS) started in binding order and stopped in reverse. daemon.ts says which
// modules krata-api is made of; tests rebind the Kubernetes client or the agents' TLS material.
import { ContainerModule } from 'inversify';
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { provide } from '../../lib/container.js';
import { AgentClient, tlsFromFiles } from '../agent-client.js';
import { RequestHeaderSource } from '../authn.js';
import { Authorizer } from '../authz.js';
import { KubeApi } from '../kube.js';
import { ApiServer, splitListen } from '../server.js';
import { Subresources, type SubresourceMeter } from '../subresources.js';
import type { KrataApiConfig } from './config.js';
import {
  AGENT_TLS,
  AGENTS,
  AUTHORIZER,
  COMPONENTS,
  CONFIG,
  KUBE,
  LOG,
  METER,
  METRICS_REGISTRY,
  REQUEST_HEADERS,
  SERVER,
  SUBRESOURCES,
  type ApiLog,
} from './ids.js';

export const baseModule = (config: KrataApiConfig, log: ApiLog) =>
  new ContainerModule(({ bind }) => {
    bind(CONFIG).toConstantValue(config);
    bind(LOG).toConstantValue(log);
  });

/** The Kubernetes client and the SubjectAccessReviews asked with it. */
export const kubeModule = new ContainerModule(({ bind }) => {
  provide(bind, KUBE, [CONFIG], (config) => KubeApi.fromKubeconfig(config.kubeconfig));
  provide(bind, AUTHORIZER, [KUBE], (kube) => new Authorizer(kube));
});

/** The agents' TLS listeners, reached with krata-api's client certificate. */
export const agentModule = new ContainerModule(({ bind }) => {
  provide(bind, AGENT_TLS, [CONFIG], (config) => tlsFromFiles(config.agentTls));
  provide(bind, AGENTS, [AGENT_TLS], (tls) => new AgentClient(tls));
});

/** The request counters and stream gauges; served only with --metrics (metricsModule). */
export const meterModule = new ContainerModule(({ bind }) => {
  provide(bind, METRICS_REGISTRY, [], () => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 500 });
    return registry;
  });
  provide(bind, METER, [METRICS_REGISTRY, AUTHORIZER], (registry, authz): SubresourceMeter => {
    const requests = new Counter({
      name: 'krata_api_requests_total',
      help: 'Subresource requests answered, by subresource and HTTP code (101: a stream opened)',
      labelNames: ['subresource', 'code'],
      registers: [registry],
    });
    const seconds = new Histogram({
      name: 'krata_api_request_duration_seconds',
      help: 'Time from a subresource request to its answer (for a stream: until it opened or was refused), by subresource',
      labelNames: ['subresource'],
      buckets: [0.005, 0.02, 0.1, 0.5, 2, 10, 30],
      registers: [registry],
    });
    const streams = new Gauge({
      name: 'krata_api_streams',
      help: 'Streams open now (exec, attach, portforward)',
      labelNames: ['subresource'],
      registers: [registry],
    });
    new Counter({
      name: 'krata_api_access_reviews_total',
      help: 'SubjectAccessReviews sent to the apiserver since start',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(authz.reviews);
      },
    });
    new Counter({
      name: 'krata_api_access_review_cache_hits_total',
      help: 'Requests allowed by an answer kept from an earlier SubjectAccessReview',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(authz.cacheHits);
      },
    });
    return {
      answered: (sub, code, s) => {
        requests.inc({ subresource: sub, code: String(code) });
        seconds.observe({ subresource: sub }, s);
      },
      streams: (sub, delta) => streams.inc({ subresource: sub }, delta),
    };
  });
});

/** The HTTPS listener the aggregator reaches, and what it serves. */
export const serverModule = new ContainerModule(({ bind }) => {
  provide(bind, REQUEST_HEADERS, [KUBE], (kube) => new RequestHeaderSource(kube));
  provide(bind, SUBRESOURCES, [KUBE, AUTHORIZER, AGENTS, REQUEST_HEADERS, METER, LOG], (kube, authz, agents, headers, meter, log) => {
    return new Subresources(kube, authz, agents, headers.current, meter, log);
  });
  provide(bind, SERVER, [CONFIG, REQUEST_HEADERS, SUBRESOURCES, LOG], (config, headers, routes, log) => {
    const opts = { listen: config.listen, certFile: config.tlsCertFile, keyFile: config.tlsKeyFile, refreshMs: config.refreshMs };
    return new ApiServer(opts, headers, routes, log);
  });
  provide(bind, COMPONENTS, [SERVER], (server) => ({ name: 'server', start: () => server.start(), stop: () => server.stop() }));
});

/** Prometheus metrics on their own plain-HTTP listener (--metrics). */
export const metricsModule = new ContainerModule(({ bind }) => {
  provide(bind, COMPONENTS, [CONFIG, METRICS_REGISTRY], (config, registry) => {
    let server: Server | undefined;
    return {
      name: 'metrics',
      async start() {
        const { host, port } = splitListen(config.metricsAddr!);
        const s = createServer((req, res) => {
          if (req.url !== '/metrics') return void res.writeHead(404).end();
          registry.metrics().then(
            (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
            () => res.writeHead(500).end(),
          );
        });
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(port, host, () => resolve());
        });
        server = s;
      },
      stop: () => void server?.close(),
    };
  });
});
