// An in-memory AgentService for the API server's and kratactl's tests: a store of Guests with a watch
// log, consoles the test writes into and reads from, and knobs to move guests through their phases.
import { ChannelUnavailable, type ExecRequest, type ExecSession, type ExecSink } from '../../node-agent/channel/index.js';
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import type { Guest, GuestSet, GuestStatus } from '../../crds/generated/types.js';
import { formatPath, validateObject, type KratObject } from '../../crds/validate.js';
import type { PruneResult, PullEvent, StoredImage } from '../../contracts/agent-api/types.js';
import { FakeConsole } from '../../node-agent/runtime/fake-console.js';
import { FakeGuestChannel } from './fake-guest-channel.js';
import type { Console } from '../../node-agent/runtime/hypervisor.js';
import { InvalidRequest, NotFound, type AgentService } from '../../node-agent/service/service.js';
import { type ApplyResult, type GuestEvent, type HostStatus, type WatchEvent } from '../../contracts/agent-api/types.js';
import { DialError, type GuestDialer } from '../../node-agent/net/guest-dialer.js';
import type { Duplex } from 'node:stream';
import { validateApplySetParent, type ApplySetParent } from '../../contracts/agent-api/applyset.js';
import type { SecretInfo } from '../../node-agent/store/secret-store.js';

export { FakeConsole };

