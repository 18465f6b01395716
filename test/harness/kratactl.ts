// Shared by the tests: run kratactl in-process with captured streams.
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { run } from '../../kratactl/cli.js';

export interface CliResult {
  code: number;
  stdout: string;
  /** stdout as bytes, for output that is not text. */
  stdoutBytes: Buffer;
  stderr: string;
}

export interface CliOptions {
  stdin?: string | Readable;
  /** A stream to use as stdout (a terminal double, say); its output is captured all the same. */
  stdout?: PassThrough;
  env?: NodeJS.ProcessEnv;
}

/** kratactl while it runs: its output so far, and its exit status when it ends. */
export interface RunningCli {
  code: Promise<number>;
  readonly stdout: string;
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
  /** Polls until `pred` holds; fails naming `what` and the output so far. */
  until(pred: () => boolean, what: string): Promise<void>;
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString('utf8');

export function startKratactl(args: string[], options: CliOptions = {}): RunningCli {
  const stdout = options.stdout ?? new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const stdin = typeof options.stdin === 'string' ? Readable.from([Buffer.from(options.stdin)]) : (options.stdin ?? Readable.from([]));
  const code = run(args, { stdin, stdout, stderr, env: options.env ?? {} });
  return {
    code,
    get stdout() {
      return text(out);
    },
    get stdoutBytes() {
      return Buffer.concat(out);
    },
    get stderr() {
      return text(err);
    },
    async until(pred, what) {
      for (let i = 0; i < 500 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(pred(), `${what}; stdout ${JSON.stringify(text(out))}, stderr ${JSON.stringify(text(err))}`);
    },
  };
}

export async function kratactl(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const p = startKratactl(args, options);
  const code = await p.code;
  return { code, stdout: p.stdout, stdoutBytes: p.stdoutBytes, stderr: p.stderr };
}
