// A stand-in for krata-api behind the kube-apiserver, for kubectl-krata's tests: HTTPS with a self-signed
// certificate made by openssl, bearer tokens checked, and the contract's paths (contracts/krata-api/subresources.ts):
// log text (tail and follow), top JSON, websocket upgrades for exec (agent exec frames), attach (console bytes,
// resize text messages) and portforward (relayed to a TCP server the test runs), each checking its subprotocol.
// The Guests of krata.dev/v1alpha1 are listed and read as the apiserver serves them.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { connect } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { TestContext } from 'node:test';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import { ExecFrame, ExecFrameDecoder, encodeExecFrame } from '../../contracts/agent-api/exec.js';
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import {
  SUBRESOURCE_GROUP,
  SUBRESOURCE_GROUP_VERSION,
  WEBSOCKET_PROTOCOL,
  parseSubresourcePath,
  type GuestSubresource,
} from '../../contracts/krata-api/subresources.js';

export interface FakeGuest {
  phase: string;
  /** The console's history, as log returns it. */
  log: string;
  usage?: GuestUsage;
}

export interface ExecRecord {
  user: string;
  query: URLSearchParams;
  stdin: Buffer[];
  resizes: { rows: number; cols: number }[];
  signals: number[];
  closed: boolean;
}

export interface AttachRecord {
  user: string;
  query: URLSearchParams;
  input: Buffer[];
  resizes: { rows: number; cols: number }[];
  closed: boolean;
}

export interface RequestRecord {
  user: string;
  path: string;
  query: URLSearchParams;
  protocol?: string;
}

const key = (ns: string, name: string) => `${ns}/${name}`;

function status(code: number, reason: string, message: string): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}

/** The apiserver's answer for a path nothing serves (as for a group without its APIService). */
const NOT_SERVED = status(404, 'NotFound', 'the server could not find the requested resource');

export class FakeKrataApi {
  /** A CA file that verifies the server (its self-signed certificate). */
  readonly caFile: string;
  readonly url: string;
  /** Bearer token → user name. */
  readonly tokens = new Map<string, string>([['token-alice', 'alice']]);
  readonly guests = new Map<string, FakeGuest>();
  /** `user guests/SUB` pairs refused with 403. */
  readonly forbidden = new Set<string>();
  /** Whether the APIService exists (false: every path of the group is a 404, as with krata-api not installed). */
  installed = true;
  /** Whether the APIService's backend is down: the aggregator answers 503 in plain text, as kube-apiserver does. */
  unavailable = false;
  /** Guest port → a local TCP port that stands for it. */
  readonly ports = new Map<number, number>();
  readonly requests: RequestRecord[] = [];
  readonly execs: ExecRecord[] = [];
  readonly attaches: AttachRecord[] = [];
  private readonly followers = new Map<string, Set<ServerResponse>>();

  private constructor(
    caFile: string,
    url: string,
    private readonly stop: () => Promise<void>,
    /** A client certificate and key the server takes as the user "carol" (no token needed). */
    readonly carol: { cert: string; key: string },
  ) {
    this.caFile = caFile;
    this.url = url;
  }

