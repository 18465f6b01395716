// The agent's connection to Redis in cluster mode (options from contracts/redis/options.ts): one command
// connection shared by the follower, the publisher and the heartbeat, and the
// outage bookkeeping that keeps logs to one line per outage however often the retries fail.
// Reconnection never gives up: an agent without Redis keeps running its guests and its local API.
import { EventEmitter } from 'node:events';
import type { ConnectionOptions } from 'bullmq';
import { Redis, type ChainableCommander, type RedisOptions } from 'ioredis';

/** The slice of pino the cluster modules log with. */
export interface Log {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * The agent's Redis user may not run INFO (contracts/redis/acl.ts): no ready check (it waits for a
 * persisted dataset to load, and krata's Redis has none), and BullMQ's version check (INFO) is skipped.
 */
const LEAST_COMMANDS = { enableReadyCheck: false } as const;

/**
 * A connection that lost Redis, not a command Redis refused: BullMQ's own connections (the jobs worker)
 * can see it before the command connection does (a Redis restart).
 */
const CONNECTION_LOST = /\b(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|EHOSTUNREACH)\b|Connection is closed|Socket closed unexpectedly/;

/** Reconnect soon after a blip, then every 2 s at most: cheap, and Redis is back within 2 s of returning. */
const retryStrategy = (attempt: number) => Math.min(100 * attempt, 2000);

export class RedisLink {
  readonly client: Redis;
  private readonly ready = new EventEmitter();
  private state: 'connecting' | 'up' | 'down' | 'closed' = 'connecting';
  /** Errors logged per source while Redis is reachable (a misconfigured ACL, say): once each until it recovers. */
  private readonly failing = new Map<string, string>();

  /** `name` says which Redis in logs (the redacted URL). */
  constructor(
    private readonly options: RedisOptions,
    readonly name: string,
    private readonly log: Log,
  ) {
    this.ready.setMaxListeners(0);
    // Commands fail at once while disconnected (no offline queue): callers keep what they meant to
    // write and retry on 'ready', so nothing piles up in ioredis during a long outage.
    this.client = new Redis({
      ...options,
      ...LEAST_COMMANDS,
      retryStrategy,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: 10_000,
      connectionName: 'krata-node-agent',
    });
    this.client.on('ready', () => {
      if (this.state === 'down') this.log.info({ redis: name }, 'Redis is reachable again');
      else this.log.info({ redis: name }, 'connected to Redis');
      this.state = 'up';
      this.failing.clear();
      this.ready.emit('ready');
    });
    const lost = (err?: Error) => {
      if (this.state === 'down' || this.state === 'closed') return;
      this.state = 'down';
      this.log.warn({ redis: name, err: err?.message }, 'Redis is unreachable: guests keep running; reconnecting until it is back');
    };
    this.client.on('error', (err: Error) => lost(err));
    this.client.on('close', () => lost());
  }

  /** Options for BullMQ's own connections (it requires maxRetriesPerRequest: null). */
  get bullmqOptions(): ConnectionOptions {
    return {
      ...this.options,
      ...LEAST_COMMANDS,
      skipVersionCheck: true,
      retryStrategy,
      maxRetriesPerRequest: null,
      connectionName: 'krata-node-agent-jobs',
    };
  }

  get up(): boolean {
    return this.state === 'up';
  }

  /** Calls `cb` on every (re)connection; returns an unsubscribe function. */
  onReady(cb: () => void): () => void {
    this.ready.on('ready', cb);
    return () => this.ready.off('ready', cb);
  }

  /** A failed operation: logged unless an outage explains it, and once per source and message. */
  problem(source: string, err: unknown): void {
    if (!this.up) return;
    const message = (err as Error)?.message ?? String(err);
    if (this.failing.get(source) === message) return;
    this.failing.set(source, message);
    if (CONNECTION_LOST.test(message)) {
      this.log.warn({ redis: this.name, source, err: message }, 'Redis is unreachable from one connection; it reconnects');
    } else this.log.error({ redis: this.name, source, err: message }, 'Redis operation failed; retrying');
  }

  /** The source works again (after a problem). */
  ok(source: string): void {
    if (this.failing.delete(source)) this.log.info({ redis: this.name, source }, 'Redis operation works again');
  }

  /** Runs commands in one MULTI (atomic: a consistent snapshot) and returns their results, or throws the first error. */
  async exec<T extends unknown[]>(build: (m: ChainableCommander) => ChainableCommander): Promise<T> {
    const results = await build(this.client.multi()).exec();
    if (!results) throw new Error('the transaction was aborted');
    const failed = results.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
    return results.map(([, v]) => v) as T;
  }

  async close(): Promise<void> {
    const wasUp = this.up;
    this.state = 'closed';
    // QUIT waits for replies in flight; a Redis that is down gets a plain disconnect.
    if (wasUp) await Promise.race([this.client.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
    this.client.disconnect();
  }
}
