// The Hypervisor on a real Xen dom0, through krata's own Xen userspace (node-agent/xen/): one privcmd
// descriptor, one xenstore connection, one event-channel read loop and one grant device serve every
// guest. xenstore is the truth: a domain is krata's when its krata/guest-key names a Guest
// (xen/krata-keys.ts), so an agent that restarts finds (adopts) its domains again, console included.
//
// Change notification needs no thread or timer per guest: one watch on @releaseDomain (xenstored fires it
// when any domain shuts down or dies; one getdomaininfolist then says which) and one watch per domain on
// its krata/guest subtree, the only place under krata/ the guest may write (how its process ended). What
// the guest writes there is hostile: xen/krata-keys.ts reads it bounded and parses it strictly.
import { DEFAULT_STATE_DIR } from '../../contracts/agent-api/endpoints.js';
import { EventEmitter } from 'node:events';
import { existsSync, realpathSync } from 'node:fs';
import { release } from 'node:os';
import { resolve, sep } from 'node:path';
import {
  ChannelBackend,
  ConsoleBackend,
  DomainBuilder,
  EventChannels,
  GNTDEV_PATH,
  GrantMapper,
  KrataKey,
  NoChannelDevice,
  NotOnXenError,
  Privcmd,
  XenControl,
  XenstoreClient,
  destroyDomain,
  attachedLoops,
  detachLoop,
  domainUuid,
  encodeGuestKey,
  hasGuestKey,
  isKrataHandle,
  krataHandle,
  krataPath,
  readGuestExit,
  readKrataDomain,
  readLoops,
  removeDomainStore,
  requestPoweroff,
  writeResourceTargets,
  type ChannelLimits,
  type ConsoleLimits,
  type ConsoleSession,
  type GuestExit,
  type GuestIdentity,
  type KrataDomainRecord,
  type ResizeResult,
  type ResourceTargets,
  type Watch,
  type XenDomainInfo,
} from '../xen/index.js';
import type { GuestChannel } from '../channel/types.js';
import { openGuestChannel } from '../channel/index.js';
import type { Console, CreateOptions, DomainInfo, DomainState, DomainStats, GuestDomainConfig, Hypervisor } from './hypervisor.js';
import { noPhases, type PhaseTimer } from '../../lib/phase-timer.js';
import type { HostInfo } from '../../contracts/agent-api/types.js';
import { packageVersion } from '../../lib/version.js';
import { GuestChannels, type ChannelFactory } from './guest-channels.js';
import { DomainNames } from './domain-names.js';
import { BootFileCache } from './boot-files.js';
import { settleAll } from './settle-all.js';

export { NotOnXenError } from '../xen/index.js';

export interface XenHypervisorOptions {
  /** Console history kept per guest (bytes). */
  consoleHistoryBytes?: number;
  /** Per-guest console bounds (output rate and burst, queued input); defaults in xen/console/throttle.ts. */
  consoleLimits?: ConsoleLimits;
  /** krata's state directory: loop devices over files below it are krata's (cleanupOrphans). */
  stateDir?: string;
  /** How long destroy() waits for a destroyed domain to disappear (ms). */
  destroyTimeoutMs?: number;
  /** For tests: another privcmd device path. */
  privcmdPath?: string;
  /** The guest channel (console device 1): per-guest bounds, how long a connect waits for the guest, and what speaks over it. */
  channel?: {
    limits?: ChannelLimits;
    connectTimeoutMs?: number;
    /** Default openGuestChannel (node-agent/channel/). */
    open?: ChannelFactory;
  };
}

const DEFAULT_HISTORY_BYTES = 256 * 1024;
/** A console that failed to attach is retried by list() no sooner than this. */
const CONSOLE_RETRY_MS = 10_000;

// ---- Domain state --------------------------------------------------------------------------------------

/** Xen's domain flags as a DomainState: dying, then shut down (crash and watchdog: crashed), paused, running. */
export function domainState(info: Pick<XenDomainInfo, 'dying' | 'shutdown' | 'shutdownReason' | 'paused'>): DomainState {
  if (info.dying) return 'dying';
  if (info.shutdown) return info.shutdownReason === 3 || info.shutdownReason === 4 ? 'crashed' : 'shutdown';
  if (info.paused) return 'paused';
  return 'running';
}