  static async start(t: TestContext): Promise<FakeKrataApi> {
    const dir = mkdtempSync(join(tmpdir(), 'fake-krata-api-'));
    const cert = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    // The server's certificate (its own CA), and a client certificate for the user "carol" (its own CA too).
    const selfSigned = (cn: string, certFile: string, keyOut: string, san?: string) =>
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-keyout',
          keyOut,
          '-out',
          certFile,
          '-days',
          '1',
          '-subj',
          `/CN=${cn}`,
          ...(san ? ['-addext', `subjectAltName=${san}`] : []),
        ],
        { stdio: 'ignore' },
      );
    selfSigned('fake-krata-api', cert, keyFile, 'IP:127.0.0.1,DNS:localhost');
    const clientCert = join(dir, 'carol.pem');
    const clientKey = join(dir, 'carol-key.pem');
    selfSigned('carol', clientCert, clientKey);
    let self: FakeKrataApi | undefined;
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, handleProtocols: (offered) => [...offered][0] ?? false });
    const server = createServer(
      { cert: readFileSync(cert), key: readFileSync(keyFile), ca: readFileSync(clientCert), requestCert: true, rejectUnauthorized: false },
      (req, res) => self!.serve(req, res),
    );
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => self!.upgrade(wss, req, socket, head));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const stop = async () => {
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    };
    self = new FakeKrataApi(cert, `https://127.0.0.1:${port}`, stop, { cert: clientCert, key: clientKey });
    t.after(stop);
    return self;
  }

  close(): Promise<void> {
    return this.stop();
  }

  addGuest(ns: string, name: string, guest: Partial<FakeGuest> = {}): void {
    this.guests.set(key(ns, name), { phase: 'Running', log: '', ...guest });
  }

  /** New console output: appended to the history and sent to every follower. */
  appendLog(ns: string, name: string, text: string): void {
    const g = this.guests.get(key(ns, name))!;
    g.log += text;
    for (const res of this.followers.get(key(ns, name)) ?? []) res.write(text);
  }

  /** The domain ended: followers' streams end. */
  endLogs(ns: string, name: string): void {
    for (const res of this.followers.get(key(ns, name)) ?? []) res.end();
    this.followers.delete(key(ns, name));
  }

  followerCount(ns: string, name: string): number {
    return this.followers.get(key(ns, name))?.size ?? 0;
  }

  private user(req: IncomingMessage): string | undefined {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (m) return this.tokens.get(m[1]!);
    const tls = req.socket as TLSSocket;
    return tls.authorized ? String(tls.getPeerCertificate().subject.CN) : undefined;
  }

  /** The refusal for a subresource request, or the Guest it names. */
  private check(req: IncomingMessage): { code: number; body: string } | { user: string; sub: GuestSubresource; ns: string; name: string } {
    const user = this.user(req);
    if (!user) return { code: 401, body: status(401, 'Unauthorized', 'Unauthorized') };
    const url = new URL(req.url!, 'https://x');
    const target = parseSubresourcePath(url.pathname);
    if (!this.installed || !target) return { code: 404, body: NOT_SERVED };
    if (this.unavailable) return { code: 503, body: 'service unavailable\n' };
    const { namespace: ns, name, subresource: sub } = target;
    this.requests.push({ user, path: url.pathname, query: url.searchParams, protocol: req.headers['sec-websocket-protocol'] });
    if (this.forbidden.has(`${user} guests/${sub}`))
      return {
        code: 403,
        body: status(
          403,
          'Forbidden',
          `guests.${SUBRESOURCE_GROUP} "${name}" is forbidden: User "${user}" cannot get resource "guests/${sub}" in API group ` +
            `"${SUBRESOURCE_GROUP}" in the namespace "${ns}"`,
        ),
      };
    const g = this.guests.get(key(ns, name));
    if (!g) return { code: 404, body: status(404, 'NotFound', `guests.krata.dev "${name}" not found`) };
    if (sub !== 'log' && g.phase !== 'Running')
      return { code: 409, body: status(409, 'Conflict', `guest ${ns}/${name} has no running domain (phase ${g.phase})`) };
    return { user, sub, ns, name };
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url!, 'https://x');
    const json = (code: number, body: string): void => void res.writeHead(code, { 'content-type': 'application/json' }).end(body);
    if (!url.pathname.startsWith(`/apis/${SUBRESOURCE_GROUP}/`)) return this.serveGuests(req, url, json);
    if (url.pathname === `/apis/${SUBRESOURCE_GROUP_VERSION}`) {
      if (!this.user(req)) return json(401, status(401, 'Unauthorized', 'Unauthorized'));
      if (!this.installed) return json(404, NOT_SERVED);
      return json(200, JSON.stringify({ kind: 'APIResourceList', groupVersion: SUBRESOURCE_GROUP_VERSION, resources: [] }));
    }
    const c = this.check(req);
    if ('code' in c) return json(c.code, c.body);
    const g = this.guests.get(key(c.ns, c.name))!;
    if (c.sub === 'top') return json(200, JSON.stringify(g.usage));
    if (c.sub !== 'log') return json(400, status(400, 'BadRequest', `${c.sub} needs a websocket upgrade`));
    const tail = url.searchParams.get('tailLines');
    let text = g.log;
    if (tail !== null) {
      const lines = text.split(/(?<=\n)/);
      text = lines.slice(Math.max(0, lines.length - Number(tail))).join('');
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write(text);
    if (url.searchParams.get('follow') !== 'true') return void res.end();
    const set = this.followers.get(key(c.ns, c.name)) ?? new Set();
    this.followers.set(key(c.ns, c.name), set);
    set.add(res);
    res.on('close', () => set.delete(res));
  }

  /** krata.dev/v1alpha1 guests, list and get, as the apiserver serves the CRD. */
  private serveGuests(req: IncomingMessage, url: URL, json: (code: number, body: string) => void): void {
    const user = this.user(req);
    if (!user) return json(401, status(401, 'Unauthorized', 'Unauthorized'));
    const m = /^\/apis\/krata\.dev\/v1alpha1\/namespaces\/([^/]+)\/guests(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m) return json(404, NOT_SERVED);
    this.requests.push({ user, path: url.pathname, query: url.searchParams });
    const [, ns, name] = m as unknown as [string, string, string | undefined];
    const object = (n: string, g: FakeGuest) => ({
      apiVersion: 'krata.dev/v1alpha1',
      kind: 'Guest',
      metadata: { name: n, namespace: ns },
      spec: { image: 'alpine' },
      status: { phase: g.phase },
    });
    if (name === undefined) {
      const items = [...this.guests].filter(([k]) => k.startsWith(`${ns}/`)).map(([k, g]) => object(k.slice(ns.length + 1), g));
      return json(200, JSON.stringify({ apiVersion: 'krata.dev/v1alpha1', kind: 'GuestList', metadata: {}, items }));
    }
    const g = this.guests.get(key(ns, name));
    if (!g) return json(404, status(404, 'NotFound', `guests.krata.dev "${name}" not found`));
    json(200, JSON.stringify(object(name, g)));
  }

  private upgrade(wss: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (code: number, body: string) => {
      const lines = `HTTP/1.1 ${code} Refused\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
      socket.end(`${lines}Connection: close\r\n\r\n${body}`);
    };
    const c = this.check(req);
    if ('code' in c) return refuse(c.code, c.body);
    const expected = WEBSOCKET_PROTOCOL[c.sub];
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p: string) => p.trim());
    if (!expected || !offered.includes(expected))
      return refuse(400, status(400, 'BadRequest', `${c.sub} needs the websocket subprotocol ${expected ?? '(none: not a stream)'}`));
    req.headers['sec-websocket-protocol'] = expected;
    const query = new URL(req.url!, 'https://x').searchParams;
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (c.sub === 'exec') this.exec(ws, c.user, query);
      else if (c.sub === 'attach') this.attach(ws, c.user, query);
      else this.portforward(ws, query);
    });
  }

  /** A few programs, enough to see exit codes, output, stdin, resize and signals pass. */
  private exec(ws: WebSocket, user: string, query: URLSearchParams): void {
    const rec: ExecRecord = { user, query, stdin: [], resizes: [], signals: [], closed: false };
    this.execs.push(rec);
    const argv = query.getAll('command');
    const send = (type: number, payload: Buffer | object = Buffer.alloc(0)) => ws.send(encodeExecFrame(type as 1, payload));
    const exit = (result: object) => {
      send(ExecFrame.exit, result);
      ws.close();
    };
    const decoder = new ExecFrameDecoder();
    ws.on('close', () => (rec.closed = true));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return;
      for (const f of decoder.push(data)) {
        if (f.type === ExecFrame.stdin) {
          rec.stdin.push(Buffer.from(f.payload));
          if (argv[0] === 'cat') send(ExecFrame.stdout, f.payload);
        } else if (f.type === ExecFrame.stdinEnd) {
          if (argv[0] === 'cat') exit({ exitCode: 0 });
        } else if (f.type === ExecFrame.resize) rec.resizes.push(JSON.parse(f.payload.toString()) as { rows: number; cols: number });
        else if (f.type === ExecFrame.signal) {
          const signo = (JSON.parse(f.payload.toString()) as { signal: number }).signal;
          rec.signals.push(signo);
          if (argv[0] === 'sleep') exit({ exitCode: 128 + signo, signal: signo });
        }
      }
    });
    send(ExecFrame.started, { pid: 42 });
    const exitCode = argv[0] === 'sh' && argv[1] === '-c' ? /^exit (\d+)$/.exec(argv[2] ?? '')?.[1] : undefined;
    if (argv[0] === 'echo') {
      send(ExecFrame.stdout, Buffer.from(argv.slice(1).join(' ') + '\n'));
      exit({ exitCode: 0 });
    } else if (argv[0] === 'warn') {
      send(ExecFrame.stderr, Buffer.from(argv.slice(1).join(' ') + '\n'));
      exit({ exitCode: 3 });
    } else if (argv[0] === 'drop') ws.close(1011, 'the node agent went away');
    else if (exitCode !== undefined) exit({ exitCode: Number(exitCode) });
    else if (argv[0] !== 'cat' && argv[0] !== 'sleep')
      exit({ exitCode: 127, error: `exec: "${argv[0]}": executable file not found in $PATH` });
  }

  /** A console that echoes what is typed, as a shell on a terminal does. */
  private attach(ws: WebSocket, user: string, query: URLSearchParams): void {
    const rec: AttachRecord = { user, query, input: [], resizes: [], closed: false };
    this.attaches.push(rec);
    ws.on('close', () => (rec.closed = true));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return void rec.resizes.push((JSON.parse(data.toString()) as { resize: { rows: number; cols: number } }).resize);
      rec.input.push(Buffer.from(data));
      ws.send(data);
    });
    ws.send(Buffer.from('/ # '));
  }

  private portforward(ws: WebSocket, query: URLSearchParams): void {
    const target = this.ports.get(Number(query.get('port')));
    if (target === undefined) return ws.close(1011, 'nothing listens on that port');
    const stream = createWebSocketStream(ws);
    const tcp = connect(target, '127.0.0.1');
    stream.pipe(tcp).pipe(stream);
    const done = () => {
      stream.destroy();
      tcp.destroy();
    };
    tcp.on('error', done);
    tcp.on('close', done);
    stream.on('error', done);
    stream.on('close', done);
  }
}
