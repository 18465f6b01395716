// mksquashfs fed one tar stream on stdin (squashfs-tools 4.5.1's `-tar`). One compressor thread makes
// the output byte-identical for the same input. In -tar mode 4.5.1 takes the root directory's time
// from the clock (-root-time is ignored there, and SOURCE_DATE_EPOCH would flatten every file's
// mtime), so it runs with libfaketime's clock stopped at the epoch.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';

const FAKETIME_LIBS = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1', '/usr/lib/faketime/libfaketimeMT.so.1'];

function faketimeLib(): string {
  const lib = FAKETIME_LIBS.find((p) => existsSync(p));
  if (!lib) throw new Error(`libfaketime is not installed (apt-get install faketime): reproducible squashfs needs it (looked in ${FAKETIME_LIBS.join(', ')})`);
  return lib;
}

export interface SquashfsOptions {
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

/** A running mksquashfs: write the archive with backpressure, then `close()` to finish. */
export class SquashfsWriter {
  private readonly child: ChildProcess;
  private readonly exited: Promise<number | null>;
  private stderr = '';
  private failed?: Error;

  constructor(readonly out: string, opts: SquashfsOptions = {}) {
    this.child = spawn('mksquashfs', mksquashfsArgs(out, opts), {
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { ...process.env, LD_PRELOAD: faketimeLib(), FAKETIME: '1970-01-01 00:00:00', TZ: 'UTC', FAKETIME_DONT_RESET: '1' },
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      if (this.stderr.length < 8192) this.stderr += d.toString();
    });
    this.child.stdin!.on('error', (e) => (this.failed ??= e));
    this.exited = new Promise((resolve, reject) => {
      this.child.on('error', (e) => reject(new Error(`cannot run mksquashfs (is squashfs-tools installed?): ${e.message}`)));
      this.child.on('exit', (code) => resolve(code));
    });
    this.exited.catch((e: Error) => (this.failed ??= e));
  }

  /** Writes chunks; resolves when the pipe can take more. */
  async write(chunks: Buffer[]): Promise<void> {
    let full = false;
    for (const c of chunks) full = !this.child.stdin!.write(c) || full;
    if (this.failed) throw this.error();
    if (full) {
      await Promise.race([once(this.child.stdin!, 'drain'), this.exited.then(() => undefined)]);
      if (this.child.exitCode !== null) throw this.error();
    }
  }

  async close(): Promise<void> {
    this.child.stdin!.end();
    const code = await this.exited;
    if (code !== 0 || this.failed) throw this.error(code);
  }

  /** Stops mksquashfs (the caller removes the partial output). */
  async abort(): Promise<void> {
    this.child.stdin!.destroy();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited.catch(() => undefined);
  }

  private error(code?: number | null): Error {
    const detail = this.stderr.trim().split('\n').slice(-5).join('; ');
    return this.failed && !detail ? this.failed : new Error(`mksquashfs failed${code != null ? ` (exit ${code})` : ''}: ${detail || 'no output'}`);
  }
}
