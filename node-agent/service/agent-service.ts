// The node agent's service: the operations the local API serves, on top of the store, the reconciler,
// the hypervisor and the image cache. Writes are validated with the same validator kratactl and the
// operator use, all or nothing.
import { ChannelUnavailable, type ExecRequest, type ExecSession, type ExecSink, type GuestChannel } from '../channel/index.js';
import type { GuestUsage } from '../../contracts/agent-api/types.js';
import type { Guest, GuestSet } from '../../crds/generated/types.js';
import { setKey, type GuestSetStore } from '../store/guestset-store.js';
import { formatPath, validateObject, type KratObject } from '../../crds/validate.js';
import { packageVersion } from '../../lib/version.js';
import { ImageReferenceError, parseReference } from '../../lib/oci/reference.js';
import type { PullAuth } from '../../lib/oci/registry.js';
import { isSecretDocument, validatePullSecret, type PullSecret } from '../../contracts/agent-api/pull-secret.js';
import type { Semaphore } from '../../lib/semaphore.js';
import type { SecretStore } from '../store/secret-store.js';
import type { ImageStore } from '../image/store.js';
import type { PruneResult, PullEvent, StoredImage } from '../../contracts/agent-api/types.js';
import { importArchive } from '../image/import.js';
import type { EventRecorder } from '../reconcile/events.js';
import { guestKey, type GuestStore } from '../store/guest-store.js';
import type { Console, Hypervisor } from '../runtime/hypervisor.js';
import type { Clock } from '../../lib/clock.js';
import { ImageError, type ImageProvider } from '../reconcile/pulls.js';
import { InvalidRequest, NotFound, storageFull, type AgentService } from './service.js';
import { type ApplyResult, type GuestEvent, type HostStatus, type WatchEvent } from '../../contracts/agent-api/types.js';
import { quantityValue } from '../../crds/quantity.js';
import { UsageSampler } from '../usage/sampler.js';
import { DialError, type GuestDialer } from '../net/guest-dialer.js';
import type { Duplex } from 'node:stream';
import { validateApplySetParent, type ApplySetParent } from '../../contracts/agent-api/applyset.js';
import type { ApplySetStore } from '../store/applyset-store.js';
import type { SecretInfo } from '../store/secret-store.js';

/**
 * Images for the reconciler from the host's cache, under Kubernetes' pull policies. A cached image
 * serves a Guest only if its namespace proved access to it (store.ts, access.ts): else the registry
 * is asked first, with the Guest's credentials, whatever the policy.
 */
export class CachedImages implements ImageProvider {
  constructor(private readonly store: ImageStore) {}

  async ensure(reference: string, policy: 'Always' | 'IfNotPresent' | 'Never', auth?: PullAuth) {
    let found: StoredImage | undefined;
    try {
      found = policy === 'Always' ? undefined : this.store.find(reference);
    } catch (e) {
      throw new ImageError('InvalidImageName', (e as Error).message, true);
    }
    if (!found && policy === 'Never')
      throw new ImageError('ErrImageNeverPull', 'the image is not in the cache and imagePullPolicy is Never');
    if (found && !this.store.allowed(found, auth)) {
      try {
        await this.store.authorize(parseReference(reference), found, auth);
      } catch (e) {
        const who = auth?.namespace === undefined ? 'this pull' : `namespace ${auth.namespace}`;
        throw new ImageError(
          policy === 'Never' ? 'ErrImageNeverPull' : 'ErrImagePull',
          `not authorized to use the cached image ${found.digest}: ${who} has ` +
            `not shown the registry it may pull it (${(e as Error).message})`,
        );
      }
    }
    if (!found) {
      try {
        found = await this.store.pull(reference, { auth });
      } catch (e) {
        if (e instanceof ImageReferenceError) throw new ImageError('InvalidImageName', e.message, true);
        throw new ImageError('ErrImagePull', (e as Error).message);
      }
    }
    return { digest: found.digest, path: found.path, config: found.config };
  }

