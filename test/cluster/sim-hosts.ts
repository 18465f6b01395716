// Simulated Xen hosts for the operator's tests and benchmark: each host is a real node agent in
// cluster mode (store, reconciler, Redis follower, status publisher, heartbeat) on the test-double
// hypervisor, with a stand-in image provider (no registry, no mksquashfs).
// Many hosts share one process; the fake domains of each host are saved on every change, so killing
// the process and starting it again behaves like an agent restart on a machine whose domains live on.
//
//   node dist/test/cluster/sim-hosts.js --redis URL --state DIR --hosts h1,h2 | --count N [--prefix host-]
// Each host has 128 vCPUs and 256 GiB by default (placement counts vCPUs as a hard limit).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../lib/atomic-file.js';
import { FakeHypervisor, type FakeSnapshot } from '../../node-agent/runtime/fake-hypervisor.js';
import type { GuestStore } from '../../node-agent/store/guest-store.js';
import type { GuestController } from '../../node-agent/controller/controller.js';
import type { ImageProvider } from '../../node-agent/reconcile/pulls.js';
import type { ClusterMode } from '../../node-agent/follower/cluster-mode.js';
import type { Log } from '../../node-agent/follower/redis-link.js';
import { redisOptions } from '../../contracts/redis/options.js';
import { replace, resolve } from '../../lib/container.js';
import type { Running } from '../../lib/lifecycle.js';
import { agentContainer, startAgent } from '../../node-agent/container/agent.js';
import { testAgentConfig } from '../harness/node-agent.js';
import { CLUSTER_MODE, GUEST_STORE, HYPERVISOR, IMAGE_PROVIDER, IMAGE_STORE, GUEST_CONTROLLER } from '../../node-agent/container/ids.js';

export interface SimHostsOptions {
  redisUrl: string;
  state: string;
  hosts: string[];
  cpus?: number;
  memoryMiB?: number;
  /** Persist fake domains (restart tests); off for benchmarks. */
  persistDomains?: boolean;
  log?: (msg: string) => void;
}

export interface SimHost {
  name: string;
  hv: FakeHypervisor;
  store: GuestStore;
  controller: GuestController;
  cluster: ClusterMode;
}

class StandInImages implements ImageProvider {
  constructor(private readonly path: string) {
    if (!existsSync(path)) writeFileSync(path, 'stand-in image');
  }
  async ensure() {
    return {
      digest: `sha256:${'5e'.repeat(32)}`,
      path: this.path,
      config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, diffIds: [] },
    };
  }
}

/** The agents main.ts runs in cluster mode (no API socket, metrics or network), with the doubles above. */
export async function startSimHosts(o: SimHostsOptions): Promise<{ hosts: SimHost[]; stop(): Promise<void> }> {
  mkdirSync(o.state, { recursive: true });
  const images = new StandInImages(join(o.state, 'image.sqfs'));
  const say = (...a: unknown[]) => o.log?.(a.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' '));
  const logger: Log = { info: () => undefined, warn: say, error: say, debug: () => undefined };
  const running: Running[] = [];
  const hosts = await Promise.all(
    o.hosts.map(async (name): Promise<SimHost> => {
      const dir = join(o.state, name);
      mkdirSync(dir, { recursive: true });
      const hv = new FakeHypervisor({ cpus: o.cpus ?? 128, memoryMiB: o.memoryMiB ?? 262_144 });
      const domainsFile = join(dir, 'fake-domains.json');
      if (o.persistDomains) {
        if (existsSync(domainsFile)) hv.restore(JSON.parse(readFileSync(domainsFile, 'utf8')) as FakeSnapshot);
        hv.onChange = (snap) => writeFileAtomic(domainsFile, JSON.stringify(snap), 0o600);
      }
      const config = testAgentConfig(dir, {
        hypervisor: { fake: hv.capacity },
        kernel: '/boot/vmlinuz',
        initrd: '/boot/initrd',
        nodeName: name,
        resyncMs: 60_000,
        cluster: { redis: redisOptions(o.redisUrl), redisName: o.redisUrl, host: name },
        eventsPerGuest: 20,
      });
      const container = agentContainer(config, logger);
      replace(container, HYPERVISOR, hv);
      replace(container, IMAGE_PROVIDER, images);
      container.unbind(IMAGE_STORE);
      running.push(await startAgent(container));
      const store = await resolve(container, GUEST_STORE);
      const controller = await resolve(container, GUEST_CONTROLLER);
      const { mode } = await resolve(container, CLUSTER_MODE);
      return { name, hv, store, controller, cluster: mode! };
    }),
  );
  return {
    hosts,
    async stop() {
      await Promise.all(running.map((r) => r.stop()));
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      redis: { type: 'string' },
      state: { type: 'string' },
      hosts: { type: 'string' },
      count: { type: 'string' },
      prefix: { type: 'string', default: 'host-' },
      persist: { type: 'boolean', default: false },
      'memory-mib': { type: 'string' },
    },
  });
  const hosts = values.hosts
    ? values.hosts.split(',')
    : Array.from({ length: Number(values.count ?? 1) }, (_, i) => `${values.prefix}${i + 1}`);
  const sim = await startSimHosts({
    redisUrl: values.redis!,
    state: values.state!,
    hosts,
    persistDomains: values.persist,
    ...(values['memory-mib'] ? { memoryMiB: Number(values['memory-mib']) } : {}),
    log: (m) => console.error(m),
  });
  console.log(JSON.stringify({ ready: hosts.length }));
  // Counters on request: the parent writes a line on stdin, we answer with the hosts' state.
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', () => {
    const out = sim.hosts.map((h) => ({
      host: h.name,
      guests: h.store.keys().length,
      running: h.store.list().filter((g) => g.status?.phase === 'Running').length,
      domains: h.hv.count,
      creates: h.hv.calls.create,
    }));
    console.log(JSON.stringify({ hosts: out }));
  });
  process.stdin.on('end', () => void sim.stop().then(() => process.exit(0)));
  process.once('SIGTERM', () => void sim.stop().then(() => process.exit(0)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) void main();
