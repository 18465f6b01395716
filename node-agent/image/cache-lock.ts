// The image cache's single writer. Whoever writes <state>/images (the running node agent, or
// `krata-node-agent image` while none runs) holds an exclusive flock(2) on its .lock file for as long
// as it writes. The kernel drops the lock when its holder dies, so the lock of a dead process is simply
// taken; the file's content (pid and command) only names the holder in messages.
import { closeSync, constants, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { LOCK_EX, LOCK_NB, sysFlock } from '../../lib/libc.js';

export interface LockHolder {
  pid: number;
  /** "krata-node-agent" (the daemon) or "krata-node-agent image pull" and the like. */
  command: string;
}

/** The daemon's command in the lock file: an offline writer that meets it says "drop --offline". */
export const AGENT_COMMAND = 'krata-node-agent';

export class CacheLocked extends Error {
  constructor(
    readonly root: string,
    readonly holder: LockHolder | undefined,
  ) {
    super(`the image cache ${root} is in use by ${holder ? `${holder.command} (pid ${holder.pid})` : 'another process'}`);
  }
}

export interface CacheLock {
  /** Gives the cache up (exiting does too). */
  release(): void;
}

export function lockPath(root: string): string {
  return join(root, '.lock');
}

/** Takes the cache's lock for `command`, or throws CacheLocked naming who holds it. */
export function lockImageCache(root: string, command: string): CacheLock {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const file = lockPath(root);
  const fd = openSync(file, constants.O_RDWR | constants.O_CREAT, 0o600);
  try {
    if (!sysFlock(fd, LOCK_EX | LOCK_NB)) throw new CacheLocked(root, holderOf(file));
    ftruncateSync(fd, 0);
    writeSync(fd, JSON.stringify({ pid: process.pid, command } satisfies LockHolder) + '\n', 0);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      ftruncateSync(fd, 0); // still ours: nobody reads a holder that has gone
      closeSync(fd);
    },
  };
}

/** Takes the lock, waiting while another process holds it; `onBusy` is told once who that is. */
export async function waitForImageCache(root: string, command: string, onBusy: (e: CacheLocked) => void, pollMs = 1000) {
  let told = false;
  for (;;) {
    try {
      return lockImageCache(root, command);
    } catch (e) {
      if (!(e instanceof CacheLocked)) throw e;
      if (!told) onBusy(e);
      told = true;
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

function holderOf(file: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockHolder>;
    return typeof h.pid === 'number' && typeof h.command === 'string' ? { pid: h.pid, command: h.command } : undefined;
  } catch {
    return undefined; // being written, or empty
  }
}
