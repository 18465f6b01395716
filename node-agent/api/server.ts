// The node agent's local API: HTTP/1.1 over a unix socket (mode 0660, owned by the krata group), a thin
// translation of AgentService (routes.ts). Hostile or broken clients get a JSON error, never a crash:
// every handler's exception is answered (500 for the unexpected ones) and the server keeps serving.
// serveApi is the same API on any http.Server: the TLS listener (tls-listener.ts) serves a part of it.
import { connect } from 'node:net';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import type { HostTlsStatus } from '../../contracts/agent-api/types.js';
import type { AgentService } from '../service/service.js';
import { HttpError, errorAnswer, sendError, sendRawError } from './http.js';
import { isUploadPath, matchRoute, routeFilter, type RouteContext } from './routes.js';

export interface ApiServerOptions extends ServeOptions {
  socketPath: string;
  /** Group (name or numeric id) that may use the API: the socket is chowned to it, mode 0660. */
  group?: string;
}

export interface ApiServer {
  /** Ends streams and consoles, stops listening and removes the socket file. */
  close(): Promise<void>;
}

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export async function startApiServer(service: AgentService, opts: ApiServerOptions): Promise<ApiServer> {
  const gid = opts.group === undefined ? undefined : groupId(opts.group);
  await removeStaleSocket(opts.socketPath);
  const server = createServer();
  const api = serveApi(server, service, opts);

  await listen(server, opts.socketPath);
  // After the bind, a server error (out of file descriptors on accept) is reported, not fatal.
  server.on('error', (err) => api.log(`krata-node-agent api: ${err.message}`));
  try {
    chmodSync(opts.socketPath, 0o660);
    if (gid !== undefined) chownSync(opts.socketPath, -1, gid);
  } catch (err) {
    await new Promise((r) => server.close(r));
    unlinkQuietly(opts.socketPath);
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= new Promise<void>((resolve) => {
        api.endStreams();
        server.close(() => resolve());
        server.closeIdleConnections();
        api.cutLater();
      }).then(() => unlinkQuietly(opts.socketPath));
      return closing;
    },
  };
}

export interface ServeOptions {
  /** Largest request body accepted (default 4 MiB); larger ones are refused with 413. */
  maxBodyBytes?: number;
  /** Where unexpected errors (500s) are reported; default console.error. */
  log?: (message: string) => void;
  /** Serve only these routes ("METHOD /path/pattern"); every other request is a 404. Default: all. */
  routes?: readonly string[];
  /** The TLS listener's state, for GET /v1/host. */
  tlsStatus?: () => HostTlsStatus | undefined;
}

/** What serveApi gives its listener to close with. */
export interface ServedApi {
  log: (message: string) => void;
  /** Ends streams and consoles. */
  endStreams(): void;
  /** Requests still in flight (a delete waiting for its domain) get a moment, then are cut. */
  cutLater(): void;
}

/**
 * The API on `server`: requests, upgrades and malformed HTTP, dispatched by the route table (routes.ts),
 * restricted to `opts.routes` when given. The caller listens, or hands the server its connections.
 */
