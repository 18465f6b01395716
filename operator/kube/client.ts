// The operator's Kubernetes client: typed calls for Guests, XenHosts, Events and Leases over one HTTP
// path. client-node's generated APIs build a new https.Agent (so a new TLS connection) for every call
// and cannot stream a watch we can abort, so requests go through node:http(s) with one keep-alive agent;
// KubeConfig still does authentication and TLS (applyToHTTPSOptions, which also refreshes tokens).
import http from 'node:http';
import https from 'node:https';
import { hostname } from 'node:os';
import { KubeConfig, PatchStrategy } from '@kubernetes/client-node';
import type { Guest, GuestSet, GuestSetStatus, GuestStatus, XenHost, XenHostStatus } from '../../crds/generated/types.js';
import { Semaphore } from '../../lib/semaphore.js';
import { metaTime, type ObjectMeta } from '../../crds/meta.js';

export const FIELD_MANAGER = 'krata-operator';
const API = '/apis/krata.dev/v1alpha1';
const EVENT_WINDOW_MS = 10 * 60_000;
const EVENT_CACHE_SIZE = 10_000;

export type Kind = 'guests' | 'xenhosts' | 'guestsets' | 'services';
export type KindObject<K extends Kind> = K extends 'guests'
  ? Guest
  : K extends 'guestsets'
    ? GuestSet
    : K extends 'xenhosts'
      ? XenHost
      : Service;

/** A core/v1 Service, as far as the operator reads it (service-endpoints.ts). */
export interface Service {
  metadata: ObjectMeta;
  spec?: {
    selector?: Record<string, string>;
    ports?: { name?: string; protocol?: 'TCP' | 'UDP' | 'SCTP'; port: number; targetPort?: number | string }[];
  };
}

export class KubeError extends Error {
  constructor(
    /** HTTP status code; 0 for transport errors (refused, reset, timeout). */
    readonly status: number,
    message: string,
    /** The Status reason (Conflict, NotFound, Expired, ...), when the server sent one. */
    readonly reason?: string,
  ) {
    super(message);
    this.name = 'KubeError';
  }
}

export const isConflict = (e: unknown): boolean => e instanceof KubeError && e.status === 409;
export const isNotFound = (e: unknown): boolean => e instanceof KubeError && e.status === 404;

export interface ListPage<T> {
  items: T[];
  resourceVersion: string;
  continue?: string;
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
  object: T;
}

export interface WatchHandle {
  /** Resolves when the server ends the watch or abort() is called; rejects on errors, ERROR events included. */
  done: Promise<void>;
  abort(): void;
}

export interface EventRef {
  kind: string;
  apiVersion: string;
  namespace?: string;
  name: string;
  uid: string;
  resourceVersion?: string;
}

export interface KubeEvent {
  involved: EventRef;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  /** The Event's namespace: the object's, or 'default' for cluster-scoped objects. */
  namespace: string;
}

export interface KubeClientOptions {
  /** Requests in flight at once; more wait in a queue. Watches do not count. */
  maxInFlight?: number;
  /** Deadline of a non-watch request. */
  timeoutMs?: number;
  /** Events' reportingInstance (the pod name in a cluster). */
  instance?: string;
  /** Where failures of createEvent go, since it never throws. */
  onError?: (msg: string, err: unknown) => void;
}

interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
}

interface EventRecord {
  name?: string;
  namespace?: string;
  count: number;
  last: number;
  chain: Promise<void>;
}

const seg = encodeURIComponent;

export class KubeClient {
  /** Non-GET requests sent (POST, PUT, PATCH, DELETE), failed ones included. */
  writes = 0;
  /** Failed requests by HTTP status; 0 counts transport errors. */
  readonly errors: Record<number, number> = {};

  private readonly server: URL;
  private readonly agent: http.Agent;
  private readonly limiter: Semaphore;
  private readonly timeoutMs: number;
  private readonly instance: string;
  private readonly onError?: (msg: string, err: unknown) => void;
  private readonly events = new Map<string, EventRecord>();
  private eventSeq = 0;

  /** A kubeconfig file if given, else the in-cluster service account, else the default loading rules. */
  static fromKubeconfig(path?: string, opts?: KubeClientOptions): KubeClient {
    const kc = new KubeConfig();
    if (path) kc.loadFromFile(path);
    else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
    return new KubeClient(kc, opts);
  }

  constructor(
    readonly kc: KubeConfig,
    opts: KubeClientOptions = {},
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
    // TLS settings travel per request and are part of the agent's pool key, so one agent serves all.
    this.agent = this.server.protocol === 'http:' ? new http.Agent({ keepAlive: true }) : new https.Agent({ keepAlive: true });
    this.limiter = new Semaphore(opts.maxInFlight ?? 32);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.instance = opts.instance ?? hostname();
    this.onError = opts.onError;
  }

