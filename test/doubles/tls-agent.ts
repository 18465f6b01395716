// A node agent's TLS listener for krata-api's tests (contracts/krata-api/agent-tls.ts): mutual TLS with
// a serving certificate the test chooses (for agentServerName(host), or for another host, or from another
// CA), serving only the client certificate named KRATA_API_CLIENT_NAME, and the routes krata-api maps
// to — logs (text, tail, follow), usage (JSON), console/size, and the exec, console and portforward
// upgrades — for the Guests the test gives it. exec runs `echo ARGS`, `cat` (stdin to stdout until stdin
// ends) and `crash` (output, then the end without an exit frame); the console echoes what is typed;
// portforward connects to 127.0.0.1:port.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { CONSOLE_PROTOCOL, PORTFORWARD_PROTOCOL } from '../../contracts/agent-api/endpoints.js';
import { encodeExecFrame, EXEC_PROTOCOL, ExecFrame, ExecFrameDecoder } from '../../contracts/agent-api/exec.js';
import { KRATA_API_CLIENT_NAME } from '../../contracts/krata-api/agent-tls.js';
import type { GuestUsage } from '../../contracts/agent-api/types.js';

export interface TlsAgentGuest {
  /** What the guest has printed so far. */
  console: string;
  /** false: no running domain (409 on every route). */
  running?: boolean;
}

export interface TlsAgent {
  /** address:port, for XenHost status.agentEndpoint. */
  endpoint: string;
  guests: Map<string, TlsAgentGuest>;
  /** console/size requests received, in order. */
  sizes: { guest: string; rows: number; cols: number }[];
  /** Requests refused because the client's certificate was not krata-api's. */
  refusedClients: number;
  /** Prints to a guest's console (followers of its logs and attached consoles see it). */
  print(key: string, text: string): void;
  stop(): Promise<void>;
}

const key = (ns: string, name: string) => `${ns}/${name}`;
const ROUTE = /^\/v1\/namespaces\/([a-z0-9-]+)\/guests\/([a-z0-9.-]+)\/(logs|usage|console|console\/size|exec|portforward)$/;

