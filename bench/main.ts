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
import { xenLaunchBench } from './xen-launch.js';

const root = repoRoot();
const benches: Record<string, () => Record<string, unknown> | Promise<Record<string, unknown>>> = {
  /** krata's domain builder vs libxl's: create → paused (vs xl create -p) and → first console byte (vs + xenconsoled). */
  'xen-launch': () => xenLaunchBench(),
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
  /** 96 MiB guests until memory runs out, through the agent vs xl create (same boot): count, dom0 KiB per guest, launch slowdown. */
  density: () => {
    // 2048 MiB of QEMU memory: dom0 1 GiB, 1 GiB for guests (~10 of 96 MiB); a launch takes 5-40 s under TCG
    // on a loaded machine, so more guests would take the bench well past 15 minutes.
    const mem = process.env.KRATA_XENHOST_MEM ?? '2048';
    const r = spawnSync('bash', [join(root, 'test/xenhost/boot.sh'), join(root, 'bench/density.sh')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
      env: { ...process.env, KRATA_XENHOST_MEM: mem },
    });
    process.stdout.write(r.stdout);
    const pick = (tag: string): Record<string, unknown> | undefined => {
      const line = r.stdout.split('\n').find((l) => l.startsWith(`${tag} `));
      return line ? (JSON.parse(line.slice(tag.length + 1)) as Record<string, unknown>) : undefined;
    };
    const ours = pick('OURS');
    const xl = pick('XL');
    if (r.status !== 0 || !ours || !xl) throw new Error(`density failed (exit ${r.status})`);
    return {
      bench: 'density',
      guests: ours.guests,
      xl_guests: xl.guests,
      dom0_kib_per_guest: ours.dom0_kib_per_guest,
      xl_dom0_kib_per_guest: xl.dom0_kib_per_guest,
      first_guest_kib: ours.first_guest_kib,
      xl_first_guest_kib: xl.first_guest_kib,
      last_over_first_launch: ours.last_over_first_launch,
      xl_last_over_first_launch: xl.last_over_first_launch,
      xenhost_mem_mib: Number(mem),
      guest_mib: ours.guest_mib,
      agent_rss_kib_per_guest: ours.agent_rss_kib_per_guest,
      kratanet_rss_kib_per_guest: ours.kratanet_rss_kib_per_guest,
      agent_threads_per_guest: ours.agent_threads_per_guest,
      agent_fds_per_guest: ours.agent_fds_per_guest,
      kratanet_threads_per_guest: ours.kratanet_threads_per_guest,
      kratanet_fds_per_guest: ours.kratanet_fds_per_guest,
      slab_kib_per_guest: ours.slab_kib_per_guest,
      xl_slab_kib_per_guest: xl.slab_kib_per_guest,
      baseline: 'xl create (Xen 4.17): same kernel and memory, 1 ro vbd + vif via hotplug scripts, xenconsoled; same QEMU host',
      per_guest: 'dom0 memory from the first guest to the last over guests - 1; first_guest_kib is what the first launch loads once',
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