  /** ensure() answers from the cache (or refuses) without the registry: no pull slot needed. */
  cached(reference: string, policy: 'Always' | 'IfNotPresent' | 'Never', auth?: PullAuth): boolean {
    try {
      const found = policy === 'Always' ? undefined : this.store.find(reference);
      // A cached image the namespace has not proved access to asks the registry first: a slot.
      if (found) return this.store.allowed(found, auth);
      return policy === 'Never';
    } catch {
      return true; // an invalid reference: ensure() refuses it at once
    }
  }
}

export interface AgentOptions {
  /** Image pull Secrets (single host); without it, Secret documents are refused. */
  secrets?: SecretStore;
  /** Cluster mode: what manages the host (e.g. "Redis redis://10.0.0.5:6379"); local writes are refused. */
  managedBy?: string;
  /** The reconciler's pull slots: pulls through the API wait for one too, so --pull-concurrency bounds all pulls. */
  pullSlots?: Semaphore;
  /** The host's one usage sampler (shared with /metrics); the service makes its own without it. */
  usage?: UsageSampler;
  /** GuestSets (single host); without it, GuestSet documents are refused. */
  guestSets?: GuestSetStore;
  /** How long an exec waits for the Guest's channel handshake (default 5 s) before it says the channel is not up. */
  channelReadyMs?: number;
  /** Reaches guests' ports through kratanet (port-forward); without it, port-forward says there is no network. */
  dialer?: GuestDialer;
  /** ApplySet parents (single host); without them, kratactl apply --prune is refused. */
  applySets?: ApplySetStore;
}

/** How long a port-forward waits for the guest to accept the connection. */
export const PORT_FORWARD_CONNECT_MS = 10_000;

export const DEFAULT_CHANNEL_READY_MS = 5000;

export class NodeAgentService implements AgentService {
  private readonly history: WatchEvent[] = [];
  private readonly sampler: UsageSampler;

  constructor(
    private readonly store: GuestStore,
    private readonly hv: Hypervisor,
    private readonly recorder: EventRecorder,
    private readonly imageCache: ImageStore | undefined,
    private readonly clock: Clock,
    private readonly opts: AgentOptions = {},
  ) {
    this.sampler = opts.usage ?? new UsageSampler(store, hv, { clock });
    // A short replay buffer, so a watcher that reconnects with `since` misses nothing recent.
    store.on('change', (e: WatchEvent) => {
      this.history.push(e);
      if (this.history.length > 1000) this.history.shift();
    });
  }

  /** In cluster mode the desired state is Kubernetes': two sources of truth must never mix. */
  private refuseInCluster(): void {
    if (this.opts.managedBy) throw new InvalidRequest(`this host is managed by the cluster (${this.opts.managedBy}); use kubectl`, [], 409);
  }

