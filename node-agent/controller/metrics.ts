// krata-node-agent's Prometheus metrics (prom-client): reconciles and their queues (lib/reconcile-metrics.ts,
// as in the operator), guests by phase, the image cache, console throttling, per-guest usage
// (usage/prometheus.ts), plus Node's process metrics (unprefixed, as in the operator and krata-api).
// Served on their own listener, apart from the local API.
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { LaunchReport } from '../reconcile/launch-phases.js';
import { ReconcileMetrics } from '../../lib/reconcile-metrics.js';
import type { GuestStore } from '../store/guest-store.js';
import type { WorkQueue } from '../../lib/work-queue.js';
import type { ImageStore } from '../image/store.js';
import { consoleStats } from '../xen/index.js';
import { guestChannelStats } from '../channel/index.js';
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import { registerGuestUsage } from '../usage/prometheus.js';

export class AgentMetrics {
  readonly registry = new Registry();
  /** The Guest controller's (`guest`, its queue read here) and the GuestSet controller's (`guestset`). */
  readonly reconciles = new ReconcileMetrics(this.registry);

  /** `usage`: the running Guests' usage (usage/sampler.ts), for the krata_guest_* series. */
  constructor(store: GuestStore, queue: () => WorkQueue | undefined, images?: ImageStore, usage?: () => Promise<GuestUsage[]>) {
    // The event-loop-delay monitor samples every 10 ms by default, which alone kept an idle agent
    // near 1 % CPU; twice a second is enough to see a blocked loop.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 500 });
    this.reconciles.queue('guest', () => queue()?.length ?? 0);
    new Gauge({
      name: 'krata_guests',
      help: 'Guests on this host, by phase',
      labelNames: ['phase'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const g of store.list()) this.inc({ phase: g.status?.phase ?? 'Pending' });
      },
    });
    // Counted by the console backend (no prom-client there); a counter that only grows.
    new Counter({
      name: 'krata_console_throttled_total',
      help: "Times a guest's console output went over its rate budget and draining paused (the guest's writes waited)",
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(consoleStats.throttled);
      },
    });
    new Counter({
      name: 'krata_console_throttled_bytes_total',
      help: "Bytes left waiting in guests' console rings when draining paused for the rate budget",
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(consoleStats.throttledBytes);
      },
    });
    // Counted by the guest channels (node-agent/channel/stats.ts), process-wide.
    for (const [suffix, help, read] of [
      [
        'protocol_errors_total',
        'Guest control channels closed for good because the guest broke the protocol',
        () => guestChannelStats.protocolErrors,
      ],
      [
        'incompatible_total',
        'Guest control channels whose guest-init speaks no version this agent speaks',
        () => guestChannelStats.incompatible,
      ],
      ['resets_total', "Times a guest's init restarted its control channel (its sessions ended)", () => guestChannelStats.resets],
    ] as const) {
      new Counter({
        name: `krata_guest_channel_${suffix}`,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    }
    if (images) {
      new Gauge({
        name: 'krata_image_cache_bytes',
        help: 'Bytes of packed images in the cache',
        registers: [this.registry],
        collect() {
          this.set(images.list().reduce((s, i) => s + i.size, 0));
        },
      });
    }
    if (usage) registerGuestUsage(this.registry, usage);
  }

  /**
   * krata_launch_phase_seconds{phase} and krata_launch_seconds: each launch's breakdown from its
   * Guest's change being queued to status Running (reconcile/launch-phases.ts). A phase marked twice
   * in one launch counts once, with its times added.
   */
  launchObserver(): (r: LaunchReport) => void {
    const buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    const phase = new Histogram({
      name: 'krata_launch_phase_seconds',
      help: "Time a Guest's launch spent in each phase, from its change being queued to status Running",
      labelNames: ['phase'] as const,
      buckets,
      registers: [this.registry],
    });
    const total = new Histogram({
      name: 'krata_launch_seconds',
      help: "Time from a Guest's change being queued to its status Running, for launches that started a domain",
      buckets,
      registers: [this.registry],
    });
    return (r) => {
      const byName = new Map<string, number>();
      for (const p of r.phases) byName.set(p.name, (byName.get(p.name) ?? 0) + p.ms);
      for (const [name, ms] of byName) phase.observe({ phase: name }, ms / 1000);
      total.observe(r.phases.reduce((s, p) => s + p.ms, 0) / 1000);
    };
  }

  /** krata_agent_tls_refused_total: clients the TLS listener refused, counted there (api/tls-listener.ts). */
  countTlsRefusals(read: () => Readonly<Record<'handshake' | 'identity', number>>): void {
    new Counter({
      name: 'krata_agent_tls_refused_total',
      help: "Clients the agent's TLS listener refused: failed handshakes (no certificate, another CA), and certificates not krata-api's",
      labelNames: ['reason'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(read())) this.inc({ reason }, n);
      },
    });
  }

  /** Serves /metrics on host:port ("127.0.0.1:9477"). */
  async listen(address: string): Promise<Server> {
    const m = /^(.*):(\d+)$/.exec(address);
    if (!m) throw new Error(`--metrics ${JSON.stringify(address)}: expected HOST:PORT`);
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('metrics are at /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (e: Error) => res.writeHead(500).end(e.message),
      );
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(Number(m[2]), m[1]!.replace(/^\[|\]$/g, ''), resolve));
    return server;
  }
}
