// `kratactl exec` on the wire: an HTTP Upgrade on GET /v1/namespaces/NS/guests/NAME/exec, the request
// in the query (command, env and so on, as kubectl's exec does), then frames both ways until EXIT.
// Frame: u8 type, u32 little-endian length, payload (at most MAX_EXEC_FRAME bytes).

/** The HTTP Upgrade protocol of an exec stream. */
export const EXEC_PROTOCOL = 'krata-exec.v1';
export const MAX_EXEC_FRAME = 64 * 1024;

export const ExecFrame = {
  /** client → agent: bytes for the process's stdin. */
  stdin: 1,
  /** agent → client: the process's output. */
  stdout: 2,
  stderr: 3,
  /** client → agent: stdin ended (empty payload). */
  stdinEnd: 4,
  /** client → agent: JSON `{"rows":N,"cols":N}`. */
  resize: 5,
  /** client → agent: JSON `{"signal":N}` (1..31), for the process group. */
  signal: 6,
  /** agent → client: JSON `{"pid":N}`, the process runs. */
  started: 7,
  /** agent → client: JSON ExecResult; the last frame. */
  exit: 8,
} as const;
export type ExecFrameType = (typeof ExecFrame)[keyof typeof ExecFrame];

/** How an exec ended: kubectl's convention, 128+signal for a process killed by a signal. */
export type ExecResult = { exitCode: number } | { exitCode: number; signal: number } | { exitCode: number; error: string };

/** The query of the upgrade request: `command` and `env` repeat. */
export interface ExecQuery {
  command: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  stdin?: boolean;
  tty?: boolean;
  rows?: number;
  cols?: number;
}

export function execQueryString(q: ExecQuery): string {
  const p = new URLSearchParams();
  for (const c of q.command) p.append('command', c);
  for (const e of q.env ?? []) p.append('env', e);
  if (q.workingDir !== undefined) p.set('workingDir', q.workingDir);
  if (q.user !== undefined) p.set('user', q.user);
  if (q.stdin) p.set('stdin', 'true');
  if (q.tty) p.set('tty', 'true');
  if (q.rows !== undefined) p.set('rows', String(q.rows));
  if (q.cols !== undefined) p.set('cols', String(q.cols));
  return p.toString();
}

export function encodeExecFrame(type: ExecFrameType, payload: Buffer | object = Buffer.alloc(0)): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload));
  if (body.length > MAX_EXEC_FRAME) throw new RangeError(`exec frame of ${body.length} bytes, over ${MAX_EXEC_FRAME}`);
  const h = Buffer.alloc(5);
  h[0] = type;
  h.writeUInt32LE(body.length, 1);
  return Buffer.concat([h, body]);
}

/** Splits a byte stream into frames; throws on a frame over MAX_EXEC_FRAME (the peer is broken). */
export class ExecFrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(data: Buffer): { type: number; payload: Buffer }[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    const out: { type: number; payload: Buffer }[] = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32LE(1);
      if (len > MAX_EXEC_FRAME) throw new RangeError(`exec frame of ${len} bytes, over ${MAX_EXEC_FRAME}`);
      if (this.buf.length < 5 + len) break;
      out.push({ type: this.buf[0]!, payload: this.buf.subarray(5, 5 + len) });
      this.buf = this.buf.subarray(5 + len);
    }
    return out;
  }
}
