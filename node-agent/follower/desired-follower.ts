// Follows the host's desired hash into the store, level-triggered: BullMQ jobs on the host's queue
// only say which field to read again; a poll (epoch and completeness marker, every 5 s) and a full
// read (every 60 s, and whenever the marker moves) catch whatever a job missed. Absence deletes only
// when the hash is complete for the current epoch, so a half-written republish never stops a guest.
// A Guest whose entry did not change is not touched (the store's sync says 'unchanged'), so a
// republish after Redis lost its data restarts no domain.
import { Worker, type Job } from 'bullmq';
import { COMPLETE_FIELD, EPOCH_KEY, QUEUE_PREFIX, desiredKey, fieldOf, queueName } from '../../contracts/redis/contract.js';
import type { GuestStore } from '../store/guest-store.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import { desiredEntry } from './desired-guest.js';
import type { PullTokens } from './pull-tokens.js';
import type { Log, RedisLink } from './redis-link.js';
import type { StatusPublisher } from './status-publisher.js';

export interface FollowerOptions {
  /** How often the epoch and the completeness marker are read (default 5 s). */
  pollMs?: number;
  /** How often the whole hash is read regardless (default 60 s). */
  resyncMs?: number;
  clock?: Clock;
  /** Where the records' pull tokens go (kept out of the store). */
  pullTokens?: PullTokens;
}

export class DesiredFollower {
  /** The epoch whose complete desired state is applied ('' before the first). */
  appliedEpoch = '';
  private worker?: Worker;
  private timer?: { cancel(): void };
  private polling?: Promise<void>;
  private pollAgain = false;
  /** What the last full read saw: epoch and marker; a change means read everything again. */
  private lastMarker?: string;
  private lastFullAt = -Infinity;
  /** Fields skipped, with why: each is logged once, not at every read. */
  private readonly rejected = new Map<string, string>();
  /** Deleting entries already reported gone (field and uid), so each full read does not repeat them. */
  private reportedGone = new Set<string>();
  private stopped = false;
  private readonly clock: Clock;
  private unsubscribe?: () => void;