const key = (namespace: string, name: string) => `${namespace}/${name}`;
/** RFC 3339 to the second, as Kubernetes writes timestamps. */
const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export class FakeAgentService implements AgentService {
  private guests = new Map<string, Guest>();
  /** GuestSets as stored (no controller runs here: tests set their status). */
  readonly guestSets = new Map<string, GuestSet>();
  private log: WatchEvent[] = [];
  private revision = 0;
  private watchers = new Set<(e: WatchEvent) => void>();
  private nextDomid = 1;
  readonly consoles = new Map<string, FakeConsole>();
  readonly guestEvents: GuestEvent[] = [];
  readonly deletes: { namespace: string; name: string; opts: { wait?: boolean; gracePeriodSeconds?: number } }[] = [];
  imageList: StoredImage[] = [];
  /**
   * Applied guests go Pending → Creating → Running by themselves (for `kratactl run`), from the next watch
   * on: its watcher sees every phase however late it subscribes (a loaded machine once made it miss Pending).
   */
  autoStart = false;
  private startOnWatch: (() => void)[] = [];
  /** Port-forward's dialer (a LoopbackDialer in tests); without one, port-forward says there is no network. */
  dialer?: GuestDialer;
  /** Make the next call of a method throw this (to test how the server answers surprises). */
  failures = new Map<keyof AgentService, Error>();

  get watcherCount(): number {
    return this.watchers.size;
  }

  private fail(method: keyof AgentService): void {
    const err = this.failures.get(method);
    if (err) {
      this.failures.delete(method);
      throw err;
    }
  }

  private publish(type: WatchEvent['type'], guest: Guest): void {
    const e: WatchEvent = { type, object: structuredClone(guest), revision: ++this.revision };
    guest.metadata.resourceVersion = String(this.revision);
    e.object.metadata.resourceVersion = String(this.revision);
    this.log.push(e);
    for (const w of [...this.watchers]) w(e);
  }

  async apply(objects: KratObject[], dryRun: boolean): Promise<ApplyResult[]> {
    this.fail('apply');
    const errors: { index: number; path: string; message: string }[] = [];
    const valid: Guest[] = [];
    const sets: ApplyResult[] = [];
    objects.forEach((o, index) => {
      const r = validateObject(o);
      for (const e of r.errors) errors.push({ index, path: formatPath(e.path), message: e.message });
      if (r.object?.kind === 'XenHost')
        errors.push({ index, path: 'kind', message: 'XenHost objects are managed by the operator, not a single node agent' });
      else if (r.object?.kind === 'GuestSet') {
        const set = r.object;
        const k = key(set.metadata.namespace ?? 'default', set.metadata.name);
        if (!dryRun) this.guestSets.set(k, { ...set, metadata: { ...set.metadata, namespace: set.metadata.namespace ?? 'default' } });
        sets.push({
          kind: 'GuestSet',
          metadata: { namespace: set.metadata.namespace ?? 'default', name: set.metadata.name },
          action: 'created',
        });
      } else if (r.object) valid.push(r.object);
    });
    if (errors.length)
      throw new InvalidRequest(`${errors.length} invalid object${errors.length === 1 ? '' : 's'}; nothing was applied`, errors);
    const results: ApplyResult[] = [];
    for (const g of valid) {
      const namespace = g.metadata.namespace ?? 'default';
      const old = this.guests.get(key(namespace, g.metadata.name));
      const action = !old ? 'created' : JSON.stringify(old.spec) === JSON.stringify(g.spec) ? 'unchanged' : 'configured';
      results.push({ kind: 'Guest', metadata: { namespace, name: g.metadata.name }, action });
      if (dryRun || action === 'unchanged') continue;
      const guest: Guest = {
        ...g,
        metadata: {
          ...g.metadata,
          namespace,
          uid: old?.metadata.uid ?? `uid-${this.revision + 1}`,
          generation: (old?.metadata.generation ?? 0) + 1,
          creationTimestamp: old?.metadata.creationTimestamp ?? now(),
        },
        status: old?.status ?? { phase: 'Pending', restartCount: 0 },
      };
      this.guests.set(key(namespace, g.metadata.name), guest);
      this.publish(old ? 'MODIFIED' : 'ADDED', guest);
      if (this.autoStart && !old) this.startLater(namespace, g.metadata.name);
    }
    return [...results, ...sets];
  }

  listGuestSets(namespace?: string): GuestSet[] {
    return [...this.guestSets.values()].filter((s) => namespace === undefined || s.metadata.namespace === namespace);
  }

  getGuestSet(namespace: string, name: string): GuestSet | undefined {
    return this.guestSets.get(key(namespace, name));
  }

  deleteGuestSet(namespace: string, name: string): void {
    if (!this.guestSets.delete(key(namespace, name))) throw new NotFound(`guestset ${namespace}/${name} not found`);
  }

  scaleGuestSet(namespace: string, name: string, replicas: number): GuestSet {
    const set = this.guestSets.get(key(namespace, name));
    if (!set) throw new NotFound(`guestset ${namespace}/${name} not found`);
    set.spec.replicas = replicas;
    return set;
  }

  private startLater(namespace: string, name: string): void {
    this.startOnWatch.push(() =>
      setTimeout(() => {
        if (!this.guests.has(key(namespace, name))) return;
        this.setStatus(namespace, name, { phase: 'Creating', reason: 'Pulling' });
        setTimeout(() => {
          if (this.guests.has(key(namespace, name))) this.run(namespace, name);
        }, 10);
      }, 10),
    );
  }

  /** Gives the guest a domain and a console, phase Running. */
  run(namespace: string, name: string, output = ''): FakeConsole {
    const c = new FakeConsole();
    if (output) c.emit(output);
    this.consoles.set(key(namespace, name), c);
    this.setStatus(namespace, name, {
      phase: 'Running',
      domid: this.nextDomid++,
      node: 'host-1',
      startTime: now(),
      addresses: { ipv4: '10.75.0.2', ipv6: 'fd00:7261:7461::2', mac: '02:16:3e:00:00:02' },
      imageDigest: 'sha256:' + 'ab'.repeat(32),
      reason: undefined,
      message: undefined,
      conditions: [
        { type: 'ImageReady', status: 'True', reason: 'Pulled', message: 'image is in the cache', lastTransitionTime: now() },
        { type: 'Ready', status: 'True', reason: 'Running', message: 'the process runs', lastTransitionTime: now() },
      ],
    });
    return c;
  }

  /** Merges `status` into the guest's and publishes MODIFIED; `undefined` values clear fields. */
  setStatus(namespace: string, name: string, status: Partial<GuestStatus>): void {
    const g = this.guests.get(key(namespace, name));
    if (!g) throw new NotFound(`guest ${namespace}/${name} not found`);
    const merged = { ...g.status, ...status } as Record<string, unknown>;
    for (const k of Object.keys(merged)) if (merged[k] === undefined) delete merged[k];
    g.status = merged as GuestStatus;
    if (g.status.domid === undefined) this.consoles.delete(key(namespace, name));
    this.publish('MODIFIED', g);
  }

  record(namespace: string, name: string, type: GuestEvent['type'], reason: string, message: string, count = 1): void {
    const time = now();
    this.guestEvents.push({ namespace, name, type, reason, message, count, firstTime: time, lastTime: time });
  }

  list(namespace?: string): Guest[] {
    this.fail('list');
    return [...this.guests.values()]
      .filter((g) => namespace === undefined || g.metadata.namespace === namespace)
      .map((g) => structuredClone(g));
  }

  get(namespace: string, name: string): Guest | undefined {
    this.fail('get');
    const g = this.guests.get(key(namespace, name));
    return g && structuredClone(g);
  }

  async delete(namespace: string, name: string, opts: { wait?: boolean; gracePeriodSeconds?: number }): Promise<void> {
    this.fail('delete');
    const g = this.guests.get(key(namespace, name));
    if (!g) throw new NotFound(`guest "${name}" not found in namespace "${namespace}"`);
    this.deletes.push({ namespace, name, opts });
    g.metadata.deletionTimestamp = now();
    this.setStatus(namespace, name, { phase: 'Terminating' });
    const gone = new Promise<void>((resolve) =>
      setTimeout(() => {
        this.guests.delete(key(namespace, name));
        this.consoles.delete(key(namespace, name));
        this.publish('DELETED', g);
        resolve();
      }, 20),
    );
    if (opts.wait) await gone;
  }

  watch(since: number, cb: (e: WatchEvent) => void): () => void {
    this.fail('watch');
    if (since === 0) for (const g of this.guests.values()) cb({ type: 'ADDED', object: structuredClone(g), revision: this.revision });
    else for (const e of this.log) if (e.revision > since) cb(e);
    this.watchers.add(cb);
    for (const start of this.startOnWatch.splice(0)) start();
    return () => this.watchers.delete(cb);
  }

  events(namespace?: string, name?: string): GuestEvent[] {
    this.fail('events');
    return this.guestEvents.filter(
      (e) => (namespace === undefined || e.namespace === namespace) && (name === undefined || e.name === name),
    );
  }

  console(namespace: string, name: string): Console | undefined {
    this.fail('console');
    return this.consoles.get(key(namespace, name));
  }

  /** Each running guest's control channel, made on first use (per domain); `noChannel` guests have none. */
  private readonly channels = new Map<string, { domid: number; channel: FakeGuestChannel }>();
  readonly noChannel = new Set<string>();
  /** How long exec waits for a channel that is not up yet. */
  channelReadyMs = 5000;

  /** The guest's current channel (a fresh one, up, for a new domain); undefined without a running domain. */
  channel(namespace: string, name: string): FakeGuestChannel | undefined {
    const k = key(namespace, name);
    const domid = this.guests.get(k)?.status?.domid;
    if (domid === undefined || this.noChannel.has(k)) return undefined;
    let c = this.channels.get(k);
    if (c?.domid !== domid) this.channels.set(k, (c = { domid, channel: new FakeGuestChannel() }));
    return c.channel;
  }

  async exec(namespace: string, name: string, req: ExecRequest, sink: ExecSink): Promise<ExecSession> {
    this.fail('exec');
    const g = this.guests.get(key(namespace, name));
    if (!g) throw new NotFound(`guest "${name}" not found in namespace "${namespace}"`);
    const channel = this.channel(namespace, name);
    if (!channel)
      throw new ChannelUnavailable(
        g.status?.domid === undefined
          ? `guest ${namespace}/${name} has no running domain (phase ${g.status?.phase ?? 'Pending'})`
          : `guest ${namespace}/${name} has no control channel`,
        'closed',
      );
    await channel.ready(this.channelReadyMs);
    return channel.exec(req, sink);
  }

  async portForward(namespace: string, name: string, port: number): Promise<Duplex> {
    this.fail('portForward');
    const g = this.guests.get(key(namespace, name));
    if (!g) throw new NotFound(`guest "${name}" not found in namespace "${namespace}"`);
    if (g.status?.domid === undefined) throw new InvalidRequest(`guest ${key(namespace, name)} has no running domain`, [], 409);
    if (!this.dialer) throw new InvalidRequest(`guest ${key(namespace, name)}: no guest network`, [], 409);
    try {
      return await this.dialer.dial(key(namespace, name), port, { timeoutMs: 5000 });
    } catch (e) {
      if (e instanceof DialError) throw new InvalidRequest(`port-forward to ${key(namespace, name)} port ${port}: ${e.message}`, [], 502);
      throw e;
    }
  }

  resizeConsole(namespace: string, name: string, rows: number, cols: number): boolean {
    const channel = this.channel(namespace, name);
    if (channel?.state().phase !== 'up') return false;
    channel.resizeConsole(rows, cols);
    return true;
  }

  /** What usage() answers (filtered by its namespace and name): tests script it. */
  usageItems: GuestUsage[] = [];

  async usage(namespace?: string, name?: string): Promise<GuestUsage[]> {
    this.fail('usage');
    if (namespace !== undefined && name !== undefined && !this.guests.has(key(namespace, name)))
      throw new NotFound(`guest ${key(namespace, name)} not found`);
    return structuredClone(
      this.usageItems.filter((u) => (namespace === undefined || u.namespace === namespace) && (name === undefined || u.name === name)),
    );
  }

  /** Secrets the fake knows, as namespace/name. */
  readonly secrets = new Set<string>();

  async pullImage(
    reference: string,
    onEvent: (e: PullEvent) => void,
    opts: { namespace?: string; pullSecrets?: string[] } = {},
  ): Promise<StoredImage> {
    this.fail('pullImage');
    const missing = (opts.pullSecrets ?? []).filter((n) => !this.secrets.has(`${opts.namespace ?? 'default'}/${n}`));
    if (missing.length)
      throw new InvalidRequest(missing.map((n) => `image pull secret ${opts.namespace ?? 'default'}/${n} not found`).join('; '));
    if (reference.includes('missing')) throw new Error(`manifest unknown: ${reference}`);
    const digest = 'sha256:' + 'cd'.repeat(32);
    const layer = 'sha256:' + 'ef'.repeat(32);
    onEvent({ kind: 'resolved', ref: reference, digest, layers: [{ digest: layer, size: 100 }] });
    onEvent({ kind: 'download', layer, bytes: 100, total: 100 });
    onEvent({ kind: 'downloaded', layer });
    onEvent({ kind: 'unpacked', layer });
    onEvent({ kind: 'done', digest, size: 4096 });
    const img: StoredImage = {
      digest,
      format: 'squashfs',
      names: [reference],
      path: `/var/lib/krata/images/${digest.slice(7)}.squashfs`,
      size: 4096,
      config: { os: 'linux', architecture: 'amd64' } as StoredImage['config'],
      source: 'registry',
      createdAt: '2024-01-01T00:00:00Z',
      lastUsedAt: '2024-01-01T00:00:00Z',
    };
    this.imageList.push(img);
    return img;
  }

  /** The bytes of each import, in order. */
  readonly imports: { name?: string; source: string; bytes: Buffer }[] = [];

  async importImage(
    archive: AsyncIterable<Buffer>,
    opts: { name?: string; source: string },
    onEvent: (e: PullEvent) => void,
  ): Promise<StoredImage> {
    this.fail('importImage');
    const chunks: Buffer[] = [];
    for await (const c of archive) chunks.push(c);
    const bytes = Buffer.concat(chunks);
    this.imports.push({ ...opts, bytes });
    if (bytes.length === 0) throw new Error(`${opts.source}: not a tar archive (empty)`);
    const digest = 'sha256:' + '12'.repeat(32);
    onEvent({ kind: 'resolved', ref: opts.name ?? `import/${opts.source}`, digest, layers: [] });
    onEvent({ kind: 'done', digest, size: bytes.length });
    const img: StoredImage = { ...this.fakeImage(digest, opts.name ?? `import/${opts.source}`, bytes.length), source: 'import' };
    this.imageList.push(img);
    return img;
  }

  private fakeImage(digest: string, name: string, size: number): StoredImage {
    return {
      digest,
      format: 'squashfs',
      names: [name],
      path: `/var/lib/krata/images/${digest.slice(7)}.squashfs`,
      size,
      config: { os: 'linux', architecture: 'amd64' } as StoredImage['config'],
      source: 'registry',
      createdAt: '2024-01-01T00:00:00Z',
      lastUsedAt: '2024-01-01T00:00:00Z',
    };
  }

  /** Budgets prune was called with. */
  readonly prunes: number[] = [];

  pruneImages(budgetBytes: number): PruneResult {
    this.fail('pruneImages');
    this.prunes.push(budgetBytes);
    const removed = budgetBytes === 0 ? this.imageList.splice(0) : [];
    return { removed, freedBytes: removed.reduce((s, i) => s + i.size, 0), keptBytes: this.imageList.reduce((s, i) => s + i.size, 0) };
  }

  images(): StoredImage[] {
    this.fail('images');
    return this.imageList;
  }

  deleteSecret(namespace: string, name: string): void {
    this.fail('deleteSecret');
    if (!this.secrets.delete(`${namespace}/${name}`)) throw new NotFound(`secret ${namespace}/${name} not found`);
  }

  listSecrets(namespace?: string): SecretInfo[] {
    return [...this.secrets]
      .map((k) => k.split('/') as [string, string])
      .filter(([ns]) => namespace === undefined || ns === namespace)
      .map(([ns, name]) => ({ namespace: ns, name, type: 'kubernetes.io/dockerconfigjson', registries: [] }));
  }

  /** ApplySet parents, checked as the agent checks them. */
  readonly applySets = new Map<string, ApplySetParent>();

  listApplySets(namespace?: string): ApplySetParent[] {
    return [...this.applySets.values()].filter((p) => namespace === undefined || p.metadata.namespace === namespace);
  }

  getApplySet(namespace: string, name: string): ApplySetParent | undefined {
    return this.applySets.get(key(namespace, name));
  }

  putApplySet(namespace: string, name: string, input: unknown): { parent: ApplySetParent; action: 'created' | 'configured' | 'unchanged' } {
    const r = validateApplySetParent(input, { namespace, name });
    if (!r.object)
      throw new InvalidRequest(
        'the applyset parent is not valid',
        r.errors.map((e) => ({ path: formatPath(e.path), message: e.message })),
      );
    const old = this.applySets.get(key(namespace, name));
    this.applySets.set(key(namespace, name), r.object);
    return { parent: r.object, action: !old ? 'created' : JSON.stringify(old) === JSON.stringify(r.object) ? 'unchanged' : 'configured' };
  }

  deleteApplySet(namespace: string, name: string): void {
    if (!this.applySets.delete(key(namespace, name))) throw new NotFound(`applyset ${namespace}/${name} not found`);
  }

  removeImage(refOrDigest: string): StoredImage {
    this.fail('removeImage');
    const i = this.imageList.findIndex((img) => img.digest.startsWith(refOrDigest) || img.names.includes(refOrDigest));
    if (i < 0) throw new NotFound(`no image ${refOrDigest} in the cache`);
    return this.imageList.splice(i, 1)[0]!;
  }

  async host(): Promise<HostStatus> {
    this.fail('host');
    const all = [...this.guests.values()];
    return {
      xenVersion: '4.17.5',
      cpus: 4,
      totalMemoryMiB: 16384,
      freeMemoryMiB: 12000,
      kernelVersion: '6.1.0-28-amd64',
      agentVersion: '0.1.0',
      guests: { total: all.length, running: all.filter((g) => g.status?.phase === 'Running').length },
      allocatedMemoryMiB: 512,
      allocatedCpus: 2,
    };
  }
}
