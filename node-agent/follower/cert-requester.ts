// Asks the operator for the agent's serving certificate through Redis (contracts/redis/contract.ts):
// while the identity has no certificate with more than a third of its life left, a CertRequest (public key
// and proof of possession) sits in certRequestKey(host), rewritten on each reconnection, and certKey(host)
// is read every few seconds; otherwise the answer is looked at again hourly, or when renewal is due if
// sooner. A certificate that fails the identity's checks is ignored with one log line.
import { certKey, certRequestKey, type CertRequest, type IssuedCertificate } from '../../contracts/redis/contract.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import { MAX_ISSUED_BYTES, type AgentIdentity } from './agent-identity.js';
import type { Log, RedisLink } from './redis-link.js';

export interface CertRequesterOptions {
  clock?: Clock;
  /** How often the answer is read while waiting for one (default 3 s). */
  waitMs?: number;
  /** How often it is read when the certificate in use is good (default 1 h). */
  checkMs?: number;
}

export class CertRequester {
  private readonly clock: Clock;
  private timer?: { cancel(): void };
  private unsubscribe?: () => void;
  private stopped = false;
  /** The request waiting for an answer, and whether it is written since the last (re)connection. */
  private pending?: CertRequest;
  private written = false;
  /** The last answer refused and why: logged once, not at every poll. */
  private refused?: string;
  private running?: Promise<void>;

  constructor(
    private readonly link: RedisLink,
    private readonly identity: AgentIdentity,
    private readonly log: Log,
    private readonly opts: CertRequesterOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  start(): void {
    this.unsubscribe = this.link.onReady(() => {
      this.written = false;
      this.schedule(0);
    });
    this.schedule(0);
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.timer?.cancel();
    return this.running ?? Promise.resolve();
  }

  /** The request waiting for an answer, if any (tests and status). */
  get waiting(): CertRequest | undefined {
    return this.pending;
  }

  /** One round: ask if need be, then read the answer. The timer runs it; tests may call it directly. */
  poll(): Promise<void> {
    this.running ??= this.round().finally(() => (this.running = undefined));
    return this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer?.cancel();
    this.timer = this.clock.setTimeout(() => {
      void this.poll().then(() => this.schedule(this.nextMs()));
    }, ms);
  }

  private nextMs(): number {
    const now = this.clock.now();
    if (this.identity.needsCertificate(now)) return this.opts.waitMs ?? 3000;
    const check = this.opts.checkMs ?? 3_600_000;
    return Math.max(1000, Math.min(check, this.identity.renewAt(this.identity.certificate!) - now));
  }

  private async round(): Promise<void> {
    if (this.stopped || !this.link.up) return;
    const host = this.identity.host;
    try {
      if (this.identity.needsCertificate(this.clock.now())) {
        if (!this.pending) {
          this.pending = this.identity.request(this.clock.now());
          this.written = false;
          this.log.info({ host }, 'asking the operator for a TLS certificate for the agent listener');
        }
        if (!this.written) {
          await this.link.client.set(certRequestKey(host), JSON.stringify(this.pending));
          this.written = true;
        }
      }
      const raw = await this.link.client.getBuffer(certKey(host));
      this.link.ok('certificate');
      if (raw !== null) this.consider(raw);
    } catch (e) {
      this.link.problem('certificate', e);
    }
  }

  /** An answer found in Redis: taken if it passes the checks and is newer than what is in use. */
  private consider(raw: Buffer): void {
    const verdict = this.verdictOn(raw);
    const host = this.identity.host;
    if (verdict === 'taken') {
      this.pending = undefined;
      this.refused = undefined;
      this.log.info(
        { host, notAfter: new Date(this.identity.certificate!.notAfter).toISOString() },
        'took the TLS certificate the operator issued',
      );
    } else if (verdict !== 'same') {
      // Once per answer and reason (the same answer can turn from "not yet valid" to good, or to expired).
      const refused = `${verdict}\n${raw.length > MAX_ISSUED_BYTES ? raw.length : raw.toString('utf8')}`;
      if (refused === this.refused) return;
      this.refused = refused;
      this.log.warn({ host }, `ignored the TLS certificate in Redis: ${verdict}`);
    }
  }

  /** 'taken', 'same' or why not. A failure to store it (a full disk) throws: tried again at the next poll. */
  private verdictOn(raw: Buffer): string {
    if (raw.length > MAX_ISSUED_BYTES) return `${raw.length} bytes, over the limit of ${MAX_ISSUED_BYTES}`;
    let issued: IssuedCertificate;
    try {
      issued = JSON.parse(raw.toString('utf8')) as IssuedCertificate;
    } catch (e) {
      return `malformed JSON: ${(e as Error).message.slice(0, 200)}`;
    }
    return this.identity.accept(issued, this.clock.now());
  }
}
