// Per-guest usage as Prometheus series labelled with the Guest's namespace and name. Every series is
// rebuilt at each scrape from one sample shared by all of them, so a deleted Guest's series vanish.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { GuestUsage } from '../../contracts/agent-api/types.js';

type Labels = { namespace: string; name: string };

/** Series and how each reads a Guest's usage; undefined leaves the Guest out of that series. */
const GAUGES: [string, string, (u: GuestUsage) => number | undefined][] = [
  ['krata_guest_memory_bytes', "Memory Xen has given the guest's domain now, bytes", (u) => u.memory.domainBytes],
  ['krata_guest_memory_max_bytes', "The guest domain's memory cap, bytes", (u) => u.memory.maxBytes],
  ['krata_guest_vcpus_online', "The guest domain's vCPUs online", (u) => u.vcpus.online],
  [
    'krata_guest_memory_available_bytes',
    'Memory available to new work, as the guest reports it, bytes',
    (u) => u.guest?.memoryAvailableBytes,
  ],
  [
    'krata_guest_memory_used_bytes',
    "Memory the guest's processes and kernel hold (total minus available), as the guest reports it, bytes",
    (u) => u.guest?.memoryUsedBytes,
  ],
  ['krata_guest_load1', "The guest's load average over 1 minute", (u) => u.guest?.load[0]],
  ['krata_guest_load5', "The guest's load average over 5 minutes", (u) => u.guest?.load[1]],
  ['krata_guest_load15', "The guest's load average over 15 minutes", (u) => u.guest?.load[2]],
  ['krata_guest_processes', 'Processes in the guest, as it reports', (u) => u.guest?.processes],
  ['krata_guest_channel_up', "1 when the guest's control channel is up, else 0", (u) => (u.channel.phase === 'up' ? 1 : 0)],
  [
    'krata_guest_channel_bulk',
    "1 when the guest's control channel runs over its bulk ring, 0 when over the console device",
    (u) => (u.channel.phase === 'up' ? (u.channel.transport === 'bulk' ? 1 : 0) : undefined),
  ],
];

/**
 * Registers the per-guest series on `registry`, read from `sample` (all running Guests). prom-client
 * calls every collect of a scrape at once: they share the one sample in flight.
 */
export function registerGuestUsage(registry: Registry, sample: () => Promise<GuestUsage[]>): void {
  let inFlight: Promise<GuestUsage[]> | undefined;
  const scrape = () =>
    (inFlight ??= sample().finally(() => {
      inFlight = undefined;
    }));
  const labels = (u: GuestUsage): Labels => ({ namespace: u.namespace, name: u.name });
  new Counter({
    name: 'krata_guest_cpu_seconds_total',
    help: "CPU time the guest's domain used since it started, all vCPUs, seconds",
    labelNames: ['namespace', 'name'] as const,
    registers: [registry],
    async collect() {
      const usage = await scrape();
      this.reset();
      for (const u of usage) this.inc(labels(u), u.cpuSeconds);
    },
  });
  for (const [name, help, read] of GAUGES) {
    new Gauge({
      name,
      help,
      labelNames: ['namespace', 'name'] as const,
      registers: [registry],
      async collect() {
        const usage = await scrape();
        this.reset();
        for (const u of usage) {
          const v = read(u);
          if (v !== undefined) this.set(labels(u), v);
        }
      },
    });
  }
}
