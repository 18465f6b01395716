// Client of the node agent's local API: HTTP/1.1 with JSON bodies over a unix socket
// (contracts/README.md, "The node agent's local API"). Streams (watch, logs, pull progress) are NDJSON or raw
// bytes; the console is a raw byte stream after an HTTP upgrade, an exec a stream of frames after one.
import { CONSOLE_PROTOCOL, DEFAULT_AGENT_SOCKET } from '../contracts/agent-api/endpoints.js';
import { EXEC_PROTOCOL, execQueryString, type ExecQuery } from '../contracts/agent-api/exec.js';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { once } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import type { Duplex, Readable, Writable } from 'node:stream';
import type { KratObject } from '../crds/validate.js';
import type { PullSecret } from '../contracts/agent-api/pull-secret.js';
import type { Guest, GuestSet } from '../crds/generated/types.js';
import type { ApplyResult, GuestEvent, HostStatus, WatchEvent } from '../contracts/agent-api/types.js';
import type { AgentVersion, ScaleRequest } from '../contracts/agent-api/types.js';
import type { ApplySetParent } from '../contracts/agent-api/applyset.js';

/** What GET /v1/secrets shows of a pull Secret. */
export interface SecretSummary {
  namespace: string;
  name: string;
  type: string;
  registries: string[];
  labels?: Record<string, string>;
}
import { IMPORT_CONTENT_TYPE, type PruneResult, type PullEvent, type StoredImage } from '../contracts/agent-api/types.js';

export type { ApplyResult, GuestEvent, HostStatus, WatchEvent } from '../contracts/agent-api/types.js';
import type { GuestUsage } from '../contracts/agent-api/types.js';
export type { GuestUsage } from '../contracts/agent-api/types.js';

