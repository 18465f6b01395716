// A small OCI image for demos and end-to-end tests, written as a `docker save` archive by krata's own
// image code: Debian's static busybox with a few applets, /etc/passwd and /etc/group (root, app).
//   node dist/test/e2e/busybox-image.js OUT.tar [NAME]     (default name krata/busybox:demo)
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { buildTar } from '../../lib/tar.js';
import { buildImage, writeDockerSave, type BuiltImage } from '../oci-images.js';

export const APPLETS = [
  'sh',
  'id',
  'echo',
  'cat',
  'sleep',
  'hostname',
  'ls',
  'ps',
  'uname',
  'top',
  'vi',
  'wget',
  'ip',
  'ping',
  'mount',
  'df',
  'free',
  'true',
  'false',
  'stty',
  'head',
  'kill',
  'nc',
  'env',
];

export function writeBusyboxImage(out: string, name = 'krata/busybox:demo', busybox = '/bin/busybox'): void {
  writeDockerSave(out, busyboxImage(busybox), [name]);
}

/** The image itself (e.g. to push to a registry); `extra` files go into a second layer (e.g. a test program). */
export function busyboxImage(busybox = '/bin/busybox', extra: { path: string; data: Buffer; mode?: number }[] = []): BuiltImage {
  const tar = buildTar([
    { path: 'bin/busybox', data: readFileSync(busybox), mode: 0o755 },
    ...APPLETS.map((a) => ({ path: `bin/${a}`, type: 'symlink' as const, linkname: 'busybox' })),
    { path: 'etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n') },
    { path: 'etc/group', data: Buffer.from('root:x:0:\napp:x:1000:\n') },
    { path: 'home/app', type: 'dir', uid: 1000, gid: 1000 },
    { path: 'root', type: 'dir', mode: 0o700 },
    { path: 'tmp', type: 'dir', mode: 0o1777 },
  ]);
  const layers = [{ tar, compression: 'gzip' as const }];
  if (extra.length) layers.push({ tar: buildTar(extra), compression: 'gzip' });
  return buildImage({ layers, config: { Env: ['PATH=/bin'], Cmd: ['sh'] } });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [out, name] = process.argv.slice(2);
  if (!out) {
    console.error('usage: busybox-image.js OUT.tar [NAME]');
    process.exit(2);
  }
  writeBusyboxImage(out, name);
}
