// The guest's config disk (xvdb): a squashfs holding launch.json, written through the same tar →
// mksquashfs path as images (no staging directory), under a temporary name and then renamed. A
// failure leaves neither the temporary nor a half disk; a full disk is said by name (ENOSPC, in the
// image cache's words: lib/no-space.ts), not as the broken pipe mksquashfs leaves. One per Guest uid
// in STATE/disks (ConfigDisks), removed with its Guest; a resync removes those whose Guest is gone.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { serializeLaunchConfig, type LaunchConfigV1 } from '../guest/launch-config.js';
import { asNoSpace } from '../../lib/no-space.js';
import { SquashfsWriter } from '../image/squashfs.js';
import { encodeHeader, TAR_END, tarPadding } from '../../lib/tar.js';

export async function writeConfigDisk(out: string, config: LaunchConfigV1): Promise<void> {
  const data = serializeLaunchConfig(config);
  const tmp = `${out}.partial`;
  const writer = new SquashfsWriter(tmp, { compression: 'gzip' });
  try {
    await writer.write([
      encodeHeader({ path: 'launch.json', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: data.length }),
      data,
      tarPadding(data.length),
      TAR_END,
    ]);
    await writer.close();
    renameSync(tmp, out);
  } catch (e) {
    await writer.abort();
    rmSync(tmp, { force: true });
    throw asNoSpace(e, `the config disk ${out}`) ?? e;
  }
}

/** STATE/disks: the config disk of each Guest, by uid. */
export class ConfigDisks {
  readonly dir: string;

  constructor(
    stateDir: string,
    /** Simulations of many hosts swap mksquashfs for something cheaper. */
    private readonly writeDisk: typeof writeConfigDisk = writeConfigDisk,
  ) {
    this.dir = join(stateDir, 'disks');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  path(uid: string): string {
    return join(this.dir, `${uid}.sqfs`);
  }

  /** Writes the Guest's config disk; returns its path. */
  async write(uid: string, config: LaunchConfigV1): Promise<string> {
    const disk = this.path(uid);
    await this.writeDisk(disk, config);
    return disk;
  }

  remove(uid: string): void {
    rmSync(this.path(uid), { force: true });
  }

  /** Removes the disks (and partial ones) of uids not in `live` (a crash between steps). */
  removeStray(live: ReadonlySet<string | undefined>): void {
    if (!existsSync(this.dir)) return;
    for (const f of readdirSync(this.dir)) {
      const uid = f.replace(/\.sqfs(\.partial)?$/, '');
      if (!live.has(uid)) rmSync(join(this.dir, f), { force: true });
    }
  }
}
