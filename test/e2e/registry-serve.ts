// A registry on this machine for e2e scenarios whose agent pulls (dom0 reaches it as 10.0.2.2:PORT):
// Debian's docker-registry (test/registry.ts) holding
//   e2e/busybox:1   busybox (test/e2e/busybox-image.ts), one gzip layer of ~1 MB
//   e2e/bulky:1     the same plus a layer of BULKY_MIB MiB of random (incompressible) data
//   node dist/test/e2e/registry-serve.js [BULKY_MIB]
// Prints "REGISTRY 127.0.0.1:PORT" once the images are pushed, and serves until SIGTERM/SIGINT, then
// stops the registry and removes its storage.
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { buildTar } from '../../lib/tar.js';
import { buildImage, pushImage } from '../oci-images.js';
import { startRegistry } from '../registry.js';
import { busyboxImage } from './busybox-image.js';

async function main(bulkyMiB: number): Promise<void> {
  const reg = await startRegistry();
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= reg.stop().then(() => process.exit(0)));
  process.once('SIGTERM', stop).once('SIGINT', stop);
  const busybox = busyboxImage();
  await pushImage(reg, 'e2e/busybox', '1', busybox);
  const filler = buildTar([{ path: 'bulk/random.bin', data: randomBytes(bulkyMiB * 1024 * 1024) }]);
  const base = busybox.layers[0];
  const bulky = buildImage({
    layers: [
      { tar: gunzipSync(base.data), compression: 'gzip' },
      { tar: filler, compression: 'gzip' },
    ],
    config: { Env: ['PATH=/bin'], Cmd: ['sh'] },
  });
  await pushImage(reg, 'e2e/bulky', '1', bulky);
  console.log(`REGISTRY ${reg.host}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const mib = Number(process.argv[2] ?? 16);
  if (!Number.isInteger(mib) || mib < 1 || mib > 1024) {
    console.error('usage: registry-serve.js [BULKY_MIB 1-1024]');
    process.exit(2);
  }
  main(mib).catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
