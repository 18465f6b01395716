// The operator's half of the Redis contract for desired state: one hash per host, written only when a
// Guest's record changes, each change followed by a BullMQ job that nudges the host's agent. It keeps a
// mirror of what it wrote, so a reconcile that changes nothing costs no Redis round trip, and it owns
// the epoch: when `krata:epoch` is missing (Redis lost its data, or a fresh install) it rewrites every
// host's hash from Kubernetes, marks each complete, and only then sets a new epoch.
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Guest } from '../crds/generated/types.js';
import {
  COMPLETE_FIELD,
  EPOCH_KEY,
  QUEUE_PREFIX,
  desiredKey,
  fieldOf,
  jobId,
  queueName,
  type DesiredGuest,
  type DesiredPullAuth,
  type ReconcileJob,
} from '../contracts/redis/contract.js';

/** The record a placed Guest gets in its host's hash; `pullAuth`: its pull tokens (pull-tokens.ts), never Secrets. */
export function desiredRecord(g: Guest, pullAuth?: DesiredPullAuth): DesiredGuest {
  const m = g.metadata;
  const d: DesiredGuest = { namespace: m.namespace ?? 'default', name: m.name, uid: m.uid!, generation: m.generation ?? 1, spec: g.spec };
  if (m.labels && Object.keys(m.labels).length) d.labels = m.labels;
  const owner = m.ownerReferences?.find((o) => o.controller === true);
  if (owner) d.owner = { kind: owner.kind, name: owner.name, uid: owner.uid };
  if (m.annotations) {
    // kubectl's last-applied copy of the whole object is large and means nothing to the agent; krata.dev/node
    // was the placement annotation of earlier operators (placement is status.node now, and any
    // user-set copy means nothing).
    const { 'kubectl.kubernetes.io/last-applied-configuration': _last, 'krata.dev/node': _node, ...rest } = m.annotations;
    if (Object.keys(rest).length) d.annotations = rest;
  }
  // The API server sets deletionGracePeriodSeconds to 0 on every custom resource it deletes: the
  // Guest's own terminationGracePeriodSeconds is what applies.
  if (m.deletionTimestamp) d.deleting = { since: m.deletionTimestamp };
  else if (pullAuth) d.pullAuth = pullAuth;
  return d;
}

export class DesiredPublisher {
  /** host → field → JSON as written. */
  private readonly mirror = new Map<string, Map<string, string>>();
  private readonly queues = new Map<string, Queue>();
  private epochValue = '';
  /** Set while a republish runs; writes wait for it. */
  private gate?: Promise<void>;
  private inflight = 0;
  private drained: (() => void)[] = [];
  /** Counted for metrics and tests. */
  republishes = 0;

  constructor(
    private readonly redis: Redis,
    private readonly log: (msg: string, err?: unknown) => void = () => undefined,
  ) {}

  get epoch(): string {
    return this.epochValue;
  }

  private queue(host: string): Queue {
    let q = this.queues.get(host);
    if (!q) {
      // One shared connection for every queue: BullMQ reuses a passed ioredis instance. No version check:
      // it runs INFO, which the operator's Redis user may not (contracts/redis/acl.ts).
      q = new Queue(queueName(host), {
        connection: this.redis,
        prefix: QUEUE_PREFIX,
        skipVersionCheck: true,
        defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
      });
      q.on('error', (e) => this.log(`queue ${queueName(host)}`, e));
      this.queues.set(host, q);
    }
    return q;
  }

  /** What this publisher believes the host's hash holds for `field` (JSON), if anything. */
  published(host: string, field: string): string | undefined {
    return this.mirror.get(host)?.get(field);
  }

  /** Hosts with at least one field published. */
  hosts(): string[] {
    return [...this.mirror.keys()];
  }

  /** Writes (or, with undefined, removes) a Guest's record on a host, and nudges the agent if it changed. */
  async set(host: string, namespace: string, name: string, record: DesiredGuest | undefined, uid: string): Promise<void> {
    // A republish rewrites whole hashes from one snapshot: no single write may land in the middle.
    while (this.gate) await this.gate;
    this.inflight++;
    try {
      await this.write(host, namespace, name, record, uid);
    } finally {
      if (--this.inflight === 0) for (const w of this.drained.splice(0)) w();
    }
  }

