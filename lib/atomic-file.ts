// Files that are either absent, old or new, never half-written, also across kill -9 and power loss:
// write a temporary file beside the target, fsync it, rename it over the target, fsync the directory.
// A write that fails (ENOSPC, EDQUOT, EIO) removes its temporary: retries on a full disk must not fill
// it further. Several files can be prepared first and committed together (`prepareFileAtomic`), so a
// batch that does not fit stores nothing.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A temporary written and fsynced beside its target: `commit` renames it in place, `abort` removes it. */
export interface PreparedFile {
  readonly file: string;
  /** The temporary (beside `file`) that `commit` renames. */
  readonly tmp: string;
  /** Renames the temporary over the target (no fsync of the directory: the caller does that once per directory). */
  commit(): void;
  /** Removes the temporary; harmless after commit or a second abort. */
  abort(): void;
}

/** Writes and fsyncs `data` to a temporary beside `file`; on failure nothing is left behind. */
export function prepareFileAtomic(file: string, data: string | Buffer, mode = 0o644): PreparedFile {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeFileSync(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeQuietly(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  try {
    closeSync(fd);
  } catch (e) {
    // close can report a deferred write error (NFS): the data is not safe.
    rmSync(tmp, { force: true });
    throw e;
  }
  let done = false;
  return {
    file,
    tmp,
    commit() {
      if (done) throw new Error(`${file}: already committed or aborted`);
      renameSync(tmp, file);
      done = true;
    },
    abort() {
      if (done) return;
      done = true;
      rmSync(tmp, { force: true });
    },
  };
}

export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): void {
  const prepared = prepareFileAtomic(file, data, mode);
  try {
    prepared.commit();
  } catch (e) {
    prepared.abort();
    throw e;
  }
  fsyncDir(dirname(file));
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // the write error is the one worth reporting
  }
}
