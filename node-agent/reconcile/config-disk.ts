// The guest's config disk (xvdb): a squashfs holding launch.json, written in-process
// (image/flat-squashfs.ts: no mksquashfs per launch) under a temporary name and then renamed. A
// failure leaves neither the temporary nor a half disk; a full disk is said by name (ENOSPC, in the
// image cache's words: lib/no-space.ts). One per Guest uid in STATE/disks (ConfigDisks), removed with
// its Guest; a resync removes those whose Guest is gone.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { serializeLaunchConfig, type LaunchConfigV1 } from '../guest/launch-config.js';
import { asNoSpace } from '../../lib/no-space.js';
import { flatSquashfs } from '../image/flat-squashfs.js';

export async function writeConfigDisk(out: string, config: LaunchConfigV1): Promise<void> {
  const image = flatSquashfs([{ name: 'launch.json', data: serializeLaunchConfig(config), mode: 0o644 }]);
  const tmp = `${out}.partial`;
  try {
    await writeFile(tmp, image);
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw asNoSpace(e, `the config disk ${out}`) ?? e;
  }
}

/** STATE/disks: the config disk of each Guest, by uid. */
export class ConfigDisks {
  readonly dir: string;

  constructor(
    stateDir: string,
    /** Simulations of many hosts swap it for something cheaper. */
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
