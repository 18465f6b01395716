// `npm run bench -- NAME`: runs one benchmark; its last output line is one JSON object with our figures,
// the named baseline's, and their ratio.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../lib/package-root.js';
import { agentBench } from './agent.js';
import { cliBench } from './cli.js';
import { coldLaunchBench } from './cold-launch.js';
import { guestBench } from './guest.js';
import { imageBench } from './image.js';
import { netBench } from './net.js';
import { operatorBench } from './operator.js';
import { probesBench } from './probes.js';

const root = repoRoot();
const benches: Record<string, () => Record<string, unknown> | Promise<Record<string, unknown>>> = {
  /** Create → first console byte: krata's builder and console backend vs xl create + xenconsoled. */
  'xen-launch': () => {
    const r = spawnSync('bash', [join(root, 'test/xenhost/boot.sh'), join(root, 'bench/xen-launch.sh')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
    });
    process.stdout.write(r.stdout);
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (r.status !== 0 || !line) throw new Error(`xen-launch failed (exit ${r.status})`);
    const [ours, baseline, dom0UsedMb] = line.split(' ').slice(1).map(Number);
    return {
      bench: 'xen-launch',
      ours_ms: ours,
      baseline_ms: baseline,
      baseline: 'xl create + xenconsoled (Xen 4.17, same QEMU host)',
      ours: 'DomainBuilder + ConsoleBackend in a resident process',
      ratio: Number((ours! / baseline!).toFixed(2)),
      dom0_used_mb: dom0UsedMb,
    };
  },
  /** exec over the control channel vs TCP over kratanet to the same guest: latency and stdout throughput. */
  exec: () => {
    const r = spawnSync('bash', [join(root, 'test/xenhost/boot.sh'), join(root, 'bench/exec-xen.sh')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
    });
    process.stdout.write(r.stdout);
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (r.status !== 0 || !line) throw new Error(`exec failed (exit ${r.status})`);
    const f = JSON.parse(line.slice('RESULT '.length)) as { exec_p50_ms: number; tcp_p50_ms: number; exec_mb_s: number; tcp_mb_s: number };
    const channel = r.stdout.split('\n').find((l) => l.startsWith('CHANNEL '));
    return {
      bench: 'exec',
      channel: channel ? channel.slice('CHANNEL '.length) : 'unknown',
      exec_p50_ms: f.exec_p50_ms,
      tcp_p50_ms: f.tcp_p50_ms,
      latency_ratio: Number((f.exec_p50_ms / f.tcp_p50_ms).toFixed(2)),
      exec_mb_s: f.exec_mb_s,
      tcp_mb_s: f.tcp_mb_s,
      throughput_ratio: Number((f.exec_mb_s / f.tcp_mb_s).toFixed(2)),
      baseline: 'TCP over kratanet to busybox nc in the same guest (connect, echo a line / download), from dom0',
    };
  },
  /** guest-init's size, resident memory and boot-to-exec vs busybox sh as PID 1, under QEMU. */
  guest: () => guestBench(),
  /** 200 Guests on one agent with the test-double hypervisor: converge time, RSS, idle CPU. */
  agent: () => agentBench(),
  /** On Xen, an uncached image: apply → Running (pull, pack, launch) vs skopeo copy + umoci unpack + mksquashfs + xl create. */
  'cold-launch': () => coldLaunchBench(),
  /** 200 Guests with a 1 s tcpSocket readiness probe each (test-double hypervisor, loopback servers): CPU with and without. */
  probes: () => probesBench(),
  /** Pull + pack of a ~150 MB, 5-layer image from a local registry vs skopeo copy + umoci unpack + mksquashfs. */
  image: () => imageBench(),
  /** 10,000 Guests on 100 simulated hosts through a real apiserver and Redis: converge time, operator RSS, writes per Guest. */
  operator: () => operatorBench(),
  /** kratanet vs slirp4netns and pasta: TCP throughput both ways, HTTP requests/s, CPU per GB, peak RSS, guest MTU 1500. */
  net: () => netBench(),
  /** kratactl version, get (test-double agent) and apply --dry-run of the examples vs node -e 0: start-up cost. */
  cli: () => cliBench(),
  /** The demo's kratactl commands (version, apply -f hello.yaml, get) in dom0 of the QEMU Xen host vs node -e 0 there. */
  'cli-dom0': () => {
    const r = spawnSync('bash', [join(root, 'test/xenhost/boot.sh'), join(root, 'bench/cli-xen.sh')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
    });
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (r.status !== 0 || !line) throw new Error(`cli-dom0 failed (exit ${r.status})`);
    return {
      bench: 'cli-dom0',
      ...(JSON.parse(line.slice('RESULT '.length)) as Record<string, number>),
      baseline: 'node -e 0 in dom0 of the QEMU Xen host (Xen 4.17 under TCG), interleaved',
    };
  },
};

const name = process.argv[2];
const bench = name ? benches[name] : undefined;
if (!bench) {
  console.error(`usage: npm run bench -- NAME (one of: ${Object.keys(benches).join(', ')})`);
  process.exit(2);
}
console.log(JSON.stringify(await bench()));