  async apply(objects: (KratObject | PullSecret)[], dryRun: boolean): Promise<ApplyResult[]> {
    this.refuseInCluster();
    if (!Array.isArray(objects) || objects.length === 0) throw new InvalidRequest('objects: expected a non-empty list');
    const errors: { index?: number; path?: string; message: string }[] = [];
    const valid: Guest[] = [];
    const sets: GuestSet[] = [];
    const secrets: PullSecret[] = [];
    objects.forEach((o, index) => {
      if (isSecretDocument(o)) {
        const r = validatePullSecret(o);
        for (const e of r.errors) errors.push({ index, path: formatPath(e.path), message: e.message });
        if (!r.object) return;
        if (!this.opts.secrets) errors.push({ index, path: 'kind', message: 'this agent keeps no Secrets' });
        const key = `${r.object.metadata.namespace ?? 'default'}/${r.object.metadata.name}`;
        if (secrets.some((s) => `${s.metadata.namespace ?? 'default'}/${s.metadata.name}` === key))
          errors.push({ index, path: 'metadata.name', message: `secret ${key} appears twice in the batch` });
        secrets.push(r.object);
        return;
      }
      const r = validateObject(o);
      for (const e of r.errors) errors.push({ index, path: formatPath(e.path), message: e.message });
      if (!r.object) return;
      if (r.object.kind === 'GuestSet') {
        const set = r.object;
        const key = setKey(set.metadata.namespace ?? 'default', set.metadata.name);
        if (!this.opts.guestSets) errors.push({ index, path: 'kind', message: 'this agent keeps no GuestSets' });
        if (sets.some((v) => setKey(v.metadata.namespace ?? 'default', v.metadata.name) === key))
          errors.push({ index, path: 'metadata.name', message: `guestset ${key} appears twice in the batch` });
        sets.push(set);
      } else if (r.object.kind !== 'Guest')
        errors.push({
          index,
          path: 'kind',
          message:
            `${r.object.kind} objects are managed by the operator in a ` +
            `cluster; a single host takes Guests, GuestSets and image pull Secrets`,
        });
      else {
        const g = r.object as Guest;
        const key = guestKey(g.metadata.namespace ?? 'default', g.metadata.name);
        if (this.store.get(key)?.guest.metadata.deletionTimestamp)
          errors.push({ index, path: 'metadata.name', message: `guest ${key} is being deleted; apply it again once it is gone` });
        if (valid.some((v) => guestKey(v.metadata.namespace ?? 'default', v.metadata.name) === key))
          errors.push({ index, path: 'metadata.name', message: `guest ${key} appears twice in the batch` });
        valid.push(g);
      }
    });
    if (errors.length) throw new InvalidRequest(`${errors.length} error${errors.length === 1 ? '' : 's'}; nothing was applied`, errors);
    const now = new Date(this.clock.now());
    const guests = valid.map((g) => ({ ...g, metadata: { ...g.metadata, namespace: g.metadata.namespace ?? 'default' } }));
    const setsIn = sets.map((g) => ({ ...g, metadata: { ...g.metadata, namespace: g.metadata.namespace ?? 'default' } }));
    const setResults = (actions: ApplyResult['action'][]) =>
      setsIn.map((g, i): ApplyResult => ({
        kind: 'GuestSet',
        metadata: { name: g.metadata.name, namespace: g.metadata.namespace },
        action: actions[i]!,
      }));
    if (dryRun) {
      return [
        ...secrets.map((s): ApplyResult => ({
          kind: 'Secret',
          metadata: { name: s.metadata.name, namespace: s.metadata.namespace ?? 'default' },
          action: this.opts.secrets!.compare(s),
        })),
        ...guests.map((g): ApplyResult => {
          const old = this.store.get(guestKey(g.metadata.namespace, g.metadata.name));
          return {
            kind: 'Guest',
            metadata: { name: g.metadata.name, namespace: g.metadata.namespace },
            action: !old ? 'created' : JSON.stringify(old.guest.spec) === JSON.stringify(g.spec) ? 'unchanged' : 'configured',
          };
        }),
        ...setResults(
          setsIn.map((g) => {
            const old = this.opts.guestSets!.get(setKey(g.metadata.namespace, g.metadata.name));
            return !old ? 'created' : JSON.stringify(old.spec) === JSON.stringify(g.spec) ? 'unchanged' : 'configured';
          }),
        ),
      ];
    }
    // Secrets first: a Guest of the batch that names one finds it at its first pull. (Secrets are
    // written one by one; the Guests of a batch all or none.)
    const results: ApplyResult[] = [];
    try {
      for (const s of secrets)
        results.push({
          kind: 'Secret',
          metadata: { name: s.metadata.name, namespace: s.metadata.namespace ?? 'default' },
          action: this.opts.secrets!.put(s),
        });
      const actions = this.store.putAll(guests, now);
      // GuestSets after the Guests (one by one: a set's Guests are made later, by its controller).
      const setActions = setsIn.map((g) => this.opts.guestSets!.put(g, now));
      return [
        ...results,
        ...guests.map((g, i): ApplyResult => ({
          kind: 'Guest',
          metadata: { name: g.metadata.name, namespace: g.metadata.namespace },
          action: actions[i]!,
        })),
        ...setResults(setActions),
      ];
    } catch (e) {
      const full = storageFull(e);
      const stored = results.length
        ? `only ${results.map((r) => `Secret ${r.metadata.namespace}/${r.metadata.name}`).join(', ')} stored, no Guest`
        : 'nothing was applied';
      if (full) throw new InvalidRequest(`${full}; ${stored}`, [], 507);
      throw e;
    }
  }

