// guest-init booted by a real kernel, without Xen: Debian's stock kernel under QEMU (TCG), an initrd
// from krata's cpio writer holding guest-init and the modules it loads (virtio disks, squashfs,
// overlay) followed by the launch config archive, as krata's builder lays them out (the kernel
// unpacks it to /krata/launch.json, guest-init's default), and the image as a virtio disk
// (krata.image=/dev/vda).
// The process runs as the image's user; its exit status comes back on the serial console, and the
// guest powers itself off (QEMU exits). The Xen path is e2e scenario 090. Needs qemu-system-x86,
// kmod and Debian's kernel (scripts/install-deps fetches it).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { busyboxImage, launchArchive } from '../../test/guest-disks.js';
import { appendToInitrd, bootUnderQemu, buildGuestInit, guestInitrd, kernelAndModules } from '../../test/guest-boot.js';

const work = mkdtempSync(join(tmpdir(), 'krata-qemu-boot-'));
after(() => rmSync(work, { recursive: true, force: true }));

test("Debian's kernel boots guest-init from krata's initrd; the image's process runs and its exit status is reported", () => {
  const { vmlinuz, modules } = kernelAndModules(['virtio_pci', 'virtio_blk', 'squashfs', 'overlay']);
  const shared = guestInitrd(join(work, 'initrd.cpio'), buildGuestInit('debug'), modules);
  const image = busyboxImage(work, ['sh', 'id', 'echo']);
  // tty: true, so the console (ttyS0 here, hvc0 under Xen) is the process's controlling terminal.
  const archive = launchArchive(
    work,
    'qemu',
    {
      Cmd: [
        'sh',
        '-c',
        'id; echo "GREETING=$GREETING TERM=$TERM"; [ -t 0 ] && echo stdin-is-a-tty; read -r pid comm ' +
          'state ppid pgrp session tty rest < /proc/self/stat; echo "controlling-tty=$tty"; ' +
          '[ -e /krata/launch.json ] || echo launch-config-not-in-root; exit 42',
      ],
      User: 'app',
    },
    { env: [{ name: 'GREETING', value: 'hi-from-qemu' }], tty: true, terminationGracePeriodSeconds: 5 },
  );
  const initrd = appendToInitrd(join(work, 'initrd-qemu.cpio'), shared, archive);
  const { serial, exited } = bootUnderQemu(vmlinuz, initrd, [image], 'krata.image=/dev/vda');
  assert.ok(exited, `QEMU did not exit by itself (the guest did not power off):\n${serial.slice(-3000)}`);
  assert.match(serial, /uid=1000\(app\) gid=1000\(app\)/, serial.slice(-3000));
  assert.match(serial, /GREETING=hi-from-qemu TERM=xterm/);
  assert.match(serial, /stdin-is-a-tty/);
  assert.match(serial, /controlling-tty=[1-9]\d*/, 'the console is the controlling terminal (tty_nr in /proc/self/stat)');
  assert.match(serial, /launch-config-not-in-root/, "the initramfs's launch.json is out of the process's view");
  assert.match(serial, /KRATA-EXIT \{"exitCode":42\}/);
});