/** The socket a command talks to: --agent, else $KRATA_AGENT_SOCKET, else the default. */
export function agentSocket(values: { agent?: string }, env: NodeJS.ProcessEnv): string {
  return values.agent ?? env.KRATA_AGENT_SOCKET ?? DEFAULT_AGENT_SOCKET;
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

export interface DeleteOptions {
  /** Answer only once the guest's domain and resources are gone. */
  wait?: boolean;
  gracePeriodSeconds?: number;
}

export interface WatchOptions {
  /** Changes after this revision; 0 (default) starts with the current state as ADDED events. */
  since?: number;
  namespace?: string;
  /** Ends the watch (the iterator then finishes without an error). */
  signal?: AbortSignal;
}

export interface LogsOptions {
  follow?: boolean;
  /** Only the last N lines of the history. */
  tail?: number;
  /** Ends a followed stream (logs then resolves). */
  signal?: AbortSignal;
}

interface CallOptions {
  body?: unknown;
  /** A streamed body instead (`body` is JSON), sent as `contentType`. */
  stream?: { data: Readable; contentType: string };
  /** Socket idle timeout; 0 for streams and waits that may take long. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Appended to "is krata-node-agent running?" when the socket is not there. */
  hint?: string;
}

/** Lines longer than this in an NDJSON stream mean a broken agent, not a big object. */
const MAX_LINE = 64 * 1024 * 1024;

const enc = encodeURIComponent;

export class AgentClient {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 30_000,
  ) {}

  /** All objects or none: the agent validates the whole batch before storing any of it. */
  async apply(objects: (KratObject | PullSecret)[], dryRun = false): Promise<ApplyResult[]> {
    const body = await this.call('POST', '/v1/apply', { body: { objects, dryRun }, hint: ' (--dry-run only validates)' });
    return (body as { results: ApplyResult[] }).results;
  }

  /** The agent's release and the APIs it serves (GET /v1/version). */
  async version(): Promise<AgentVersion> {
    return (await this.call('GET', '/v1/version', { timeoutMs: 10_000 })) as AgentVersion;
  }

  async list(namespace?: string): Promise<Guest[]> {
    const body = await this.call('GET', `/v1/guests${namespace === undefined ? '' : `?namespace=${enc(namespace)}`}`);
    return (body as { items: Guest[] }).items;
  }

  async get(namespace: string, name: string): Promise<Guest> {
    return (await this.call('GET', guestPath(namespace, name))) as Guest;
  }

  /** Without `wait`, answers once deletion is accepted; with it, once the domain is gone (no timeout). */
  async delete(namespace: string, name: string, opts: DeleteOptions = {}): Promise<void> {
    const q = new URLSearchParams();
    if (opts.wait) q.set('wait', 'true');
    if (opts.gracePeriodSeconds !== undefined) q.set('gracePeriodSeconds', String(opts.gracePeriodSeconds));
    const qs = q.size ? `?${q.toString()}` : '';
    await this.call('DELETE', `${guestPath(namespace, name)}${qs}`, opts.wait ? { timeoutMs: 0 } : {});
  }

  async listGuestSets(namespace?: string): Promise<GuestSet[]> {
    const body = await this.call('GET', `/v1/guestsets${namespace === undefined ? '' : `?namespace=${enc(namespace)}`}`);
    return (body as { items: GuestSet[] }).items;
  }

  async getGuestSet(namespace: string, name: string): Promise<GuestSet> {
    return (await this.call('GET', guestSetPath(namespace, name))) as GuestSet;
  }

  /** Removes the set; the agent then deletes its Guests. */
  async deleteGuestSet(namespace: string, name: string): Promise<void> {
    await this.call('DELETE', guestSetPath(namespace, name));
  }

  /** The scale subresource: sets spec.replicas. */
  async scaleGuestSet(namespace: string, name: string, replicas: number): Promise<GuestSet> {
    return (await this.call('PUT', `${guestSetPath(namespace, name)}/scale`, { body: { replicas } satisfies ScaleRequest })) as GuestSet;
  }

  /** Removes an image pull Secret from a single host. */
  async deleteSecret(namespace: string, name: string): Promise<void> {
    await this.call('DELETE', `/v1/namespaces/${enc(namespace)}/secrets/${enc(name)}`);
  }

  /** A single host's image pull Secrets: names, types, registries and labels (never their data). */
  async listSecrets(namespace?: string): Promise<SecretSummary[]> {
    const body = await this.call('GET', `/v1/secrets${namespace === undefined ? '' : `?namespace=${enc(namespace)}`}`);
    return (body as { items: SecretSummary[] }).items;
  }

  /** An ApplySet's parent (kratactl apply --prune), or undefined when the agent has none of that name. */
  async getApplySet(namespace: string, name: string): Promise<ApplySetParent | undefined> {
    try {
      return (await this.call('GET', applySetPath(namespace, name))) as ApplySetParent;
    } catch (err) {
      if (err instanceof AgentError && err.status === 404) return undefined;
      throw err;
    }
  }

  async putApplySet(parent: ApplySetParent): Promise<void> {
    await this.call('PUT', applySetPath(parent.metadata.namespace, parent.metadata.name), { body: parent });
  }

  /** Guest changes as they happen. Breaking out of the loop (or aborting) closes the stream. */
  async *watch(opts: WatchOptions = {}): AsyncGenerator<WatchEvent> {
    const q = new URLSearchParams();
    if (opts.since) q.set('since', String(opts.since));
    if (opts.namespace !== undefined) q.set('namespace', opts.namespace);
    const res = await this.open('GET', `/v1/watch${q.size ? `?${q.toString()}` : ''}`, { timeoutMs: 0, signal: opts.signal });
    yield* ndjson<WatchEvent>(res, opts.signal);
  }

  async events(namespace?: string, name?: string): Promise<GuestEvent[]> {
    const q = new URLSearchParams();
    if (namespace !== undefined) q.set('namespace', namespace);
    if (name !== undefined) q.set('name', name);
    const body = await this.call('GET', `/v1/events${q.size ? `?${q.toString()}` : ''}`);
    return (body as { items: GuestEvent[] }).items;
  }

  /** Copies the console history (and, with follow, live output) to `out`; resolves when the stream ends. */
  async logs(namespace: string, name: string, opts: LogsOptions, out: Writable): Promise<void> {
    const q = new URLSearchParams();
    if (opts.follow) q.set('follow', 'true');
    if (opts.tail !== undefined) q.set('tail', String(opts.tail));
    const res = await this.open('GET', `${guestPath(namespace, name)}/logs${q.size ? `?${q.toString()}` : ''}`, {
      timeoutMs: opts.follow ? 0 : this.timeoutMs,
      signal: opts.signal,
    });
    try {
      for await (const chunk of res) if (!out.write(chunk)) await once(out, 'drain');
    } catch (e) {
      if (!opts.signal?.aborted) throw new AgentError(`the log stream from the node agent broke: ${(e as Error).message}`);
    }
  }

  /** The guest's console as a raw byte stream (after an HTTP upgrade); ending the socket detaches. */
  attach(namespace: string, name: string, opts: { logs?: boolean } = {}): Promise<Duplex> {
    return this.upgrade(`${guestPath(namespace, name)}/console${opts.logs ? '?logs=true' : ''}`, CONSOLE_PROTOCOL);
  }

  /**
   * An exec in the guest: the socket carries frames (contracts/agent-api/exec.ts) once the agent has
   * opened the session; a refusal (no such guest, its channel not up) rejects with the agent's message.
   */
  exec(namespace: string, name: string, query: ExecQuery): Promise<Duplex> {
    return this.upgrade(`${guestPath(namespace, name)}/exec?${execQueryString(query)}`, EXEC_PROTOCOL);
  }

  /** Sets the console's window size (for attach); a 409 says the guest's control channel is not up. */
  async resizeConsole(namespace: string, name: string, rows: number, cols: number): Promise<void> {
    await this.call('PUT', `${guestPath(namespace, name)}/console/size`, { body: { rows, cols } });
  }

  /** A GET upgraded to `protocol`: resolves with the socket after the 101, rejects with the agent's error otherwise. */
  private upgrade(path: string, protocol: string): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const req = request({
        socketPath: this.socketPath,
        agent: false, // a connection per request: keep-alive reuse raced the server closing idle sockets (ECONNRESET)
        method: 'GET',
        path,
        headers: { connection: 'Upgrade', upgrade: protocol },
        timeout: this.timeoutMs,
      });
      req.on('timeout', () =>
        req.destroy(new AgentError(`node agent at ${this.socketPath} did not answer within ${this.timeoutMs / 1000}s`)),
      );
      req.on('upgrade', (_res, socket, head) => {
        socket.setTimeout(0); // the handshake's timeout; a console or an exec may be quiet for hours
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      req.on('response', (res) => readError(res).then(reject, reject));
      req.on('error', (err) => reject(this.unreachable(err)));
      req.end();
    });
  }

  /**
   * Pulls into the agent's cache, reporting progress; resolves with the cached image. `pullSecrets`
   * name Secrets the agent keeps in `namespace` (its default: "default").
   */
  async pullImage(
    image: string,
    onEvent: (e: PullEvent) => void = () => {},
    opts: { namespace?: string; pullSecrets?: string[]; hint?: string } = {},
  ): Promise<StoredImage> {
    const body = {
      image,
      ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
      ...(opts.pullSecrets?.length ? { pullSecrets: opts.pullSecrets } : {}),
    };
    const res = await this.open('POST', '/v1/images/pull', { body, timeoutMs: 0, ...(opts.hint ? { hint: opts.hint } : {}) });
    return imageResult(res, onEvent, 'pull');
  }

  /**
   * Streams a tar archive (a docker save archive, or an OCI layout as a tarball) into the agent's
   * cache; `source` names it in the agent's messages and when it has no name of its own.
   */
  async importImage(archive: Readable, opts: { name?: string; source: string; hint?: string }, onEvent: (e: PullEvent) => void = () => {}) {
    const q = new URLSearchParams({ source: opts.source });
    if (opts.name !== undefined) q.set('name', opts.name);
    const stream = { data: archive, contentType: IMPORT_CONTENT_TYPE };
    const res = await this.open('POST', `/v1/images/import?${q.toString()}`, {
      stream,
      timeoutMs: 0,
      ...(opts.hint ? { hint: opts.hint } : {}),
    });
    return imageResult(res, onEvent, 'import');
  }

  async pruneImages(budgetBytes: number, hint?: string): Promise<PruneResult> {
    return (await this.call('POST', '/v1/images/prune', { body: { budgetBytes }, ...(hint ? { hint } : {}) })) as PruneResult;
  }

  async images(hint?: string): Promise<StoredImage[]> {
    return ((await this.call('GET', '/v1/images', hint ? { hint } : {})) as { items: StoredImage[] }).items;
  }

  async removeImage(refOrDigest: string, hint?: string): Promise<StoredImage> {
    return ((await this.call('DELETE', `/v1/images/${enc(refOrDigest)}`, hint ? { hint } : {})) as { image: StoredImage }).image;
  }

  async host(): Promise<HostStatus> {
    return (await this.call('GET', '/v1/host')) as HostStatus;
  }

  /** Usage of the Guests with a running domain (in `namespace` when given). */
  async usage(namespace?: string): Promise<GuestUsage[]> {
    const body = await this.call('GET', `/v1/usage${namespace === undefined ? '' : `?namespace=${enc(namespace)}`}`);
    return (body as { items: GuestUsage[] }).items;
  }

  /** One Guest's usage: an AgentError with status 404 (no such Guest) or 409 (no running domain) otherwise. */
  async guestUsage(namespace: string, name: string): Promise<GuestUsage> {
    return (await this.call('GET', `${guestPath(namespace, name)}/usage`)) as GuestUsage;
  }

  /** A request whose answer is one JSON document. */
  private async call(method: string, path: string, opts: CallOptions = {}): Promise<unknown> {
    const res = await this.open(method, path, opts);
    const text = await readText(res);
    try {
      return text ? JSON.parse(text) : {};
    } catch {
      throw new AgentError(`node agent answered ${res.statusCode} with a body that is not JSON`, res.statusCode);
    }
  }

  /** Sends a request; resolves with a 2xx response to read, rejects with an AgentError otherwise. */
  private open(method: string, path: string, opts: CallOptions = {}): Promise<IncomingMessage> {
    const data = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    return new Promise((resolve, reject) => {
      let req: ClientRequest;
      try {
        req = request(
          {
            socketPath: this.socketPath,
            agent: false, // see call()
            method,
            path,
            headers: {
              'content-type': opts.stream?.contentType ?? 'application/json',
              ...(data ? { 'content-length': data.length } : {}),
              // An upload waits for the agent's go-ahead: a refusal then comes before any of it is sent.
              ...(opts.stream ? { expect: '100-continue' } : {}),
            },
            ...(timeoutMs ? { timeout: timeoutMs } : {}),
            ...(opts.signal ? { signal: opts.signal } : {}),
          },
          (res) => {
            if (res.statusCode && res.statusCode >= 200 && res.statusCode < 300) return resolve(res);
            // A refusal may come before the whole body went: the rest is not sent.
            const stop = () => {
              opts.stream?.data.unpipe(req);
              opts.stream?.data.destroy();
              req.destroy();
            };
            readError(res).then(reject, reject).finally(stop);
          },
        );
      } catch (e) {
        return reject(e as Error);
      }
      req.on('timeout', () => req.destroy(new AgentError(`node agent at ${this.socketPath} did not answer within ${timeoutMs / 1000}s`)));
      req.on('error', (err: NodeJS.ErrnoException) => reject(this.unreachable(err, opts.hint)));
      if (!opts.stream) return req.end(data);
      opts.stream.data.on('error', (err) => req.destroy(new AgentError((err as Error).message)));
      const upload = opts.stream.data;
      req.once('continue', () => upload.pipe(req));
    });
  }

  private unreachable(err: NodeJS.ErrnoException, hint = ''): Error {
    if (err instanceof AgentError || err.name === 'AbortError') return err;
    return new AgentError(unreachableMessage(this.socketPath, err, hint));
  }
}

