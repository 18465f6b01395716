// The cluster as kubectl reaches it: kubeconfig (--kubeconfig, else $KUBECONFIG's files, else ~/.kube/config),
// the context (--context, else the current one), its namespace (-n, else the context's, else "default"), and
// every credential kubectl accepts (tokens, client certificates, exec plugins, OIDC) through client-node's
// applyToHTTPSOptions. Plain requests go through node:https, streams through `ws` websockets.
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { delimiter } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import WebSocket from 'ws';
import { GuestAPIVersion } from '../crds/generated/types.js';
import { SUBRESOURCE_GROUP_VERSION, subresourcePath, type GuestSubresource } from '../contracts/krata-api/subresources.js';
import { MAX_ERROR_BODY, ServerError } from './server-error.js';
import { CommandError, UsageError } from './io.js';

export const KUBE_OPTIONS = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
} as const;

export const KUBE_HELP = `  -n, --namespace NS    the Guest's namespace (default: the context's, else "default")
      --context NAME    the kubeconfig context to use (default: its current context)
      --kubeconfig FILE the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)`;

export interface KubeFlags {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
}

const [GROUP, VERSION] = GuestAPIVersion.split('/') as [string, string];
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** A Guest as the list and get of krata.dev/v1alpha1 give it (the fields kubectl-krata reads). */
export interface GuestObject {
  metadata: { name: string; namespace?: string };
  status?: { phase?: string };
}

/** The kubeconfig kubectl would read. */
export function loadKubeConfig(flags: KubeFlags, env: NodeJS.ProcessEnv): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (flags.kubeconfig !== undefined) kc.loadFromFile(flags.kubeconfig);
    else if (env.KUBECONFIG) {
      // kubectl's merge: missing files are skipped, the first file that names a current context wins.
      const files = env.KUBECONFIG.split(delimiter).filter((f) => f && existsSync(f));
      if (files.length === 0) throw new CommandError(`no kubeconfig file found in KUBECONFIG (${env.KUBECONFIG})`);
      kc.loadFromFile(files[0]!);
      for (const f of files.slice(1)) {
        const more = new KubeConfig();
        more.loadFromFile(f);
        kc.mergeConfig(more, kc.currentContext !== '' && kc.currentContext !== undefined);
      }
    } else kc.loadFromDefault();
  } catch (e) {
    if (e instanceof CommandError) throw e;
    throw new CommandError(`cannot read the kubeconfig: ${(e as Error).message}`);
  }
  if (flags.context !== undefined) {
    if (!kc.getContextObject(flags.context)) throw new CommandError(`context "${flags.context}" does not exist`);
    kc.setCurrentContext(flags.context);
  }
  return kc;
}

export class Kube {
  readonly namespace: string;
  private readonly server: URL;

  constructor(
    readonly config: KubeConfig,
    namespaceFlag: string | undefined,
  ) {
    const cluster = config.getCurrentCluster();
    if (!cluster)
      throw new CommandError('the kubeconfig has no cluster for its current context (pass --context, or kubectl config use-context)');
    this.server = new URL(cluster.server);
    const ns = namespaceFlag ?? config.getContextObject(config.getCurrentContext())?.namespace ?? 'default';
    if (!DNS_LABEL.test(ns)) throw new UsageError(`"${ns}" is not a valid namespace name (a DNS label)`);
    this.namespace = ns;
  }

  static connect(flags: KubeFlags, env: NodeJS.ProcessEnv): Kube {
    return new Kube(loadKubeConfig(flags, env), flags.namespace);
  }

  /** The server's URL for an API path (the server's own path, as with a proxy's prefix, kept). */
  url(path: string, query = '', scheme?: 'ws'): URL {
    const u = new URL(this.server.href);
    u.pathname = this.server.pathname.replace(/\/+$/, '') + path;
    u.search = query;
    if (scheme) u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u;
  }

