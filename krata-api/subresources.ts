// The Guest subresources: each request is authenticated (authn.ts), its path and query checked, its
// subresource authorized (authz.ts), its Guest and the Guest's host read, and then mapped to the route of
// that host's agent (agent-client.ts): log → logs (streamed text), top → usage (JSON), exec, attach and
// portforward → a websocket relayed to the agent's upgrade (relay.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Guest, XenHost } from '../crds/generated/types.js';
import {
  parseSubresourcePath,
  WEBSOCKET_PROTOCOL,
  type GuestSubresource,
  type SubresourceTarget,
} from '../contracts/krata-api/subresources.js';
import { CONSOLE_PROTOCOL, PORTFORWARD_PROTOCOL } from '../contracts/agent-api/endpoints.js';
import { EXEC_PROTOCOL } from '../contracts/agent-api/exec.js';
import type { AgentClient, AgentTarget } from './agent-client.js';
import { authenticate, type RequestHeaderConfig } from './authn.js';
import type { Authorizer } from './authz.js';
import type { Kube } from './kube.js';
import { agentQuery, attachSize } from './query.js';
import { relay } from './relay.js';
import { asStatus, refuseUpgrade, sendStatus, StatusError } from './status.js';

const MAX_USAGE_BODY = 1024 * 1024;
/** Client messages: an exec frame is at most 64 KiB, a console or port-forward chunk is the client's choice. */
const MAX_MESSAGE = 1024 * 1024;

/** The agent route each subresource maps to, and the Upgrade protocol of the streams. */
const AGENT_ROUTE: Record<GuestSubresource, { path: string; protocol?: string }> = {
  log: { path: 'logs' },
  top: { path: 'usage' },
  exec: { path: 'exec', protocol: EXEC_PROTOCOL },
  attach: { path: 'console', protocol: CONSOLE_PROTOCOL },
  portforward: { path: 'portforward', protocol: PORTFORWARD_PROTOCOL },
};

/** What the metrics count (container/modules.ts). */
export interface SubresourceMeter {
  /** A request answered with `code` (101: a stream opened), `seconds` after it came in. */
  answered(sub: GuestSubresource | 'other', code: number, seconds: number): void;
  streams(sub: GuestSubresource, delta: 1 | -1): void;
}

export interface SubresourceLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

interface Prepared {
  target: SubresourceTarget;
  agent: AgentTarget;
  agentPath: string;
  query: URLSearchParams;
}

const agentGuestPath = (t: SubresourceTarget) =>
  `/v1/namespaces/${encodeURIComponent(t.namespace)}/guests/${encodeURIComponent(t.name)}/${AGENT_ROUTE[t.subresource].path}`;

