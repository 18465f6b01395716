// krata-node-agent's Prometheus metrics (prom-client): reconciles, the queue, guests by phase, the image
// cache, console throttling, per-guest usage (usage/prometheus.ts), plus Node's process metrics. Served
// on their own listener, apart from the local API.
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { GuestStore } from '../store/guest-store.js';
import type { WorkQueue } from '../../lib/work-queue.js';
import type { ImageStore } from '../image/store.js';
import { consoleStats } from '../xen/index.js';
import { guestChannelStats } from '../channel/index.js';
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import { registerGuestUsage } from '../usage/prometheus.js';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: 'krata_reconcile_total',
    help: 'Reconciles of a Guest, by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly reconcileSeconds = new Histogram({
    name: 'krata_reconcile_duration_seconds',
    help: 'Time one reconcile of a Guest took',
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60],
    registers: [this.registry],
  });

  /** `usage`: the running Guests' usage (usage/sampler.ts), for the krata_guest_* series. */
  constructor(store: GuestStore, queue: () => WorkQueue | undefined, images?: ImageStore, usage?: () => Promise<GuestUsage[]>) {
    // The event-loop-delay monitor samples every 10 ms by default, which alone kept an idle agent
    // near 1 % CPU; twice a second is enough to see a blocked loop.
    collectDefaultMetrics({ register: this.registry, prefix: 'krata_agent_', eventLoopMonitoringPrecision: 500 });
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
    new Gauge({
      name: 'krata_reconcile_queue_depth',
      help: 'Guests queued or being reconciled',
      registers: [this.registry],
      collect() {
        this.set(queue()?.length ?? 0);
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

  observe(ms: number, error?: unknown): void {
    this.reconciles.inc({ result: error ? 'error' : 'success' });
    this.reconcileSeconds.observe(ms / 1000);
  }

  /** Serves /metrics on host:port ("127.0.0.1:9477"). */
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
