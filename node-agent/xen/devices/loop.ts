// Read-only loop devices for guest disks (blkback serves block devices, not files). One device per
// image, shared by every guest of it: attached with LOOP_CONFIGURE (file, read-only and autoclear
// flags, name in one ioctl), so the kernel detaches it when its last user closes it. The agent holds
// the device open from the moment it picks it until blkback has opened it too (HeldLoop.release), so
// it cannot be detached, and its number reused for another file, in between. A kill of the agent
// closes what it held: a device no blkback took goes with it.
import { fstatSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LoopFlag, LoopIoctl, loopConfig, loopInfo64 } from '../abi.js';
import { getField, setField } from '../../../lib/c-layout.js';
import { O_CLOEXEC, SysError, sysClose, sysIoctl, sysOpen } from '../../../lib/libc.js';

const O_RDONLY = 0;
const O_RDWR = 2;
const SHARED_FLAGS = LoopFlag.READ_ONLY | LoopFlag.AUTOCLEAR;

export interface LoopDevice {
  path: string;
  major: number;
  minor: number;
}

/** A loop device the caller holds open: while held it stays attached to its file. */
export interface HeldLoop extends LoopDevice {
  /** Whether it was already serving the file (another guest's) rather than attached now. */
  shared: boolean;
  /** Lets go (idempotent): the device goes once nobody else (blkback) holds it. */
  release(): void;
}

function held(path: string, fd: number, shared: boolean): HeldLoop {
  const rdev = fstatSync(fd).rdev;
  let open = true;
  return {
    path,
    major: Math.floor(rdev / 256) & 0xfff,
    minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
    shared,
    release: () => {
      if (open) sysClose(fd);
      open = false;
    },
  };
}

export interface AttachedLoop {
  path: string;
  backingFile: string;
}

/** Every attached loop device and its backing file, from sysfs (a deleted file's " (deleted)" dropped). */
export function attachedLoops(sysBlock = '/sys/block'): AttachedLoop[] {
  let names: string[];
  try {
    names = readdirSync(sysBlock);
  } catch {
    return [];
  }
  const out: AttachedLoop[] = [];
  for (const name of names) {
    if (!/^loop\d+$/.test(name)) continue;
    let backing: string;
    try {
      backing = readFileSync(join(sysBlock, name, 'loop', 'backing_file'), 'utf8').replace(/\n$/, '');
    } catch {
      continue; // not attached
    }
    if (backing === '') continue;
    out.push({ path: `/dev/${name}`, backingFile: backing.replace(/ \(deleted\)$/, '') });
  }
  return out.sort((a, b) => Number(a.path.slice(9)) - Number(b.path.slice(9)));
}

/** Whether the kernel detaches the device by itself when its last user closes it (sysfs). */
export function isAutoclear(path: string, sysBlock = '/sys/block'): boolean {
  try {
    return readFileSync(`${sysBlock}/${path.replace(/^\/dev\//, '')}/loop/autoclear`, 'utf8').trim() === '1';
  } catch {
    return false; // not attached
  }
}

/**
 * A loop device already serving `file` read-only with autoclear (holdLoop's, for another guest), held
 * open; undefined when there is none. sysfs names the candidates; the device's own status, read while
 * we hold it, decides: the same file by device and inode, not a namesake, and still attached.
 */
function findShared(file: string, sysBlock: string): HeldLoop | undefined {
  const st = statSync(file, { bigint: true });
  // attachedLoops drops " (deleted)": a namesake of a replaced file is told apart by its inode below.
  for (const { path } of attachedLoops(sysBlock).filter((l) => l.backingFile === file)) {
    let fd: number;
    try {
      fd = sysOpen(path, O_RDONLY | O_CLOEXEC);
    } catch {
      continue;
    }
    try {
      const info = Buffer.alloc(loopInfo64.size);
      sysIoctl(fd, LoopIoctl.GET_STATUS64, info, `LOOP_GET_STATUS64 ${path}`);
      const flags = getField(info, loopInfo64, 'lo_flags') as number;
      // lo_device is the kernel's huge_encode_dev, the same number as glibc's dev_t below major 4096.
      const same = getField(info, loopInfo64, 'lo_inode') === st.ino && getField(info, loopInfo64, 'lo_device') === st.dev;
      if (same && (flags & SHARED_FLAGS) === SHARED_FLAGS) return held(path, fd, true);
    } catch {
      // detached meanwhile (ENXIO)
    }
    sysClose(fd);
  }
  return undefined;
}

/** Attach `file` read-only and autoclear to a free loop device, held; retried when another process takes it first. */
function attachNew(file: string): HeldLoop {
  const backing = sysOpen(file, O_RDONLY | O_CLOEXEC);
  try {
    for (let attempt = 0; attempt < 10; attempt++) {
      const control = sysOpen('/dev/loop-control', O_RDWR | O_CLOEXEC);
      let n: number;
      try {
        n = sysIoctl(control, LoopIoctl.CTL_GET_FREE, null, 'LOOP_CTL_GET_FREE');
      } finally {
        sysClose(control);
      }
      const path = `/dev/loop${n}`;
      const loop = sysOpen(path, O_RDWR | O_CLOEXEC);
      try {
        const config = Buffer.alloc(loopConfig.size);
        setField(config, loopConfig, 'fd', backing);
        setField(config, loopConfig, 'lo_flags', SHARED_FLAGS);
        setField(config, loopConfig, 'lo_file_name', Buffer.from(file).subarray(-63));
        sysIoctl(loop, LoopIoctl.CONFIGURE, config, `LOOP_CONFIGURE ${path}`);
        return held(path, loop, false);
      } catch (e) {
        sysClose(loop);
        if ((e as SysError).code !== 'EBUSY') throw e;
      }
    }
    throw new Error(`no free loop device for ${file} after 10 attempts`);
  } finally {
    sysClose(backing);
  }
}

/**
 * A read-only loop device over `file` for a guest's disk, held until release(): the one already serving
 * the file when there is one, else a free one attached now. The file is named by its real path (what
 * sysfs shows), so two paths to one image share too.
 */
export function holdLoop(file: string, sysBlock = '/sys/block'): HeldLoop {
  const real = realpathSync(file);
  return findShared(real, sysBlock) ?? attachNew(real);
}

export function detachLoop(path: string): void {
  if (!/^\/dev\/loop\d+$/.test(path)) throw new Error(`refusing to detach ${path}: not a loop device`);
  const loop = sysOpen(path, O_RDONLY | O_CLOEXEC);
  try {
    // On a device others hold open (another guest's blkback) this only marks it autoclear.
    sysIoctl(loop, LoopIoctl.CLR_FD, null, `LOOP_CLR_FD ${path}`);
  } catch (e) {
    if ((e as SysError).code !== 'ENXIO') throw e; // not attached: nothing to do
  } finally {
    sysClose(loop);
  }
}