/** Xen's figures for a domain, from getdomaininfo: CPU time in seconds, pages as bytes, vCPUs. */
export function domainStats(info: Pick<XenDomainInfo, 'cpuTimeNs' | 'totalPages' | 'maxPages' | 'onlineVcpus' | 'maxVcpuId'>): DomainStats {
  return {
    cpuSeconds: Number(info.cpuTimeNs) / 1e9,
    memoryBytes: info.totalPages * XEN_PAGE_BYTES,
    maxMemoryBytes: info.maxPages * XEN_PAGE_BYTES,
    vcpusOnline: info.onlineVcpus,
    // max_vcpu_id is ~0 for a domain without vCPUs (XEN_INVALID_MAX_VCPU_ID).
    vcpusMax: info.maxVcpuId === 0xffffffff ? 0 : info.maxVcpuId + 1,
  };
}

const XEN_PAGE_BYTES = 4096;

// ---- Loop devices ------------------------------------------------------------------------------------

/** Whether `file` lies below `dir` (both absolute; `dir` itself does not count). */
export function isUnder(file: string, dir: string): boolean {
  const d = dir.endsWith(sep) ? dir : dir + sep;
  return file.startsWith(d) && file.length > d.length;
}

// ---- The hypervisor ----------------------------------------------------------------------------------

/** A krata domain this process serves (console, exit watch) and whose state it follows. */
interface Tracked {
  domid: number;
  uuid: string;
  state: DomainState | 'gone';
  meta?: KrataDomainRecord;
  session?: ConsoleSession;
  console?: Console;
  /** The console attach in progress: concurrent list() calls wait for the same one. */
  attaching?: Promise<void>;
  consoleRetryAt: number;
  watch?: Watch;
  /** The last exit seen (JSON), so that only a new report emits 'change'. */
  exitKey: string;
  /** The last exit seen, and whether it was read since the krata/guest watch was in place (list() may then use it). */
  exit?: GuestExit;
  exitKnown: boolean;
  exitChain: Promise<void>;
  exitCheckQueued: boolean;
}

