// krata-api's HTTPS listener. TLS asks every client for a certificate and checks it against the
// requestheader CA (from ConfigMap kube-system/extension-apiserver-authentication) without refusing the
// handshake: authn.ts turns an untrusted or missing certificate into a 401. The ConfigMap and the
// serving certificate files are read again every refresh period, and the TLS context replaced when
// either changed. Discovery and health are served to anyone; the subresources only as authn.ts allows.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Duplex } from 'node:stream';
import type { RequestHeaderSource } from './authn.js';
import { discovery } from './discovery.js';
import { sendStatus, StatusError } from './status.js';

/** Until the requestheader settings have been read once, they are asked for this often. */
const UNREAD_RETRY_MS = 2000;

export interface ServingOptions {
  listen: string;
  certFile: string;
  keyFile: string;
  /** How often the ConfigMap and the certificate files are read again (ms). */
  refreshMs: number;
}

export interface ServerLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface Routes {
  handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void>;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void>;
}

/** `[HOST]:PORT` → its parts (IPv6 hosts in brackets). */
export function splitListen(addr: string): { host: string | undefined; port: number } {
  const i = addr.lastIndexOf(':');
  const port = Number(addr.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${JSON.stringify(addr)} is not [HOST]:PORT`);
  return { host: addr.slice(0, i).replace(/^\[(.*)\]$/, '$1') || undefined, port };
}

export class ApiServer {
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private tlsKey = '';
  /** Upgraded sockets: the HTTP server no longer tracks them, and a stop must end them. */
  private readonly streams = new Set<Duplex>();
  /** Whether the requestheader settings have been read (/readyz). */
  get ready(): boolean {
    return this.headers.current() !== undefined;
  }

  constructor(
    private readonly opts: ServingOptions,
    private readonly headers: RequestHeaderSource,
    private readonly routes: Routes,
    private readonly log: ServerLog,
  ) {}

  /** Where it listens (the port chosen when --listen said 0). */
  address(): { address: string; port: number } {
    return this.server!.address() as { address: string; port: number };
  }

  async start(): Promise<void> {
    await this.refresh().catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'reading the requestheader settings failed'));
    const routes = this.routes;
    const server = createServer({ ...this.secureContext(), requestCert: true, rejectUnauthorized: false }, (req, res) =>
      this.handle(routes, req, res),
    );
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      this.streams.add(socket.on('close', () => this.streams.delete(socket)));
      void routes.handleUpgrade(req, socket, head);
    });
    server.on('tlsClientError', () => undefined);
    const { host, port } = splitListen(this.opts.listen);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    const tick = () => {
      this.timer = setTimeout(
        () => {
          this.refresh()
            .catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'reading the requestheader settings failed'))
            .finally(() => this.server && tick());
        },
        this.ready ? this.opts.refreshMs : Math.min(this.opts.refreshMs, UNREAD_RETRY_MS),
      );
      this.timer.unref();
    };
    tick();
    this.log.info({ listen: this.address() }, 'serving');
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      for (const s of this.streams) s.destroy();
    });
  }

  private secureContext() {
    return {
      cert: readFileSync(this.opts.certFile),
      key: readFileSync(this.opts.keyFile),
      ...(this.headers.current() ? { ca: this.headers.current()!.clientCA } : {}),
    };
  }

  /** Reads the ConfigMap and the serving certificate again; replaces the TLS context if either changed. */
  async refresh(): Promise<void> {
    const config = await this.headers.refresh();
    const key = JSON.stringify([config.clientCA, readFileSync(this.opts.certFile, 'utf8'), readFileSync(this.opts.keyFile, 'utf8')]);
    const changed = key !== this.tlsKey;
    this.tlsKey = key;
    if (changed && this.server) {
      this.server.setSecureContext(this.secureContext());
      this.log.info({}, 'TLS settings reloaded');
    }
  }

  private handle(routes: Routes, req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'https://krata-api').pathname;
    if (path === '/healthz' || path === '/livez') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    if (path === '/readyz')
      return void res.writeHead(this.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(this.ready ? 'ok' : 'not ready');
    const doc = req.method === 'GET' ? discovery(path) : undefined;
    if (doc) return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
    if (path.startsWith('/openapi/')) return sendStatus(res, new StatusError(404, 'krata-api serves no OpenAPI document'));
    routes.handleRequest(req, res).catch(() => res.destroy());
  }
}
