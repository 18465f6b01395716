// Test helpers for guest-init: the disks a guest gets, made with mksquashfs (squashfs-tools) — an
// image holding a static busybox with a user and group of its own, and a config disk with launch.json.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  composeLaunchConfig,
  serializeLaunchConfig,
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

/** `dir/config-NAME.sqfs` with the launch.json the agent would write. */
export function configDisk(dir: string, name: string, image: OciImageConfig, spec: GuestSpecPart, network?: GuestNetworkConfig): string {
  const configDir = join(dir, `config-${name}`);
  mkdirSync(configDir);
  writeFileSync(join(configDir, 'launch.json'), serializeLaunchConfig(composeLaunchConfig(name, spec, image, network)));
  const out = join(dir, `config-${name}.sqfs`);
  execFileSync('mksquashfs', [configDir, out, '-quiet', '-noappend', '-all-root']);
  return out;
}