  constructor(
    private readonly link: RedisLink,
    private readonly host: string,
    private readonly store: GuestStore,
    private readonly publisher: StatusPublisher,
    private readonly log: Log,
    private readonly opts: FollowerOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  start(): void {
    this.worker = new Worker(queueName(this.host), (job: Job) => this.onJob(job), {
      connection: this.link.bullmqOptions,
      prefix: QUEUE_PREFIX,
      concurrency: 4,
      // A connection error stops fetching for this long; Redis back means jobs flow within a second.
      runRetryDelay: 1000,
      removeOnComplete: { count: 1000 },
      removeOnFail: { count: 1000 },
    });
    this.worker.on('error', (err) => this.link.problem('jobs', err));
    this.worker.on('failed', (job, err) =>
      this.log.debug({ job: job?.id, err: err.message }, 'a reconcile job failed; the poll catches up'),
    );
    this.unsubscribe = this.link.onReady(() => this.poll());
    this.poll();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.timer?.cancel();
    await Promise.race([this.worker?.close().catch(() => undefined), new Promise((r) => setTimeout(r, 5000).unref())]);
    await this.polling;
  }

  /** Runs a poll now (or right after the running one). */
  poll(): void {
    if (this.stopped) return;
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.timer?.cancel();
    this.polling = this.pollOnce()
      .then(
        () => this.link.ok('desired'),
        (e) => this.link.problem('desired', e),
      )
      .finally(() => {
        this.polling = undefined;
        if (this.pollAgain) {
          this.pollAgain = false;
          this.poll();
        } else if (!this.stopped) this.timer = this.clock.setTimeout(() => this.poll(), this.opts.pollMs ?? 5000);
      });
  }

  private async pollOnce(): Promise<void> {
    const [epoch, complete] = await this.link.exec<[string | null, string | null]>((m) =>
      m.get(EPOCH_KEY).hget(desiredKey(this.host), COMPLETE_FIELD),
    );
    if (`${epoch}\n${complete}` !== this.lastMarker || this.clock.now() - this.lastFullAt >= (this.opts.resyncMs ?? 60_000))
      await this.fullSync();
  }

  /** Reads the whole hash and applies it; deletes what it lacks only if it is complete for the epoch. */
  private async fullSync(): Promise<void> {
    const [epoch, hash] = await this.link.exec<[string | null, Record<string, string>]>((m) =>
      m.get(EPOCH_KEY).hgetall(desiredKey(this.host)),
    );
    this.lastMarker = `${epoch}\n${hash[COMPLETE_FIELD] ?? null}`;
    this.lastFullAt = this.clock.now();
    const complete = epoch !== null && hash[COMPLETE_FIELD] === epoch;
    const newEpoch = complete && epoch !== this.appliedEpoch;
    if (newEpoch) {
      // Redis was (re)filled from Kubernetes: the status hash is empty or stale, so report everything.
      this.reportedGone.clear();
      this.publisher.republishAll();
    }
    const gone = new Set<string>();
    for (const [field, raw] of Object.entries(hash)) {
      if (field === COMPLETE_FIELD) continue;
      const uid = this.apply(field, raw);
      if (uid) gone.add(`${field}\n${uid}`);
    }
    this.reportedGone = gone;
    for (const field of this.rejected.keys()) if (!Object.hasOwn(hash, field)) this.rejected.delete(field);
    if (complete) {
      for (const key of this.store.keys()) if (!Object.hasOwn(hash, key)) this.deleteAbsent(key);
      if (newEpoch) {
        this.appliedEpoch = epoch;
        this.log.info({ epoch, guests: Object.keys(hash).length - 1 }, 'applied the complete desired state of a new epoch');
      }
    }
    await this.publisher.prune((key) => Object.hasOwn(hash, key)).catch((e) => this.link.problem('status', e));
  }

  /** A Guest the complete hash does not list: the cluster no longer wants it here. */
  private deleteAbsent(key: string): void {
    const rec = this.store.get(key);
    if (!rec || rec.guest.metadata.deletionTimestamp) return;
    this.log.info({ guest: key }, 'deleting a Guest the cluster no longer has for this host');
    this.opts.pullTokens?.delete(key);
    this.store.markDeleted(key, new Date(this.clock.now()));
  }

  /** A job names one Guest: read its field (and, if absent, whether absence means deleted). */
  private async onJob(job: Job): Promise<void> {
    const { namespace, name } = (job.data ?? {}) as { namespace?: unknown; name?: unknown };
    if (typeof namespace !== 'string' || typeof name !== 'string' || namespace.length + name.length > 320) {
      this.log.warn({ job: String(job.id).slice(0, 200) }, 'ignoring a reconcile job without a namespace and name');
      return;
    }
    const field = fieldOf(namespace, name);
    const [epoch, raw, complete] = await this.link.exec<[string | null, string | null, string | null]>((m) =>
      m.get(EPOCH_KEY).hget(desiredKey(this.host), field).hget(desiredKey(this.host), COMPLETE_FIELD),
    );
    if (raw !== null) {
      const uid = this.apply(field, raw);
      if (uid) this.reportedGone.add(`${field}\n${uid}`);
    } else if (epoch !== null && complete === epoch) this.deleteAbsent(field);
  }

  /**
   * Applies one field to the store; a bad one is logged (once) and skipped. Returns the uid when the
   * entry is a deletion of something the store does not hold (reported gone, once per uid).
   */
  private apply(field: string, raw: string): string | undefined {
    let guest;
    try {
      const entry = desiredEntry(field, raw);
      guest = entry.guest;
      this.opts.pullTokens?.set(field, guest.metadata.uid!, entry.pullAuth);
    } catch (e) {
      const why = (e as Error).message;
      if (this.rejected.get(field) !== why) this.log.warn({ field: field.slice(0, 200), err: why }, 'skipping a desired entry');
      this.rejected.set(field, why);
      return undefined;
    }
    this.rejected.delete(field);
    const { uid, generation } = guest.metadata as { uid: string; generation: number };
    try {
      const result = this.store.sync(guest, new Date(this.clock.now()));
      if (result !== 'unchanged') this.log.debug({ guest: field, generation, result }, 'desired state applied');
      if (result !== 'gone') return undefined;
      if (!this.reportedGone.has(`${field}\n${uid}`)) this.publisher.gone(field, uid, generation);
      return uid;
    } catch (e) {
      this.log.error({ guest: field, err: (e as Error).message }, 'storing a desired Guest failed');
      return undefined;
    }
  }
}