  /** Closes idle keep-alive connections (tests, shutdown). */
  close(): void {
    this.agent.destroy();
  }

  /** One API request: JSON in and out, a KubeError for any non-2xx answer. */
  request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    if (method !== 'GET') this.writes++;
    return this.limiter.run(async () => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const req = await this.open(
          method,
          path,
          opts.query,
          opts.contentType ?? (opts.body === undefined ? undefined : 'application/json'),
        );
        timer = setTimeout(() => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
        const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
          req.once('response', resolve).once('error', reject);
          req.end(opts.body === undefined ? undefined : JSON.stringify(opts.body));
        });
        const chunks: Buffer[] = [];
        for await (const c of res) chunks.push(c as Buffer);
        const text = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) throw this.statusError(status, text, `${method} ${path}`);
        return (text ? JSON.parse(text) : undefined) as T;
      } catch (e) {
        throw this.count(e instanceof KubeError ? e : new KubeError(0, `${method} ${path}: ${(e as Error).message}`));
      } finally {
        clearTimeout(timer);
      }
    });
  }

  /** Streams a watch of all objects of a kind; no deadline here: the informer's watchdog covers silence. */
  watch<K extends Kind>(
    kind: K,
    params: { resourceVersion?: string; timeoutSeconds?: number; allowWatchBookmarks?: boolean },
    onEvent: (e: WatchEvent<KindObject<K>>) => void,
  ): WatchHandle {
    let req: http.ClientRequest | undefined;
    let aborted = false;
    const done = (async () => {
      req = await this.open('GET', collectionPath(kind), { ...params, watch: true });
      if (aborted) return void req.destroy();
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => req!.once('response', resolve).once('error', reject).end());
      if (res.statusCode !== 200) {
        let text = '';
        for await (const c of res) text += c;
        throw this.count(this.statusError(res.statusCode ?? 0, text, `watch ${kind}`));
      }
      res.setEncoding('utf8');
      let buf = '';
      for await (const chunk of res) {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line.trim()) continue;
          const ev = JSON.parse(line) as { type: string; object: { code?: number; message?: string; reason?: string } };
          if (ev.type === 'ERROR')
            throw this.count(new KubeError(ev.object.code ?? 500, `watch ${kind}: ${ev.object.message}`, ev.object.reason));
          onEvent(ev as unknown as WatchEvent<KindObject<K>>);
        }
      }
    })().then(
      () => void req?.destroy(),
      (e: unknown) => {
        req?.destroy();
        if (aborted) return;
        throw e instanceof KubeError ? e : this.count(new KubeError(0, `watch ${kind}: ${(e as Error).message}`));
      },
    );
    return {
      done,
      abort: () => {
        aborted = true;
        req?.destroy();
      },
    };
  }

  list<K extends Kind>(kind: K, opts: { limit?: number; continue?: string } = {}): Promise<ListPage<KindObject<K>>> {
    return this.request<{ items: KindObject<K>[]; metadata: { resourceVersion: string; continue?: string } }>('GET', collectionPath(kind), {
      query: { limit: opts.limit, continue: opts.continue },
    }).then((l) => ({ items: l.items, resourceVersion: l.metadata.resourceVersion, continue: l.metadata.continue || undefined }));
  }

  listGuests(opts?: { limit?: number; continue?: string }): Promise<ListPage<Guest>> {
    return this.list('guests', opts);
  }

  listXenHosts(opts?: { limit?: number; continue?: string }): Promise<ListPage<XenHost>> {
    return this.list('xenhosts', opts);
  }

  getGuest(namespace: string, name: string): Promise<Guest> {
    return this.request('GET', guestPath(namespace, name));
  }

  /** A Secret a Guest names in imagePullSecrets (`get secrets` where a namespace granted it: manifests/base/rbac.yaml). */
  getSecret(namespace: string, name: string): Promise<{ type?: string; data?: Record<string, string> }> {
    return this.request('GET', `/api/v1/namespaces/${seg(namespace)}/secrets/${seg(name)}`);
  }

  getGuestSet(namespace: string, name: string): Promise<GuestSet> {
    return this.request('GET', `${API}/namespaces/${seg(namespace)}/guestsets/${seg(name)}`);
  }

  /** The Guests of a namespace that carry `labelSelector` (one page of at most 500). */
  listGuestsIn(namespace: string, labelSelector: string): Promise<Guest[]> {
    return this.request<{ items: Guest[] }>('GET', `${API}/namespaces/${seg(namespace)}/guests`, {
      query: { labelSelector, limit: 500 },
    }).then((l) => l.items);
  }

  /** Server-side applies a GuestSet's whole status (field manager krata-operator). */
  applyGuestSetStatus(namespace: string, name: string, status: GuestSetStatus): Promise<GuestSet> {
    const path = `${API}/namespaces/${seg(namespace)}/guestsets/${seg(name)}/status`;
    return this.apply(path, { apiVersion: 'krata.dev/v1alpha1', kind: 'GuestSet', metadata: { name, namespace }, status });
  }

  getXenHost(name: string): Promise<XenHost> {
    return this.request('GET', xenHostPath(name));
  }

  createGuest(guest: Guest): Promise<Guest> {
    return this.request('POST', `${API}/namespaces/${seg(guest.metadata.namespace ?? 'default')}/guests`, { body: guest });
  }

  deleteGuest(namespace: string, name: string): Promise<void> {
    return this.request<unknown>('DELETE', guestPath(namespace, name)).then(() => undefined);
  }

  /** Registers a host; an existing XenHost of that name is returned as it is. */
  async createXenHost(name: string, labels?: Record<string, string>): Promise<XenHost> {
    const body = { apiVersion: 'krata.dev/v1alpha1', kind: 'XenHost', metadata: { name, labels }, spec: {} };
    try {
      return await this.request<XenHost>('POST', `${API}/xenhosts`, { body });
    } catch (e) {
      if (isConflict(e)) return this.getXenHost(name);
      throw e;
    }
  }

  /**
   * Server-side applies the whole status as field manager krata-operator (force: the operator owns
   * status). With `uid` the write must hit that incarnation of the Guest: a 1.20 apiserver ignores
   * metadata.uid in a patch of a custom resource's status subresource (the status strategy copies the old
   * metadata over it), so then a JSON patch whose `test` op makes the precondition atomic replaces the
   * status instead; a mismatch throws a KubeError 409, as a failed UID precondition on DELETE does.
   */
  async applyGuestStatus(
    namespace: string,
    name: string,
    status: GuestStatus,
    opts: { uid?: string; resourceVersion?: string } = {},
  ): Promise<Guest> {
    const path = `${guestPath(namespace, name)}/status`;
    if (!opts.uid) return this.apply(path, { apiVersion: 'krata.dev/v1alpha1', kind: 'Guest', metadata: { name, namespace }, status });
    // With `resourceVersion` too, the write must hit that version (a placement made from a stale cache fails).
    const patch = [
      { op: 'test', path: '/metadata/uid', value: opts.uid },
      ...(opts.resourceVersion ? [{ op: 'test', path: '/metadata/resourceVersion', value: opts.resourceVersion }] : []),
      { op: 'add', path: '/status', value: status },
    ];
    try {
      return await this.request<Guest>('PATCH', path, {
        body: patch,
        contentType: PatchStrategy.JsonPatch,
        query: { fieldManager: FIELD_MANAGER },
      });
    } catch (e) {
      // `add /status` cannot fail, so the generic 422 of a failed patch can only be a test.
      if (e instanceof KubeError && e.status === 422 && e.message.includes('rejected our request')) {
        throw new KubeError(
          409,
          `Precondition failed: UID ${opts.uid}${opts.resourceVersion ? ` or resourceVersion ${opts.resourceVersion}` : ''} ` +
            `(Guest ${namespace}/${name})`,
          'Conflict',
        );
      }
      throw e;
    }
  }

  applyXenHostStatus(name: string, status: XenHostStatus): Promise<XenHost> {
    return this.apply(`${xenHostPath(name)}/status`, { apiVersion: 'krata.dev/v1alpha1', kind: 'XenHost', metadata: { name }, status });
  }

  /** Pins (or, with null, unpins) a XenHost's status.agentKey with a merge patch, leaving the rest of its status. */
  setXenHostAgentKey(name: string, agentKey: string | null): Promise<XenHost> {
    return this.request('PATCH', `${xenHostPath(name)}/status`, {
      body: { status: { agentKey } },
      contentType: PatchStrategy.MergePatch,
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  /** Replaces metadata.finalizers; fails with 409 if the Guest changed since `resourceVersion`. */
  setGuestFinalizers(namespace: string, name: string, finalizers: string[], resourceVersion: string): Promise<Guest> {
    return this.request('PATCH', guestPath(namespace, name), {
      body: { metadata: { finalizers, resourceVersion } },
      contentType: PatchStrategy.MergePatch,
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  /** Finalizers and/or annotations in one merge patch, refused (409) if the object changed since `resourceVersion`. */
  patchGuestMetadata(
    namespace: string,
    name: string,
    meta: { finalizers?: string[]; annotations?: Record<string, string | null> },
    resourceVersion: string,
  ): Promise<Guest> {
    return this.request('PATCH', guestPath(namespace, name), {
      body: { metadata: { ...meta, resourceVersion } },
      contentType: PatchStrategy.MergePatch,
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  /**
   * Records an Event like client-go's EventRecorder: an identical event (same object uid, type, reason,
   * message) within 10 minutes of the last one bumps count and lastTimestamp of the Event written
   * before. Never rejects; failures go to onError.
   */
  createEvent(ev: KubeEvent): Promise<void> {
    const key = `${ev.involved.uid}\0${ev.type}\0${ev.reason}\0${ev.message}`;
    let rec = this.events.get(key);
    if (rec)
      this.events.delete(key); // re-inserted below: Map order is the LRU order
    else rec = { count: 0, last: 0, chain: Promise.resolve() };
    this.events.set(key, rec);
    if (this.events.size > EVENT_CACHE_SIZE) this.events.delete(this.events.keys().next().value!);
    // Chained per key so a burst of identical events makes one Event, not a race of creates.
    const r = rec;
    r.chain = r.chain
      .then(() => this.recordEvent(r, ev))
      .catch((e) => this.onError?.(`event ${ev.reason} for ${ev.involved.kind} ${ev.involved.name}`, e));
    return r.chain;
  }

  private async recordEvent(rec: EventRecord, ev: KubeEvent): Promise<void> {
    const now = Date.now();
    if (rec.name && now - rec.last < EVENT_WINDOW_MS) {
      try {
        await this.request('PATCH', `/api/v1/namespaces/${seg(rec.namespace!)}/events/${seg(rec.name)}`, {
          body: { count: rec.count + 1, lastTimestamp: metaTime(now) },
          contentType: PatchStrategy.MergePatch,
        });
        rec.count++;
        rec.last = now;
        return;
      } catch (e) {
        if (!isNotFound(e)) throw e; // expired (event TTL) or deleted: start a new Event
      }
    }
    const name = `${ev.involved.name}.${(BigInt(now) * 1_000_000n + BigInt(this.eventSeq++ % 1_000_000)).toString(16)}`;
    const ts = metaTime(now);
    await this.request('POST', `/api/v1/namespaces/${seg(ev.namespace)}/events`, {
      body: {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace: ev.namespace },
        involvedObject: ev.involved,
        type: ev.type,
        reason: ev.reason,
        message: ev.message,
        source: { component: FIELD_MANAGER },
        reportingComponent: 'krata.dev/operator',
        reportingInstance: this.instance,
        count: 1,
        firstTimestamp: ts,
        lastTimestamp: ts,
      },
    });
    Object.assign(rec, { name, namespace: ev.namespace, count: 1, last: now });
  }

  private apply<T>(path: string, body: unknown): Promise<T> {
    return this.request('PATCH', path, {
      body,
      contentType: PatchStrategy.ServerSideApply,
      query: { fieldManager: FIELD_MANAGER, force: true },
    });
  }

  private async open(method: string, path: string, query: RequestOptions['query'], contentType?: string): Promise<http.ClientRequest> {
    const url = new URL(this.server.pathname.replace(/\/$/, '') + path, this.server);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const opts: https.RequestOptions = {
      method,
      headers: { accept: 'application/json', ...(contentType ? { 'content-type': contentType } : {}) },
    };
    await this.kc.applyToHTTPSOptions(opts);
    // applyToHTTPSOptions makes a fresh agent each call; keep it only when it carries a proxy.
    if (!this.kc.getCurrentCluster()?.proxyUrl) opts.agent = this.agent;
    return (url.protocol === 'http:' ? http : https).request(url, opts);
  }

  private statusError(status: number, text: string, what: string): KubeError {
    try {
      const s = JSON.parse(text) as { message?: string; reason?: string };
      return new KubeError(status, `${what}: ${s.message ?? text}`, s.reason);
    } catch {
      return new KubeError(status, `${what}: HTTP ${status} ${text.slice(0, 200)}`);
    }
  }

  private count(e: KubeError): KubeError {
    this.errors[e.status] = (this.errors[e.status] ?? 0) + 1;
    return e;
  }
}

function collectionPath(kind: Kind): string {
  return kind === 'services' ? '/api/v1/services' : `${API}/${kind}`;
}

const guestPath = (namespace: string, name: string) => `${API}/namespaces/${seg(namespace)}/guests/${seg(name)}`;
const xenHostPath = (name: string) => `${API}/xenhosts/${seg(name)}`;
