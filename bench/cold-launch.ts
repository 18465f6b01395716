// `npm run bench -- cold-launch`: a Guest whose image is not cached, on the QEMU Xen host: apply →
// Running through the agent (pull from a registry, pack to squashfs, launch config, launch) against
// `skopeo copy` + `umoci unpack` + `mksquashfs` + `xl create` of the same image, kernel, memory and
// initrd with a launch config (bench/cold-launch-xen.sh). The registry is Debian's docker-registry on
// this machine's loopback, which dom0 reaches as 10.0.2.2 through QEMU's user network.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../lib/package-root.js';
import { formatPhases } from '../lib/phase-timer.js';
import { startRegistry } from '../test/registry.js';
import { pushImage } from '../test/oci-images.js';
import { busyboxImage } from '../test/e2e/busybox-image.js';
import { readAlternation } from './xen-alternate.js';

export async function coldLaunchBench(): Promise<Record<string, unknown>> {
  const root = repoRoot();
  const runs = Number(process.env.KRATA_BENCH_RUNS ?? 3);
  const reg = await startRegistry();
  try {
    const img = busyboxImage();
    await pushImage(reg, 'bench/busybox', '1', img);
    const port = reg.host.split(':').pop()!;
    const r = spawnSync('bash', [join(root, 'test/xenhost/boot.sh'), join(root, 'bench/cold-launch-xen.sh')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
      env: { ...process.env, KRATA_BENCH_REGISTRY: `10.0.2.2:${port}` },
    });
    const run = r.status === 0 ? readAlternation(r.stdout) : undefined;
    if (!run) throw new Error(`cold-launch failed (exit ${r.status}); see the output above`);
    const { ours, baseline, phases } = run;
    console.error(`the agent's cold launch on Xen, median per phase over ${runs} runs (queued → status Running):\n${formatPhases(phases)}`);
    return {
      bench: 'cold-launch',
      image: `bench/busybox:1 (${img.layers.length} gzip layer, ${img.layers.reduce((s, l) => s + l.data.length, 0)} bytes)`,
      ours_ms: ours,
      baseline_ms: baseline,
      cold_ratio: Number((ours / baseline).toFixed(2)),
      phases_ms: Object.fromEntries(phases.map((p) => [p.name, p.ms])),
      ours: 'kratactl apply → status Running, the image not cached (agent pull, pack, launch config, launch)',
      baseline:
        'skopeo copy + umoci unpack + mksquashfs (zstd) + xl create, same kernel, initrd, memory and disks (Xen 4.17 under QEMU TCG)',
    };
  } finally {
    await reg.stop();
  }
}
