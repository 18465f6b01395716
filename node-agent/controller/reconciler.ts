// The host reconciler, in controller-runtime's mould: one idempotent, level-triggered
// `reconcile(key)` that compares a Guest's desired state (the store) with what runs (the hypervisor's
// domain list, which xenstore backs) and takes one step towards the desired state, recording what it
// did in status. A work queue runs it with per-key backoff; domain events and a periodic resync feed
// the queue, so nothing depends on having seen every event.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Condition, Guest, GuestStatus, PortRange } from '../../crds/generated/types.js';
import { DEFAULT_HOST_PORTS } from '../../crds/host-ports.js';
import { quantityValue } from '../../crds/quantity.js';
import { composeLaunchConfig, LaunchConfigError, type GuestNetworkConfig } from '../guest/launch-config.js';
import type { ImageConfig } from '../../lib/oci/manifest.js';
import type { PullAuth } from '../../lib/oci/registry.js';
import { writeConfigDisk } from './config-disk.js';
import { HostPortGuard } from './host-ports.js';
import type { EventRecorder } from './events.js';
import { guestKey, type GuestRecord, type GuestStore } from '../store/guest-store.js';
import type { DomainInfo, GuestDomainConfig, Hypervisor } from '../runtime/hypervisor.js';
import type { Clock } from '../../lib/clock.js';
import type { Ipam, Reservation } from './ipam.js';
import { WorkQueue, type HandlerResult } from '../../lib/work-queue.js';
import { Semaphore } from '../../lib/semaphore.js';
import { metaTime } from '../../crds/meta.js';

/** Where images come from (ImageStore in the agent; a double in tests). */
export interface ImageProvider {
  /**
   * The image for `reference` under the pull policy, with the Guest's credentials (`auth`, whose
   * namespace must have proved access to a cached image); throws ImageError on failure.
   */
  ensure(reference: string, policy: 'Always' | 'IfNotPresent' | 'Never', auth?: PullAuth): Promise<{ digest: string; path: string; config: ImageConfig }>;
  /**
   * A hint: ensure() needs no registry and no pack (the image is cached, the policy lets it be used
   * and `auth`'s namespace has proved access), so it need not wait for a pull slot. Without it every
   * ensure() takes a slot.
   */
  cached?(reference: string, policy: 'Always' | 'IfNotPresent' | 'Never', auth?: PullAuth): boolean;
}

type PulledImage = Awaited<ReturnType<ImageProvider['ensure']>>;

/** A pull running outside the reconcile workers for one Guest (its uid and the spec it pulls for). */
interface PullJob {
  uid: string;
  reference: string;
  policy: string;
  result?: { image: PulledImage } | { error: unknown };
  /** Its reconcile returned without the result: requeue the Guest when it comes. */
  background?: boolean;
}

/** An image failure with a Kubernetes-style reason (ErrImagePull, ErrImageNeverPull, InvalidImageName). */
export class ImageError extends Error {
  constructor(
    readonly reason: string,
    message: string,
    readonly permanent = false,
  ) {
    super(message);
  }
}

export interface ReconcilerOptions {
  stateDir: string;
  kernel: string;
  initrd: string;
  /** Appended to the guest kernel's command line. */
  cmdline?: string;
  nameservers?: string[];
  nodeName: string;
  concurrency?: number;
  /** Image pulls at once (default 4): they run beside the reconcile workers, never in them. */
  pullConcurrency?: number;
  /** The host's pull slots, shared with the API's pulls (then pullConcurrency is ignored). */
  pullSlots?: Semaphore;
  resyncMs?: number;
  /**
   * Directories a Guest's kernel.path and initrd.path may point into (default: the directories of
   * the node's kernel and initrd): the agent reads those files as root for whoever may use its API.
   */
  bootFileDirs?: string[];
  /** Called after each reconcile with its duration (metrics). */
  observe?: (ms: number, error?: unknown) => void;
  /**
   * A Guest's pull credentials: its namespace's pull secrets (single host) or the operator's
   * repository tokens (cluster). Without it, pulls carry the namespace only (node credentials).
   */
  pullAuth?: (g: Guest) => PullAuth;
  /** Writes the config disk; simulations of many hosts swap mksquashfs for something cheaper. */
  writeConfigDisk?: typeof writeConfigDisk;
  /** Host ports Guests may publish here (--host-ports; default 1024-65535). */
  hostPorts?: readonly PortRange[];
}

