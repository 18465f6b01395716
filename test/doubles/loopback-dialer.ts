// A GuestDialer for unit tests and the probes benchmark: each guest key stands for a server on
// 127.0.0.1 (a loopback server standing in for the guest), and the guest's port maps to a loopback
// port. Errors are the real dialer's: an unmapped key NoSuchGuest, a refused connect Refused, no
// connect within timeoutMs Timeout, an abort Unavailable (Timeout for AbortSignal.timeout()).
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { DialError, type DialOptions, type GuestDialer } from '../../node-agent/net/guest-dialer.js';

export class LoopbackDialer implements GuestDialer {
  /** key → the loopback port that stands for the guest, or guest port → loopback port. */
  private readonly guests = new Map<string, number | Map<number, number>>();
  /** Every dial asked for, in order (what a test asserts on). */
  readonly dials: { key: string; port: number }[] = [];

  /** Every port of `key` goes to 127.0.0.1:`loopbackPort`. */
  set(key: string, loopbackPort: number): this {
    this.guests.set(key, loopbackPort);
    return this;
  }

  /** Port `guestPort` of `key` goes to 127.0.0.1:`loopbackPort` (other ports of it are refused). */
  setPort(key: string, guestPort: number, loopbackPort: number): this {
    let m = this.guests.get(key);
    if (!(m instanceof Map)) this.guests.set(key, (m = new Map()));
    m.set(guestPort, loopbackPort);
    return this;
  }

  delete(key: string): void {
    this.guests.delete(key);
  }

  dial(key: string, port: number, opts: DialOptions): Promise<Duplex> {
    this.dials.push({ key, port });
    const g = this.guests.get(key);
    if (g === undefined) return Promise.reject(new DialError('NoSuchGuest', `no guest ${key}`));
    const target = typeof g === 'number' ? g : g.get(port);
    if (target === undefined) return Promise.reject(new DialError('Refused', `${key} refused port ${port}`));
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(aborted(signal));
    return new Promise((resolve, reject) => {
      const sock = connect({ host: '127.0.0.1', port: target, allowHalfOpen: true });
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const fail = (e: DialError) => {
        done();
        sock.destroy();
        reject(e);
      };
      const timer = setTimeout(
        () => fail(new DialError('Timeout', `${key}:${port}: not accepted within ${opts.timeoutMs} ms`)),
        opts.timeoutMs,
      );
      const onAbort = () => fail(aborted(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      const onError = (e: NodeJS.ErrnoException) =>
        fail(new DialError(e.code === 'ECONNREFUSED' ? 'Refused' : 'Unavailable', `${key}:${port}: ${e.code ?? e.message}`));
      sock.once('error', onError);
      sock.once('connect', () => {
        done();
        sock.off('error', onError);
        sock.on('error', () => {}); // as the real dialer: an error the caller does not listen for is not a crash
        resolve(sock);
      });
    });
  }
}

function aborted(signal: AbortSignal): DialError {
  const timeout = (signal.reason as { name?: string } | undefined)?.name === 'TimeoutError';
  return new DialError(timeout ? 'Timeout' : 'Unavailable', `dial aborted: ${String(signal.reason)}`);
}