  list(namespace?: string): Guest[] {
    return structuredClone(this.store.list(namespace));
  }

  private guestSetStore(): GuestSetStore {
    this.refuseInCluster();
    if (!this.opts.guestSets) throw new InvalidRequest('this agent keeps no GuestSets', [], 409);
    return this.opts.guestSets;
  }

  listGuestSets(namespace?: string): GuestSet[] {
    return structuredClone(this.opts.guestSets?.list(namespace) ?? []);
  }

  getGuestSet(namespace: string, name: string): GuestSet | undefined {
    return structuredClone(this.opts.guestSets?.get(setKey(namespace, name)));
  }

  deleteGuestSet(namespace: string, name: string): void {
    const key = setKey(namespace, name);
    if (!this.guestSetStore().remove(key)) throw new NotFound(`guestset ${key} not found`);
  }

  scaleGuestSet(namespace: string, name: string, replicas: number): GuestSet {
    const key = setKey(namespace, name);
    const set = this.guestSetStore().scale(key, replicas);
    if (!set) throw new NotFound(`guestset ${key} not found`);
    return structuredClone(set);
  }

  get(namespace: string, name: string): Guest | undefined {
    const rec = this.store.get(guestKey(namespace, name));
    return rec && structuredClone(rec.guest);
  }

  async delete(namespace: string, name: string, opts: { wait?: boolean; gracePeriodSeconds?: number }): Promise<void> {
    this.refuseInCluster();
    const key = guestKey(namespace, name);
    if (!this.store.get(key)) throw new NotFound(`guest ${key} not found`);
    const gone = opts.wait
      ? new Promise<void>((resolve) => {
          const on = (e: WatchEvent) => {
            if (e.type === 'DELETED' && guestKey(e.object.metadata.namespace ?? 'default', e.object.metadata.name) === key) {
              this.store.off('change', on);
              resolve();
            }
          };
          this.store.on('change', on);
        })
      : undefined;
    if (!this.store.markDeleted(key, new Date(this.clock.now()), opts.gracePeriodSeconds)) throw new NotFound(`guest ${key} not found`);
    await gone;
  }

  watch(since: number, cb: (e: WatchEvent) => void): () => void {
    // A revision the replay buffer no longer covers (too old, or from before an agent restart) gets
    // the whole current state, as a fresh watch does, rather than a silent gap.
    const covered = since > 0 && since <= this.store.currentRevision && (this.history[0]?.revision ?? Infinity) <= since + 1;
    if (!covered)
      for (const g of this.store.list()) cb({ type: 'ADDED', object: structuredClone(g), revision: this.store.currentRevision });
    else for (const e of this.history) if (e.revision > since) cb(e);
    const on = (e: WatchEvent) => cb(e);
    this.store.on('change', on);
    return () => this.store.off('change', on);
  }

  events(namespace?: string, name?: string): GuestEvent[] {
    return this.recorder.list(namespace, name);
  }

  console(namespace: string, name: string): Console | undefined {
    const domid = this.domidOf(namespace, name);
    return domid === undefined ? undefined : this.hv.console(domid);
  }

  async portForward(namespace: string, name: string, port: number): Promise<Duplex> {
    const key = guestKey(namespace, name);
    const guest = this.store.get(key)?.guest;
    if (!guest) throw new NotFound(`guest "${name}" not found in namespace "${namespace}"`);
    if (guest.status?.domid === undefined)
      throw new InvalidRequest(
        `guest ${key} has no running domain (phase ${guest.status?.phase ?? 'Pending'}), so nothing to forward to`,
        [],
        409,
      );
    if (!this.opts.dialer)
      throw new InvalidRequest(`guest ${key}: this agent runs no guest network, so its ports cannot be reached`, [], 409);
    try {
      return await this.opts.dialer.dial(key, port, { timeoutMs: PORT_FORWARD_CONNECT_MS });
    } catch (e) {
      if (!(e instanceof DialError)) throw e;
      const status = e.reason === 'NoSuchGuest' || e.reason === 'Unavailable' ? 409 : 502;
      throw new InvalidRequest(`port-forward to guest ${key} port ${port}: ${e.message}`, [], status);
    }
  }