const RESTART_BASE_MS = 10_000;
const RESTART_MAX_MS = 300_000;
const RESTART_RESET_MS = 600_000;
/** guest-init kills the process at the grace period and powers off: give it this long to do so. */
const POWEROFF_MARGIN_MS = 5_000;
const MIB = 1024n * 1024n;

/** A failure that stops progress until the spec changes: status says so; no retry. */
class Stalled extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function mib(q: number | string | undefined, fallback: number): number {
  if (q === undefined) return fallback;
  const v = quantityValue(q);
  if (v === undefined) throw new Stalled('InvalidSpec', `memory quantity ${JSON.stringify(q)} is not valid`);
  return Number((v + MIB - 1n) / MIB);
}

/** The spec fields a domain is built from: a change means a new domain (cpus/memory apply live). */
/** Longest domain name krata gives (xl prints names in a column; hostnames stop at 63 too). */
export const MAX_DOMAIN_NAME = 63;

/**
 * The Xen domain name of a Guest: "krata.<namespace>.<name>". A namespace is a DNS label (no dot), so
 * the first dot after "krata." ends it and no two Guests share a name ("a-b/c" and "a/b-c" were both
 * krata-a-b-c once). Too long for that, it is "krata-<uid>", which no readable name can equal.
 */
export function domainName(namespace: string, name: string, uid: string): string {
  const readable = `krata.${namespace}.${name}`;
  return readable.length <= MAX_DOMAIN_NAME ? readable : `krata-${uid}`;
}

/** The store key of the Guest a domain runs. */
const keyOf = (d: DomainInfo) => guestKey(d.guest.namespace, d.guest.name);

export function specHash(g: Guest): string {
  const { resources, nodeSelector: _n, ...rest } = g.spec;
  const stable = { ...rest, resources: { maxCpus: resources.maxCpus ?? resources.cpus, maxMemory: resources.maxMemory ?? resources.memory } };
  return createHash('sha256').update(JSON.stringify(stable)).digest('hex').slice(0, 16);
}


export class Reconciler {
  readonly queue: WorkQueue;
  private snapshot?: { at: number; domains: DomainInfo[] };
  private resyncTimer?: { cancel(): void };
  private readonly unsubscribe: () => void;
  private readonly disksDir: string;
  /** Pulls by Guest key; the image store shares one job per digest among them. */
  private readonly pulls = new Map<string, PullJob>();
  private readonly pullSlots: Semaphore;
  private readonly ports: HostPortGuard;
  /** How soon a Guest waiting for a host port another Guest holds looks again. */
  static readonly PORT_RETRY_MS = 5_000;

  constructor(
    private readonly store: GuestStore,
    private readonly hv: Hypervisor,
    private readonly images: ImageProvider,
    private readonly ipam: Ipam,
    private readonly recorder: EventRecorder,
    private readonly clock: Clock,
    private readonly opts: ReconcilerOptions,
  ) {
    this.disksDir = join(opts.stateDir, 'disks');
    this.ports = new HostPortGuard(store, opts.hostPorts ?? DEFAULT_HOST_PORTS);
    mkdirSync(this.disksDir, { recursive: true, mode: 0o700 });
    this.pullSlots = opts.pullSlots ?? new Semaphore(opts.pullConcurrency ?? 4);
    this.queue = new WorkQueue((key) => this.timed(key), { concurrency: opts.concurrency ?? 8, clock }, (key, err) => {
      // The same failure again counts up one event (kubectl's "x5 over 2m"), so no delay in the text.
      this.recorder.warning(key, 'ReconcileError', (err as Error).message);
    });
    const onStore = (key: string) => this.queue.add(key);
    const onDomain = (domid: number) => {
      this.snapshot = undefined;
      // A domain that vanished is in no list: its Guest is found through the status.
      for (const key of this.store.keys()) if (this.store.get(key)?.guest.status?.domid === domid) this.queue.add(key);
      this.background(this.enqueueDomains(), 'DomainListFailed');
    };
    this.store.on('desired', onStore);
    this.hv.events.on('change', onDomain);
    this.unsubscribe = () => {
      this.store.off('desired', onStore);
      this.hv.events.off('change', onDomain);
    };
  }

  /** Starts the loop: a full resync now and every `resyncMs`. */
  run(): void {
    this.background(this.resync(), 'ResyncFailed');
  }

  private stopped = false;

