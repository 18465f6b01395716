// The image of scenario 185-neighbour: the e2e busybox image plus /bin/flood (flood.c, built static on
// the host), written as a `docker save` archive.
//   node dist/test/e2e/neighbour/image.js OUT.tar NAME FLOOD_BINARY
import { readFileSync } from 'node:fs';
import { busyboxImage } from '../busybox-image.js';
import { writeDockerSave } from '../../oci-images.js';

const [out, name, flood] = process.argv.slice(2);
if (!out || !name || !flood) {
  console.error('usage: image.js OUT.tar NAME FLOOD_BINARY');
  process.exit(2);
}
writeDockerSave(out, busyboxImage('/bin/busybox', [{ path: 'bin/flood', data: readFileSync(flood), mode: 0o755 }]), [name]);
