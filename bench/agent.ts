// `npm run bench -- agent`: 200 Guests on one krata-node-agent with the test-double hypervisor
// (--fake-hypervisor): time from one `apply` of all of them until every one is Running, the agent's
// peak RSS, and its CPU use while idle afterwards (a resync falls inside the window). Then, on the
// QEMU Xen host, apply → Running of one Guest against `xl create` of the same guest (agent-xen.sh). The agent
// does its real work otherwise: durable store writes, IP reservations, a launch config archive per
// guest, status and events. Goals (issue 7): converge < 30 s, idle CPU < 1 %.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../lib/package-root.js';
import { AgentClient } from '../kratactl/agent-client.js';
import { buildImage, writeDockerSave } from '../test/oci-images.js';
import { buildTar } from '../lib/tar.js';
import { formatPhases } from '../lib/phase-timer.js';
import { readAlternation } from './xen-alternate.js';
import type { Guest } from '../crds/generated/types.js';

const GUESTS = Number(process.env.KRATA_BENCH_GUESTS ?? 200);
const IDLE_WINDOW_S = 16;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14 and 15 of stat)
}

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * On the QEMU Xen host (bench/agent-xen.sh): apply → Running of a Guest with a cached image, against
 * `xl create` of the same guest. Skipped (with the reason) where QEMU cannot run or KRATA_BENCH_XEN=0.
 */
function xenFigures(root: string): Record<string, unknown> {
  if (process.env.KRATA_BENCH_XEN === '0') return { xen: 'skipped (KRATA_BENCH_XEN=0)' };
  const r = spawnSync('bash', [join(root, 'test/xenhost/boot.sh'), join(root, 'bench/agent-xen.sh')], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  const run = r.status === 0 ? readAlternation(r.stdout) : undefined;
  if (!run) return { xen: `failed (exit ${r.status}); see the output above` };
  const { ours, baseline: xl, phases } = run;
  console.error(`the agent's launch on Xen, median per phase over ${KRATA_RUNS} runs (queued → status Running):\n${formatPhases(phases)}`);
  return {
    xen_apply_to_running_ms: ours,
    xen_xl_create_ms: xl,
    xen_ratio: Number((ours / xl).toFixed(2)),
    xen_phases_ms: Object.fromEntries(phases.map((p) => [p.name, p.ms])),
    xen_baseline: 'xl create of the same kernel, initrd, memory and disks (Xen 4.17 under QEMU TCG)',
  };
}

const KRATA_RUNS = Number(process.env.KRATA_BENCH_RUNS ?? 3);

export async function agentBench(): Promise<Record<string, unknown>> {
  const root = repoRoot();
  const work = mkdtempSync(join(tmpdir(), 'krata-bench-agent-'));
  const state = join(work, 'state');
  const socket = join(work, 'agent.sock');
  // One small image, imported into the agent's cache (IfNotPresent: no registry involved).
  const img = buildImage({
    layers: [{ compression: 'gzip', tar: buildTar([{ path: 'bin/app', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 }]) }],
    config: { Cmd: ['/bin/app'] },
  });
  writeDockerSave(join(work, 'app.tar'), img, ['bench/app:1']);
  const kratactl = join(root, 'dist/kratactl/main.js');
  await new Promise<void>((resolve, reject) =>
    spawn(process.execPath, [kratactl, 'image', 'import', '-q', '--offline', '--store', state, join(work, 'app.tar')], {
      stdio: 'ignore',
    }).on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`image import exited ${c}`)))),
  );
  const agent = spawn(
    process.execPath,
    [
      join(root, 'dist/node-agent/main.js'),
      '--state',
      state,
      '--socket',
      socket,
      '--fake-hypervisor',
      String(1 << 22),
      '--metrics',
      'off',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  try {
    const client = new AgentClient(socket, 120_000);
    // Ready when the API answers (the socket file appears a moment before it listens).
    for (let i = 0; ; i++) {
      if (
        existsSync(socket) &&
        (await client.host().then(
          () => true,
          () => false,
        ))
      )
        break;
      if (i > 200) throw new Error('the agent did not start');
      await sleep(50);
    }
    const guests: Guest[] = Array.from({ length: GUESTS }, (_, i) => ({
      apiVersion: 'krata.dev/v1alpha1',
      kind: 'Guest',
      metadata: { name: `g${String(i).padStart(3, '0')}`, namespace: 'default' },
      spec: { image: 'bench/app:1', resources: { cpus: 1, memory: '128Mi' } } as Guest['spec'],
    }));
    const t0 = performance.now();
    await client.apply(guests);
    let running = 0;
    while (running < GUESTS) {
      await sleep(100);
      running = (await client.list()).filter((g) => g.status?.phase === 'Running').length;
      if (performance.now() - t0 > 300_000) throw new Error(`only ${running}/${GUESTS} Running after 300 s`);
    }
    const convergeS = (performance.now() - t0) / 1000;
    console.error(`${GUESTS} guests Running after ${convergeS.toFixed(2)} s`);
    const withAddresses = (await client.list()).filter((g) => g.status?.addresses?.ipv4).length;
    await sleep(2000);
    const hz = 100; // USER_HZ on Linux
    const c0 = cpuTicks(agent.pid!);
    const w0 = performance.now();
    await sleep(IDLE_WINDOW_S * 1000);
    const idlePct = ((cpuTicks(agent.pid!) - c0) / hz / ((performance.now() - w0) / 1000)) * 100;
    const peakRss = peakRssMb(agent.pid!);
    agent.kill('SIGTERM');
    await new Promise((r) => agent.once('exit', r));
    const xen = xenFigures(root);
    return {
      bench: 'agent',
      guests: GUESTS,
      converge_s: Number(convergeS.toFixed(2)),
      peak_rss_mb: Number(peakRss.toFixed(1)),
      idle_cpu_pct: Number(idlePct.toFixed(2)),
      with_addresses: withAddresses,
      idle_window_s: IDLE_WINDOW_S,
      hypervisor: 'test double (--fake-hypervisor); store, IPAM, launch configs, status and API are real',
      goals: { converge_s: 30, idle_cpu_pct: 1 },
      ...xen,
    };
  } finally {
    if (agent.exitCode === null && agent.signalCode === null) {
      agent.kill('SIGTERM');
      await new Promise((r) => agent.once('exit', r));
    }
    rmSync(work, { recursive: true, force: true });
  }
}