  /** Work started outside the queue (resync, event handling): a failure is an event, not a crash. */
  private background(p: Promise<unknown>, reason: string): void {
    p.catch((e: Error) => this.recorder.host(reason, e?.message ?? String(e)));
  }

  stop(): void {
    this.stopped = true;
    this.resyncTimer?.cancel();
    this.unsubscribe();
    this.queue.stop();
  }

  /**
   * Every Guest and every krata domain is compared again; orphaned devices are removed. The first
   * resync reconciles everything; later ones only the keys whose stored status does not match what
   * runs (a full comparison, so still level-triggered, but a host of steady guests costs one list).
   */
  async resync(): Promise<void> {
    this.resyncTimer?.cancel();
    try {
      this.snapshot = undefined;
      const domains = await this.domains();
      const byKey = new Map<string, DomainInfo[]>();
      for (const d of domains) byKey.set(keyOf(d), [...(byKey.get(keyOf(d)) ?? []), d]);
      for (const key of new Set([...this.store.keys(), ...byKey.keys()])) {
        if (!this.firstResyncDone || !this.inSync(key, byKey.get(key) ?? [])) this.queue.add(key);
      }
      this.firstResyncDone = true;
      for (const o of await this.hv.cleanupOrphans()) this.recorder.host('OrphanRemoved', `removed ${o}, which belonged to no domain`);
      this.removeStrayDisks(domains);
    } finally {
      if (!this.stopped) this.resyncTimer = this.clock.setTimeout(() => this.background(this.resync(), 'ResyncFailed'), this.opts.resyncMs ?? 15_000);
    }
  }

  private firstResyncDone = false;
  private readonly hashes = new Map<string, string>();

  /** The Guest's spec hash, computed once per uid and generation. */
  private hashOf(g: Guest): string {
    const k = `${g.metadata.uid}/${g.metadata.generation}`;
    let h = this.hashes.get(k);
    if (!h) {
      if (this.hashes.size > 10_000) this.hashes.clear();
      h = specHash(g);
      this.hashes.set(k, h);
    }
    return h;
  }

  /** Nothing to do: a running Guest whose status already describes its one running domain, or a finished one. */
  private inSync(key: string, doms: DomainInfo[]): boolean {
    const rec = this.store.get(key);
    if (!rec || rec.guest.metadata.deletionTimestamp) return false;
    const s = rec.guest.status ?? {};
    const gen = rec.guest.metadata.generation ?? 1;
    if (s.observedGeneration !== gen || (rec.internal.failures ?? 0) > 0) return false;
    if (doms.length === 0) return s.phase === 'Succeeded' || s.phase === 'Failed';
    const d = doms[0]!;
    return doms.length === 1 && s.phase === 'Running' && s.domid === d.domid && d.state === 'running' && !d.exit && d.guest.uid === rec.guest.metadata.uid && d.guest.specHash === this.hashOf(rec.guest);
  }

  private async enqueueDomains(): Promise<void> {
    for (const d of await this.domains()) this.queue.add(keyOf(d));
  }

  /** The domain list, shared by reconciles within 500 ms (xenstore is read once, not per Guest). */
  private async domains(): Promise<DomainInfo[]> {
    const now = this.clock.now();
    if (this.snapshot && now - this.snapshot.at < 500) return this.snapshot.domains;
    // A list that began before a create or destroy finished may not show it: read again until
    // no change happened while listing (else a Guest could be created twice).
    for (;;) {
      const epoch = this.epoch;
      const domains = await this.hv.list();
      if (epoch !== this.epoch) continue;
      this.snapshot = { at: now, domains };
      return domains;
    }
  }

  private async destroyDomain(domid: number): Promise<void> {
    await this.hv.destroy(domid);
    this.forget(domid);
  }

  /** Bumped by every create and destroy this reconciler makes. */
  private epoch = 0;

  private forget(domid: number): void {
    this.epoch++;
    if (this.snapshot) this.snapshot.domains = this.snapshot.domains.filter((d) => d.domid !== domid);
  }

  private async timed(key: string): Promise<HandlerResult> {
    const t0 = performance.now();
    try {
      const r = await this.reconcile(key);
      this.opts.observe?.(performance.now() - t0);
      return r;
    } catch (e) {
      this.opts.observe?.(performance.now() - t0, e);
      throw e;
    }
  }