/**
 * Why the agent's socket could not be reached and what to do: which socket was tried, how to choose
 * another, how to start the agent (or, for a socket that refuses this user, who may use it).
 */
export function unreachableMessage(socketPath: string, err: NodeJS.ErrnoException, hint = ''): string {
  const head = `cannot reach the node agent at ${socketPath}`;
  if (err.code === 'EACCES' || err.code === 'EPERM')
    return `${head}: permission denied: the socket is for root and the krata group (run as root, or join the group)`;
  const why =
    err.code === 'ENOENT'
      ? `is krata-node-agent running?${hint}`
      : err.code === 'ECONNREFUSED'
        ? `nothing listens there; is krata-node-agent running?${hint}`
        : err.message;
  return (
    `${head}: ${why}\n` +
    `  another socket: --agent SOCKET or KRATA_AGENT_SOCKET=SOCKET\n` +
    `  start the agent as root in dom0: krata-node-agent (its options: krata-node-agent --help)`
  );
}

function guestPath(namespace: string, name: string): string {
  return `/v1/namespaces/${enc(namespace)}/guests/${enc(name)}`;
}

async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The progress events of a pull or import (to `onEvent`), then its image or its error. */
async function imageResult(res: IncomingMessage, onEvent: (e: PullEvent) => void, what: string): Promise<StoredImage> {
  for await (const line of ndjson<PullEvent | { image: StoredImage } | { error: string }>(res)) {
    if ('image' in line) return line.image;
    if ('error' in line) throw new AgentError(line.error);
    onEvent(line);
  }
  throw new AgentError(`the node agent ended the ${what} without a result`);
}