  async exec(namespace: string, name: string, req: ExecRequest, sink: ExecSink): Promise<ExecSession> {
    const channel = await this.readyChannel(namespace, name);
    return channel.exec(req, sink);
  }

  /**
   * The control channel of the Guest's running domain once it is up (waiting up to `channelReadyMs`
   * for the handshake); NotFound or ChannelUnavailable (a message that says why and what to do) otherwise.
   */
  private async readyChannel(namespace: string, name: string): Promise<GuestChannel> {
    const key = guestKey(namespace, name);
    const guest = this.store.get(key)?.guest;
    if (!guest) throw new NotFound(`guest "${name}" not found in namespace "${namespace}"`);
    const domid = guest.status?.domid;
    if (domid === undefined)
      throw new ChannelUnavailable(
        `guest ${key} has no running domain (phase ${guest.status?.phase ?? 'Pending'}), so nothing to exec in`,
        'closed',
      );
    const channel = this.hv.channel(domid);
    if (!channel)
      throw new ChannelUnavailable(
        `guest ${key} has no control channel: its domain ${domid} was started by an older node agent, which did not ` +
          `give it one; delete the guest and apply it again to exec into it`,
        'closed',
      );
    try {
      await channel.ready(this.opts.channelReadyMs ?? DEFAULT_CHANNEL_READY_MS);
    } catch (e) {
      const message = `guest ${key}: ${(e as Error)?.message ?? String(e)}`;
      throw new ChannelUnavailable(message, e instanceof ChannelUnavailable ? e.state : channel.state().phase);
    }
    return channel;
  }

  resizeConsole(namespace: string, name: string, rows: number, cols: number): boolean {
    const domid = this.domidOf(namespace, name);
    const channel = domid === undefined ? undefined : this.hv.channel(domid);
    if (channel?.state().phase !== 'up') return false;
    channel.resizeConsole(rows, cols);
    return true;
  }

  async usage(namespace?: string, name?: string): Promise<GuestUsage[]> {
    if (namespace !== undefined && name !== undefined && !this.store.get(guestKey(namespace, name)))
      throw new NotFound(`guest ${guestKey(namespace, name)} not found`);
    return this.sampler.sample(namespace, name);
  }

  /** The Guest's running domain, if any. */
  private domidOf(namespace: string, name: string): number | undefined {
    return this.store.get(guestKey(namespace, name))?.guest.status?.domid;
  }

  private imageStore(): ImageStore {
    if (!this.imageCache) throw new InvalidRequest('this agent has no image cache', [], 503);
    return this.imageCache;
  }

  /** A pull or import waits for one of the host's pull slots. */
  private slot(job: () => Promise<StoredImage>): Promise<StoredImage> {
    return this.opts.pullSlots ? this.opts.pullSlots.run(job) : job();
  }

  pullImage(
    reference: string,
    onEvent: (e: PullEvent) => void,
    opts: { namespace?: string; pullSecrets?: string[] } = {},
  ): Promise<StoredImage> {
    const store = this.imageStore();
    const slot = (pull: () => Promise<StoredImage>) => this.slot(pull);
    if (!opts.pullSecrets?.length) return slot(() => store.pull(reference, { onEvent }));
    if (!this.opts.secrets) throw new InvalidRequest('this agent keeps no Secrets', [], 422);
    const auth = this.opts.secrets.credentials(opts.namespace ?? 'default', opts.pullSecrets);
    if (auth.problems) throw new InvalidRequest(auth.problems.join('; '), [], 422);
    return slot(() => store.pull(reference, { onEvent, auth }));
  }

  deleteSecret(namespace: string, name: string): void {
    this.refuseInCluster();
    if (!this.opts.secrets?.remove(namespace, name)) throw new NotFound(`secret ${namespace}/${name} not found`);
  }

