// Client of the node agent's local API: HTTP/1.1 with JSON bodies over a unix socket
// (ARCHITECTURE.md, "Node agent local API").
import { request } from 'node:http';
import type { KratObject } from '../crds/validate.js';

export const DEFAULT_AGENT_SOCKET = '/run/krata/agent.sock';

export interface ApplyResult {
  kind: string;
  metadata: { name: string; namespace?: string };
  action: 'created' | 'configured' | 'unchanged';
}

export class AgentError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly details: { index?: number; path?: string; message: string }[] = [],
  ) {
    super(message);
  }
}

export class AgentClient {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 30_000,
  ) {}

  /** All objects or none: the agent validates the whole batch before storing any of it. */
  async apply(objects: KratObject[], dryRun = false): Promise<ApplyResult[]> {
    const body = await this.call('POST', '/v1/apply', { objects, dryRun });
    return (body as { results: ApplyResult[] }).results;
  }

  private call(method: string, path: string, payload?: unknown): Promise<unknown> {
    const data = payload === undefined ? undefined : Buffer.from(JSON.stringify(payload));
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: { 'content-type': 'application/json', ...(data ? { 'content-length': data.length } : {}) },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : {};
            } catch {
              return reject(new AgentError(`node agent answered ${res.statusCode} with a body that is not JSON`, res.statusCode));
            }
            if (res.statusCode && res.statusCode >= 200 && res.statusCode < 300) return resolve(json);
            const err = json as { message?: string; errors?: { index?: number; path?: string; message: string }[] };
            reject(new AgentError(err.message ?? `node agent answered ${res.statusCode}`, res.statusCode, err.errors ?? []));
          });
        },
      );
      req.on('timeout', () => req.destroy(new AgentError(`node agent at ${this.socketPath} did not answer within ${this.timeoutMs / 1000}s`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof AgentError) return reject(err);
        const why =
          err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
            ? 'is krata-node-agent running? (--dry-run only validates)'
            : err.code === 'EACCES'
              ? 'permission denied: run as root or as a member of the krata group'
              : err.message;
        reject(new AgentError(`cannot reach the node agent at ${this.socketPath}: ${why}`));
      });
      req.end(data);
    });
  }
}