  async reconcile(key: string): Promise<HandlerResult> {
    const rec = this.store.get(key);
    const domains = (await this.domains()).filter((d) => keyOf(d) === key);
    if (!rec) {
      // A domain no Guest wants (deleted while the agent was down, or left by a crash).
      for (const d of domains) {
        await this.destroyDomain(d.domid);
        this.recorder.host('OrphanRemoved', `destroyed domain ${d.domid} (${d.name}): no Guest ${key}`);
        rmSync(join(this.disksDir, `${d.guest.uid}.sqfs`), { force: true });
      }
      if (!this.store.get(key)) this.ipam.release(key);
      this.pulls.delete(key);
      return;
    }
    if (rec.guest.metadata.deletionTimestamp) return this.finalize(key, rec, domains);
    const hash = this.hashOf(rec.guest);
    const uid = rec.guest.metadata.uid!;
    for (const d of domains) {
      if (d.guest.uid === uid && d.guest.specHash === hash) continue;
      const why = d.guest.uid !== uid ? 'it belongs to an earlier Guest of this name' : 'the spec changed';
      this.recorder.normal(key, 'Killing', `stopping domain ${d.domid}: ${why}`);
      this.setStatus(key, (s) => {
        s.phase = 'Creating';
        if (s.domid === d.domid) delete s.domid;
        s.reason = d.guest.uid !== uid ? 'Replaced' : 'SpecChanged';
        s.message = `recreating the domain: ${why}`;
        this.condition(rec, s, 'Ready', 'False', s.reason, s.message);
      });
      await this.hv.shutdown(d.domid, rec.guest.spec.terminationGracePeriodSeconds * 1000 + POWEROFF_MARGIN_MS);
      this.forget(d.domid);
    }
    let current = domains.filter((d) => d.guest.uid === uid && d.guest.specHash === hash);
    // A paused domain is a build an earlier agent did not finish (krata never pauses guests).
    for (const d of current.filter((x) => x.state === 'paused')) {
      this.recorder.warning(key, 'IncompleteDomain', `destroying domain ${d.domid}: left paused by an interrupted create`);
      await this.destroyDomain(d.domid);
    }
    current = current.filter((d) => d.state !== 'paused');
    // One domain per Guest: keep the one status names (else the newest), destroy the rest.
    if (current.length > 1) {
      const keep = current.find((d) => d.domid === rec.guest.status?.domid) ?? current.reduce((a, b) => (b.createdAt > a.createdAt ? b : a));
      for (const d of current.filter((x) => x !== keep)) {
        this.recorder.warning(key, 'DuplicateDomain', `destroying domain ${d.domid}: domain ${keep.domid} already runs this Guest`);
        await this.destroyDomain(d.domid);
      }
      current = [keep];
    }
    const dom = current[0];
    if (dom && dom.state !== 'shutdown' && dom.state !== 'crashed' && !dom.exit) return this.observeRunning(key, rec, dom);
    if (dom) return this.observeExit(key, rec, dom);
    // Status says a domain runs, but none does: it was destroyed behind krata's back, or the host
    // rebooted. That is the process ending without a report; the restart policy decides.
    const latest = this.store.get(key) ?? rec;
    const st = latest.guest.status;
    if (st?.phase === 'Running' && st.domid !== undefined) {
      return this.observeExit(key, latest, { domid: st.domid, createdAt: Date.parse(st.startTime ?? '') || this.clock.now(), lost: true });
    }
    return this.startIfDue(key, latest);
  }

  private observeRunning(key: string, rec: GuestRecord, dom: DomainInfo): HandlerResult {
    const res = this.ipam.get(key);
    this.setStatus(key, (s) => {
      s.phase = 'Running';
      s.domid = dom.domid;
      s.uuid = dom.uuid;
      s.node = this.opts.nodeName;
      s.startTime ??= metaTime(dom.createdAt);
      delete s.reason;
      delete s.message;
      if (res && rec.guest.spec.network.enabled) s.addresses = addresses(res);
      this.condition(rec, s, 'Ready', 'True', 'Running', `domain ${dom.domid} is running`);
      this.condition(rec, s, 'Reconciling', 'False', 'Running', '');
      this.condition(rec, s, 'Stalled', 'False', 'Running', '');
    });
    // A running guest that stays up long enough has its crash count forgiven.
    const ran = this.clock.now() - dom.createdAt;
    if ((rec.internal.failures ?? 0) > 0) {
      if (ran >= RESTART_RESET_MS) this.store.setStatus(key, this.store.get(key)!.guest.status!, { ...rec.internal, failures: 0 });
      else return { requeueAfterMs: RESTART_RESET_MS - ran };
    }
    return;
  }

