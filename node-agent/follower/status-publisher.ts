// Status back to the operator: every store change becomes a StatusReport, written in one MULTI to the
// host's status hash (the level: the latest report per Guest) and the status stream (the edge: a
// notification). Reports are coalesced per Guest (a burst of status writes makes one report) and held
// until Redis has them: only the latest per Guest and uid is kept, so an outage costs memory bounded
// by the Guests the agent held when it began (in cluster mode nothing new arrives while Redis is down).
import { STATUS_STREAM, STATUS_STREAM_MAXLEN, statusKey, type StatusReport } from '../../contracts/redis/contract.js';
import type { GuestStore } from '../store/guest-store.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import type { WatchEvent } from '../../contracts/agent-api/types.js';
import type { RedisLink } from './redis-link.js';

export interface PublisherOptions {
  /** Reports wait this long for more changes to the same Guest (default 100 ms). */
  coalesceMs?: number;
  /** A failed write is tried again after this long, or at once on reconnection (default 1 s). */
  retryMs?: number;
  clock?: Clock;
}

/** Reports per MULTI: a host's worth of republished statuses does not block Redis for long. */
const BATCH = 500;

interface Pending {
  key: string;
  report: StatusReport;
}

export class StatusPublisher {
  /** By key and uid: an old uid's final `null` must reach the operator even when a new uid follows at once. */
  private readonly pending = new Map<string, Pending>();
  private timer?: { cancel(): void; at: number };
  private flushing?: Promise<void>;
  private readonly clock: Clock;
  private readonly unsubscribe: Array<() => void> = [];
  private stopped = false;

  constructor(
    private readonly link: RedisLink,
    private readonly host: string,
    private readonly store: GuestStore,
    private readonly opts: PublisherOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  start(): void {
    const onChange = (e: WatchEvent) => {
      const { metadata, status } = e.object;
      this.enqueue(
        `${metadata.namespace ?? 'default'}/${metadata.name}`,
        metadata.uid!,
        metadata.generation ?? 1,
        e.type === 'DELETED' ? null : (status ?? {}),
      );
    };
    this.store.on('change', onChange);
    this.unsubscribe.push(
      () => this.store.off('change', onChange),
      this.link.onReady(() => this.schedule(0)),
    );
  }

  /** Reports every Guest's current status again (the status hash was lost with the rest of Redis). */
  republishAll(): void {
    for (const g of this.store.list())
      this.enqueue(`${g.metadata.namespace ?? 'default'}/${g.metadata.name}`, g.metadata.uid!, g.metadata.generation ?? 1, g.status ?? {});
  }

  /** Reports a Guest the store does not hold (deleted before it got here, or long gone) as gone. */
  gone(key: string, uid: string, generation: number): void {
    this.enqueue(key, uid, generation, null);
  }

  /**
   * Drops status fields of Guests that are gone for good: in neither the desired hash (`desired`, the
   * operator removes a field once it has seen the Guest gone) nor the store, and with no report
   * pending (a write in flight stays pending until it lands, so none is deleted behind it). Without
   * this the hash would keep a tombstone for every Guest the host ever ran.
   */
  async prune(desired: (key: string) => boolean): Promise<void> {
    const hash = statusKey(this.host);
    const fields = await this.link.client.hkeys(hash);
    // Decided and sent in one go: a report enqueued later is written after the HDEL (one connection).
    const pendingKeys = new Set([...this.pending.values()].map((p) => p.key));
    const stale = fields.filter((key) => !desired(key) && !this.store.get(key) && !pendingKeys.has(key));
    if (stale.length) await this.link.client.hdel(hash, ...stale);
  }

  /** Reports not yet in Redis. */
  get backlog(): number {
    return this.pending.size;
  }

  /** Stops listening; one last attempt to write what is pending. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const u of this.unsubscribe.splice(0)) u();
    this.timer?.cancel();
    this.timer = undefined;
    await this.flushing;
    if (this.pending.size && this.link.up) await this.flush();
  }

  private enqueue(key: string, uid: string, generation: number, status: StatusReport['status']): void {
    const id = `${key}\n${uid}`;
    this.pending.delete(id); // re-inserted last: the hash ends with the newest report of the key
    this.pending.set(id, { key, report: { uid, generation, status, time: new Date(this.clock.now()).toISOString() } });
    this.schedule(this.opts.coalesceMs ?? 100);
  }

  /** Flushes in `ms` unless a flush is due sooner. */
  private schedule(ms: number): void {
    if (this.stopped) return;
    const at = this.clock.now() + ms;
    if (this.timer && this.timer.at <= at) return;
    this.timer?.cancel();
    const t = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, ms);
    this.timer = { at, cancel: () => t.cancel() };
  }

  private async flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => this.flush());
    if (!this.pending.size) return;
    this.flushing = this.write().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async write(): Promise<void> {
    const batch = [...this.pending].slice(0, BATCH);
    const hash = statusKey(this.host);
    try {
      await this.link.exec((multi) => {
        for (const [, { key, report }] of batch) {
          const json = JSON.stringify(report);
          multi
            .hset(hash, key, json)
            .xadd(STATUS_STREAM, 'MAXLEN', '~', STATUS_STREAM_MAXLEN, '*', 'host', this.host, 'key', key, 'report', json);
        }
        return multi;
      });
    } catch (e) {
      this.link.problem('status', e);
      this.schedule(this.opts.retryMs ?? 1000);
      return;
    }
    this.link.ok('status');
    // Whatever changed while the MULTI was in flight stays pending.
    for (const [id, p] of batch) if (this.pending.get(id) === p) this.pending.delete(id);
    if (this.pending.size) this.schedule(0);
  }
}
