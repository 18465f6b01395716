// Read-only loop devices for guest disks (blkback serves block devices, not files). Attached with
// LOOP_CONFIGURE (file, read-only flag and name in one ioctl) and detached with LOOP_CLR_FD.
import { fstatSync } from 'node:fs';
import { LoopFlag, LoopIoctl, loopConfig } from '../abi.js';
import { setField } from '../../../lib/c-layout.js';
import { O_CLOEXEC, SysError, sysClose, sysIoctl, sysOpen } from '../../../lib/libc.js';

const O_RDONLY = 0;
const O_RDWR = 2;

export interface LoopDevice {
  path: string;
  major: number;
  minor: number;
}

/** Attach `file` read-only to a free loop device; retried when another process takes the same one. */
export function attachLoop(file: string): LoopDevice {
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
        setField(config, loopConfig, 'lo_flags', LoopFlag.READ_ONLY);
        setField(config, loopConfig, 'lo_file_name', Buffer.from(file).subarray(-63));
        sysIoctl(loop, LoopIoctl.CONFIGURE, config, `LOOP_CONFIGURE ${path}`);
        const rdev = fstatSync(loop).rdev;
        return { path, major: Math.floor(rdev / 256) & 0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) };
      } catch (e) {
        if ((e as SysError).code !== 'EBUSY') throw e;
      } finally {
        sysClose(loop);
      }
    }
    throw new Error(`no free loop device for ${file} after 10 attempts`);
  } finally {
    sysClose(backing);
  }
}

export function detachLoop(path: string): void {
  if (!/^\/dev\/loop\d+$/.test(path)) throw new Error(`refusing to detach ${path}: not a loop device`);
  const loop = sysOpen(path, O_RDONLY | O_CLOEXEC);
  try {
    sysIoctl(loop, LoopIoctl.CLR_FD, null, `LOOP_CLR_FD ${path}`);
  } catch (e) {
    if ((e as SysError).code !== 'ENXIO') throw e; // not attached: nothing to do
  } finally {
    sysClose(loop);
  }
}