  private async observeExit(key: string, rec: GuestRecord, dom: Pick<DomainInfo, 'domid' | 'createdAt' | 'exit'> & { lost?: boolean }): Promise<HandlerResult> {
    const exit = dom.lost ? { initError: 'the domain disappeared without reporting an exit' } : (dom.exit ?? {});
    const policy = rec.guest.spec.restartPolicy;
    const failed = exit.signal !== undefined || exit.initError !== undefined || (exit.exitCode ?? 1) !== 0;
    const restart = policy === 'Always' || (policy === 'OnFailure' && failed);
    const what = dom.lost ? exit.initError! : exit.initError !== undefined ? `guest-init failed: ${exit.initError}` : exit.signal !== undefined ? `killed by signal ${exit.signal}` : exit.exitCode !== undefined ? `exited with code ${exit.exitCode}` : 'the domain stopped without reporting an exit';
    this.recorder[failed ? 'warning' : 'normal'](key, failed ? 'Failed' : 'Completed', `domain ${dom.domid}: ${what}`);
    const now = this.clock.now();
    const ranMs = now - dom.createdAt;
    const crashes = ranMs >= RESTART_RESET_MS ? 0 : (rec.internal.failures ?? 0);
    const delay = Math.min(RESTART_BASE_MS * 2 ** crashes, RESTART_MAX_MS);
    this.setStatus(
      key,
      (s) => {
        delete s.domid;
        delete s.exitCode;
        delete s.signal;
        if (exit.exitCode !== undefined) s.exitCode = exit.exitCode;
        if (exit.signal !== undefined) s.signal = exit.signal;
        s.finishTime = metaTime(now);
        if (restart) {
          s.phase = 'Pending';
          s.restartCount = (s.restartCount ?? 0) + 1;
          s.reason = 'CrashLoopBackOff';
          s.message = `back-off ${Math.round(delay / 1000)}s restarting: ${what}`;
          this.condition(rec, s, 'Ready', 'False', 'CrashLoopBackOff', s.message);
          this.condition(rec, s, 'Reconciling', 'True', 'CrashLoopBackOff', s.message);
        } else {
          s.phase = failed ? 'Failed' : 'Succeeded';
          s.reason = failed ? 'Error' : 'Completed';
          s.message = what;
          this.condition(rec, s, 'Ready', 'False', s.reason, what);
          this.condition(rec, s, 'Reconciling', 'False', s.reason, '');
        }
      },
      restart ? { ...rec.internal, failures: crashes + 1, notBefore: now + delay } : rec.internal,
    );
    // The exit is on record before the domain goes: a crash in between cannot lose it.
    if (!dom.lost) {
      await this.destroyDomain(dom.domid);
    }
    return restart ? { requeueAfterMs: delay } : undefined;
  }

  private async startIfDue(key: string, rec: GuestRecord): Promise<HandlerResult> {
    const s = rec.guest.status ?? {};
    const gen = rec.guest.metadata.generation ?? 1;
    // A process that ended for good stays ended, until the spec changes.
    if ((s.phase === 'Succeeded' || s.phase === 'Failed') && s.observedGeneration === gen) return;
    if (s.reason && this.isStalled(rec) && s.observedGeneration === gen) return;
    const wait = (rec.internal.notBefore ?? 0) - this.clock.now();
    if (wait > 0) return { requeueAfterMs: wait };
    const ports = this.ports.claim(key, rec.guest);
    if ('reason' in ports && ports.reason === 'HostPortConflict') {
      this.recorder.warning(key, ports.reason, ports.message);
      this.setStatus(key, (st) => {
        st.phase = 'Pending';
        st.reason = ports.reason;
        st.message = ports.message;
        this.condition(rec, st, 'Ready', 'False', ports.reason, ports.message);
        this.condition(rec, st, 'Reconciling', 'True', ports.reason, ports.message);
      });
      return { requeueAfterMs: Reconciler.PORT_RETRY_MS };
    }
    try {
      if ('reason' in ports) throw new Stalled(ports.reason, ports.message);
      await this.start(key, rec);
    } catch (e) {
      if (e instanceof Stalled) {
        this.recorder.warning(key, e.reason, e.message);
        this.setStatus(key, (st) => {
          st.phase = 'Failed';
          st.reason = e.reason;
          st.message = e.message;
          this.condition(rec, st, 'Stalled', 'True', e.reason, e.message);
          this.condition(rec, st, 'Reconciling', 'False', e.reason, e.message);
          this.condition(rec, st, 'Ready', 'False', e.reason, e.message);
        });
        return;
      }
      throw e;
    } finally {
      if ('release' in ports) ports.release();
    }
    return;
  }

