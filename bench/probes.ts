// `npm run bench -- probes`: 200 Guests on the node agent's controller with the test-double hypervisor,
// first without probes, then each with a 1 s tcpSocket readiness probe to a loopback TCP server standing
// in for its guest (the servers run in a child process, so their CPU is not counted). The figures: this
// process's CPU in each phase, over the same window, and the probes' p99 duration. Goal: probes cost
// under 2 % of one core in total.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Guest } from '../crds/generated/types.js';
import { validateObject } from '../crds/validate.js';
import { systemClock } from '../lib/clock.js';
import { assembleGuestController } from '../node-agent/controller/assemble.js';
import { Prober } from '../node-agent/probe/prober.js';
import { EventRecorder } from '../node-agent/reconcile/events.js';
import { Ipam } from '../node-agent/reconcile/ipam.js';
import { FakeHypervisor } from '../node-agent/runtime/fake-hypervisor.js';
import { NodeAgentService } from '../node-agent/service/agent-service.js';
import { GuestStore } from '../node-agent/store/guest-store.js';
import { PortMapDialer } from '../test/doubles/port-map-dialer.js';
import { FakeImages } from '../test/harness/node-controller.js';

const GUESTS = 200;
const WINDOW_MS = Number(process.env.KRATA_BENCH_PROBES_WINDOW_MS ?? 20_000);

/** A child process with one loopback TCP server per guest; resolves with their ports. */
async function startServers(n: number): Promise<{ ports: number[]; stop(): void }> {
  const code = `
    const net = require('node:net');
    const ports = [];
    let left = ${n};
    for (let i = 0; i < ${n}; i++) {
      const s = net.createServer((c) => { c.on('error', () => {}); c.resume(); });
      s.listen(0, '127.0.0.1', () => { ports[i] = s.address().port; if (--left === 0) console.log(JSON.stringify(ports)); });
    }`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve));
  return { ports: JSON.parse(line) as number[], stop: () => child.kill() };
}

function guest(i: number, probed: boolean): Guest {
  const r = validateObject({
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name: `g${i}` },
    spec: {
      image: 'registry.example/app:1.0',
      resources: { cpus: 1, memory: '64Mi' },
      ...(probed ? { readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 } } : {}),
    },
  });
  if (r.errors.length) throw new Error(JSON.stringify(r.errors));
  return r.object as Guest;
}

/** This process's CPU over `ms`, in % of one core. */
async function cpuOver(ms: number): Promise<number> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) / 1000 / (performance.now() - t0)) * 100;
}

async function until(pred: () => boolean, what: string, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function probesBench(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'krata-bench-probes-'));
  const servers = await startServers(GUESTS);
  try {
    const dialer = new PortMapDialer();
    servers.ports.forEach((port, i) => dialer.map(`default/g${i}`, 8080, port));
    const hv = new FakeHypervisor({ cpus: 64, memoryMiB: 1 << 20 }, systemClock);
    const clock = systemClock;
    const store = new GuestStore(dir);
    const recorder = new EventRecorder(clock);
    const durations: number[] = [];
    let timing = false;
    const prober = new Prober({
      channel: (domid) => hv.channel(domid),
      dialer,
      clock,
      events: recorder,
      timed: (_kind, ms) => void (timing && durations.push(ms)),
    });
    const controller = assembleGuestController(
      { store, hv, images: new FakeImages(dir), ipam: new Ipam(dir), recorder, clock, probes: prober },
      {
        stateDir: dir,
        kernel: '/k/vmlinuz',
        initrd: '/k/initrd',
        nodeName: 'bench',
      },
    );
    const agent = new NodeAgentService(store, hv, recorder, undefined, clock);
    controller.run();
    const all = (pred: (g: Guest) => boolean) => store.list().length === GUESTS && store.list().every(pred);
    const isReady = (g: Guest) => g.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

    await agent.apply(
      Array.from({ length: GUESTS }, (_, i) => guest(i, false)),
      false,
    );
    await until(() => all((g) => g.status?.phase === 'Running' && isReady(g)), 'the guests to run');
    await new Promise((r) => setTimeout(r, 2000)); // the burst of the start settles
    const without = await cpuOver(WINDOW_MS);

    await agent.apply(
      Array.from({ length: GUESTS }, (_, i) => guest(i, true)),
      false,
    );
    await until(
      () => all((g) => g.status?.observedGeneration === 2 && isReady(g) && g.status.probes?.readiness?.result === 'Success'),
      'readiness',
    );
    if (hv.calls.create !== GUESTS) throw new Error(`adding probes recreated domains (${hv.calls.create} creates)`);
    await new Promise((r) => setTimeout(r, 2000));
    timing = true;
    const withProbes = await cpuOver(WINDOW_MS);
    timing = false;
    controller.stop();
    prober.stopAll();
    durations.sort((a, b) => a - b);
    const p99 = durations[Math.min(durations.length - 1, Math.floor(durations.length * 0.99))] ?? NaN;
    console.log(`${durations.length} probes in ${WINDOW_MS / 1000}s; CPU ${withProbes.toFixed(2)} % with, ${without.toFixed(2)} % without`);
    return {
      bench: 'probes',
      guests: GUESTS,
      cpu_pct: Number(withProbes.toFixed(2)),
      cpu_pct_without: Number(without.toFixed(2)),
      probe_p99_ms: Number(p99.toFixed(2)),
    };
  } finally {
    servers.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
