// Joins an exec session to its client's upgraded socket (contracts/agent-api/exec.ts): output and the
// session's start and end go out as frames, the client's stdin, resize and signal frames come in.
// Backpressure both ways, so the agent's memory per exec stays bounded: output buffered for a slow
// client past EXEC_OUTPUT_BOUND makes the sink say false (the guest gets no more credit) until the
// socket drains; stdin the guest has no room for pauses the client's socket until the session drains.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { EXEC_PROTOCOL, ExecFrame, ExecFrameDecoder, MAX_EXEC_FRAME, encodeExecFrame } from '../../contracts/agent-api/exec.js';
import type { ExecFrameType } from '../../contracts/agent-api/exec.js';
import type { ExecRequest, ExecResult, ExecSession, ExecSink } from '../channel/index.js';

/** Output waiting in the client's socket past which the guest is held back. */
export const EXEC_OUTPUT_BOUND = 256 * 1024;
/** A session whose output grows past this although the sink said false (a broken channel) is cut. */
const EXEC_OUTPUT_LIMIT = 8 * 1024 * 1024;
/** After EXIT, a client that neither reads the rest nor closes is dropped once idle this long. */
const LINGER_MS = 30_000;
/** The exit code of a session the agent ended itself (a malformed client frame, the agent stopping). */
const AGENT_ENDED_EXIT = 1;

export class ExecBridge {
  readonly sink: ExecSink;
  private session?: ExecSession;
  /** Frames the session produced before the 101 went out. */
  private early: Buffer[] = [];
  private earlyBytes = 0;
  private upgraded = false;
  /** EXIT has been queued (or the client left): nothing more goes either way. */
  private finished = false;
  /** The sink said false: resumeOutput() is owed once the socket drains. */
  private held = false;
  private stdinEnded = false;
  private offStdinDrain?: () => void;
  private untrack = () => {};
  private readonly decoder = new ExecFrameDecoder();

  constructor(
    private readonly socket: Duplex,
    private readonly request: ExecRequest,
  ) {
    this.sink = {
      stdout: (d) => this.output(ExecFrame.stdout, d),
      stderr: (d) => this.output(ExecFrame.stderr, d),
      started: (pid) => this.send(encodeExecFrame(ExecFrame.started, { pid })),
      exit: (result) => this.end(result, false),
    };
  }

