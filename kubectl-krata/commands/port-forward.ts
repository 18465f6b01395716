// kubectl krata port-forward guest/NAME [LOCAL:]REMOTE...: local TCP listeners (127.0.0.1, or --address) whose
// every connection opens its own websocket to krata-api's portforward?port=REMOTE and relays bytes both ways,
// with backpressure (a side that is behind pauses the other), until interrupted.
import { createServer, type Server, type Socket } from 'node:net';
import { createWebSocketStream } from 'ws';
import { WEBSOCKET_PROTOCOL } from '../../contracts/krata-api/subresources.js';
import { guestName, parseFlags } from '../args.js';
import { CommandError, EXIT_OK, UsageError, type IO } from '../io.js';
import { KUBE_HELP, KUBE_OPTIONS, Kube, closeWatch } from '../kube.js';
import { ServerError } from '../server-error.js';

export const PORT_FORWARD_HELP = `Forward local ports to ports of a running Guest.

Usage: kubectl krata port-forward [guest/]NAME [LOCAL:]REMOTE [...] [options]

Each connection to LOCAL (on 127.0.0.1, or the --address given) reaches REMOTE in the Guest. LOCAL
defaults to REMOTE; an empty LOCAL or 0 (":80", "0:80") picks a free port. Runs until Ctrl+C.

      --address ADDR    the local addresses to listen on, comma-separated or repeated (default
                        127.0.0.1; "localhost" is 127.0.0.1)
${KUBE_HELP}
`;

interface Mapping {
  local: number;
  remote: number;
}

function port(s: string, what: string, zero: boolean): number {
  const n = /^\d{1,5}$/.test(s) ? Number(s) : NaN;
  if (!(n >= (zero ? 0 : 1) && n <= 65535)) throw new UsageError(`${what} port "${s}" is not a port number (${zero ? 0 : 1}..65535)`);
  return n;
}

export function parseMapping(spec: string): Mapping {
  const parts = spec.split(':');
  if (parts.length > 2) throw new UsageError(`"${spec}": expected [LOCAL:]REMOTE`);
  const remote = port(parts[parts.length - 1]!, 'remote', false);
  if (parts.length === 1) return { local: remote, remote };
  return { local: parts[0] === '' ? 0 : port(parts[0]!, 'local', true), remote };
}

export async function portForward(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, { ...KUBE_OPTIONS, address: { type: 'string', multiple: true } });
  if (positionals.length < 2) throw new UsageError('port-forward takes a guest and at least one [LOCAL:]REMOTE port');
  const name = guestName(positionals[0]!);
  const mappings = positionals.slice(1).map(parseMapping);
  const addresses = (values.address ?? ['127.0.0.1'])
    .flatMap((a) => a.split(','))
    .map((a) => a.trim())
    .filter(Boolean)
    .map((a) => (a === 'localhost' ? '127.0.0.1' : a));
  const kube = Kube.connect(values, io.env);
  // As kubectl checks the pod: a Guest that does not exist or does not run fails here, not per connection.
  const guest = await kube.getGuest(name);
  if (guest.status?.phase !== 'Running')
    throw new CommandError(`unable to forward port because guest is not running. Current status=${guest.status?.phase ?? 'Pending'}`);

  const servers: Server[] = [];
  const open = new Set<Socket>();
  let interrupted!: () => void;
  const stop = new Promise<void>((resolve) => (interrupted = resolve));
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    for (const m of mappings)
      for (const address of addresses) {
        const server = createServer({ allowHalfOpen: true }, (conn) => {
          const local = (server.address() as { port: number }).port;
          io.stdout.write(`Handling connection for ${local}\n`);
          open.add(conn);
          conn.on('close', () => open.delete(conn));
          relay(kube, name, m.remote, conn, io);
        });
        servers.push(server);
        const bound = await listen(server, address, m.local);
        const shown = address.includes(':') ? `[${address}]` : address;
        io.stdout.write(`Forwarding from ${shown}:${bound} -> ${m.remote}\n`);
      }
    await stop;
    return EXIT_OK;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    for (const s of servers) s.close();
    for (const c of open) c.destroy();
  }
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new CommandError(`unable to listen on ${host}:${port}: ${e.message}`)));
    server.listen(port, host, () => resolve((server.address() as { port: number }).port));
  });
}

/**
 * One local connection to one websocket. Bytes are piped both ways with backpressure. The protocol has no
 * half-close, so the local end of input does not end the websocket: the remote side's close ends both.
 */
function relay(kube: Kube, name: string, remote: number, conn: Socket, io: IO): void {
  conn.pause();
  kube
    .websocket(name, 'portforward', WEBSOCKET_PROTOCOL.portforward!, `port=${remote}`)
    .then((ws) => {
      const closed = closeWatch(ws);
      const stream = createWebSocketStream(ws);
      conn.pipe(stream, { end: false });
      stream.pipe(conn);
      conn.resume();
      const done = () => {
        stream.destroy();
        conn.destroy();
      };
      conn.on('close', done);
      conn.on('error', done);
      stream.on('close', () => {
        const why = closed();
        if (why) io.stderr.write(`error: forwarding to port ${remote}: ${why}\n`);
        conn.end();
      });
      stream.on('error', done);
    })
    .catch((e: Error) => {
      io.stderr.write(`error: forwarding to port ${remote}: ${e instanceof ServerError ? e.describe() : e.message}\n`);
      conn.destroy();
    });
}