const home = (domid: number) => `/local/domain/${domid}`;
/** A create in flight, by the Guest and the creation time it records. */
const flightKey = (guest: GuestIdentity, createdAt: number) => `${encodeGuestKey(guest)}\0${createdAt}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// Not @injectable(): the container's runtime module opens it (node-agent/container/modules.ts), and importing
// inversify here would cost every dom0 tool that only needs the hypervisor ~13 s under TCG.
export class XenHypervisor implements Hypervisor {
  readonly events = new EventEmitter();
  /** 'state' (domid) whenever a followed domain's state changes: shutdown() waits on it. */
  private readonly internal = new EventEmitter();
  private readonly tracked = new Map<number, Tracked>();
  /** Domains being torn down by this process: never adopted again. */
  private readonly destroying = new Set<number>();
  /** Creates in flight (flightKey): their domains' handles and disk files (cleanupOrphans leaves those alone). */
  private readonly creating = new Map<string, { uuid: string; files: string[] }>();
  /** Domain names of creates in flight: two concurrent creates cannot both pass the name check. */
  private readonly naming = new Set<string>();
  /** Live domains' names, read once per domain (the name check of a create is not n reads). */
  private readonly names = new DomainNames();
  private readonly builder: DomainBuilder;
  private readonly backend: ConsoleBackend;
  private readonly channels: GuestChannels;
  private readonly historyBytes: number;
  private readonly consoleLimits: ConsoleLimits;
  private readonly stateDir: string;
  private readonly destroyTimeoutMs: number;
  /** Kernels and initrds, kept while unchanged: not read again for every launch. */
  private readonly bootFiles = new BootFileCache();
  private closed = false;

  private constructor(
    private readonly privcmd: Privcmd,
    private readonly xen: XenControl,
    private readonly xs: XenstoreClient,
    private readonly evtchn: EventChannels,
    private readonly grants: GrantMapper | undefined,
    opts: XenHypervisorOptions,
  ) {
    this.builder = new DomainBuilder(privcmd, xen, xs);
    this.backend = new ConsoleBackend(privcmd, evtchn, xs, grants);
    const channelBackend = new ChannelBackend(xs, evtchn, grants);
    const channel = opts.channel ?? {};
    this.channels = new GuestChannels({
      hasDevice: (domid) => channelBackend.hasDevice(domid),
      connect: (domid) => channelBackend.connect(domid, { timeoutMs: channel.connectTimeoutMs, limits: channel.limits }),
      isPermanent: (e) => e instanceof NoChannelDevice,
      open: channel.open ?? openGuestChannel,
      software: `krata-node-agent ${packageVersion()}`,
    });
    this.historyBytes = opts.consoleHistoryBytes ?? DEFAULT_HISTORY_BYTES;
    this.consoleLimits = opts.consoleLimits ?? {};
    this.stateDir = resolve(opts.stateDir ?? DEFAULT_STATE_DIR);
    this.destroyTimeoutMs = opts.destroyTimeoutMs ?? 30_000;
    this.events.setMaxListeners(0);
    this.internal.setMaxListeners(0);
  }

  /**
   * Connect to Xen (privcmd, xenstore, event channels, grants). Anywhere that is not a usable Xen dom0,
   * this is one NotOnXenError saying what is missing, with nothing left open.
   */
  static async open(opts: XenHypervisorOptions = {}): Promise<XenHypervisor> {
    let privcmd: Privcmd | undefined;
    let xs: XenstoreClient | undefined;
    let evtchn: EventChannels | undefined;
    let grants: GrantMapper | undefined;
    try {
      privcmd = Privcmd.open(opts.privcmdPath !== undefined ? { privcmd: opts.privcmdPath } : {});
      const xen = new XenControl(privcmd);
      xen.version(); // NotOnXenError when the hypervisor does not answer
      void xen.interfaceVersions; // NotOnXenError for a Xen we do not speak
      try {
        xs = await XenstoreClient.connect();
      } catch (e) {
        throw new NotOnXenError((e as Error).message);
      }
      try {
        evtchn = await EventChannels.open();
      } catch (e) {
        throw new NotOnXenError(`cannot open the event channel device: ${(e as Error).message}`);
      }
      if (existsSync(GNTDEV_PATH)) {
        try {
          grants = GrantMapper.open();
        } catch {
          grants = undefined; // consoles are mapped by frame instead
        }
      }
      const hv = new XenHypervisor(privcmd, xen, xs, evtchn, grants, opts);
      await hv.start();
      return hv;
    } catch (e) {
      grants?.close();
      await evtchn?.close().catch(() => undefined);
      xs?.close();
      try {
        privcmd?.close();
      } catch {
        // already closed
      }
      throw e;
    }
  }

  /** Stop serving consoles and watching; the domains keep running (a new process adopts them). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channels.dropAll('the agent is stopping');
    for (const t of [...this.tracked.values()]) this.untrack(t, false);
    this.grants?.close();
    await this.evtchn.close().catch(() => undefined);
    this.xs.close(); // xenstored drops this connection's watches with it
    this.privcmd.close();
  }

  async host(): Promise<HostInfo> {
    const version = this.xen.version();
    const h = this.xen.host();
    return {
      xenVersion: version.text,
      cpus: h.nrCpus,
      totalMemoryMiB: Number(h.totalBytes / 1048576n),
      freeMemoryMiB: Number(h.freeBytes / 1048576n),
      kernelVersion: release(),
    };
  }

  async list(): Promise<DomainInfo[]> {
    this.assertOpen();
    const domains = this.xen.listDomains().filter((d) => d.domid !== 0);
    const found = await Promise.all(
      domains.map(async (d) => {
        // krata's keys never change (the guest cannot write them): a followed domain's are kept.
        const known = this.tracked.get(d.domid);
        const same = known?.uuid === d.uuid ? known : undefined;
        const meta = same?.meta ?? (await readKrataDomain(this.xs, d.domid));
        if (!meta) return undefined;
        // A watched domain's exit is kept current by its watch: no three reads per domain per list.
        const cached = same ? watchedExit(same, domainState(d)) : undefined;
        return { d, meta, exit: cached ? cached.exit : await readGuestExit(this.xs, d.domid) };
      }),
    );
    const out: DomainInfo[] = [];
    const adoptions: Promise<void>[] = [];
    for (const f of found) {
      if (!f) continue;
      const { d, meta, exit } = f;
      const state = domainState(d);
      out.push({ domid: d.domid, uuid: d.uuid, ...meta, state, ...(exit ? { exit } : {}) });
      adoptions.push(this.adopt(d, meta, state, exit));
    }
    // Consoles of adopted domains are attached when list() resolves.
    await Promise.all(adoptions);
    return out;
  }

  async create(config: GuestDomainConfig, opts: CreateOptions = {}): Promise<DomainInfo> {
    this.assertOpen();
    // One name, one domain: checked against every live domain (krata's or not) and creates in flight.
    const name = config.name;
    const refuse = (why: string) => new Error(`domain name "${name}" is ${why}; refusing a second domain with it`);
    if (this.naming.has(name)) throw refuse('being used by another create in progress');
    this.naming.add(name);
    try {
      const holder = await this.names.find(this.xs, this.xen.listDomains(), name);
      if (holder !== undefined) throw refuse(`already used by domain ${holder}`);
      const phases = opts.phases ?? noPhases;
      phases.mark('name check');
      return await this.build(config, phases);
    } finally {
      this.naming.delete(name);
    }
  }

  private async build(config: GuestDomainConfig, phases: PhaseTimer): Promise<DomainInfo> {
    const createdAt = Date.now();
    const uuid = krataHandle();
    const flight = flightKey(config.guest, createdAt);
    this.creating.set(flight, { uuid, files: config.disks.map((d) => realpathOr(d.file)) });
    let tracked: Tracked | undefined;
    try {
      const [kernel, initrd] = await Promise.all([
        this.bootFiles.get(config.kernel),
        config.initrd ? this.bootFiles.get(config.initrd) : undefined,
      ]);
      phases.mark('read boot files');
      const meta: KrataDomainRecord = { name: config.name, guest: config.guest, createdAt };
      const built = await this.builder.launch(
        config,
        { kernel, initrd },
        {
          uuid,
          createdAt,
          consoleBackend: 'krata',
          controlChannel: true,
          // Console and exit watch are in place before the guest runs: nothing it prints or reports is missed.
          phases,
          beforeUnpause: async (domid) => {
            tracked = newTracked(domid, uuid, 'running');
            tracked.meta = meta;
            const t = tracked;
            // Both are round trips to xenstored: sent together. Both settle before a failure goes on, so
            // the cleanup (untrack) finds the session and the watch it must end.
            await settleAll([
              this.backend.attach(domid, this.historyBytes, this.consoleLimits).then((s) => {
                t.session = s;
                t.console = consoleOf(s);
              }),
              this.watchGuest(t),
            ]);
            phases.mark('console attach and exit watch');
          },
        },
      );
      this.tracked.set(built.domid, tracked!);
      this.names.remember(built.domid, uuid, config.name);
      // In the background: the guest's kernel offers the channel's ring once it has booted.
      this.channels.ensure(built.domid, true);
      // A guest that ended before it was followed still gets its 'change'.
      this.refreshStates();
      return { domid: built.domid, uuid, ...meta, state: tracked!.state === 'gone' ? 'dying' : tracked!.state };
    } catch (e) {
      // The builder has destroyed the domain and released its loop devices; our grant mapping of its
      // console ring would keep it a zombie, so it goes too.
      if (tracked) this.untrack(tracked, true);
      throw e;
    } finally {
      this.creating.delete(flight);
    }
  }

  async shutdown(domid: number, graceMs: number): Promise<'graceful' | 'forced'> {
    this.assertOpen();
    checkDomid(domid);
    // Woken by the @releaseDomain watch (through refreshStates), or at the latest every 500 ms.
    const graceful = await requestPoweroff(this.xen, this.xs, domid, graceMs, {
      pollMs: 500,
      wake: (check) => {
        const onState = (id: number) => id === domid && check();
        this.internal.on('state', onState);
        return () => void this.internal.off('state', onState);
      },
    });
    await this.destroy(domid);
    return graceful ? 'graceful' : 'forced';
  }

  async destroy(domid: number): Promise<void> {
    this.assertOpen();
    checkDomid(domid);
    this.destroying.add(domid);
    try {
      const t = this.tracked.get(domid);
      // Console mapping and event channel go first: a mapped grant would keep the dead domain a zombie.
      if (t) this.untrack(t, true);
      // destroydomain (ESRCH is fine), the backends' and the domain's xenstore trees, the loop devices.
      await destroyDomain(this.xen, this.xs, domid);
      const deadline = performance.now() + this.destroyTimeoutMs;
      for (let wait = 10; this.xen.domain(domid); wait = Math.min(wait * 2, 250)) {
        if (performance.now() > deadline)
          throw new Error(`domain ${domid} is still dying ${this.destroyTimeoutMs / 1000} s after destroydomain`);
        await sleep(wait);
      }
      if (t) this.emitChange(domid);
    } finally {
      this.destroying.delete(domid);
    }
  }

  console(domid: number): Console | undefined {
    return this.tracked.get(domid)?.console;
  }

  channel(domid: number): GuestChannel | undefined {
    return this.tracked.has(domid) ? this.channels.get(domid) : undefined;
  }

  async resize(domid: number, targets: ResourceTargets): Promise<ResizeResult> {
    this.assertOpen();
    checkDomid(domid);
    const info = this.xen.domain(domid);
    if (!info || domainState(info) === 'dying') throw new Error(`domain ${domid} is gone`);
    // Xen's count of the domain's vCPUs bounds the keys written; static-max (dom0's) bounds memory.
    return writeResourceTargets(this.xs, domid, targets, domainStats(info).vcpusMax);
  }

  stats(domid: number): DomainStats | undefined {
    this.assertOpen();
    const info = this.xen.domain(domid);
    return info ? domainStats(info) : undefined;
  }

  async cleanupOrphans(): Promise<string[]> {
    this.assertOpen();
    const removed: string[] = [];
    // Everything that might be an orphan is read before the domain list: anything a domain created
    // after the snapshot set up cannot be in it (loops of creates in flight are excluded by file).
    const stateDir = realpathOr(this.stateDir);
    const loops = attachedLoops().filter((l) => isUnder(l.backingFile, stateDir) || isUnder(l.backingFile, this.stateDir));
    const inFlight = new Set([...this.creating.values()].flatMap((c) => c.files));
    const backends = {
      vbd: await this.xs.tryList('/local/domain/0/backend/vbd'),
      vif: await this.xs.tryList('/local/domain/0/backend/vif'),
      console: await this.xs.tryList('/local/domain/0/backend/console'),
    };
    const homes = await this.xs.tryList('/local/domain');
    const domains = this.xen.listDomains();
    const live = new Set(domains.map((d) => d.domid));

    // Domains of builds an earlier agent did not finish before it wrote their xenstore entries: paused,
    // nameless, known as krata's only by their handle. Their loop devices go below with the others.
    // Read in this order: a build of ours in the list is either still in flight now or has written its
    // keys before it ended (a build that starts after the list is not in it).
    const building = new Set([...this.creating.values()].map((c) => c.uuid));
    const keyed = new Set<number>();
    await Promise.all(
      domains.filter((d) => isKrataHandle(d.uuid)).map(async (d) => (await hasGuestKey(this.xs, d.domid)) && keyed.add(d.domid)),
    );
    for (const d of strayBuilds(domains, { keyed, building, destroying: this.destroying })) {
      this.destroying.add(d.domid);
      try {
        await destroyDomain(this.xen, this.xs, d.domid, d.uuid);
      } finally {
        this.destroying.delete(d.domid);
      }
      live.delete(d.domid);
      removed.push(`domain ${d.domid} (an interrupted build: no xenstore entries)`);
    }

    const referenced = new Set<string>();
    await Promise.all(
      [...live]
        .filter((id) => id !== 0)
        .map(async (id) => {
          for (const p of await readLoops(this.xs, id)) referenced.add(p);
        }),
    );
    // xenstore trees of krata domains that no longer exist (an agent that died while destroying).
    for (const name of homes) {
      const id = Number(name);
      if (!/^[1-9]\d{0,4}$/.test(name) || live.has(id) || this.destroying.has(id)) continue;
      if (!(await hasGuestKey(this.xs, id))) continue;
      await removeDomainStore(this.xs, id, await domainUuid(this.xen, this.xs, id));
      removed.push(`xenstore ${home(id)}`);
    }
    // Device backends whose frontend domain is gone (netback removes the vif with its backend).
    for (const kind of ['vbd', 'vif', 'console'] as const) {
      for (const name of backends[kind]) {
        const id = Number(name);
        if (!/^[1-9]\d{0,4}$/.test(name) || live.has(id) || this.destroying.has(id)) continue;
        await this.xs.rm(`/local/domain/0/backend/${kind}/${id}`);
        removed.push(`xenstore /local/domain/0/backend/${kind}/${id}`);
      }
    }
    for (const l of loops) {
      if (referenced.has(l.path) || inFlight.has(l.backingFile)) continue;
      try {
        detachLoop(l.path);
        removed.push(`loop ${l.path} (${l.backingFile})`);
      } catch {
        // gone meanwhile, or not ours to detach
      }
    }
    return removed;
  }

  // ---- internals -------------------------------------------------------------------------------------

  private async start(): Promise<void> {
    // Fires (once) at once, then whenever xenstored sees a domain shut down or die.
    await this.xs.watch('@releaseDomain', () => this.refreshStates());
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the XenHypervisor is closed');
  }

  /** One getdomaininfolist: a 'change' for each followed domain whose state changed or that is gone. */
  private refreshStates(): void {
    if (this.closed || this.tracked.size === 0) return;
    let infos: Map<number, XenDomainInfo>;
    try {
      infos = new Map(this.xen.listDomains().map((d) => [d.domid, d]));
    } catch {
      return; // the next event or list() tries again
    }
    for (const t of [...this.tracked.values()]) {
      const info = infos.get(t.domid);
      const state = info && info.uuid === t.uuid ? domainState(info) : 'gone';
      if (state === t.state) continue;
      t.state = state;
      if (state === 'gone') this.untrack(t, true);
      this.internal.emit('state', t.domid);
      this.emitChange(t.domid);
    }
  }

  /** Listeners run on the next tick: a throwing one cannot break the bookkeeping that emitted. */
  private emitChange(domid: number): void {
    process.nextTick(() => this.events.emit('change', domid));
  }

  /** A krata domain found by list() that this process does not follow yet: follow it, attach its console. */
  private async adopt(d: XenDomainInfo, meta: KrataDomainRecord, state: DomainState, exit: DomainInfo['exit']): Promise<void> {
    if (this.closed || this.destroying.has(d.domid)) return;
    if (this.creating.has(flightKey(meta.guest, meta.createdAt))) return; // ours, still being built
    let t = this.tracked.get(d.domid);
    if (t && t.uuid !== d.uuid) {
      this.untrack(t, true); // the domid was reused
      t = undefined;
    }
    if (!t) {
      // list() read xenstore meanwhile: the domain may be gone (destroyed by us or someone else) since.
      if (this.xen.domain(d.domid)?.uuid !== d.uuid) return;
      t = newTracked(d.domid, d.uuid, state);
      t.meta = meta;
      t.exitKey = JSON.stringify(exit ?? null);
      this.tracked.set(d.domid, t);
      this.watchGuest(t).catch(() => undefined);
    }
    if (state === 'running' || state === 'paused') this.channels.ensure(d.domid);
    if (!t.session && state !== 'dying') await this.attachConsole(t);
  }

  private attachConsole(t: Tracked): Promise<void> {
    if (t.attaching) return t.attaching;
    if (t.session || Date.now() < t.consoleRetryAt) return Promise.resolve();
    t.attaching = (async () => {
      try {
        const session = await this.backend.attach(t.domid, this.historyBytes, this.consoleLimits);
        if (this.tracked.get(t.domid) !== t || this.closed) {
          session.close();
          return;
        }
        t.session = session;
        t.console = consoleOf(session);
      } catch {
        t.consoleRetryAt = Date.now() + CONSOLE_RETRY_MS;
      } finally {
        t.attaching = undefined;
      }
    })();
    return t.attaching;
  }

  /** Watch the domain's krata/guest subtree: a new exit report emits 'change' at once. */
  private async watchGuest(t: Tracked): Promise<void> {
    const watch = await this.xs.watch(krataPath(t.domid, KrataKey.guestDir), () => this.checkExit(t));
    // Untracked meanwhile (destroyed, gone, closed): the watch goes again.
    if (t.state === 'gone' || this.closed) await watch.unwatch().catch(() => undefined);
    else t.watch = watch;
  }

  /** Bursts of writes by the guest coalesce into one read. */
  private checkExit(t: Tracked): void {
    if (t.exitCheckQueued) return;
    t.exitCheckQueued = true;
    t.exitChain = t.exitChain
      .then(async () => {
        t.exitCheckQueued = false;
        if (this.closed || t.state === 'gone') return;
        const exit = await readGuestExit(this.xs, t.domid);
        const key = JSON.stringify(exit ?? null);
        t.exit = exit;
        t.exitKnown = true;
        if (key !== t.exitKey) {
          t.exitKey = key;
          this.emitChange(t.domid);
        }
      })
      .catch(() => undefined);
  }

  private untrack(t: Tracked, unwatch: boolean): void {
    if (this.tracked.get(t.domid) === t) {
      this.tracked.delete(t.domid);
      this.channels.drop(t.domid, 'the domain is gone');
    }
    t.state = 'gone';
    if (t.session) {
      try {
        t.session.close();
      } catch {
        // the domain took its channel with it
      }
      t.session = undefined;
    }
    const w = t.watch;
    t.watch = undefined;
    if (w && unwatch && !this.closed) void w.unwatch().catch(() => undefined);
  }
}

/**
 * The domains a build left before it wrote their xenstore entries: krata's handle, no krata keys, and
 * no create of this process building them. (A domain with keys is the reconciler's: it destroys a
 * paused one and adopts a running one.)
 */
export function strayBuilds<D extends { domid: number; uuid: string }>(
  domains: readonly D[],
  known: { keyed: ReadonlySet<number>; building: ReadonlySet<string>; destroying: ReadonlySet<number> },
): D[] {
  return domains.filter(
    (d) =>
      d.domid !== 0 && isKrataHandle(d.uuid) && !known.keyed.has(d.domid) && !known.building.has(d.uuid) && !known.destroying.has(d.domid),
  );
}

function newTracked(domid: number, uuid: string, state: DomainState): Tracked {
  return { domid, uuid, state, consoleRetryAt: 0, exitKey: 'null', exitKnown: false, exitChain: Promise.resolve(), exitCheckQueued: false };
}

/**
 * The exit list() may take from a followed domain instead of reading xenstore: only while the domain
 * runs (or is paused), its krata/guest watch has delivered and no newer event waits to be read. An
 * ended domain's exit is always read afresh, since its reconcile decides on it.
 */
export function watchedExit(
  t: Pick<Tracked, 'exit' | 'exitKnown' | 'exitCheckQueued' | 'watch'>,
  state: DomainState,
): { exit: GuestExit | undefined } | undefined {
  if (!t.exitKnown || t.exitCheckQueued || !t.watch || (state !== 'running' && state !== 'paused')) return undefined;
  return { exit: t.exit };
}

/** The Console view of a session; writes after the session closed are dropped. */
function consoleOf(session: ConsoleSession): Console {
  let open = true;
  session.setMaxListeners(0);
  session.once('close', () => (open = false));
  return {
    history: () => session.history.contents(),
    onData(cb) {
      // Listeners run inside the event-channel loop every guest shares: one that throws is reported, not
      // allowed to unwind through it.
      const listener = (data: Buffer) => {
        try {
          cb(data);
        } catch (e) {
          process.emitWarning(`a console listener of domain ${session.domid} threw: ${(e as Error).message}`);
        }
      };
      session.on('data', listener);
      return () => void session.off('data', listener);
    },
    write(data) {
      return open ? session.write(data) : true;
    },
    onDrain(cb) {
      return session.onDrain(cb);
    },
  };
}

function checkDomid(domid: number): void {
  if (!Number.isInteger(domid) || domid <= 0 || domid >= 0x7ff0) throw new RangeError(`not a guest domain id: ${domid}`);
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}