/** A non-2xx answer as an AgentError with the agent's message and field errors. */
async function readError(res: IncomingMessage): Promise<never> {
  const text = await readText(res);
  let json: { message?: string; errors?: { index?: number; path?: string; message: string }[] };
  try {
    json = text ? (JSON.parse(text) as typeof json) : {};
  } catch {
    throw new AgentError(`node agent answered ${res.statusCode} with a body that is not JSON`, res.statusCode);
  }
  throw new AgentError(json.message ?? `node agent answered ${res.statusCode}`, res.statusCode, json.errors ?? []);
}

/** The JSON values of an NDJSON stream; the response is closed when the consumer stops early. */
async function* ndjson<T>(res: IncomingMessage, signal?: AbortSignal): AsyncGenerator<T> {
  const decoder = new StringDecoder('utf8'); // a character may straddle two chunks
  let rest = '';
  try {
    for await (const chunk of res) {
      rest += decoder.write(chunk as Buffer);
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (line.trim()) yield JSON.parse(line) as T;
      }
      if (rest.length > MAX_LINE) throw new AgentError('the node agent sent a line longer than 64 MiB');
    }
  } catch (e) {
    if (signal?.aborted) return;
    if (e instanceof AgentError) throw e;
    throw new AgentError(`the stream from the node agent broke: ${(e as Error).message}`);
  } finally {
    res.destroy();
  }
}

function guestSetPath(namespace: string, name: string): string {
  return `/v1/namespaces/${enc(namespace)}/guestsets/${enc(name)}`;
}

function applySetPath(namespace: string, name: string): string {
  return `/v1/namespaces/${enc(namespace)}/applysets/${enc(name)}`;
}