export class Subresources {
  /** The subprotocol each upgrade being accepted answers with (checked offered before the upgrade). */
  private readonly protocols = new WeakMap<IncomingMessage, string>();
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_MESSAGE,
    perMessageDeflate: false,
    handleProtocols: (_offered, req) => this.protocols.get(req) ?? false,
  });

  constructor(
    private readonly kube: Kube,
    private readonly authz: Authorizer,
    private readonly agents: AgentClient,
    private readonly authConfig: () => RequestHeaderConfig | undefined,
    private readonly meter: SubresourceMeter,
    private readonly log: SubresourceLog,
  ) {}

  /** Everything a subresource needs before the agent is asked; a StatusError when the request may not go on. */
  private async prepare(req: IncomingMessage): Promise<Prepared> {
    const user = authenticate(req, this.authConfig());
    const url = new URL(req.url ?? '/', 'https://krata-api');
    const target = parseSubresourcePath(url.pathname);
    if (!target)
      throw new StatusError(404, `the server could not find the requested resource ${JSON.stringify(url.pathname.slice(0, 200))}`);
    const q = agentQuery(target.subresource, url.searchParams);
    await this.authz.authorize(user, target);
    const agent = await this.placement(target);
    return { target, agent, agentPath: agentGuestPath(target) + (q ? `?${q}` : ''), query: url.searchParams };
  }

  /** The Guest's host (status.node) and where its agent listens (XenHost status.agentEndpoint). */
  private async placement(t: SubresourceTarget): Promise<AgentTarget> {
    const guest = await this.kube.get<Guest>(`/apis/krata.dev/v1alpha1/namespaces/${t.namespace}/guests/${t.name}`);
    if (!guest) throw new StatusError(404, `guests.krata.dev "${t.name}" not found`, { name: t.name, group: 'krata.dev', kind: 'guests' });
    const host = guest.status?.node;
    if (!host) throw new StatusError(409, `guest "${t.name}" is not placed on a host yet (phase ${guest.status?.phase ?? 'Pending'})`);
    const xenhost = await this.kube.get<XenHost>(`/apis/krata.dev/v1alpha1/xenhosts/${encodeURIComponent(host)}`);
    if (!xenhost) throw new StatusError(409, `guest "${t.name}" is placed on host "${host}", which has no XenHost`);
    const endpoint = xenhost.status?.agentEndpoint;
    if (!endpoint) throw new StatusError(409, `host "${host}" of guest "${t.name}" has no agent endpoint (its agent has no TLS listener)`);
    return { host, endpoint };
  }

  /** A plain request: log and top; a stream asked without an upgrade is a 400. */
  async handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    let sub = meterLabel(req);
    try {
      if (req.method !== 'GET') throw new StatusError(405, `${String(req.method).slice(0, 20)} is not supported; the subresources are GET`);
      const p = await this.prepare(req);
      sub = p.target.subresource;
      const protocol = WEBSOCKET_PROTOCOL[sub];
      if (protocol) throw new StatusError(400, `guests/${sub} is a stream: upgrade to a websocket with subprotocol "${protocol}"`);
      const agentRes = await this.agents.request(p.agent, 'GET', p.agentPath);
      if (sub === 'top') return await this.sendUsage(agentRes, res, t0);
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache' });
      res.flushHeaders();
      this.meter.answered(sub, 200, since(t0));
      agentRes.pipe(res);
      res.on('close', () => agentRes.destroy());
      agentRes.on('error', () => res.destroy());
    } catch (e) {
      const s = asStatus(e);
      if (s.code >= 500) this.log.warn({ url: req.url?.slice(0, 300), err: s.message }, 'request failed');
      this.meter.answered(sub, s.code, since(t0));
      sendStatus(res, s);
    }
  }

  private async sendUsage(agentRes: IncomingMessage, res: ServerResponse, t0: number): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const d of agentRes as AsyncIterable<Buffer>) {
      size += d.length;
      if (size > MAX_USAGE_BODY) throw new StatusError(502, `the agent's usage answer is over ${MAX_USAGE_BODY} bytes`);
      chunks.push(d);
    }
    const body = Buffer.concat(chunks);
    JSON.parse(body.toString('utf8')); // a broken answer is a 500, not passed on
    this.meter.answered('top', 200, since(t0));
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  }

  /** An upgrade: exec, attach and portforward, as websockets relayed to the agent's upgrade. */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const t0 = performance.now();
    let sub = meterLabel(req);
    let agentSocket: Duplex | undefined;
    try {
      if (req.method !== 'GET') throw new StatusError(405, 'only GET upgrades');
      const p = await this.prepare(req);
      sub = p.target.subresource;
      const protocol = WEBSOCKET_PROTOCOL[sub];
      if (!protocol) throw new StatusError(400, `guests/${sub} does not stream; GET it without an upgrade`);
      if (String(req.headers.upgrade).toLowerCase() !== 'websocket' || !req.headers['sec-websocket-key'])
        throw new StatusError(400, `guests/${sub} upgrades to a websocket only`);
      const offered = String(req.headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((s) => s.trim());
      if (!offered.includes(protocol)) throw new StatusError(400, `guests/${sub} needs the websocket subprotocol "${protocol}"`);
      // The agent first: its refusal (no such guest, no running domain) still comes as a Status.
      const up = await this.agents.upgrade(p.agent, p.agentPath, AGENT_ROUTE[sub].protocol!);
      agentSocket = up.socket;
      if (socket.destroyed) return void up.socket.destroy();
      const size = sub === 'attach' ? attachSize(p.query) : undefined;
      const target = p;
      const subresource = sub;
      this.protocols.set(req, protocol);
      this.wss.handleUpgrade(req, socket, head, (ws) => this.stream(ws, subresource, target, up.socket, up.head, size, t0));
    } catch (e) {
      agentSocket?.destroy();
      const s = asStatus(e);
      if (s.code >= 500) this.log.warn({ url: req.url?.slice(0, 300), err: s.message }, 'stream refused');
      this.meter.answered(sub, s.code, since(t0));
      refuseUpgrade(socket, s);
    }
  }

  private stream(
    ws: WebSocket,
    sub: GuestSubresource,
    p: Prepared,
    agentSocket: Duplex,
    head: Buffer,
    size: { rows: number; cols: number } | undefined,
    t0: number,
  ): void {
    this.meter.answered(sub, 101, since(t0));
    this.meter.streams(sub, 1);
    const resize = sub === 'attach' ? this.resizer(ws, p) : undefined;
    if (resize && size) resize(size);
    relay(ws, agentSocket, head, {
      framing: sub === 'exec' ? 'exec' : 'raw',
      ...(resize
        ? {
            onText: (text: string) => {
              const size = parseResize(text);
              if (!size) return ws.close(1003, 'a text message must be {"resize":{"rows":R,"cols":C}}');
              resize(size);
            },
          }
        : {}),
      onEnd: () => this.meter.streams(sub, -1),
    });
  }

  /** attach's console/size: one PUT at a time, the latest size asked while one is in flight sent next. */
  private resizer(ws: WebSocket, p: Prepared): (size: { rows: number; cols: number }) => void {
    let pending: { rows: number; cols: number } | undefined;
    let busy = false;
    const path = `/v1/namespaces/${encodeURIComponent(p.target.namespace)}/guests/${encodeURIComponent(p.target.name)}/console/size`;
    const next = () => {
      if (busy || !pending) return;
      const size = pending;
      pending = undefined;
      busy = true;
      this.agents
        .request(p.agent, 'PUT', path, size)
        .then((res) => res.resume())
        .catch((e: unknown) => this.log.warn({ guest: p.target.name, err: asStatus(e).message }, 'console resize failed'))
        .finally(() => {
          busy = false;
          if (ws.readyState === ws.OPEN) next();
        });
    };
    return (size) => {
      pending = size;
      next();
    };
  }
}

/** The subresource a request names, for the metrics (`other` for any other path). */
/** Seconds since `t0` (performance.now()). */
const since = (t0: number) => (performance.now() - t0) / 1000;

function meterLabel(req: IncomingMessage): GuestSubresource | 'other' {
  return parseSubresourcePath(new URL(req.url ?? '/', 'https://krata-api').pathname)?.subresource ?? 'other';
}

/** `{"resize":{"rows":R,"cols":C}}` → the size; undefined for anything else. */
export function parseResize(text: string): { rows: number; cols: number } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = (v as { resize?: { rows?: unknown; cols?: unknown } } | null)?.resize;
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
  return r && ok(r.rows) && ok(r.cols) ? { rows: r.rows, cols: r.cols } : undefined;
}
