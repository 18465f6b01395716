// One stream between a client's websocket and the agent's upgraded socket, both ways, until either ends.
// Backpressure both ways: the agent's socket is paused while the client has more than HIGH_WATER bytes
// unsent, and the client's websocket is paused while the agent's socket does not drain. exec output is
// re-framed to one exec frame per message (agent-api/exec.ts); other streams pass bytes as they come.
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import { ExecFrame, ExecFrameDecoder, encodeExecFrame, type ExecFrameType } from '../contracts/agent-api/exec.js';

const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
const MAX_TEXT = 4096;
/** A peer that never closes its side must not hold a socket forever. */
const LINGER_MS = 2000;

export interface RelayOptions {
  /** 'exec': the agent's bytes are exec frames, sent one frame per message. */
  framing: 'exec' | 'raw';
  /** A text message from the client (attach's resize); without it text is refused (close 1003). */
  onText?: (text: string) => void;
  /** Called once when the stream has ended, both sides closing. */
  onEnd?: () => void;
}

/** A websocket close reason is at most 123 bytes. */
export function closeReason(s: string): string {
  const b = Buffer.from(s);
  return b.length <= 123
    ? s
    : b
        .subarray(0, 120)
        .toString('utf8')
        .replace(/\uFFFD$/, '') + '...';
}

const bytes = (data: RawData): Buffer => (Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data));

export function relay(ws: WebSocket, agent: Duplex, head: Buffer, opts: RelayOptions): void {
  let ended = false;
  const end = (code: number, reason: string) => {
    if (ended) return;
    ended = true;
    if (ws.readyState === ws.OPEN) ws.close(code, closeReason(reason));
    setTimeout(() => ws.terminate(), LINGER_MS).unref();
    if (!agent.destroyed) agent.end();
    setTimeout(() => agent.destroy(), LINGER_MS).unref();
    opts.onEnd?.();
  };

  // agent → client
  let unsent = 0;
  const sent = (n: number) => () => {
    unsent -= n;
    if (unsent < LOW_WATER && agent.isPaused()) agent.resume();
  };
  const send = (msg: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    unsent += msg.length;
    ws.send(msg, { binary: true }, sent(msg.length));
    if (unsent > HIGH_WATER) agent.pause();
  };
  const decoder = opts.framing === 'exec' ? new ExecFrameDecoder() : undefined;
  let exited = false;
  const fromAgent = (d: Buffer) => {
    if (!decoder) return send(d);
    try {
      for (const f of decoder.push(d)) {
        send(encodeExecFrame(f.type as ExecFrameType, f.payload));
        if (f.type === ExecFrame.exit) exited = true;
      }
    } catch (e) {
      end(1011, `the agent sent a malformed exec frame: ${(e as Error).message}`);
    }
  };
  // An exec stream ends with its EXIT frame; without one the client must not take the end for success.
  const agentEnded = () =>
    decoder && !exited ? end(1011, 'the agent ended the exec stream before the exit frame') : end(1000, 'the stream ended');
  if (head.length) fromAgent(head);
  agent.on('data', fromAgent);
  agent.on('end', agentEnded);
  agent.on('close', agentEnded);
  agent.on('error', (e) => end(1011, `the agent's stream failed: ${e.message}`));

  // client → agent
  ws.on('message', (data, isBinary) => {
    if (ended) return;
    if (!isBinary) {
      const text = bytes(data);
      if (!opts.onText) return end(1003, 'this stream takes binary messages only');
      if (text.length > MAX_TEXT) return end(1009, `a text message over ${MAX_TEXT} bytes`);
      return opts.onText(text.toString('utf8'));
    }
    if (!agent.write(bytes(data)) && !ws.isPaused) {
      ws.pause();
      agent.once('drain', () => ws.resume());
    }
  });
  ws.on('close', () => end(1000, 'the client left'));
  ws.on('error', () => end(1011, 'the client failed'));
}
