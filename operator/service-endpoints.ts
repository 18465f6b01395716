// A GuestSet reachable as a Kubernetes Service: for a Service without a selector annotated
// krata.dev/guestset: SET (in the set's namespace), the operator keeps EndpointSlices whose endpoints are
// the hosts running at least one Ready Guest of SET, and whose ports are the set's host ports (on each
// host kratanet balances that port over its local ready replicas). Only the Service's own namespace is
// searched, so a tenant's Service cannot reach another tenant's set. A host's address is its Node's
// (XenHosts are named after the Nodes that vouch for them, host-tracker.ts). Slices of a Service that
// goes, or loses the annotation, are deleted (the ownerReference lets a garbage collector do it too).
import { SET_LABEL } from '../workloads/guestset/controller.js';
import type { Guest, XenHost } from '../crds/generated/types.js';
import type { OwnerReference } from '../crds/meta.js';
import { systemClock } from '../lib/clock.js';
import { WorkQueue, type HandlerResult } from '../lib/work-queue.js';
import { FIELD_MANAGER, isNotFound, type KubeClient, type Service } from './kube/client.js';
import { Informer, keyOf } from './kube/informer.js';

/** The Service annotation naming the set it routes to. */
export const SERVICE_ANNOTATION = SET_LABEL;
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
/** Label values may not hold a '/': the domain style of Kubernetes' own endpointslice-controller.k8s.io. */
export const MANAGED_BY = 'operator.krata.dev';
/** An EndpointSlice holds at most this many endpoints (the API's limit). */
const MAX_ENDPOINTS = 1000;
/** Services are looked at again this often (Node addresses change without an event we watch). */
const RESYNC_MS = 60_000;
const NODE_CACHE_MS = 60_000;

export interface EndpointSlice {
  apiVersion: string;
  kind: 'EndpointSlice';
  metadata: { name: string; namespace: string; labels: Record<string, string>; ownerReferences: OwnerReference[] };
  addressType: 'IPv4' | 'IPv6';
  endpoints: { addresses: string[]; conditions: { ready: boolean }; nodeName?: string }[];
  ports: { name: string; protocol: string; port: number }[];
}

const isReady = (g: Guest) =>
  !g.metadata.deletionTimestamp && g.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

/** Whether `g` is a replica of the set `set` (its label and its controller ownerReference). */
function inSet(g: Guest, set: string): boolean {
  return (
    g.metadata.labels?.[SET_LABEL] === set &&
    g.metadata.ownerReferences?.some((o) => o.controller === true && o.kind === 'GuestSet' && o.name === set) === true
  );
}

/**
 * The EndpointSlices `svc` should have (none when it is not annotated or has a selector): one per address
 * family that has addresses. `guests` are the Guests of the Service's namespace; `addressesOf` gives a
 * host's addresses. `v1` selects discovery.k8s.io/v1 (else v1beta1, for 1.20 apiservers).
 */
