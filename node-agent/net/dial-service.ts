// kratanet's dial socket: the agent reaches a guest's TCP port from dom0 the way the kubelet reaches a
// Pod IP (probes). A unix socket, 0600 in a 0700 directory of root's, so only root in dom0 uses it; each
// connection asks for one guest and port (dial-protocol.ts) and, once the guest accepted, is itself the
// byte stream of a flow the guest's backend opens from its gateway address, as for a published port.
// Bounded: requests waiting to be read, the size and time of a request line, dials per guest (backend).
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { GuestBackend } from './backend.js';
import { DialProtocolError, formatDialAnswer, MAX_LINE, parseDialRequest, type DialAnswer } from './dial-protocol.js';

/** Connections that have not finished their request line yet, host-wide. */
export const MAX_PENDING_REQUESTS = 256;
/** A request line must arrive within this. */
export const REQUEST_TIMEOUT_MS = 2000;

export interface DialServiceOptions {
  /** The guest's backend by id (its Guest key); undefined when kratanet serves no such guest. */
  lookup: (key: string) => GuestBackend | undefined;
  log?: (msg: string) => void;
  requestTimeoutMs?: number;
}

export class DialService {
  private server: Server | null = null;
  private pending = 0;
  private readonly requestTimeoutMs: number;

  constructor(private readonly opts: DialServiceOptions) {
    this.requestTimeoutMs = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  }

  /** Listens on `path`: its directory made (0700) or checked to be root's alone, a stale socket replaced. */
  async listen(path: string): Promise<void> {
    const dir = dirname(path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const d = lstatSync(dir);
    const uid = process.getuid?.() ?? 0;
    if (!d.isDirectory() || d.uid !== uid || (d.mode & 0o077) !== 0)
      throw new Error(`${dir}: must be a directory of uid ${uid} that only its owner may use (mode 0700)`);
    let st;
    try {
      st = lstatSync(path);
    } catch {
      st = undefined;
    }
    if (st && !st.isSocket()) throw new Error(`${path}: exists and is not a socket`);
    if (st) unlinkSync(path); // left by a kratanet that died
    const server = createServer({ allowHalfOpen: true }, (s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o600);
    server.on('error', (e) => this.opts.log?.(`dial socket: ${e.message}`));
    this.server = server;
  }

  /** Connections waiting for their request line. */
  get waiting(): number {
    return this.pending;
  }

  close(): void {
    // net.Server unlinks its unix socket when closed.
    this.server?.close();
    this.server = null;
  }

  private accept(socket: Socket): void {
    socket.on('error', () => {}); // the client went away; its flow (if any) sees 'close'
    if (this.pending >= MAX_PENDING_REQUESTS) {
      socket.destroy();
      return;
    }
    this.pending++;
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = () => {
      done = true;
      this.pending--;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
    };
    const timer = setTimeout(() => {
      finish();
      answer(socket, { ok: false, reason: 'BadRequest', message: `no request within ${this.requestTimeoutMs} ms` });
    }, this.requestTimeoutMs);
    const onEnd = () => {
      if (done) return;
      finish();
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const nl = buf.indexOf(10);
      if (nl < 0 && buf.length < MAX_LINE) return;
      socket.pause();
      finish();
      if (nl < 0 || nl >= MAX_LINE) {
        answer(socket, { ok: false, reason: 'BadRequest', message: 'request too long' });
        return;
      }
      const rest = buf.subarray(nl + 1);
      if (rest.length) socket.unshift(rest); // a client that did not wait for OK: its bytes go to the guest
      this.dial(socket, buf.toString('latin1', 0, nl));
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
  }

  private dial(socket: Socket, line: string): void {
    let req;
    try {
      req = parseDialRequest(line);
    } catch (e) {
      if (!(e instanceof DialProtocolError)) throw e;
      answer(socket, { ok: false, reason: 'BadRequest', message: e.message });
      return;
    }
    const backend = this.opts.lookup(req.key);
    if (!backend) {
      answer(socket, { ok: false, reason: 'NoSuchGuest', message: `kratanet serves no guest ${req.key}` });
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    // The client sends nothing before the answer: its EOF means it gave up, and the dial is dropped.
    const onEnd = () => {
      if (typeof flow !== 'string') flow.reset();
    };
    const flow = backend.dial(socket, req.port, (outcome) => {
      clearTimeout(timer);
      socket.off('end', onEnd);
      if (socket.readableEnded) socket.destroy();
      else if (outcome === 'OK') socket.write(formatDialAnswer({ ok: true }));
      else if (outcome === 'Refused') answer(socket, { ok: false, reason: 'Refused', message: `${req.key} refused port ${req.port}` });
      else if (outcome === 'Timeout')
        answer(socket, { ok: false, reason: 'Timeout', message: `${req.key} did not accept port ${req.port} within ${req.timeoutMs} ms` });
      else answer(socket, { ok: false, reason: 'NoSuchGuest', message: `${req.key} went away` });
    });
    if (flow === 'Busy') answer(socket, { ok: false, reason: 'Unavailable', message: `${req.key} has too many dials open` });
    else if (flow === 'Gone') answer(socket, { ok: false, reason: 'NoSuchGuest', message: `${req.key} went away` });
    else {
      timer = setTimeout(() => flow.dialTimedOut(), req.timeoutMs);
      socket.on('end', onEnd);
    }
  }
}

/** A failure answer, then the socket closes (once the line is written: the client reads it after we close). */
function answer(socket: Socket, a: DialAnswer): void {
  if (socket.destroyed) return;
  socket.write(formatDialAnswer(a), () => socket.destroy());
}
