// The client's end of an exec stream (exec.ts), for kratactl (over the agent's upgrade) and kubectl-krata (over
// krata-api's websocket): the process's output to our stdout and stderr, our stdin (with -i) to the process,
// resize and signal frames, until EXIT. Backpressure both ways: a stdout that is behind pauses the socket (the
// agent then holds the guest back), and a socket that is behind pauses our stdin.
import type { Duplex, Readable, Writable } from 'node:stream';
import { ExecFrame, ExecFrameDecoder, MAX_EXEC_FRAME, encodeExecFrame, type ExecResult } from './exec.js';
import { constants } from 'node:os';

const SIGPIPE = constants.signals.SIGPIPE;

export interface ExecStreamOptions {
  /** Streamed to the process when given (-i); its end ends the process's stdin. */
  stdin?: Readable;
  stdout: Writable;
  stderr: Writable;
  /** The error `result` rejects with when the stream breaks before EXIT (each client has its own class); Error by default. */
  failure?: (why: string) => Error;
  /** Who is at the other end, in messages ("the node agent" by default). */
  peer?: string;
}

export class ExecStream {
  /** How the process ended; rejects with opts.failure's error when the stream broke before EXIT. */
  readonly result: Promise<ExecResult>;
  private settle!: (r: ExecResult | Error) => void;
  private done = false;
  private readonly decoder = new ExecFrameDecoder();
  private readonly stdin?: Readable;
  private readonly peer: string;
  private readonly onStdin = (d: Buffer | string) => this.sendStdin(Buffer.isBuffer(d) ? d : Buffer.from(d));
  private readonly onStdinEnd = () => this.send(ExecFrame.stdinEnd);

  constructor(
    private readonly socket: Duplex,
    private readonly opts: ExecStreamOptions,
  ) {
    this.result = new Promise<ExecResult>((resolve, reject) => {
      this.settle = (r) => (r instanceof Error ? reject(r) : resolve(r));
    });
    socket.on('data', (d: Buffer) => this.input(d));
    socket.on('end', () => this.fail(`${this.peer} ended the exec stream before the process ended`));
    socket.on('close', () => this.fail('the exec connection closed before the process ended'));
    socket.on('error', (e) => this.fail(`the exec connection broke: ${e.message}`));
    this.peer = opts.peer ?? 'the node agent';
    this.stdin = opts.stdin;
    if (this.stdin) {
      this.stdin.on('data', this.onStdin);
      this.stdin.on('end', this.onStdinEnd);
      this.stdin.on('error', this.onStdinEnd); // unreadable stdin ends the command's
      this.stdin.resume();
    }
    opts.stdout.on('error', this.onOutputError);
    opts.stderr.on('error', this.onOutputError);
  }

  /** Output that can no longer be written (a closed pipe): the command goes, as a process killed by SIGPIPE would. */
  private readonly onOutputError = () => this.close({ exitCode: 128 + SIGPIPE, signal: SIGPIPE });

  resize(rows: number, cols: number): void {
    this.send(ExecFrame.resize, { rows, cols });
  }

  /** Sends a signal (1..31) to the process group. */
  signal(signo: number): void {
    this.send(ExecFrame.signal, { signal: signo });
  }

  /**
   * Abandons the stream, ending it with `result` here: the agent closes the session and the guest kills
   * the process group.
   */
  close(result: ExecResult): void {
    if (this.done) return;
    this.stop();
    // end, not destroy: frames already queued (a signal) still reach the agent before it closes the session.
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.settle(result);
  }

  private send(type: 1 | 4 | 5 | 6, payload: Buffer | object = Buffer.alloc(0)): boolean {
    if (this.done || this.socket.destroyed) return true;
    return this.socket.write(encodeExecFrame(type, payload));
  }

  private sendStdin(data: Buffer): void {
    let ok = true;
    for (let at = 0; at < data.length; at += MAX_EXEC_FRAME) ok = this.send(ExecFrame.stdin, data.subarray(at, at + MAX_EXEC_FRAME)) && ok;
    if (ok || !this.stdin) return;
    this.stdin.pause();
    this.socket.once('drain', () => {
      if (!this.done) this.stdin?.resume();
    });
  }

  private input(data: Buffer): void {
    if (this.done) return;
    let frames: { type: number; payload: Buffer }[];
    try {
      frames = this.decoder.push(data);
    } catch (e) {
      return this.fail(`${this.peer} sent a malformed exec frame: ${(e as Error).message}`);
    }
    for (const { type, payload } of frames) {
      if (type === ExecFrame.stdout) this.output(this.opts.stdout, payload);
      else if (type === ExecFrame.stderr) this.output(this.opts.stderr, payload);
      else if (type === ExecFrame.exit) return this.exit(payload);
      // STARTED (and anything newer agents may add) needs nothing here.
    }
  }

  private output(out: Writable, data: Buffer): void {
    if (out.write(data) || this.socket.isPaused()) return;
    this.socket.pause();
    out.once('drain', () => this.socket.resume());
  }

  private exit(payload: Buffer): void {
    let result: ExecResult;
    try {
      result = JSON.parse(payload.toString('utf8')) as ExecResult;
      if (typeof result?.exitCode !== 'number') throw new Error('no exitCode');
    } catch {
      return this.fail(`${this.peer} sent an exit status that is not JSON ExecResult: ${payload.toString('utf8').slice(0, 200)}`);
    }
    this.stop();
    this.socket.end();
    this.settle(result);
  }

  private fail(why: string): void {
    if (this.done) return;
    this.stop();
    this.socket.destroy();
    this.settle(this.opts.failure ? this.opts.failure(why) : new Error(why));
  }

  private stop(): void {
    this.done = true;
    if (this.stdin) {
      this.stdin.off('data', this.onStdin);
      this.stdin.off('end', this.onStdinEnd);
      this.stdin.off('error', this.onStdinEnd);
      this.stdin.pause();
    }
    this.opts.stdout.off('error', this.onOutputError);
    this.opts.stderr.off('error', this.onOutputError);
  }
}
