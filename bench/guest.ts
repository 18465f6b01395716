// `npm run bench -- guest`: guest-init as guests get it (release, static): its size, its own resident
// memory while the container process runs, and kernel boot to the process's exec (the guest's
// /proc/uptime when the process starts), under QEMU with Debian's kernel. Baseline, in the same run:
// busybox sh as PID 1 in an initrd with the same kernel, which does no setup at all and reads the
// same figures — the floor an init cannot beat.
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { busyboxImage, launchArchive } from '../test/guest-disks.js';
import { appendToInitrd, bootUnderQemu, buildGuestInit, guestInitrd, kernelAndModules } from '../test/guest-boot.js';

// smaps_rollup, not VmRSS: a sleeping PID 1's VmRSS can lag (per-task RSS counters sync late), the
// page-table walk behind smaps_rollup does not.
const PROBE = 'read up idle < /proc/uptime; echo "KRATA-BENCH uptime=$up"; sleep 1; grep "^Rss:" /proc/1/smaps_rollup';

function measure(serial: string): { bootToExecMs: number; rssKb: number } {
  const up = /KRATA-BENCH uptime=([\d.]+)/.exec(serial);
  const rss = /Rss:\s+(\d+) kB/.exec(serial);
  if (!up || !rss) throw new Error(`the guest did not report its figures:\n${serial.slice(-2000)}`);
  return { bootToExecMs: Math.round(Number(up[1]) * 1000), rssKb: Number(rss[1]) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function guestBench(runs = Number(process.env.KRATA_BENCH_RUNS ?? 3)): Record<string, unknown> {
  const work = mkdtempSync(join(tmpdir(), 'krata-bench-guest-'));
  try {
    const init = buildGuestInit('release');
    const initBytes = statSync(init).size;
    const { vmlinuz, modules } = kernelAndModules(['virtio_pci', 'virtio_blk', 'squashfs', 'overlay']);
    const image = busyboxImage(work, ['sh', 'grep', 'sleep']);
    // As the builder loads a guest's: the shared initrd, then its launch config archive.
    const initrd = appendToInitrd(
      join(work, 'initrd-bench.cpio'),
      guestInitrd(join(work, 'initrd.cpio'), init, modules),
      launchArchive(work, 'bench', { Cmd: ['sh', '-c', PROBE] }, { tty: false, terminationGracePeriodSeconds: 5 }),
    );
    // The baseline's initrd: busybox as /init running the same probe, then powering off.
    const base = join(work, 'baseline');
    mkdirSync(join(base, 'bin'), { recursive: true });
    mkdirSync(join(base, 'proc'));
    copyFileSync('/bin/busybox', join(base, 'bin/busybox'));
    for (const a of ['sh', 'grep', 'sleep', 'mount', 'poweroff']) symlinkSync('busybox', join(base, 'bin', a));
    writeFileSync(join(base, 'init'), `#!/bin/sh\nmount -t proc proc /proc\n${PROBE}\npoweroff -f\n`);
    chmodSync(join(base, 'init'), 0o755);
    const baseInitrd = join(work, 'baseline.cpio');
    execFileSync('sh', ['-c', `cd '${base}' && find . | cpio -o -H newc --quiet > '${baseInitrd}'`]);

    const ours: { bootToExecMs: number; rssKb: number }[] = [];
    const theirs: { bootToExecMs: number; rssKb: number }[] = [];
    for (let i = 0; i < runs; i++) {
      ours.push(measure(bootUnderQemu(vmlinuz, initrd, [image], 'krata.image=/dev/vda').serial));
      theirs.push(measure(bootUnderQemu(vmlinuz, baseInitrd, [], '').serial));
      console.log(
        `run ${i + 1}: guest-init ${ours.at(-1)!.bootToExecMs} ms, ${ours.at(-1)!.rssKb} ` +
          `kB; busybox sh ${theirs.at(-1)!.bootToExecMs} ms, ${theirs.at(-1)!.rssKb} kB`,
      );
    }
    const boot = median(ours.map((o) => o.bootToExecMs));
    const baseBoot = median(theirs.map((o) => o.bootToExecMs));
    return {
      bench: 'guest',
      init_bytes: initBytes,
      init_rss_kb: median(ours.map((o) => o.rssKb)),
      boot_to_exec_ms: boot,
      baseline: "busybox sh as PID 1, no setup, same kernel (Debian's, QEMU TCG)",
      baseline_rss_kb: median(theirs.map((o) => o.rssKb)),
      baseline_boot_to_exec_ms: baseBoot,
      ratio: Number((boot / baseBoot).toFixed(2)),
      goals: { init_bytes: 1.5 * 1024 * 1024, init_rss_kb: 2048 },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
