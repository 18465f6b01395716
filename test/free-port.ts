// A TCP port on loopback that nothing listens on right now (servers the tests start take it next).
// Chosen below the kernel's ephemeral range: a port from that range (what listen(0) hands out) can be
// taken by any outbound connection on the machine between our check and the server's bind, which
// failed etcd's start in CI ("bind: address already in use").
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const LOWEST = 10_000;

/** The first port of the kernel's ephemeral range (net.ipv4.ip_local_port_range). */
export function ephemeralLow(file = '/proc/sys/net/ipv4/ip_local_port_range'): number {
  try {
    const low = Number(readFileSync(file, 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > LOWEST + 1000 ? low : 32768;
  } catch {
    return 32768;
  }
}

function tcpBindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function udpBindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => (s.close(), resolve(false)));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A port free for TCP, and for UDP too with `udp` (a published port serves both). `pick` chooses the
 * candidates (random below the ephemeral range; tests pass their own).
 */
export async function freePort(opts: { udp?: boolean; pick?: () => number } = {}): Promise<number> {
  const high = ephemeralLow();
  const pick = opts.pick ?? (() => LOWEST + Math.floor(Math.random() * (high - LOWEST)));
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = pick();
    if ((await tcpBindable(port)) && (!opts.udp || (await udpBindable(port)))) return port;
  }
  throw new Error(`no free port on 127.0.0.1 between ${LOWEST} and ${high} after 50 tries`);
}