  /** Answers 101 and streams; a client that left while the session was being opened closes it at once. */
  start(session: ExecSession, head: Buffer, track: (stop: () => void) => () => void): void {
    this.session = session;
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) {
      this.finished = true;
      session.close();
      return;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${EXEC_PROTOCOL}\r\n\r\n`);
    this.upgraded = true;
    for (const frame of this.early.splice(0)) socket.write(frame);
    this.earlyBytes = 0;
    if (this.held) this.awaitDrain();
    if (this.finished) return this.linger();
    this.untrack = track(() => this.abort('the node agent is stopping'));
    const gone = () => this.clientGone();
    // A unix socket cannot tell a half-close from a close: the client's end ends the session (stdin's end is a frame).
    socket.on('end', gone);
    socket.on('close', gone);
    socket.on('error', gone);
    socket.on('data', (d: Buffer) => this.input(d));
    if (head.length) this.input(head);
  }

  private output(type: ExecFrameType, data: Buffer): boolean {
    if (this.finished) return true;
    for (let at = 0; at < data.length; at += MAX_EXEC_FRAME) this.send(encodeExecFrame(type, data.subarray(at, at + MAX_EXEC_FRAME)));
    const buffered = this.upgraded ? this.socket.writableLength : this.earlyBytes;
    if (buffered < EXEC_OUTPUT_BOUND) return true;
    if (!this.held) {
      this.held = true;
      if (this.upgraded) this.awaitDrain();
    }
    return false;
  }

  /** resumeOutput() once the socket has taken what is buffered. */
  private awaitDrain(): void {
    const resume = () => {
      this.held = false;
      if (!this.finished) this.session?.resumeOutput();
    };
    // Past the bound, the socket's last write said false: 'drain' is due once it is all written.
    if (this.socket.writableLength < EXEC_OUTPUT_BOUND) resume();
    else this.socket.once('drain', resume);
  }

  private send(frame: Buffer): void {
    if (!this.upgraded) {
      this.early.push(frame);
      this.earlyBytes += frame.length;
      return;
    }
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) return;
    socket.write(frame);
    if (socket.writableLength > EXEC_OUTPUT_LIMIT) {
      this.finish();
      this.session?.close();
      socket.destroy();
    }
  }

  private input(data: Buffer): void {
    if (this.finished) return;
    let frames: { type: number; payload: Buffer }[];
    try {
      frames = this.decoder.push(data);
    } catch (e) {
      return this.abort(`the client sent a malformed exec frame: ${(e as Error).message}`);
    }
    for (const f of frames) {
      if (this.finished) return;
      const problem = this.frame(f.type, f.payload);
      if (problem) return this.abort(`the client sent a malformed exec frame: ${problem}`);
    }
  }

  /** Hands one client frame to the session; what is wrong with it otherwise. */
  private frame(type: number, payload: Buffer): string | undefined {
    const session = this.session!;
    switch (type) {
      case ExecFrame.stdin:
        if (!this.request.stdin) return 'stdin data, but the exec was opened without stdin';
        if (this.stdinEnded) return 'stdin data after the end of stdin';
        if (!session.writeStdin(payload) && !this.offStdinDrain) {
          // The guest has no room: the client's writes wait in the kernel until the session drains.
          this.socket.pause();
          this.offStdinDrain = session.onStdinDrain(() => {
            this.offStdinDrain?.();
            this.offStdinDrain = undefined;
            if (!this.finished) this.socket.resume();
          });
        }
        return undefined;
      case ExecFrame.stdinEnd:
        if (payload.length) return 'stdinEnd with a payload';
        if (this.request.stdin && !this.stdinEnded) session.endStdin();
        this.stdinEnded = true;
        return undefined;
      case ExecFrame.resize: {
        const v = json(payload) as { rows?: unknown; cols?: unknown } | undefined;
        if (!v || !isDimension(v.rows) || !isDimension(v.cols)) return 'resize is not {"rows":1..65535,"cols":1..65535}';
        session.resize(v.rows, v.cols);
        return undefined;
      }
      case ExecFrame.signal: {
        const v = json(payload) as { signal?: unknown } | undefined;
        const n = v?.signal;
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 31) return 'signal is not {"signal":1..31}';
        session.signal(n);
        return undefined;
      }
      default:
        return `frame type ${type} is not one a client sends`;
    }
  }

  /** The session ended (EXIT from the guest), or the agent ends it (`closeSession`): EXIT is the last frame. */
  private end(result: ExecResult, closeSession: boolean): void {
    if (this.finished) return;
    this.send(encodeExecFrame(ExecFrame.exit, result));
    this.finish();
    if (closeSession) this.session?.close();
    if (this.upgraded) this.linger();
  }

  private abort(why: string): void {
    this.end({ exitCode: AGENT_ENDED_EXIT, error: why }, true);
  }

  /** Ends the socket after what is queued; a client that stays idle past LINGER_MS is dropped. */
  private linger(): void {
    const socket = this.socket;
    socket.end();
    socket.resume(); // input is dropped now; reading it lets the client's close be seen
    const s = socket as Partial<Socket>;
    if (typeof s.setTimeout === 'function') s.setTimeout(LINGER_MS, () => socket.destroy());
    else setTimeout(() => socket.destroy(), LINGER_MS).unref();
  }

  private clientGone(): void {
    if (!this.finished) {
      this.finish();
      this.session?.close();
    }
    this.socket.destroy();
  }

  private finish(): void {
    this.finished = true;
    this.untrack();
    this.offStdinDrain?.();
    this.offStdinDrain = undefined;
  }
}

function json(payload: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(payload.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function isDimension(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
}
