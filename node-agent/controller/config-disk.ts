// The guest's config disk (xvdb): a squashfs holding launch.json, written through the same tar →
// mksquashfs path as images (no staging directory), under a temporary name and then renamed. A
// failure leaves neither the temporary nor a half disk; a full disk is said by name (ENOSPC, in the
// image cache's words: image/no-space.ts), not as the broken pipe mksquashfs leaves.
import { renameSync, rmSync } from 'node:fs';
import { serializeLaunchConfig, type LaunchConfigV1 } from '../guest/launch-config.js';
import { asNoSpace } from '../../lib/no-space.js';
import { SquashfsWriter } from '../image/squashfs.js';
import { encodeHeader, TAR_END, tarPadding } from '../../lib/tar.js';

export async function writeConfigDisk(out: string, config: LaunchConfigV1): Promise<void> {
  const data = serializeLaunchConfig(config);
  const tmp = `${out}.partial`;
  const writer = new SquashfsWriter(tmp, { compression: 'gzip' });
  try {
    await writer.write([encodeHeader({ path: 'launch.json', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: data.length }), data, tarPadding(data.length), TAR_END]);
    await writer.close();
    renameSync(tmp, out);
  } catch (e) {
    await writer.abort();
    rmSync(tmp, { force: true });
    throw asNoSpace(e, `the config disk ${out}`) ?? e;
  }
}