export function desiredSlices(
  svc: Service,
  guests: readonly Guest[],
  addressesOf: (host: string) => readonly string[],
  v1 = true,
): EndpointSlice[] {
  const set = svc.metadata.annotations?.[SERVICE_ANNOTATION];
  if (!set || svc.spec?.selector || !svc.metadata.uid) return [];
  const ns = svc.metadata.namespace ?? 'default';
  const ready = guests
    .filter((g) => (g.metadata.namespace ?? 'default') === ns && inSet(g, set) && isReady(g) && g.status?.node)
    .sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
  const hosts = [...new Set(ready.map((g) => g.status!.node!))].sort();
  const ports: EndpointSlice['ports'] = [];
  for (const sp of svc.spec?.ports ?? []) {
    const protocol = sp.protocol ?? 'TCP';
    const target = sp.targetPort ?? sp.port;
    // The first ready replica (by key) that has the port says which host port it is.
    for (const g of ready) {
      const gp = (g.spec.network?.ports ?? []).find(
        (p) => (p.protocol ?? 'TCP') === protocol && (typeof target === 'number' ? p.containerPort === target : p.name === target),
      );
      if (!gp) continue;
      ports.push({ name: sp.name ?? '', protocol, port: gp.hostPort ?? gp.containerPort });
      break;
    }
  }
  const slices: EndpointSlice[] = [];
  for (const family of ['IPv4', 'IPv6'] as const) {
    const endpoints: EndpointSlice['endpoints'] = [];
    for (const host of hosts) {
      const address = addressesOf(host).find((a) => a.includes(':') === (family === 'IPv6'));
      if (address && endpoints.length < MAX_ENDPOINTS)
        endpoints.push({ addresses: [address], conditions: { ready: true }, ...(v1 ? { nodeName: host } : {}) });
    }
    if (endpoints.length === 0) continue;
    slices.push({
      apiVersion: v1 ? 'discovery.k8s.io/v1' : 'discovery.k8s.io/v1beta1',
      kind: 'EndpointSlice',
      metadata: {
        name: `${svc.metadata.name}-krata-${family.toLowerCase()}`,
        namespace: ns,
        labels: { [SERVICE_NAME_LABEL]: svc.metadata.name, [MANAGED_BY_LABEL]: MANAGED_BY },
        ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: svc.metadata.name, uid: svc.metadata.uid, controller: true }],
      },
      addressType: family,
      endpoints,
      ports,
    });
  }
  return slices;
}

/** The part of a slice desiredSlices decides (as the server echoes it), to tell whether one is already right. */
const essence = (s: EndpointSlice) =>
  JSON.stringify([
    s.addressType,
    (s.endpoints ?? []).map((e) => [e.addresses, e.conditions?.ready === true, e.nodeName ?? '']),
    (s.ports ?? []).map((p) => [p.name ?? '', p.protocol ?? 'TCP', p.port]),
    s.metadata.labels,
    s.metadata.ownerReferences?.map((o) => o.uid),
  ]);

export interface ServiceEndpointsOptions {
  log: (msg: string, err?: unknown) => void;
  workers?: number;
}

/** Keeps the EndpointSlices of annotated Services (the leader runs it). */
export class ServiceEndpoints {
  readonly services: Informer<Service>;
  readonly queue: WorkQueue;
  private group?: string;
  private running = false;
  private readonly nodes = new Map<string, { addresses: string[]; at: number }>();

  constructor(
    private readonly kube: KubeClient,
    private readonly guests: Informer<Guest>,
    private readonly hosts: Informer<XenHost>,
    private readonly opts: ServiceEndpointsOptions,
  ) {
    this.services = new Informer<Service>(kube, 'services', { log: opts.log });
    this.queue = new WorkQueue(
      (key) => this.reconcile(key),
      { concurrency: opts.workers ?? 2, clock: systemClock, baseDelayMs: 200, maxDelayMs: 60_000 },
      (key, err, retry) => opts.log(`endpoint slices of Service ${key} failed; retrying in ${retry} ms`, err),
    );
    const onService = (s: Service, old?: Service) => {
      if (s.metadata.annotations?.[SERVICE_ANNOTATION] || old?.metadata.annotations?.[SERVICE_ANNOTATION]) this.enqueue(keyOf(s));
    };
    for (const ev of ['add', 'update', 'delete', 'resync'] as const) this.services.on(ev, onService);
    const onGuest = (g: Guest, old?: Guest) => {
      for (const x of old ? [g, old] : [g]) {
        const set = x.metadata.labels?.[SET_LABEL];
        if (set) this.enqueueForSet(x.metadata.namespace ?? 'default', set);
      }
    };
    for (const ev of ['add', 'update', 'delete'] as const) this.guests.on(ev, onGuest);
    for (const ev of ['add', 'delete'] as const) this.hosts.on(ev, () => this.enqueueAll());
  }

  private enqueue(key: string): void {
    if (this.running) this.queue.add(key);
  }

  private enqueueForSet(ns: string, set: string): void {
    for (const s of this.services.list())
      if (s.metadata.namespace === ns && s.metadata.annotations?.[SERVICE_ANNOTATION] === set) this.enqueue(keyOf(s));
  }