export async function startTlsAgent(tls: { cert: string; key: string; ca: string }): Promise<TlsAgent> {
  const guests = new Map<string, TlsAgentGuest>();
  const sizes: TlsAgent['sizes'] = [];
  const listeners = new Map<string, Set<(s: string) => void>>();
  let refusedClients = 0;
  const subscribe = (k: string, f: (s: string) => void) => {
    const set = listeners.get(k) ?? new Set();
    listeners.set(k, set.add(f));
    return () => set.delete(f);
  };
  const print = (k: string, text: string) => {
    const g = guests.get(k);
    if (g) g.console += text;
    for (const f of listeners.get(k) ?? []) f(text);
  };

  /** The guest a request names, or the HTTP error it gets (as the agent words it). */
  const resolve = (req: IncomingMessage): { k: string; route: string; url: URL } | { code: number; message: string } => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    if (!(req.socket as TLSSocket).authorized || peer.subject?.CN !== KRATA_API_CLIENT_NAME) {
      refusedClients++;
      return { code: 403, message: 'this listener serves krata-api only' };
    }
    const url = new URL(req.url ?? '/', 'https://agent');
    const m = ROUTE.exec(url.pathname);
    if (!m) return { code: 404, message: `no route ${url.pathname}` };
    const k = key(m[1]!, m[2]!);
    const g = guests.get(k);
    if (!g) return { code: 404, message: `guest "${m[2]}" not found in namespace "${m[1]}"` };
    if (g.running === false) return { code: 409, message: `guest "${m[2]}" has no running domain (phase Pending), so there is no console` };
    return { k, route: m[3]!, url };
  };
  const fail = (res: ServerResponse, code: number, message: string) =>
    res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify({ message }));

  const server: Server = createServer(
    { cert: readFileSync(tls.cert), key: readFileSync(tls.key), ca: readFileSync(tls.ca), requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const r = resolve(req);
      if ('code' in r) return fail(res, r.code, r.message);
      const g = guests.get(r.k)!;
      if (r.route === 'logs' && req.method === 'GET') {
        const tail = r.url.searchParams.get('tail');
        const lines = g.console.split(/(?<=\n)/);
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(tail === null ? g.console : lines.slice(Math.max(0, lines.length - Number(tail))).join(''));
        if (r.url.searchParams.get('follow') !== 'true') return void res.end();
        const off = subscribe(r.k, (s) => res.write(s));
        res.on('close', off);
        return;
      }
      if (r.route === 'usage' && req.method === 'GET') {
        const [namespace, name] = r.k.split('/') as [string, string];
        const usage: GuestUsage = {
          namespace,
          name,
          domid: 7,
          timestamp: new Date(0).toISOString(),
          cpuSeconds: 1.5,
          vcpus: { online: 1, max: 1 },
          memory: { domainBytes: 64 << 20, maxBytes: 64 << 20 },
          channel: { phase: 'up', transport: 'console' },
        };
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(usage));
      }
      if (r.route === 'console/size' && req.method === 'PUT') {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          const { rows, cols } = JSON.parse(body) as { rows: number; cols: number };
          sizes.push({ guest: r.k, rows, cols });
          res.writeHead(204).end();
        });
        return;
      }
      fail(res, 426, `${r.route} needs an upgrade`);
    },
  );

  const upgraded = new Set<Duplex>();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    upgraded.add(socket.on('close', () => upgraded.delete(socket)));
    const r = resolve(req);
    const refuse = (code: number, message: string) => {
      const body = JSON.stringify({ message });
      socket.end(`HTTP/1.1 ${code} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    };
    if ('code' in r) return refuse(r.code, r.message);
    const protocol = { exec: EXEC_PROTOCOL, console: CONSOLE_PROTOCOL, portforward: PORTFORWARD_PROTOCOL }[r.route];
    if (!protocol || req.headers.upgrade !== protocol) return refuse(400, `upgrade to ${protocol ?? 'nothing'} only`);
    const accept = () => socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${protocol}\r\n\r\n`);
    socket.on('error', () => socket.destroy());
    if (r.route === 'console') {
      accept();
      const off = subscribe(r.k, (s) => socket.write(s));
      socket.on('data', (d: Buffer) => print(r.k, d.toString('utf8').replace(/\r/g, '\n')));
      socket.on('close', off);
      return;
    }
    if (r.route === 'portforward') {
      const port = Number(r.url.searchParams.get('port'));
      const upstream = connect(port, '127.0.0.1');
      upstream.once('connect', () => {
        accept();
        socket.pipe(upstream).pipe(socket);
      });
      upstream.on('error', () => refuse(409, `nothing listens on port ${port} in the guest`));
      socket.on('close', () => upstream.destroy());
      return;
    }
    const command = r.url.searchParams.getAll('command');
    accept();
    socket.write(encodeExecFrame(ExecFrame.started, { pid: 42 }));
    const exit = (result: object) => socket.end(encodeExecFrame(ExecFrame.exit, result));
    if (command[0] === 'echo') {
      socket.write(encodeExecFrame(ExecFrame.stdout, Buffer.from(command.slice(1).join(' ') + '\n')));
      return exit({ exitCode: 0 });
    }
    // `crash`: the agent's stream ends with no exit frame (an agent that died mid-exec).
    if (command[0] === 'crash') return void socket.end(encodeExecFrame(ExecFrame.stdout, Buffer.from('partial')));
    if (command[0] !== 'cat') return exit({ exitCode: 127, error: `${command[0]}: not found` });
    const decoder = new ExecFrameDecoder();
    socket.on('data', (d: Buffer) => {
      for (const f of decoder.push(d)) {
        if (f.type === ExecFrame.stdin) socket.write(encodeExecFrame(ExecFrame.stdout, f.payload));
        if (f.type === ExecFrame.stdinEnd) exit({ exitCode: 0 });
      }
    });
  });
  server.on('tlsClientError', () => undefined);

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `127.0.0.1:${port}`,
    guests,
    sizes,
    get refusedClients() {
      return refusedClients;
    },
    print,
    stop: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
        for (const s of upgraded) s.destroy();
      }),
  };
}