  private isStalled(rec: GuestRecord): boolean {
    return rec.guest.status?.conditions?.some((c) => c.type === 'Stalled' && c.status === 'True') ?? false;
  }

  private async start(key: string, rec: GuestRecord): Promise<void> {
    const g = rec.guest;
    const uid = g.metadata.uid!;
    // Image: pulled outside the workers; this reconcile ends while it runs.
    const policy = g.spec.imagePullPolicy ?? (/:latest$/.test(g.spec.image) || !/[:@][^/]*$/.test(g.spec.image) ? 'Always' : 'IfNotPresent');
    let image;
    try {
      // The namespace is always the Guest's own: a provider cannot make one Guest prove for another.
      const auth = { ...this.opts.pullAuth?.(g), namespace: g.metadata.namespace ?? 'default' };
      image = await this.pulled(key, uid, g.spec.image, policy, auth);
    } catch (e) {
      const reason = e instanceof ImageError ? e.reason : 'ErrImagePull';
      const message = `${g.spec.image}: ${(e as Error).message}`;
      this.setStatus(key, (s) => {
        s.phase = 'Pending';
        s.reason = reason;
        s.message = message;
        this.condition(rec, s, 'ImageReady', 'False', reason, message);
      });
      if (e instanceof ImageError && e.permanent) throw new Stalled(reason, message);
      throw new Error(message);
    }
    if (!image) {
      this.setStatus(key, (s) => {
        s.phase = 'Pending';
        s.node = this.opts.nodeName;
        s.reason = 'ImagePulling';
        s.message = `pulling ${g.spec.image}`;
        this.condition(rec, s, 'ImageReady', 'False', 'ImagePulling', s.message);
        this.condition(rec, s, 'Reconciling', 'True', 'ImagePulling', s.message);
        this.condition(rec, s, 'Stalled', 'False', 'ImagePulling', '');
      });
      return;
    }
    const pulled = image;
    this.setStatus(key, (s) => {
      s.phase = 'Creating';
      s.node = this.opts.nodeName;
      if (s.reason === 'ImagePulling') {
        delete s.reason;
        delete s.message;
      }
      s.imageDigest = pulled.digest;
      this.condition(rec, s, 'Reconciling', 'True', 'Creating', 'preparing the network and domain');
      this.condition(rec, s, 'Stalled', 'False', 'Creating', '');
      this.condition(rec, s, 'ImageReady', 'True', 'Pulled', `${g.spec.image} is ${pulled.digest}`);
    });
    // Resources.
    const memoryMiB = mib(g.spec.resources.memory, 512);
    const maxMemoryMiB = Math.max(memoryMiB, mib(g.spec.resources.maxMemory, memoryMiB));
    const host = await this.hv.host();
    if (maxMemoryMiB > host.totalMemoryMiB) throw new Stalled('InsufficientMemory', `maxMemory ${maxMemoryMiB} MiB is more than this host has (${host.totalMemoryMiB} MiB)`);
    if (maxMemoryMiB > host.freeMemoryMiB) {
      this.setStatus(key, (s) => {
        s.phase = 'Pending';
        s.reason = 'InsufficientMemory';
        s.message = `waiting for memory: ${maxMemoryMiB} MiB needed, ${host.freeMemoryMiB} MiB free`;
      });
      throw new Error(`not enough free memory (${maxMemoryMiB} MiB needed, ${host.freeMemoryMiB} MiB free)`);
    }
    for (const [field, path] of [['spec.kernel.path', g.spec.kernel?.path], ['spec.initrd.path', g.spec.initrd?.path]] as const) {
      if (path !== undefined) this.checkBootFile(field, path);
    }
    if (g.spec.kernel?.image || g.spec.initrd?.image) throw new Stalled('KernelImageUnsupported', 'kernel.image and initrd.image (kernels from OCI images) are not supported yet; use kernel.path/initrd.path or the node default');
    // Network.
    let reservation: Reservation | undefined;
    let network: GuestNetworkConfig | undefined;
    if (g.spec.network.enabled) {
      reservation = this.ipam.reserve(key, uid);
      network = {
        // Offloads on (the kernel's defaults): kratanet takes and sends virtio-net headers, GSO
        // super-frames and partial checksums included, so the guest need not segment or checksum.
        interfaces: [{ name: 'eth0', addresses: [`${reservation.ipv4}/${reservation.prefix4}`, `${reservation.ipv6}/${reservation.prefix6}`], mtu: 1500, offloads: true }],
        routes: [
          { to: 'default', via: reservation.gateway4 },
          { to: 'default', via: reservation.gateway6 },
        ],
        nameservers: this.opts.nameservers ?? ['1.1.1.1', '2606:4700:4700::1111'],
        searches: [],
      };
      const r = reservation;
      this.setStatus(key, (s) => {
        s.addresses = addresses(r);
        this.condition(rec, s, 'NetworkReady', 'True', 'AddressesAssigned', `${r.ipv4}, ${r.ipv6}`);
      });
    }
    // Config disk.
    let launchConfig;
    try {
      launchConfig = composeLaunchConfig(g.metadata.name, g.spec, image.config.config, network);
    } catch (e) {
      if (e instanceof LaunchConfigError) throw new Stalled('InvalidSpec', e.message);
      throw e;
    }
    const disk = join(this.disksDir, `${uid}.sqfs`);
    await (this.opts.writeConfigDisk ?? writeConfigDisk)(disk, launchConfig);
    // Domain.
    const launch: GuestDomainConfig = {
      name: domainName(g.metadata.namespace ?? 'default', g.metadata.name, uid),
      guest: { namespace: g.metadata.namespace ?? 'default', name: g.metadata.name, uid, specHash: specHash(g) },
      vcpus: g.spec.resources.cpus,
      maxVcpus: Math.max(g.spec.resources.cpus, g.spec.resources.maxCpus ?? g.spec.resources.cpus),
      memoryMiB,
      maxMemoryMiB,
      kernel: g.spec.kernel?.path ?? this.opts.kernel,
      initrd: g.spec.initrd?.path ?? this.opts.initrd,
      cmdline: ['console=hvc0', g.spec.kernel?.verbose ? '' : 'quiet loglevel=3', this.opts.cmdline ?? '', g.spec.kernel?.cmdline ?? ''].filter(Boolean).join(' '),
      disks: [
        { file: image.path, vdev: 'xvda' },
        { file: disk, vdev: 'xvdb' },
      ],
      nics: reservation ? [{ mac: reservation.mac }] : [],
    };
    let dom: DomainInfo;
    try {
      dom = await this.hv.create(launch);
    } catch (e) {
      const message = (e as Error).message;
      this.setStatus(key, (s) => {
        s.phase = 'Pending';
        s.reason = 'FailedCreate';
        s.message = message;
        this.condition(rec, s, 'Ready', 'False', 'FailedCreate', message);
      });
      throw new Error(`creating the domain failed: ${message}`);
    }
    this.epoch++;
    this.snapshot?.domains.push(dom);
    this.recorder.normal(key, 'Started', `domain ${dom.domid} (${dom.name}) started with ${image.digest}`);
    this.setStatus(key, (s) => {
      s.phase = 'Running';
      s.domid = dom.domid;
      s.uuid = dom.uuid;
      s.startTime = metaTime(dom.createdAt);
      delete s.reason;
      delete s.message;
      this.condition(rec, s, 'Ready', 'True', 'Running', `domain ${dom.domid} is running`);
      this.condition(rec, s, 'Reconciling', 'False', 'Running', '');
    });
  }

