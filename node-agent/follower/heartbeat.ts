// The host's heartbeat: a key with a TTL, rewritten every interval and on every reconnection, holding
// what the operator needs for placement and the XenHost's status. Its expiry is the signal that the
// agent stopped reporting; a failed write is simply tried at the next beat.
import { HEARTBEAT_INTERVAL_MS, HEARTBEAT_TTL_S, heartbeatKey, type Heartbeat } from '../../contracts/redis/contract.js';
import { packageVersion } from '../../lib/version.js';
import type { GuestStore } from '../store/guest-store.js';
import { type Hypervisor } from '../runtime/hypervisor.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import type { RedisLink } from './redis-link.js';

export interface HeartbeatOptions {
  intervalMs?: number;
  clock?: Clock;
  /** Where krata-api reaches the agent's TLS listener, while it listens. */
  apiEndpoint?: () => string | undefined;
}

export class HeartbeatSender {
  private timer?: { cancel(): void };
  private unsubscribe?: () => void;
  private stopped = false;
  private readonly clock: Clock;

  constructor(
    private readonly link: RedisLink,
    private readonly host: string,
    private readonly hv: Hypervisor,
    private readonly store: GuestStore,
    /** The epoch whose desired state the agent has applied. */
    private readonly epoch: () => string,
    private readonly opts: HeartbeatOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  start(): void {
    this.unsubscribe = this.link.onReady(() => void this.beat());
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    this.timer?.cancel();
  }

  private tick(): void {
    if (this.stopped) return;
    void this.beat();
    this.timer = this.clock.setTimeout(() => this.tick(), this.opts.intervalMs ?? HEARTBEAT_INTERVAL_MS);
  }

  /** What the heartbeat key holds now. */
  async heartbeat(): Promise<Heartbeat> {
    const info = await this.hv.host();
    const guests = this.store.list();
    const apiEndpoint = this.opts.apiEndpoint?.();
    return {
      host: this.host,
      time: new Date(this.clock.now()).toISOString(),
      agentVersion: packageVersion(),
      xenVersion: info.xenVersion,
      kernelVersion: info.kernelVersion,
      capacity: { cpus: info.cpus, memoryMiB: info.totalMemoryMiB },
      freeMemoryMiB: info.freeMemoryMiB,
      guests: guests.length,
      running: guests.filter((g) => g.status?.phase === 'Running').length,
      epoch: this.epoch(),
      ...(apiEndpoint ? { apiEndpoint } : {}),
    };
  }

  private async beat(): Promise<void> {
    if (!this.link.up) return;
    try {
      await this.link.client.set(heartbeatKey(this.host), JSON.stringify(await this.heartbeat()), 'EX', HEARTBEAT_TTL_S);
      this.link.ok('heartbeat');
    } catch (e) {
      this.link.problem('heartbeat', e);
    }
  }
}