  images(): StoredImage[] {
    return this.imageStore().list();
  }

  listSecrets(namespace?: string): SecretInfo[] {
    return this.opts.secrets?.list(namespace) ?? [];
  }

  private applySetStore(): ApplySetStore {
    this.refuseInCluster();
    if (!this.opts.applySets) throw new InvalidRequest('this agent keeps no ApplySets', [], 409);
    return this.opts.applySets;
  }

  listApplySets(namespace?: string): ApplySetParent[] {
    return structuredClone(this.opts.applySets?.list(namespace) ?? []);
  }

  getApplySet(namespace: string, name: string): ApplySetParent | undefined {
    return structuredClone(this.opts.applySets?.get(namespace, name));
  }

  putApplySet(namespace: string, name: string, input: unknown): { parent: ApplySetParent; action: 'created' | 'configured' | 'unchanged' } {
    const store = this.applySetStore();
    const r = validateApplySetParent(input, { namespace, name });
    if (!r.object)
      throw new InvalidRequest(
        'the applyset parent is not valid; nothing was stored',
        r.errors.map((e) => ({ path: formatPath(e.path), message: e.message })),
      );
    try {
      return { parent: r.object, action: store.put(r.object) };
    } catch (e) {
      const full = storageFull(e);
      if (full) throw new InvalidRequest(`${full}; the applyset parent was not stored`, [], 507);
      throw e;
    }
  }

  deleteApplySet(namespace: string, name: string): void {
    if (!this.applySetStore().remove(namespace, name)) throw new NotFound(`applyset ${namespace}/${name} not found`);
  }

  importImage(
    archive: AsyncIterable<Buffer>,
    opts: { name?: string; source: string },
    onEvent: (e: PullEvent) => void,
  ): Promise<StoredImage> {
    // An import names its own content, and imported images serve every namespace (store.ts): in a
    // cluster, whose tenants' Guests share this cache, the names are the registries' alone.
    if (this.opts.managedBy) {
      throw new InvalidRequest(
        `this host is managed by the cluster (${this.opts.managedBy}): its images come from registries; import is for a single host`,
        [],
        409,
      );
    }
    const store = this.imageStore();
    const name = opts.name !== undefined ? { name: opts.name } : {};
    return this.slot(() => importArchive(store, archive, opts.source, { onEvent, ...name }));
  }

  /** Manifest digests of the images the Guests run from: rm and prune leave them alone. */
  private imagesInUse(): Set<string> {
    return new Set(
      this.store
        .list()
        .map((g) => g.status?.imageDigest)
        .filter((d): d is string => !!d),
    );
  }

  removeImage(refOrDigest: string): StoredImage {
    const store = this.imageStore();
    let found: StoredImage | undefined;
    try {
      found = store.find(refOrDigest);
    } catch (e) {
      throw new InvalidRequest((e as Error).message, [], 400); // a digest prefix of several images
    }
    if (!found) throw new NotFound(`no image ${refOrDigest} in the cache`);
    try {
      return store.remove(refOrDigest, this.imagesInUse());
    } catch (e) {
      throw new InvalidRequest((e as Error).message, [], 409);
    }
  }

  pruneImages(budgetBytes: number): PruneResult {
    return this.imageStore().gc(this.imagesInUse(), budgetBytes);
  }

  async host(): Promise<HostStatus> {
    const info = await this.hv.host();
    const guests = this.store.list();
    const mib = (q: number | string | undefined) => (q === undefined ? 0 : Number((quantityValue(q) ?? 0n) / (1024n * 1024n)));
    return {
      ...info,
      agentVersion: packageVersion(),
      guests: { total: guests.length, running: guests.filter((g) => g.status?.phase === 'Running').length },
      allocatedMemoryMiB: guests.reduce((s, g) => s + mib(g.spec.resources.maxMemory ?? g.spec.resources.memory), 0),
      allocatedCpus: guests.reduce((s, g) => s + (g.spec.resources.maxCpus ?? g.spec.resources.cpus), 0),
    };
  }
}