export function serveApi(server: Server, service: AgentService, opts: ServeOptions): ServedApi {
  const log = opts.log ?? ((m: string) => console.error(m));
  const served = routeFilter(opts.routes);
  const streams = new Set<() => void>();
  const ctx: RouteContext = {
    service,
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    track(stop) {
      streams.add(stop);
      return () => streams.delete(stop);
    },
    ...(opts.tlsStatus ? { tlsStatus: opts.tlsStatus } : {}),
  };
  const report = (req: IncomingMessage, err: unknown) => {
    if (errorAnswer(err).status >= 500) log(`krata-node-agent api: ${req.method} ${req.url}: ${(err as Error)?.stack ?? String(err)}`);
  };
  /** The route of a request this listener serves; anything else is a 404, as an unknown path. */
  const route = (pathname: string, method: string) => {
    const match = matchRoute(pathname);
    if (!match || (opts.routes && !served(match.route, method)))
      throw new HttpError(404, `no such endpoint: ${opts.routes ? `${method.slice(0, 20)} ` : ''}${pathname.slice(0, 200)}`);
    return match;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    try {
      const url = new URL(req.url ?? '/', 'http://agent');
      const match = route(url.pathname, req.method ?? '');
      const handler = match.route.methods[req.method ?? ''];
      if (!handler) {
        const allow = Object.keys(match.route.methods).join(', ');
        throw new HttpError(405, `${req.method} is not allowed on ${url.pathname.slice(0, 200)} (allowed: ${allow})`, undefined, { allow });
      }
      await handler({ req, res, params: match.params, query: url.searchParams, ctx });
    } catch (err) {
      report(req, err);
      if (!res.headersSent) sendError(res, err);
      else res.destroy(); // a stream already started: cutting it is the only signal left
    }
  };
  server.on('request', handle);
  // An upload sent with `Expect: 100-continue` (kratactl's image import) is asked for its body only when
  // its route reads it (routes.ts uploadBody), so a refusal costs no upload and never meets a broken
  // pipe; every other request is told to go on at once, as Node does by default.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (!isUploadPath(new URL(req.url ?? '/', 'http://agent').pathname)) res.writeContinue();
    void handle(req, res);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const refuse = (err: unknown) => {
      report(req, err);
      sendRawError(socket, err);
    };
    try {
      const url = new URL(req.url ?? '/', 'http://agent');
      const match = route(url.pathname, req.method ?? '');
      const upgrade = match.route.upgrade;
      if (!upgrade) throw new HttpError(400, `${url.pathname.slice(0, 200)} does not upgrade; only a guest's console and exec do`);
      if (req.method !== 'GET')
        throw new HttpError(405, `${req.method} is not allowed on ${url.pathname.slice(0, 200)} (allowed: GET)`, undefined, {
          allow: 'GET',
        });
      const protocol = String(req.headers.upgrade ?? '').toLowerCase();
      if (protocol !== upgrade.protocol)
        throw new HttpError(400, `this endpoint upgrades to "${upgrade.protocol}" only, not ${JSON.stringify(protocol.slice(0, 100))}`);
      // An upgrade may wait (exec waits for the guest's channel): its refusal still comes as an HTTP answer.
      Promise.resolve(upgrade.open(ctx, match.params, req, socket, head)).catch(refuse);
    } catch (err) {
      refuse(err);
    }
  });
  // Malformed HTTP (bad request line, oversized headers) gets Node's plain 400/431 and a closed socket.
  server.on('clientError', (_err, socket: Duplex) => {
    if (socket.writable)
      socket.end(
        'HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"message":"malformed HTTP request"}\n',
      );
    else socket.destroy();
  });

  const sockets = new Set<Duplex>();
  server.on('connection', (s: Duplex) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    log,
    endStreams() {
      for (const stop of [...streams]) stop();
    },
    cutLater() {
      setTimeout(() => {
        for (const s of sockets) s.destroy();
      }, 1000).unref();
    },
  };
}

/** Binds with a umask that keeps the socket private from the start (the chmod afterwards is the rule). */
function listen(server: ReturnType<typeof createServer>, path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    let old: number | undefined;
    try {
      old = process.umask(0o117);
    } catch {
      // worker threads cannot change the umask; the chmod below still applies
    }
    try {
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      if (old !== undefined) process.umask(old);
    }
  });
}

/** A socket file left by a dead agent is removed; one a live agent answers on is not. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket; not replacing it`);
  const answered = await new Promise<boolean>((resolve, reject) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNREFUSED' ? resolve(false) : reject(e)));
  });
  if (answered) throw new Error(`another node agent is listening on ${path}`);
  unlinkSync(path);
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** A group name or id to a gid (Node has no getgrnam; /etc/group is what it would read). */
export function groupId(group: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(group)) return Number(group);
  for (const line of readFileSync(groupFile, 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`no group "${group}" in ${groupFile}`);
}
