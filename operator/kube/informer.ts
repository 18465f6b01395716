// A cache of all objects of one kind, kept current like client-go's reflector and store: list, then
// watch from the list's resourceVersion; rewatch when the server ends a watch; relist (with backoff) on
// 410 Gone, errors, or a silent watch; and a full relist every relistMs that re-emits every object so
// controllers reconcile level-triggered.
//
// Silence detection: kube-apiserver 1.20 sends a bookmark only when the resource changed after the watch
// began (the cacher drops bookmarks not newer than the watch's start), so a healthy watch on a quiet
// resource delivers nothing at all. What it does deliver is its end, after timeoutSeconds. So every
// watch is short (60 s by default) and the watchdog is longer: a watch that neither delivers nor ends
// within watchdogMs sits on a dead connection (a NAT or proxy that dropped it without a reset).
import type { ObjectMeta } from '../../crds/meta.js';
import type { Kind, KubeClient, WatchEvent } from './client.js';
import { wakeableSleep } from './wakeable-sleep.js';

export type InformerEvent = 'add' | 'update' | 'delete' | 'resync';
export type Handler<T> = (obj: T, old?: T) => void;

export interface InformerOptions {
  /** Full relist period. */
  relistMs?: number;
  /** A watch that neither delivers nor ends for this long is dead; must exceed watchTimeoutSeconds. */
  watchdogMs?: number;
  /** Server-side watch duration; the informer rewatches from the last resourceVersion after it. */
  watchTimeoutSeconds?: number;
  log?: (msg: string, err?: unknown) => void;
}

const PAGE = 500;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

/** namespace/name, or name for cluster-scoped objects. */
export function keyOf(obj: { metadata: ObjectMeta }): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

export class Informer<T extends { metadata: ObjectMeta }> {
  /** Lists after the first one. */
  relists = 0;
  watchdogFirings = 0;

  private readonly store = new Map<string, T>();
  private readonly handlers: Record<InformerEvent, Handler<T>[]> = { add: [], update: [], delete: [], resync: [] };
  private readonly relistMs: number;
  private readonly watchdogMs: number;
  private readonly watchTimeoutSeconds: number;
  private readonly log: (msg: string, err?: unknown) => void;
  private resourceVersion = '';
  private listed = false;
  private nextRelistAt = 0;
  private running?: Promise<void>;
  private stopped = false;
  private abortWatch?: () => void;
  private wake?: () => void;
  private markSynced!: () => void;
  private readonly syncedPromise = new Promise<void>((resolve) => (this.markSynced = resolve));

  constructor(
    private readonly client: KubeClient,
    private readonly kind: Kind,
    opts: InformerOptions = {},
  ) {
    this.relistMs = opts.relistMs ?? 10 * 60_000;
    this.watchdogMs = opts.watchdogMs ?? 90_000;
    this.watchTimeoutSeconds = opts.watchTimeoutSeconds ?? 60;
    this.log = opts.log ?? (() => {});
    if (this.watchdogMs <= this.watchTimeoutSeconds * 1000) {
      throw new Error(
        `watchdogMs (${this.watchdogMs}) must exceed watchTimeoutSeconds (${this.watchTimeoutSeconds} s): a quiet watch only ends`,
      );
    }
  }

