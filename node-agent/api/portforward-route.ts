// GET /v1/namespaces/NS/guests/NAME/portforward?port=N with `Upgrade: krata-portforward.v1`: one TCP
// connection to the guest's port through kratanet (the service dials it: 404 no Guest, 409 no running
// domain or no network, 502 refused or timed out), then 101 and its raw bytes both ways. Either side
// ending its half ends the other's; an error or close on one side destroys both.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { PORTFORWARD_PROTOCOL } from '../../contracts/agent-api/endpoints.js';
import { label, type RouteContext, type Upgrade } from './common.js';
import { HttpError } from './http.js';

/** The guest port of a port-forward's query; anything else is a 400 that names the parameter. */
export function parsePortForwardQuery(query: URLSearchParams): number {
  for (const key of query.keys())
    if (key !== 'port') throw new HttpError(400, `unknown query parameter ${JSON.stringify(key.slice(0, 100))}; a port-forward takes port`);
  const all = query.getAll('port');
  if (all.length !== 1)
    throw new HttpError(400, all.length ? 'query parameter port appears more than once' : 'query parameter port is required');
  const v = all[0]!;
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535)
    throw new HttpError(400, `query parameter port must be a whole number from 1 to 65535, not ${JSON.stringify(v.slice(0, 100))}`);
  return Number(v);
}

async function openPortForward(ctx: RouteContext, params: Record<string, string>, req: IncomingMessage, socket: Duplex, head: Buffer) {
  const namespace = label(params.namespace!, 'namespace');
  const name = label(params.name!, 'guest name');
  const port = parsePortForwardQuery(new URL(req.url ?? '/', 'http://agent').searchParams);
  const guest = await ctx.service.portForward(namespace, name, port);
  if (socket.destroyed) {
    guest.destroy();
    return;
  }
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${PORTFORWARD_PROTOCOL}\r\n\r\n`);
  if (head.length) guest.write(head);
  const untrack = ctx.track(() => (socket.destroy(), guest.destroy()));
  const done = () => {
    untrack();
    socket.destroy();
    guest.destroy();
  };
  // pipe() carries backpressure both ways and passes each side's end (FIN) on to the other.
  socket.pipe(guest);
  guest.pipe(socket);
  socket.on('error', done);
  guest.on('error', done);
  socket.on('close', done);
  guest.on('close', done);
}

export const PORTFORWARD_UPGRADE: Upgrade = { what: 'port-forward', protocol: PORTFORWARD_PROTOCOL, open: openPortForward };
