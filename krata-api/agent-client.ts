// krata-api's side of the agent's TLS listener (contracts/krata-api/agent-tls.ts): mutual TLS with
// krata-api's client certificate, the krata CA as the only trust root, and servername
// agentServerName(host), so Node's default checkServerIdentity proves the far end holds a certificate
// for the host the Guest's status names (a certificate for another host, or from another CA, fails
// the handshake). The certificate files are read again when they change (Secret mounts rotate).
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { agentServerName } from '../contracts/krata-api/agent-tls.js';
import { StatusError } from './status.js';

export interface AgentTls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** Where the agent of `host` listens (XenHost status.agentEndpoint). */
export interface AgentTarget {
  host: string;
  endpoint: string;
}

/** How long the agent may stay silent before it answers (its exec waits up to 5 s for the guest's channel). */
const ANSWER_TIMEOUT_MS = 30_000;
const MAX_ERROR_BODY = 64 * 1024;

/** `address:port` or `[v6]:port` → its parts; a StatusError for anything else. */
export function splitEndpoint(endpoint: string): { address: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(endpoint);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) throw new StatusError(502, `the agent endpoint ${JSON.stringify(endpoint)} is not address:port`);
  return { address: m[1] ?? m[2]!, port };
}

export class AgentClient {
  constructor(private readonly tls: () => AgentTls) {}

  /** A plain request; resolves with the agent's 2xx answer, rejects with a StatusError for any other. */
  async request(target: AgentTarget, method: string, path: string, body?: object): Promise<IncomingMessage> {
    const req = this.open(target, method, path, body ? { 'content-type': 'application/json' } : {});
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', (e) => reject(this.unreachable(target, e)));
      req.end(body ? JSON.stringify(body) : undefined);
    });
    req.setTimeout(0);
    if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) return res;
    throw await this.refusal(target, res);
  }

  /** An HTTP Upgrade to `protocol`; resolves with the raw socket once the agent answers 101. */
  upgrade(target: AgentTarget, path: string, protocol: string): Promise<{ socket: Duplex; head: Buffer }> {
    const req = this.open(target, 'GET', path, { connection: 'Upgrade', upgrade: protocol });
    return new Promise((resolve, reject) => {
      req.on('upgrade', (_res, socket, head) => {
        socket.setTimeout(0);
        resolve({ socket, head });
      });
      req.on('response', (res) => void this.refusal(target, res).then(reject));
      req.on('error', (e) => reject(this.unreachable(target, e)));
      req.end();
    });
  }

  private open(target: AgentTarget, method: string, path: string, headers: Record<string, string>) {
    const { address, port } = splitEndpoint(target.endpoint);
    const { cert, key, ca } = this.tls();
    const req = https.request({
      host: address,
      port,
      method,
      path,
      headers,
      cert,
      key,
      ca,
      servername: agentServerName(target.host),
      agent: false,
      timeout: ANSWER_TIMEOUT_MS,
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${ANSWER_TIMEOUT_MS} ms`)));
    return req;
  }

  private unreachable(target: AgentTarget, e: Error): StatusError {
    if (e instanceof StatusError) return e;
    const code = (e as NodeJS.ErrnoException).code ?? '';
    const tlsProblem = /CERT|SELF_SIGNED|ERR_TLS|ALTNAME|UNABLE_TO|SSL/.test(code) || /certificate|altnames|alert/i.test(e.message);
    return new StatusError(
      502,
      tlsProblem
        ? `the agent of host "${target.host}" at ${target.endpoint} could not be verified as that host: ${e.message}`
        : `the agent of host "${target.host}" at ${target.endpoint} is unreachable: ${e.message}`,
    );
  }

  /** The agent's refusal as a Status: its message, its code when it is about the Guest (400, 404, 409). */
  private async refusal(target: AgentTarget, res: IncomingMessage): Promise<StatusError> {
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const d of res as AsyncIterable<Buffer>) {
        size += d.length;
        if (size > MAX_ERROR_BODY) break;
        chunks.push(d);
      }
    } catch {
      // the message is what arrived
    }
    res.destroy();
    const text = Buffer.concat(chunks).toString('utf8').slice(0, MAX_ERROR_BODY);
    let message = text.slice(0, 500);
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      // not JSON: the text itself
    }
    const status = res.statusCode ?? 0;
    const code = [400, 404, 409].includes(status) ? status : 502;
    return new StatusError(code, `the agent of host "${target.host}" answered ${status}: ${message}`);
  }
}

/** The client certificate, key and CA from files, read again when a file's mtime changes (a Secret mount's update). */
export function tlsFromFiles(files: { certFile: string; keyFile: string; caFile: string }): () => AgentTls {
  let stamp = '';
  let tls: AgentTls | undefined;
  return () => {
    const now = [files.certFile, files.keyFile, files.caFile].map((f) => statSync(f).mtimeMs).join(',');
    if (!tls || now !== stamp) {
      tls = { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile), ca: readFileSync(files.caFile) };
      stamp = now;
    }
    return tls;
  };
}
