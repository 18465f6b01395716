// The agent's GuestDialer: asks kratanet, over its dial socket (dial-service.ts), for a TCP stream to a
// guest's port; the socket itself becomes the stream once kratanet answers OK.
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { MAX_SOCKET_PATH } from './config.js';
import { DialProtocolError, formatDialRequest, MAX_LINE, parseDialAnswer } from './dial-protocol.js';
import { DialError, type DialOptions, type GuestDialer } from './guest-dialer.js';

/** Where the agent has kratanet listen for dials: STATE/network/dial/ (0700); undefined if sun_path cannot hold it. */
export function dialSocketPath(stateDir: string): string | undefined {
  const path = join(stateDir, 'network', 'dial', 'kratanet.sock');
  return Buffer.byteLength(path) <= MAX_SOCKET_PATH ? path : undefined;
}

export class KratanetDialer implements GuestDialer {
  constructor(private readonly socketPath: string) {}

  dial(key: string, port: number, opts: DialOptions): Promise<Duplex> {
    let request: string;
    try {
      request = formatDialRequest({ key, port, timeoutMs: opts.timeoutMs });
    } catch (e) {
      // No guest has such a key, no port such a number (as a connect to it would be refused); a timeout that is not a number never ends.
      const { field, message } = e as DialProtocolError;
      return Promise.reject(new DialError(field === 'key' ? 'NoSuchGuest' : field === 'port' ? 'Refused' : 'Timeout', message));
    }
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(aborted(signal));
    return new Promise<Duplex>((resolve, reject) => {
      const sock = connect({ path: this.socketPath, allowHalfOpen: true });
      let settled = false;
      const settle = () => {
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        sock.off('readable', onReadable);
        sock.off('end', onEnd);
      };
      const fail = (e: DialError) => {
        if (settled) return;
        settle();
        sock.destroy();
        reject(e);
      };
      const timer = setTimeout(
        () => fail(new DialError('Timeout', `${key}:${port}: not accepted within ${opts.timeoutMs} ms`)),
        opts.timeoutMs,
      );
      const onAbort = () => fail(aborted(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      // After the dial the caller owns the socket's errors; until it listens, one must not crash the agent.
      sock.on('error', (e: NodeJS.ErrnoException) => fail(new DialError('Unavailable', `kratanet's dial socket: ${e.code ?? e.message}`)));
      sock.on('connect', () => sock.write(request));
      const onEnd = () => fail(new DialError('Unavailable', 'kratanet closed the dial socket without an answer'));
      sock.on('end', onEnd);
      let buf: Buffer = Buffer.alloc(0);
      // 'readable' rather than 'data': once it is removed the stream is neither flowing nor paused, so the
      // caller's first 'data' listener or pipe() starts it, with what followed OK unshifted in front.
      const onReadable = () => {
        let chunk: Buffer | null;
        while (!settled && (chunk = sock.read() as Buffer | null) !== null) {
          buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
          const nl = buf.indexOf(10);
          if (nl < 0) {
            if (buf.length >= MAX_LINE) fail(new DialError('Unavailable', 'kratanet answered with an overlong line'));
            continue;
          }
          let answer;
          try {
            answer = parseDialAnswer(buf.toString('latin1', 0, nl));
          } catch (e) {
            fail(new DialError('Unavailable', (e as Error).message));
            return;
          }
          if (!answer.ok) {
            fail(new DialError(answer.reason === 'BadRequest' ? 'Unavailable' : answer.reason, answer.message));
            return;
          }
          settle();
          const rest = buf.subarray(nl + 1);
          if (rest.length) sock.unshift(rest);
          resolve(sock as Socket);
          return;
        }
      };
      sock.on('readable', onReadable);
    });
  }
}

/** What the agent binds when kratanet does not run (--network off): every dial is Unavailable. */
export class NoNetworkDialer implements GuestDialer {
  constructor(private readonly why = 'the guest network is off on this host') {}

  dial(key: string, port: number): Promise<Duplex> {
    return Promise.reject(new DialError('Unavailable', `${key}:${port}: ${this.why}`));
  }
}

function aborted(signal: AbortSignal): DialError {
  const timeout = (signal.reason as { name?: string } | undefined)?.name === 'TimeoutError';
  return new DialError(timeout ? 'Timeout' : 'Unavailable', `dial aborted: ${String(signal.reason)}`);
}
