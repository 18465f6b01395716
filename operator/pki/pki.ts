// The operator's certificate authority, on the leader: the krata CA (ca.ts), krata-api's certificates and
// the APIService's caBundle (krata-api-certs.ts), agents' certificates through Redis (agent-certs.ts).
// A pass every 10 s (and soon after a XenHost appears) answers agents' requests; the Kubernetes side (the
// CA Secret read again, so an administrator's replacement is picked up, krata-api's Secrets, the
// APIService) runs at the first pass, every 5 minutes and when a certificate is due, and until it has
// succeeded once. Failures are logged when their message changes, and retried at the next pass.
import type { Redis } from 'ioredis';
import type { XenHost } from '../../crds/generated/types.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import type { KubeClient } from '../kube/client.js';
import { AgentCertificates } from './agent-certs.js';
import { CA_SECRET, ensureCA, type KrataCA } from './ca.js';
import { ensureCaBundle, ensureKrataApiCertificates } from './krata-api-certs.js';

export interface PkiOptions {
  /** Where the CA and krata-api's Secrets live (the operator's namespace). */
  namespace: string;
  /** Between passes over agents' requests (default 10 s). */
  intervalMs?: number;
  /** Between looks at the Secrets and the APIService (default 5 minutes; sooner when a certificate is due). */
  kubeCheckMs?: number;
  clock?: Clock;
  log: (msg: string, err?: unknown) => void;
}

export class OperatorPki {
  private ca?: KrataCA;
  private readonly agents: AgentCertificates;
  private nextKubeCheck = 0;
  private timer?: { cancel(): void };
  private running?: Promise<void>;
  private again = false;
  private stopped = true;
  private readonly lastError = new Map<string, string>();
  private readonly clock: Clock;

  constructor(
    private readonly kube: KubeClient,
    private readonly redis: Redis,
    hosts: { get(name: string): XenHost | undefined },
    private readonly opts: PkiOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.agents = new AgentCertificates(redis, {
      getHost: (name) => hosts.get(name),
      now: () => this.clock.now(),
      pinKey: async (name, agentKey) => void (await kube.setXenHostAgentKey(name, agentKey)),
      log: opts.log,
      event: (host, type, reason, message) =>
        void kube.createEvent({
          namespace: 'default',
          involved: {
            kind: 'XenHost',
            apiVersion: host.apiVersion ?? 'krata.dev/v1alpha1',
            name: host.metadata.name,
            uid: host.metadata.uid!,
            resourceVersion: host.metadata.resourceVersion,
          },
          type,
          reason,
          message,
        }),
    });
  }

  /** The CA in use (after the first successful pass). */
  get authority(): KrataCA | undefined {
    return this.ca;
  }

  /** Starts the passes (on becoming leader). */
  start(): void {
    this.stopped = false;
    this.poke();
  }

  /** A pass soon (a XenHost appeared, or a test asks): coalesced with one already running. */
  poke(): void {
    if (this.stopped) return;
    this.timer?.cancel();
    this.timer = this.clock.setTimeout(() => void this.pass(), 0);
  }

  /** One pass now (or right after the one running); resolves when it is done. */
  pass(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.timer?.cancel();
    this.running = (async () => {
      do {
        this.again = false;
        await this.once();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
      if (!this.stopped) this.timer = this.clock.setTimeout(() => void this.pass(), this.opts.intervalMs ?? 10_000);
    });
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.running;
    this.redis.disconnect();
  }

  private async once(): Promise<void> {
    const now = this.clock.now();
    const { namespace: ns } = this.opts;
    if (!this.ca || now >= this.nextKubeCheck) {
      const ok = await this.attempt('ca', async () => {
        const { ca } = await ensureCA(this.kube, ns, now, (m) => this.opts.log(m));
        if (ca.certificatePem !== this.ca?.certificatePem)
          this.opts.log(
            `using the krata CA in Secret ${ns}/${CA_SECRET}: ${ca.cert.subject}, serial ${ca.cert.serialNumber}, ` +
              `until ${new Date(ca.cert.validTo).toISOString()}`,
          );
        this.ca = ca;
      });
      if (this.ca) {
        const ca = this.ca;
        const done = await this.attempt('krata-api', async () => {
          const due = await ensureKrataApiCertificates(this.kube, ns, ca, now, (m) => this.opts.log(m));
          await ensureCaBundle(this.kube, ca, (m) => this.opts.log(m));
          this.nextKubeCheck = Math.min(now + (this.opts.kubeCheckMs ?? 5 * 60_000), due);
        });
        if (!ok || !done) this.nextKubeCheck = now; // again at the next pass
      }
    }
    const ca = this.ca;
    if (ca) await this.attempt('agents', () => this.agents.sync(ca));
  }

  /** Runs `fn`; a failure is logged when its message differs from the last one of `what`. */
  private async attempt(what: string, fn: () => Promise<unknown>): Promise<boolean> {
    try {
      await fn();
      if (this.lastError.delete(what)) this.opts.log(`pki: ${what} recovered`);
      return true;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (this.lastError.get(what) !== msg) this.opts.log(`pki: ${what} failed; retrying every pass`, e);
      this.lastError.set(what, msg);
      return false;
    }
  }
}