  private async write(host: string, namespace: string, name: string, record: DesiredGuest | undefined, uid: string): Promise<void> {
    const field = fieldOf(namespace, name);
    const json = record && JSON.stringify(record);
    const old = this.mirror.get(host)?.get(field);
    if (old === json) return;
    if (json === undefined) await this.redis.hdel(desiredKey(host), field);
    else await this.redis.hset(desiredKey(host), field, json);
    const data: ReconcileJob = { namespace, name, uid, generation: record?.generation ?? 0 };
    const id = record && !record.deleting ? jobId(uid, record.generation) : jobId(uid, 'delete');
    await this.queue(host).add('reconcile', data, { jobId: id });
    // Only now: a failed write or job is retried by the next reconcile instead of looking done.
    if (json === undefined) this.mirror.get(host)?.delete(field);
    else {
      if (!this.mirror.has(host)) this.mirror.set(host, new Map());
      this.mirror.get(host)!.set(field, json);
    }
  }

  /**
   * Makes Redis hold exactly what `wanted()` returns (host → field → record, taken once writes in flight
   * have finished) and an epoch. With `force` or when the epoch
   * is missing, the hashes are rewritten, marked complete for a new epoch, and the epoch set last: an
   * agent trusts an absence only in a hash complete for the current epoch. Otherwise (a new leader
   * taking over) the hashes are diffed against `want` and corrected in place under the existing epoch.
   * Returns whether a new epoch was set.
   */
  async republish(wanted: () => Map<string, Map<string, DesiredGuest>>, knownHosts: string[], force = false): Promise<boolean> {
    while (this.gate) await this.gate;
    let open!: () => void;
    this.gate = new Promise<void>((r) => (open = r));
    try {
      if (this.inflight > 0) await new Promise<void>((r) => this.drained.push(r));
      return await this.rewrite(wanted(), knownHosts, force);
    } finally {
      this.gate = undefined;
      open();
    }
  }

  private async rewrite(want: Map<string, Map<string, DesiredGuest>>, knownHosts: string[], force: boolean): Promise<boolean> {
    const current = await this.redis.get(EPOCH_KEY);
    const fresh = force || !current;
    const epoch = fresh ? randomUUID() : current!;
    const hosts = new Set([...knownHosts, ...want.keys(), ...this.mirror.keys()]);
    for (const host of hosts) {
      const have = fresh ? {} : await this.redis.hgetall(desiredKey(host));
      const target = want.get(host) ?? new Map<string, DesiredGuest>();
      const mirror = new Map<string, string>();
      const pipe = this.redis.pipeline();
      const jobs: { name: string; data: ReconcileJob; opts: { jobId: string } }[] = [];
      for (const [field, rec] of target) {
        const json = JSON.stringify(rec);
        mirror.set(field, json);
        if (have[field] === json) continue;
        pipe.hset(desiredKey(host), field, json);
        jobs.push({
          name: 'reconcile',
          data: { namespace: rec.namespace, name: rec.name, uid: rec.uid, generation: rec.generation },
          opts: { jobId: rec.deleting ? jobId(rec.uid, 'delete') : jobId(rec.uid, rec.generation) },
        });
      }
      for (const field of Object.keys(have)) if (field !== COMPLETE_FIELD && !target.has(field)) pipe.hdel(desiredKey(host), field);
      if (have[COMPLETE_FIELD] !== epoch) pipe.hset(desiredKey(host), COMPLETE_FIELD, epoch);
      await pipe.exec();
      if (jobs.length) await this.queue(host).addBulk(jobs);
      this.mirror.set(host, mirror);
    }
    if (fresh) {
      await this.redis.set(EPOCH_KEY, epoch);
      this.republishes++;
      this.log(`published the desired state of ${hosts.size} hosts under a new epoch ${epoch}`);
    }
    this.epochValue = epoch;
    return fresh;
  }

  /** True when Redis no longer holds the epoch this publisher wrote under (it lost its data). */
  async epochLost(): Promise<boolean> {
    return (await this.redis.get(EPOCH_KEY)) !== this.epochValue;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