  /**
   * The Guest's image, or undefined while a pull runs for it in the background (bounded by
   * pullConcurrency; a cache hit skips the wait for a slot). The Guest is requeued when the pull
   * ends; its result, image or error, is taken by the next reconcile.
   */
  private async pulled(key: string, uid: string, reference: string, policy: 'Always' | 'IfNotPresent' | 'Never', auth: PullAuth): Promise<PulledImage | undefined> {
    let job = this.pulls.get(key);
    // A job for an earlier spec or an earlier Guest of this name: its result is dropped.
    if (job && (job.uid !== uid || job.reference !== reference || job.policy !== policy)) job = undefined;
    if (!job) {
      const j: PullJob = { uid, reference, policy };
      job = j;
      this.pulls.set(key, j);
      // A Guest deleted (or changed) while its pull waited for a slot needs it no more.
      const ensure = () => (this.pulls.get(key) === j ? this.images.ensure(reference, policy, auth) : Promise.reject(new Error('pull dropped')));
      const p = this.images.cached?.(reference, policy, auth) ? ensure() : this.pullSlots.run(ensure);
      const settled = p.then(
        (image) => void (j.result = { image }),
        (error: unknown) => void (j.result = { error }),
      );
      void settled.then(() => {
        if (j.background && this.pulls.get(key) === j) this.queue.add(key);
      });
      // A cache hit settles at once: it needs no round trip through the queue.
      await Promise.race([settled, new Promise((r) => setImmediate(r))]);
      if (!j.result) {
        j.background = true;
        this.recorder.normal(key, 'Pulling', `pulling image ${reference}`);
      }
    }
    if (!job.result) return undefined;
    this.pulls.delete(key);
    if ('error' in job.result) throw job.result.error;
    return job.result.image;
  }

