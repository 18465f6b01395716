// The operator's view of what the agents report: the latest StatusReport per (host, Guest), read in
// full from each host's status hash (the level) and then kept current from the status stream (the
// edges). Started when this replica becomes leader; a gap (the stream trimmed past our position, or
// Redis restarted) is closed by reading the hashes again, so nothing depends on seeing every entry.
import type { Redis } from 'ioredis';
import { STATUS_STREAM, parseStatusReport, statusKey, type StatusReport } from '../contracts/redis/contract.js';

export interface HostReport {
  host: string;
  report: StatusReport;
}

export class StatusReports {
  /** key ("ns/name") → host → report. A Guest normally has one host; re-placement can leave two. */
  private readonly reports = new Map<string, Map<string, StatusReport>>();
  private lastId = '0-0';
  private stopped = false;
  private loop?: Promise<void>;
  malformed = 0;
  /** Stream entries naming a host the operator does not know (any agent can write any `host`). */
  unknownHost = 0;

  constructor(
    /** A dedicated connection: XREAD BLOCK holds it. */
    private readonly redis: Redis,
    /** For writes, which must not wait behind a blocked read. */
    private readonly writer: Redis,
    /** Called with the Guest key whenever its reports change. */
    private readonly onChange: (key: string) => void,
    private readonly log: (msg: string, err?: unknown) => void = () => undefined,
  ) {}

  get(key: string): HostReport[] {
    const m = this.reports.get(key);
    return m ? [...m].map(([host, report]) => ({ host, report })) : [];
  }

  /** The report from `host` for `key`, if any. */
  from(host: string, key: string): StatusReport | undefined {
    return this.reports.get(key)?.get(host);
  }

  /** Drops a report the operator has acted on (a Guest gone from a host), here and in Redis. */
  async forget(host: string, key: string): Promise<void> {
    await this.writer.hdel(statusKey(host), key);
    const m = this.reports.get(key);
    m?.delete(host);
    if (m && m.size === 0) this.reports.delete(key);
  }

  private record(host: string, key: string, raw: string): void {
    let report: StatusReport;
    try {
      report = parseStatusReport(raw);
    } catch {
      this.malformed++;
      return;
    }
    let m = this.reports.get(key);
    if (!m) this.reports.set(key, (m = new Map<string, StatusReport>()));
    const old = m.get(host);
    // Reports from one agent arrive in order; a stale hash read must not undo a newer stream entry.
    if (old && old.time > report.time) return;
    m.set(host, report);
    this.onChange(key);
  }

  /** Reads every host's status hash, and the stream position to follow from. */
  async load(hosts: string[]): Promise<void> {
    // Position first, then the hashes: entries in between are applied twice, which is harmless.
    const last = await this.redis.xrevrange(STATUS_STREAM, '+', '-', 'COUNT', 1);
    this.lastId = last[0]?.[0] ?? '0-0';
    for (const host of hosts) {
      const all = await this.redis.hgetall(statusKey(host));
      for (const [key, raw] of Object.entries(all)) this.record(host, key, raw);
      // What the hash no longer holds is gone from memory too.
      for (const [key, m] of this.reports) {
        if (m.has(host) && !(key in all)) {
          m.delete(host);
          if (m.size === 0) this.reports.delete(key);
        }
      }
    }
  }

  /** Follows the stream; reads the hashes again every `reloadMs` and after any error. */
  start(hosts: () => string[], reloadMs = 60_000): void {
    this.loop = (async () => {
      let loadedAt = -Infinity;
      while (!this.stopped) {
        try {
          if (Date.now() - loadedAt >= reloadMs) {
            await this.load(hosts());
            loadedAt = Date.now();
          }
          // After a Redis restart the stream starts again, with ids (times) past ours: nothing is skipped.
          const res = (await this.redis.xread('COUNT', 2000, 'BLOCK', 2000, 'STREAMS', STATUS_STREAM, this.lastId)) as
            [string, [string, string[]][]][] | null;
          // Only hosts the operator knows (XenHosts, hosts it publishes to): reports under invented
          // names would only fill memory. A host registered meanwhile is read from its hash at the reload.
          const known = res ? new Set(hosts()) : undefined;
          for (const [, entries] of res ?? []) {
            for (const [id, fields] of entries) {
              this.lastId = id;
              const f: Record<string, string> = {};
              for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
              if (!f.host || !f.key || !f.report) this.malformed++;
              else if (!known!.has(f.host)) this.unknownHost++;
              else this.record(f.host, f.key, f.report);
            }
          }
        } catch (e) {
          if (this.stopped) break;
          this.log('reading agent status reports failed; retrying', e);
          loadedAt = -Infinity;
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.redis.disconnect();
    await this.loop?.catch(() => undefined);
  }
}
