// The guest's side of a Xen console ring (hvc_xen's view of struct xencons_interface), for tests of
// the console and channel backends over a plain page: the guest writes `out` and reads `in`.
import { IN_SIZE, OUT_SIZE } from '../../node-agent/xen/console/ring.js';

export function ringGuest(page: Buffer) {
  return {
    write(data: Buffer) {
      let prod = page.readUInt32LE(3084);
      for (const b of data) page[1024 + ((prod++ >>> 0) % OUT_SIZE)] = b;
      page.writeUInt32LE(prod >>> 0, 3084);
    },
    read(): Buffer {
      let cons = page.readUInt32LE(3072);
      const prod = page.readUInt32LE(3076);
      const out: number[] = [];
      while (cons !== prod) out.push(page[(cons++ >>> 0) % IN_SIZE]!);
      page.writeUInt32LE(cons >>> 0, 3072);
      return Buffer.from(out);
    },
  };
}
