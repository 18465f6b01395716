// guest-init booted by a real kernel, without Xen: Debian's stock kernel under QEMU (TCG), an initrd
// from krata's cpio writer holding guest-init and the modules it loads (virtio disks, squashfs,
// overlay), the image and the config disk as virtio disks (krata.image=/dev/vda krata.config=/dev/vdb).
// The process runs as the image's user; its exit status comes back on the serial console, and the
// guest powers itself off (QEMU exits). The Xen path is e2e scenario 090. Needs qemu-system-x86,
// kmod and Debian's kernel (scripts/install-deps fetches it).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { busyboxImage, configDisk } from '../../test/guest-disks.js';
import { buildInitrd } from './initrd.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const work = mkdtempSync(join(tmpdir(), 'krata-qemu-boot-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Debian's kernel and, in load order without repeats, the module files for `names`. */
function kernelAndModules(names: string[]): { vmlinuz: string; modules: string[] } {
  const vmlinuz = execFileSync(join(repo, 'scripts/fetch-test-kernel'), { encoding: 'utf8' }).trim();
  const version = basename(vmlinuz).replace(/^vmlinuz-/, '');
  const dir = join(dirname(vmlinuz), `modules-${version}`);
  const plan = execFileSync('modprobe', ['-d', dir, '-S', version, '--show-depends', '-a', ...names], { encoding: 'utf8' });
  const modules = [...new Set(plan.split('\n').filter((l) => l.startsWith('insmod ')).map((l) => l.split(' ')[1]!))];
  return { vmlinuz, modules };
}

test("Debian's kernel boots guest-init from krata's initrd; the image's process runs and its exit status is reported", () => {
  execFileSync('/usr/bin/cargo', ['build', '--offline', '--quiet'], { cwd: join(repo, 'guest-init'), env: { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` }, stdio: ['ignore', 'inherit', 'inherit'] });
  const { vmlinuz, modules } = kernelAndModules(['virtio_pci', 'virtio_blk', 'squashfs', 'overlay']);
  const initrd = join(work, 'initrd.cpio');
  writeFileSync(initrd, buildInitrd([
    { path: 'init', data: readFileSync(join(repo, 'guest-init/target/debug/guest-init')), mode: 0o755 },
    ...modules.map((m) => ({ path: `lib/modules/krata/${basename(m)}`, data: readFileSync(m) })),
    { path: 'lib/modules/krata.order', data: Buffer.from(modules.map((m) => `/lib/modules/krata/${basename(m)}\n`).join('')) },
  ]));
  const image = busyboxImage(work, ['sh', 'id', 'echo']);
  const config = configDisk(work, 'qemu', { Cmd: ['sh', '-c', 'id; echo "GREETING=$GREETING"; exit 42'], User: 'app' }, { env: [{ name: 'GREETING', value: 'hi-from-qemu' }], tty: false, terminationGracePeriodSeconds: 5 });
  const r = spawnSync('qemu-system-x86_64', [
    '-accel', 'tcg', '-m', '256', '-nodefaults', '-display', 'none', '-no-reboot', '-serial', 'stdio',
    '-kernel', vmlinuz, '-initrd', initrd,
    '-append', 'console=ttyS0 quiet panic=-1 krata.image=/dev/vda krata.config=/dev/vdb',
    '-drive', `file=${image},if=virtio,format=raw,readonly=on`,
    '-drive', `file=${config},if=virtio,format=raw,readonly=on`,
  ], { encoding: 'utf8', timeout: 240_000 });
  const serial = r.stdout + r.stderr;
  assert.equal(r.signal, null, `QEMU did not exit by itself (the guest did not power off):\n${serial.slice(-3000)}`);
  assert.match(serial, /uid=1000\(app\) gid=1000\(app\)/, serial.slice(-3000));
  assert.match(serial, /GREETING=hi-from-qemu/);
  assert.match(serial, /KRATA-EXIT \{"exitCode":42\}/);
});