  /** GET a path; resolves with the response once it is 2xx, rejects with a ServerError otherwise. */
  async get(path: string, query = '', signal?: AbortSignal): Promise<IncomingMessage> {
    const opts: https.RequestOptions = { method: 'GET', headers: {} };
    await this.config.applyToHTTPSOptions(opts);
    const url = this.url(path, query);
    const client = url.protocol === 'http:' ? http : https;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = client.request(url, { ...opts, ...(signal ? { signal } : {}) }, resolve);
      req.on('error', (e) => reject(signal?.aborted ? e : this.unreachable(e)));
      req.end();
    });
    if (res.statusCode! >= 200 && res.statusCode! < 300) return res;
    throw await this.refusal(path, res.statusCode!, await readBounded(res));
  }

  async getJson<T>(path: string, query = ''): Promise<T> {
    const res = await this.get(path, query);
    const text = await readBounded(res, 16 * 1024 * 1024);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CommandError(`the server answered ${path} with something that is not JSON: ${text.slice(0, 200)}`);
    }
  }

  /** A websocket to a Guest's subresource, open; a refused upgrade rejects with the server's error. */
  async websocket(name: string, sub: GuestSubresource, protocol: string, query = ''): Promise<WebSocket> {
    const path = subresourcePath(this.namespace, name, sub);
    const opts: WebSocket.ClientOptions & https.RequestOptions = { headers: {} };
    await this.config.applyToHTTPSOptions(opts);
    const ws = new WebSocket(this.url(path, query, 'ws'), [protocol], { ...opts, perMessageDeflate: false });
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('unexpected-response', (req, res) => {
          readBounded(res).then(
            (body) => {
              req.destroy();
              this.refusal(path, res.statusCode ?? 0, body).then(reject, reject);
            },
            (e: Error) => reject(this.unreachable(e)),
          );
        });
        ws.once('error', (e) => reject(this.unreachable(e)));
      });
    } catch (e) {
      ws.terminate();
      throw e;
    }
    ws.on('error', () => {}); // later errors end the stream, which each command reports
    return ws;
  }

  /** The namespace's Guests (krata.dev). */
  async listGuests(): Promise<GuestObject[]> {
    const api = this.config.makeApiClient(CustomObjectsApi);
    try {
      const list = (await api.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural: 'guests',
      })) as {
        items?: GuestObject[];
      };
      return list.items ?? [];
    } catch (e) {
      throw this.apiException(e);
    }
  }

  async getGuest(name: string): Promise<GuestObject> {
    const api = this.config.makeApiClient(CustomObjectsApi);
    try {
      return (await api.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural: 'guests',
        name,
      })) as GuestObject;
    } catch (e) {
      throw this.apiException(e);
    }
  }

  /** client-node's ApiException as a ServerError; a network failure as the server being unreachable. */
  private apiException(e: unknown): Error {
    const x = e as { code?: unknown; body?: unknown };
    if (typeof x.code === 'number') return new ServerError(x.code, typeof x.body === 'string' ? x.body : JSON.stringify(x.body ?? ''));
    return this.unreachable(e as Error);
  }

  /**
   * The error for a non-2xx answer. A 404 under krata's group may mean the cluster does not serve it at all
   * (no APIService): discovery of the group-version tells, and then the message says how to install it.
   */
  private async refusal(path: string, code: number, body: string): Promise<Error> {
    const err = new ServerError(code, body);
    const group = `/apis/${SUBRESOURCE_GROUP_VERSION}`;
    if (code !== 404 || !path.startsWith(group + '/')) return err;
    try {
      (await this.get(group)).resume();
      return err;
    } catch (e) {
      if (e instanceof ServerError && e.code === 404)
        return new CommandError(
          `krata-api is not installed: the cluster does not serve ${SUBRESOURCE_GROUP_VERSION} (kubectl get apiservice); ` +
            'install it with kubectl apply -k manifests/',
        );
      return err;
    }
  }

  private unreachable(e: Error): Error {
    return new CommandError(`Unable to connect to the server: ${e.message}`);
  }
}

/**
 * Follows how a websocket closes: the getter gives "websocket closed with CODE: REASON" once it closed other
 * than normally (krata-api says there why a stream ended: the agent unreachable, nothing on a port), else undefined.
 */
export function closeWatch(ws: WebSocket): () => string | undefined {
  let why: string | undefined;
  ws.on('close', (code: number, reason: Buffer) => {
    if (code !== 1000 && code !== 1005)
      why = `websocket closed with ${code}${reason.length ? `: ${reason.toString('utf8').slice(0, 200)}` : ''}`;
  });
  return () => why;
}

/** A response body, at most `max` bytes of it (the rest is dropped). */
export async function readBounded(res: IncomingMessage, max = MAX_ERROR_BODY): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    if (size < max) chunks.push(c.subarray(0, max - size));
    size += c.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}
