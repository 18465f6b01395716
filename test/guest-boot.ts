// Booting a guest's initrd under QEMU (TCG) with Debian's stock kernel, no Xen: for guest-init's boot
// test and the `guest` benchmark. The kernel and the modules come from scripts/fetch-test-kernel.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { buildInitrd, guestInitrdEntries } from '../node-agent/guest/initrd.js';
import { initrdParts } from '../node-agent/xen/builder/initrd-parts.js';
import { repoRoot } from '../lib/package-root.js';

export const repo = repoRoot();

/** Debian's kernel and, in load order without repeats, the module files for `names`. */
export function kernelAndModules(names: string[]): { vmlinuz: string; modules: string[] } {
  const vmlinuz = execFileSync(join(repo, 'scripts/fetch-test-kernel'), { encoding: 'utf8' }).trim();
  const version = basename(vmlinuz).replace(/^vmlinuz-/, '');
  const dir = join(dirname(vmlinuz), `modules-${version}`);
  const plan = execFileSync('modprobe', ['-d', dir, '-S', version, '--show-depends', '-a', ...names], { encoding: 'utf8' });
  const modules = [
    ...new Set(
      plan
        .split('\n')
        .filter((l) => l.startsWith('insmod '))
        .map((l) => l.split(' ')[1]!),
    ),
  ];
  return { vmlinuz, modules };
}

/** guest-init, built with Debian's toolchain: `debug` for tests, `release` as guests get it. */
export function buildGuestInit(profile: 'debug' | 'release'): string {
  execFileSync('/usr/bin/cargo', ['build', '--offline', '--quiet', ...(profile === 'release' ? ['--release'] : [])], {
    cwd: join(repo, 'guest-init'),
    env: { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return join(repo, 'guest-init/target', profile, 'guest-init');
}

/** The initrd krata gives a stock kernel: guest-init as /init, and the modules it loads, in order. */
export function guestInitrd(out: string, init: string, modules: string[]): string {
  writeFileSync(
    out,
    buildInitrd(
      guestInitrdEntries(
        readFileSync(init),
        modules.map((m) => ({ name: basename(m), data: readFileSync(m) })),
      ),
    ),
  );
  return out;
}

/**
 * `out`: the initrd with `archive` after it, laid out as krata's builder loads a guest's (QEMU's
 * -initrd takes one file); the kernel unpacks both into its rootfs.
 */
export function appendToInitrd(out: string, initrd: string, archive: string): string {
  writeFileSync(out, Buffer.concat(initrdParts(readFileSync(initrd), readFileSync(archive))));
  return out;
}

/** Boot until the guest powers off; the serial console's output and whether QEMU exited by itself. */
export function bootUnderQemu(vmlinuz: string, initrd: string, disks: string[], append: string): { serial: string; exited: boolean } {
  const r = spawnSync(
    'qemu-system-x86_64',
    [
      '-accel',
      'tcg',
      '-m',
      '256',
      '-nodefaults',
      '-display',
      'none',
      '-no-reboot',
      '-serial',
      'stdio',
      '-kernel',
      vmlinuz,
      '-initrd',
      initrd,
      '-append',
      `console=ttyS0 quiet panic=-1 ${append}`,
      ...disks.flatMap((d) => ['-drive', `file=${d},if=virtio,format=raw,readonly=on`]),
    ],
    { encoding: 'utf8', timeout: 240_000 },
  );
  // A timeout kills QEMU (r.error set), and QEMU may exit 0 on that signal: that is not the guest powering off.
  return { serial: (r.stdout ?? '') + (r.stderr ?? ''), exited: !r.error && r.signal === null && r.status !== null };
}