  private enqueueAll(): void {
    for (const s of this.services.list()) if (s.metadata.annotations?.[SERVICE_ANNOTATION]) this.enqueue(keyOf(s));
  }

  /** Starts the Service informer; once synced, every annotated Service and every slice it made is looked at. */
  async start(): Promise<void> {
    this.running = true;
    this.services.start();
    await this.services.synced();
    this.enqueueAll();
    // Slices of Services deleted (or no longer annotated) while no operator led.
    try {
      const all = await this.kube.request<{ items: EndpointSlice[] }>('GET', `/apis/${await this.apiGroup()}/endpointslices`, {
        query: { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` },
      });
      for (const s of all.items) this.enqueue(`${s.metadata.namespace}/${s.metadata.labels[SERVICE_NAME_LABEL]}`);
    } catch (e) {
      this.opts.log('listing endpoint slices failed (orphans stay until their Service is looked at)', e);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.queue.stop();
    await this.services.stop();
  }

  /** discovery.k8s.io/v1 where the apiserver serves it, else v1beta1 (Kubernetes 1.20). */
  private async apiGroup(): Promise<string> {
    if (!this.group) {
      const g = await this.kube.request<{ versions?: { version: string }[] }>('GET', '/apis/discovery.k8s.io');
      this.group = g.versions?.some((v) => v.version === 'v1') ? 'discovery.k8s.io/v1' : 'discovery.k8s.io/v1beta1';
    }
    return this.group;
  }

  /** A host's Node addresses, InternalIP first; none when it has no Node. Cached a minute. */
  private async addresses(host: string): Promise<string[]> {
    const have = this.nodes.get(host);
    if (have && Date.now() - have.at < NODE_CACHE_MS) return have.addresses;
    let addresses: string[] = [];
    try {
      const node = await this.kube.request<{ status?: { addresses?: { type: string; address: string }[] } }>(
        'GET',
        `/api/v1/nodes/${encodeURIComponent(host)}`,
      );
      const all = node.status?.addresses ?? [];
      addresses = [...all.filter((a) => a.type === 'InternalIP'), ...all.filter((a) => a.type === 'ExternalIP')].map((a) => a.address);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    this.nodes.set(host, { addresses, at: Date.now() });
    return addresses;
  }

  private async reconcile(key: string): Promise<HandlerResult> {
    const [ns, name] = key.split('/') as [string, string];
    const group = await this.apiGroup();
    const svc = this.services.get(key);
    const guests = this.guests.list().filter((g) => (g.metadata.namespace ?? 'default') === ns);
    let want: EndpointSlice[] = [];
    if (svc && svc.metadata.annotations?.[SERVICE_ANNOTATION]) {
      const hosts = [...new Set(guests.map((g) => g.status?.node).filter((h): h is string => !!h))];
      const addrs = new Map(await Promise.all(hosts.map(async (h) => [h, await this.addresses(h)] as const)));
      want = desiredSlices(svc, guests, (h) => addrs.get(h) ?? [], group.endsWith('/v1'));
    }
    const base = `/apis/${group}/namespaces/${encodeURIComponent(ns)}/endpointslices`;
    const have = await this.kube.request<{ items: EndpointSlice[] }>('GET', base, {
      query: { labelSelector: `${SERVICE_NAME_LABEL}=${name},${MANAGED_BY_LABEL}=${MANAGED_BY}` },
    });
    for (const s of want) {
      const cur = have.items.find((x) => x.metadata.name === s.metadata.name);
      if (cur && essence(cur) === essence(s)) continue;
      await this.kube.request('PATCH', `${base}/${encodeURIComponent(s.metadata.name)}`, {
        body: s,
        contentType: 'application/apply-patch+yaml',
        query: { fieldManager: FIELD_MANAGER, force: true },
      });
    }
    for (const s of have.items) {
      if (want.some((w) => w.metadata.name === s.metadata.name)) continue;
      try {
        await this.kube.request('DELETE', `${base}/${encodeURIComponent(s.metadata.name)}`);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    return svc?.metadata.annotations?.[SERVICE_ANNOTATION] ? { requeueAfterMs: RESYNC_MS } : undefined;
  }
}
