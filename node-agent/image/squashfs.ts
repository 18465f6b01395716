// mksquashfs fed one tar stream on stdin (squashfs-tools 4.5.1's `-tar`). One compressor thread makes
// the output byte-identical for the same input. In -tar mode 4.5.1 takes the root directory's time
// from the clock (-root-time is ignored there, and SOURCE_DATE_EPOCH would flatten every file's
// mtime), so it runs with libfaketime's clock stopped at the epoch.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { boundHit, killGroup, spawnBounded, type ChildBounds } from './bounded-child.js';
import { NoSpaceError, noSpaceIn } from '../../lib/no-space.js';

const FAKETIME_LIBS = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1',
  '/usr/lib/faketime/libfaketimeMT.so.1',
];

function faketimeLib(): string {
  const lib = FAKETIME_LIBS.find((p) => existsSync(p));
  if (!lib)
    throw new Error(
      `libfaketime is not installed (apt-get install faketime): reproducible squashfs needs it (looked in ${FAKETIME_LIBS.join(', ')})`,
    );
  return lib;
}

export interface SquashfsOptions extends ChildBounds {
  /** zstd: fast to decompress at boot and supported by krata's kernel and Debian's. */
  compression?: 'zstd' | 'gzip' | 'xz' | 'lz4';
  /** zstd level; low levels pack fast and decompress as fast as high ones. */
  level?: number;
  /** Compressor threads; 1 (the default) for reproducible output. */
  processors?: number;
}

export function mksquashfsArgs(out: string, opts: SquashfsOptions = {}): string[] {
  const comp = opts.compression ?? 'zstd';
  const args = ['-', out, '-tar', '-no-strip', '-noappend', '-quiet', '-no-progress', '-comp', comp];
  if (comp === 'zstd') args.push('-Xcompression-level', String(opts.level ?? 3));
  args.push('-processors', String(opts.processors ?? 1), '-root-mode', '755', '-root-uid', '0', '-root-gid', '0');
  return args;
}

/**
 * A running mksquashfs (niced, CPU-limited: see bounded-child.ts): write the archive with
 * backpressure, then `close()` to finish. Errors come from its exit and stderr, so a full disk reads
 * as ENOSPC rather than as the broken pipe it causes.
 */
export class SquashfsWriter {
  private readonly child: ChildProcess;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderr = '';
  private failed?: Error;
  /** Why we killed it (a time limit, an abort), for the error. */
  private killedFor?: string;

  constructor(
    readonly out: string,
    private readonly opts: SquashfsOptions = {},
  ) {
    this.child = spawnBounded('mksquashfs', mksquashfsArgs(out, opts), opts, {
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { ...process.env, LD_PRELOAD: faketimeLib(), FAKETIME: '1970-01-01 00:00:00', TZ: 'UTC', FAKETIME_DONT_RESET: '1' },
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      if (this.stderr.length < 8192) this.stderr += d.toString();
    });
    const stderrDone = once(this.child.stderr!, 'close').catch(() => undefined);
    this.child.stdin!.on('error', (e) => (this.failed ??= e));
    this.exited = new Promise((resolve, reject) => {
      this.child.on('error', (e) => reject(new Error(`cannot run mksquashfs (is squashfs-tools installed?): ${e.message}`)));
      // 'exit' can come before the last of stderr: the error is made from all of it.
      this.child.on('exit', (code, signal) => void stderrDone.then(() => resolve({ code, signal })));
    });
    this.exited.catch((e: Error) => (this.failed ??= e));
  }

  /** Writes chunks; resolves when the pipe can take more. */
  async write(chunks: Buffer[]): Promise<void> {
    let full = false;
    for (const c of chunks) full = !this.child.stdin!.write(c) || full;
    if (this.failed || this.child.exitCode !== null || this.child.signalCode !== null) throw await this.exitError();
    if (full) {
      const gone = this.exited.then(
        () => 'exited' as const,
        () => 'exited' as const,
      );
      // A broken pipe rejects the wait for 'drain': that too means mksquashfs is gone.
      const drained = once(this.child.stdin!, 'drain').then(
        () => 'drained' as const,
        () => 'exited' as const,
      );
      if ((await Promise.race([drained, gone])) === 'exited') throw await this.exitError();
    }
  }

  async close(): Promise<void> {
    this.child.stdin!.end();
    const { code, signal } = await this.exited;
    if (code !== 0 || signal || this.failed) throw this.error(code, signal);
  }

  /** Kills mksquashfs's process group (the caller removes the partial output); `why` goes into later errors. */
  async abort(why?: string): Promise<void> {
    this.killedFor ??= why;
    this.child.stdin!.destroy();
    killGroup(this.child);
    await this.exited.catch(() => undefined);
  }

  private async exitError(): Promise<Error> {
    // A broken pipe means mksquashfs stopped: its exit and stderr say why.
    try {
      const { code, signal } = await this.exited;
      return this.error(code, signal);
    } catch (e) {
      return e as Error;
    }
  }

  private error(code?: number | null, signal?: NodeJS.Signals | null): Error {
    const detail = this.stderr.trim().split('\n').slice(-5).join('; ');
    if (this.killedFor) return new Error(this.killedFor);
    const space = noSpaceIn(this.stderr);
    if (space) return new NoSpaceError(this.out, `mksquashfs: ${detail}`, space);
    const bound = boundHit('mksquashfs', signal ?? null, this.opts);
    if (bound) return new Error(detail ? `${bound}: ${detail}` : bound);
    if (code === 127) return new Error(`cannot run mksquashfs (is squashfs-tools installed?): ${detail}`);
    return this.failed && !detail
      ? this.failed
      : new Error(`mksquashfs failed${code != null ? ` (exit ${code})` : ''}: ${detail || 'no output'}`);
  }
}
