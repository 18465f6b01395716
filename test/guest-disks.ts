// Test helpers for guest-init: what a guest gets besides the shared initrd — its image disk, made
// with mksquashfs (squashfs-tools), holding a static busybox with a user and group of its own, and the
// launch config archive the agent appends to the initrd (krata/launch.json).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  composeLaunchConfig,
  launchConfigArchive,
  type GuestNetworkConfig,
  type OciImageConfig,
} from '../node-agent/guest/launch-config.js';

export type GuestSpecPart = Parameters<typeof composeLaunchConfig>[1];

/** `dir/image.sqfs`: busybox with `applets`, root and app (uid 1000, also in group staff 50), /home/app owned by app. */
export function busyboxImage(dir: string, applets: string[]): string {
  const image = join(dir, 'image');
  mkdirSync(join(image, 'bin'), { recursive: true });
  mkdirSync(join(image, 'etc'));
  mkdirSync(join(image, 'home/app'), { recursive: true });
  copyFileSync('/bin/busybox', join(image, 'bin/busybox'));
  for (const applet of applets) symlinkSync('busybox', join(image, 'bin', applet));
  writeFileSync(join(image, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n');
  writeFileSync(join(image, 'etc/group'), 'root:x:0:\napp:x:1000:\nstaff:x:50:app\n');
  execFileSync('chown', ['-R', '1000:1000', join(image, 'home/app')]);
  const out = join(dir, 'image.sqfs');
  execFileSync('mksquashfs', [image, out, '-quiet', '-noappend']);
  return out;
}

/** `dir/launch-NAME.cpio`: the archive the agent would append to the initrd, holding its launch.json. */
export function launchArchive(dir: string, name: string, image: OciImageConfig, spec: GuestSpecPart, network?: GuestNetworkConfig): string {
  const out = join(dir, `launch-${name}.cpio`);
  writeFileSync(out, launchConfigArchive(composeLaunchConfig(name, spec, image, network)));
  return out;
}
