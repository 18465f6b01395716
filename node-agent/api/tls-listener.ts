// The agent's TLS listener (cluster mode): where krata-api reaches the agent (contracts/krata-api/agent-tls.ts).
// Mutual TLS 1.3 with the krata CA; a client is served only if its certificate names KRATA_API_CLIENT_NAME
// (subject CN or DNS name) and allows clientAuth, checked before any request is read. It serves only
// TLS_AGENT_ROUTES, through the local API's router and handlers (server.ts serveApi); anything else is 404.
// It listens once the operator has issued a certificate, and takes a renewed one without a restart.
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer, type SecureContextOptions, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { KeyObject } from 'node:crypto';
import { KRATA_API_CLIENT_NAME, TLS_AGENT_ROUTES } from '../../contracts/krata-api/agent-tls.js';
import type { HostTlsStatus } from '../../contracts/agent-api/types.js';
import type { AgentCertificate } from '../follower/agent-identity.js';
import type { Log } from '../follower/redis-link.js';
import type { AgentService } from '../service/service.js';
import { serveApi, type ServedApi } from './server.js';

/** The extended key usage a client certificate must allow. */
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** Connections at once, and how long a handshake may take: a scanner cannot hold the listener. */
const MAX_CONNECTIONS = 256;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const RETRY_LISTEN_MS = 30_000;

/** What the listener needs of the agent's identity (follower/agent-identity.ts). */
export interface TlsIdentity {
  readonly certificate: AgentCertificate | undefined;
  readonly privateKey: KeyObject;
  onCertificate(cb: (c: AgentCertificate) => void): () => void;
}

export interface TlsListenerOptions {
  /** Where to listen (`--tls-listen`); port 0 picks one (tests). */
  host: string;
  port: number;
  /** What the heartbeat advertises while the listener is up (`--tls-advertise`). */
  advertise?: string;
  identity: TlsIdentity;
  log: Log;
}

/** Why a client that completed the handshake is not krata-api, or undefined if it is. */
export function refusalOf(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return `its certificate is not trusted (${String(socket.authorizationError)})`;
  const peer = socket.getPeerX509Certificate();
  if (!peer) return 'it sent no certificate';
  if (peer.checkHost(KRATA_API_CLIENT_NAME, { subject: 'always', wildcards: false }) !== KRATA_API_CLIENT_NAME)
    return `its certificate does not name ${KRATA_API_CLIENT_NAME}`;
  if (!peer.keyUsage?.includes(CLIENT_AUTH)) return 'its certificate does not allow client authentication';
  return undefined;
}

export class TlsApiListener {
  /** Clients refused: failed handshakes (no certificate, another CA, old TLS) and certificates not krata-api's. */
  readonly refused = { handshake: 0, identity: 0 };
  private tls?: TlsServer;
  private api?: ServedApi;
  private listening = false;
  private unsubscribe?: () => void;
  private retry?: NodeJS.Timeout;
  private stopped = false;
  private lastLogged = new Map<string, number>();
  /** Why the last attempt to listen failed (retried every 30 s). */
  private problem?: string;

  constructor(
    private readonly service: AgentService,
    private readonly opts: TlsListenerOptions,
  ) {}

  /** Listens now if there is a certificate, else when one arrives. */
  start(): void {
    this.unsubscribe = this.opts.identity.onCertificate(() => {
      if (this.tls) this.tls.setSecureContext(this.context());
      else this.listen();
    });
    if (this.opts.identity.certificate) this.listen();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.retry);
    const tls = this.tls;
    if (!tls) return;
    this.api?.endStreams();
    this.api?.cutLater();
    await new Promise<void>((resolve) => tls.close(() => resolve()));
  }

  /** The bound address once listening (tests listen on port 0). */
  get address(): AddressInfo | undefined {
    return this.listening ? (this.tls?.address() as AddressInfo) : undefined;
  }

  /** What the heartbeat advertises: `--tls-advertise`, while the listener is up. */
  get endpoint(): string | undefined {
    return this.listening ? this.opts.advertise : undefined;
  }

  status(): HostTlsStatus {
    const cert = this.opts.identity.certificate;
    return {
      listen: hostPort(this.opts.host, this.address?.port ?? this.opts.port),
      ...(this.opts.advertise ? { advertise: this.opts.advertise } : {}),
      listening: this.listening,
      ...(this.problem ? { problem: this.problem } : {}),
      ...(cert ? { notAfter: new Date(cert.notAfter).toISOString() } : {}),
      refused: this.refused.handshake + this.refused.identity,
    };
  }

  private context(): SecureContextOptions {
    const cert = this.opts.identity.certificate!;
    const key = this.opts.identity.privateKey.export({ type: 'pkcs8', format: 'pem' });
    return { key, cert: cert.certificate, ca: cert.ca, minVersion: 'TLSv1.3' };
  }

  private listen(): void {
    if (this.stopped || this.tls) return;
    const http = createHttpServer();
    const api = serveApi(http, this.service, {
      routes: TLS_AGENT_ROUTES,
      log: (m) => this.opts.log.error({}, m),
    });
    const tls = createTlsServer(
      { ...this.context(), requestCert: true, rejectUnauthorized: true, handshakeTimeout: HANDSHAKE_TIMEOUT_MS },
      (socket) => {
        const why = refusalOf(socket);
        if (why === undefined) return void http.emit('connection', socket);
        this.refused.identity++;
        this.refuse('identity', `refused a TLS client: ${why}`, socket.remoteAddress);
        socket.destroy();
      },
    );
    tls.maxConnections = MAX_CONNECTIONS;
    tls.on('tlsClientError', (err, socket) => {
      this.refused.handshake++;
      this.refuse('handshake', `refused a TLS client: ${err.message.slice(0, 200)}`, socket.remoteAddress);
    });
    tls.once('error', (err: Error) => {
      this.opts.log.error({ listen: hostPort(this.opts.host, this.opts.port) }, `the TLS listener cannot listen: ${err.message}`);
      this.tls = undefined;
      this.api = undefined;
      this.problem = `cannot listen: ${err.message}`;
      if (!this.stopped) this.retry = setTimeout(() => this.listen(), RETRY_LISTEN_MS).unref();
    });
    this.tls = tls;
    this.api = api;
    tls.listen(this.opts.port, this.opts.host, () => {
      this.listening = true;
      this.problem = undefined;
      // After the bind, a server error (out of file descriptors on accept) is reported, not fatal.
      tls.removeAllListeners('error');
      tls.on('error', (err: Error) => this.opts.log.error({}, `the TLS listener: ${err.message}`));
      this.opts.log.info({ listen: hostPort(this.opts.host, this.address!.port), advertise: this.opts.advertise }, 'TLS listener up');
    });
  }

  /** One log line per kind of refusal a minute: a scanner does not flood the journal (the metric counts all). */
  private refuse(kind: string, message: string, from: string | undefined): void {
    const now = Date.now();
    if ((this.lastLogged.get(kind) ?? -Infinity) > now - 60_000) return;
    this.lastLogged.set(kind, now);
    this.opts.log.warn({ from }, message);
  }
}

/** "address:port", IPv6 in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
