// A GuestDialer for tests: a Guest's port is a TCP server on 127.0.0.1 (the map says which), reached
// with a plain connect; what the test did not map is NoSuchGuest, and a refused connect is Refused,
// as the kratanet dialer reports them. Counts dials and keeps their target for assertions.
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { DialError, type DialOptions, type GuestDialer } from '../../node-agent/net/guest-dialer.js';

export class PortMapDialer implements GuestDialer {
  /** "namespace/name:port" → local port. */
  readonly ports = new Map<string, number>();
  readonly dials: string[] = [];

  map(key: string, port: number, localPort: number): this {
    this.ports.set(`${key}:${port}`, localPort);
    return this;
  }

  dial(key: string, port: number, opts: DialOptions): Promise<Duplex> {
    this.dials.push(`${key}:${port}`);
    const local = this.ports.get(`${key}:${port}`);
    if (local === undefined) return Promise.reject(new DialError('NoSuchGuest', `${key} is not on kratanet`));
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: local });
      const timer = setTimeout(
        () => fail(new DialError('Timeout', `no answer from port ${port} within ${opts.timeoutMs} ms`)),
        opts.timeoutMs,
      );
      const fail = (e: Error) => {
        clearTimeout(timer);
        s.destroy();
        reject(e);
      };
      opts.signal?.addEventListener('abort', () => fail(new DialError('Timeout', 'aborted')), { once: true });
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (e: NodeJS.ErrnoException) =>
        fail(e.code === 'ECONNREFUSED' ? new DialError('Refused', `connection refused by port ${port}`) : e),
      );
    });
  }
}