  private checkBootFile(field: string, path: string): void {
    const dirs = (this.opts.bootFileDirs ?? [dirname(this.opts.kernel), dirname(this.opts.initrd)]).map((d) => (existsSync(d) ? realpathSync(d) : d));
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      throw new Stalled('InvalidSpec', `${field}: ${path} does not exist on this node`);
    }
    if (!dirs.some((d) => real.startsWith(`${d}/`))) throw new Stalled('InvalidSpec', `${field}: ${path} is outside the directories this node boots guests from (${dirs.join(', ')})`);
  }

  private async finalize(key: string, rec: GuestRecord, domains: DomainInfo[]): Promise<HandlerResult> {
    const grace = (rec.guest.metadata.deletionGracePeriodSeconds ?? rec.guest.spec.terminationGracePeriodSeconds) * 1000;
    this.setStatus(key, (s) => {
      s.phase = 'Terminating';
      this.condition(rec, s, 'Ready', 'False', 'Terminating', 'the guest is being deleted');
    });
    for (const d of domains) {
      this.recorder.normal(key, 'Killing', `stopping domain ${d.domid} (grace period ${grace / 1000} s)`);
      const how = await this.hv.shutdown(d.domid, grace + POWEROFF_MARGIN_MS);
      this.forget(d.domid);
      if (how === 'forced') this.recorder.warning(key, 'ForcedStop', `domain ${d.domid} did not stop within ${grace / 1000} s and was destroyed`);
    }
    this.ipam.release(key);
    this.pulls.delete(key); // a pull still running is not waited for; its result is dropped
    rmSync(join(this.disksDir, `${rec.guest.metadata.uid}.sqfs`), { force: true });
    this.store.remove(key);
    this.recorder.forget(key);
  }

  /** Config disks of Guests that no longer exist (a crash between steps). */
  private removeStrayDisks(domains: DomainInfo[]): void {
    if (!existsSync(this.disksDir)) return;
    const live = new Set([...this.store.keys().map((k) => this.store.get(k)?.guest.metadata.uid), ...domains.map((d) => d.guest.uid)]);
    for (const f of readdirSync(this.disksDir)) {
      const uid = f.replace(/\.sqfs(\.partial)?$/, '');
      if (!live.has(uid)) rmSync(join(this.disksDir, f), { force: true });
    }
  }

  /** Applies `edit` to a copy of the status, with observedGeneration, and stores it if it changed. */
  private setStatus(key: string, edit: (s: GuestStatus) => void, internal?: GuestRecord['internal']): void {
    const rec = this.store.get(key);
    if (!rec) return;
    const s: GuestStatus = structuredClone(rec.guest.status ?? {});
    edit(s);
    s.observedGeneration = rec.guest.metadata.generation ?? 1;
    this.store.setStatus(key, s, internal);
  }

  /** Sets a condition; lastTransitionTime moves only when its status changes. */
  private condition(rec: GuestRecord, s: GuestStatus, type: string, status: Condition['status'], reason: string, message: string): void {
    const list = (s.conditions ??= []);
    const old = list.find((c) => c.type === type);
    const next: Condition = {
      type,
      status,
      observedGeneration: rec.guest.metadata.generation ?? 1,
      lastTransitionTime: old && old.status === status ? old.lastTransitionTime : metaTime(this.clock.now()),
      reason,
      message,
    };
    if (old) Object.assign(old, next);
    else list.push(next);
  }
}

function addresses(r: Reservation): NonNullable<GuestStatus['addresses']> {
  return { ipv4: r.ipv4, ipv6: r.ipv6, mac: r.mac, gatewayIPv4: r.gateway4, gatewayIPv6: r.gateway6 };
}