  on(event: InformerEvent, handler: Handler<T>): this {
    this.handlers[event].push(handler);
    return this;
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  keys(): string[] {
    return [...this.store.keys()];
  }

  /** Resolves once the first list is in the cache (and its add events are delivered). */
  synced(): Promise<void> {
    return this.syncedPromise;
  }

  start(): void {
    this.running ??= this.run();
  }

  /** Ends the watch and the loop; resolves when the loop has exited. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abortWatch?.();
    this.wake?.();
    await this.running;
  }

  private async run(): Promise<void> {
    let backoff = 0;
    let needList = true;
    let resync = false;
    while (!this.stopped) {
      let healthy = false;
      try {
        if (needList) {
          await this.relist(resync);
          needList = resync = false;
        }
        if (this.stopped) break;
        const ended = await this.watchOnce(() => (healthy = true));
        if (ended === 'relist') needList = resync = true;
        backoff = 0;
      } catch (e) {
        if (this.stopped) break;
        // A watch that worked before failing starts the backoff over.
        backoff = healthy || !backoff ? BACKOFF_MIN_MS : Math.min(backoff * 2, BACKOFF_MAX_MS);
        this.log(`${this.kind}: relisting in ${backoff} ms`, e);
        needList = true;
        await this.sleep(backoff);
      }
    }
  }

  /** Lists page by page into the cache, emitting the differences; deletions once the list is complete. */
  private async relist(resync: boolean): Promise<void> {
    const seen = new Set<string>();
    let cont: string | undefined;
    let rv: string;
    do {
      const page = await this.client.list(this.kind, { limit: PAGE, continue: cont });
      if (this.stopped) return;
      for (const obj of page.items as unknown as T[]) {
        const key = keyOf(obj);
        seen.add(key);
        this.put(key, obj);
      }
      cont = page.continue;
      rv = page.resourceVersion;
    } while (cont);
    for (const [key, old] of this.store) {
      if (!seen.has(key)) {
        this.store.delete(key);
        this.emit('delete', old);
      }
    }
    if (resync) for (const obj of this.store.values()) this.emit('resync', obj);
    if (this.listed) this.relists++;
    this.listed = true;
    this.resourceVersion = rv;
    this.nextRelistAt = Date.now() + this.relistMs;
    this.markSynced();
  }

  /**
   * One watch from the current resourceVersion. Returns 'ended' when the server closed it and 'relist'
   * when the periodic relist is due; throws on errors and when the watchdog finds it silent.
   */
  private async watchOnce(onHealthy: () => void): Promise<'ended' | 'relist'> {
    let why: 'relist' | 'watchdog' | undefined;
    let events = 0;
    const started = Date.now();
    const watch = this.client.watch(
      this.kind,
      { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: this.watchTimeoutSeconds },
      (ev) => {
        dog.refresh();
        if (events++ === 0) onHealthy();
        this.apply(ev as unknown as WatchEvent<T>);
      },
    );
    const stopWatch = (reason: typeof why) => {
      why ??= reason;
      watch.abort();
    };
    const dog = setTimeout(() => {
      this.watchdogFirings++;
      stopWatch('watchdog');
    }, this.watchdogMs);
    const relist = setTimeout(() => stopWatch('relist'), Math.max(0, this.nextRelistAt - Date.now()));
    this.abortWatch = () => watch.abort();
    try {
      await watch.done;
    } finally {
      clearTimeout(dog);
      clearTimeout(relist);
      this.abortWatch = undefined;
    }
    if (why === 'watchdog') throw new Error(`${this.kind}: watch silent for ${this.watchdogMs} ms`);
    if (why === 'relist') return 'relist';
    // A server that closes watches at once would otherwise make this a busy loop.
    if (!this.stopped && events === 0 && Date.now() - started < 1000) throw new Error(`${this.kind}: watch closed at once`);
    return 'ended';
  }

  private apply(ev: WatchEvent<T>): void {
    const obj = ev.object as T & { metadata: ObjectMeta };
    this.resourceVersion = obj.metadata.resourceVersion ?? this.resourceVersion;
    if (ev.type === 'BOOKMARK') return;
    const key = keyOf(obj);
    if (ev.type === 'DELETED') {
      const old = this.store.get(key);
      this.store.delete(key);
      this.emit('delete', obj, old);
    } else {
      this.put(key, obj);
    }
  }

  /** Caches obj; managedFields are dropped because no controller reads them and they are most of the bytes. */
  private put(key: string, obj: T): void {
    const old = this.store.get(key);
    if (old && old.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    delete obj.metadata.managedFields;
    this.store.set(key, obj);
    if (old) this.emit('update', obj, old);
    else this.emit('add', obj);
  }

  private emit(event: InformerEvent, obj: T, old?: T): void {
    for (const h of this.handlers[event]) {
      try {
        h(obj, old);
      } catch (e) {
        this.log(`${this.kind}: ${event} handler failed for ${keyOf(obj)}`, e);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    const { done, wake } = wakeableSleep(ms);
    this.wake = wake;
    return done;
  }
}
