// One probe of one domain on the injected clock, as the kubelet's probe worker runs it: the first
// attempt initialDelaySeconds after the domain started, then one every periodSeconds (never two at
// once: the next is planned when one ends), each bounded by timeoutSeconds; successThreshold
// successes or failureThreshold failures in a row move the result. Every failed attempt is reported
// (Unhealthy events); a change of result is reported once.
import type { Probe, ProbeStatus } from '../../crds/generated/types.js';
import { metaTime } from '../../crds/meta.js';
import type { Clock } from '../../lib/clock.js';
import { Deadline } from './deadline.js';
import type { ProbeHandler } from './handlers.js';

export type ProbeKind = 'Startup' | 'Readiness' | 'Liveness';
export type ProbeResult = ProbeStatus['result'];

export interface WorkerHooks {
  /** An attempt failed (the worker's result may not have moved yet). */
  failed(message: string): void;
  /** The result moved, or the first attempt ended. */
  changed(result: ProbeResult): void;
  /** Each attempt's duration, for the benchmark and metrics. */
  timed?(ms: number): void;
}

export class ProbeWorker {
  private result: ProbeResult;
  private successes = 0;
  private failures = 0;
  private message?: string;
  private lastProbeTime?: number;
  private timer?: { cancel(): void };
  private inFlight?: Deadline;
  private stopped = false;

  constructor(
    readonly kind: ProbeKind,
    readonly probe: Probe,
    private readonly handler: ProbeHandler,
    private readonly clock: Clock,
    private readonly hooks: WorkerHooks,
    /** Readiness starts failing (not ready until it passes); the others start Unknown. */
    initial: ProbeResult,
  ) {
    this.result = initial;
  }

  /** Plans the first attempt initialDelaySeconds after `startedAt` (at once if that has passed). */
  start(startedAt: number): void {
    this.schedule(startedAt + this.probe.initialDelaySeconds * 1000 - this.clock.now());
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.inFlight?.pass();
  }

  get current(): ProbeResult {
    return this.result;
  }

  status(): ProbeStatus {
    return {
      result: this.result,
      ...(this.message !== undefined ? { message: this.message } : {}),
      ...(this.lastProbeTime !== undefined ? { lastProbeTime: metaTime(this.lastProbeTime) } : {}),
      consecutiveSuccesses: this.successes,
      consecutiveFailures: this.failures,
    };
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => void this.attempt(), Math.max(0, ms));
  }

  private async attempt(): Promise<void> {
    this.timer = undefined;
    if (this.stopped || this.inFlight) return;
    const began = this.clock.now();
    const ac = (this.inFlight = new Deadline());
    const timeoutMs = this.probe.timeoutSeconds * 1000;
    const deadline = this.clock.setTimeout(() => ac.pass(), timeoutMs);
    const t0 = performance.now();
    let outcome: { ok: boolean; message?: string };
    try {
      outcome = await this.handler(ac, timeoutMs);
    } catch (e) {
      outcome = { ok: false, message: (e as Error)?.message ?? String(e) };
    } finally {
      deadline.cancel();
      this.inFlight = undefined;
    }
    this.hooks.timed?.(performance.now() - t0);
    if (this.stopped) return;
    this.record(outcome.ok, outcome.message);
    this.schedule(began + this.probe.periodSeconds * 1000 - this.clock.now());
  }

  private record(ok: boolean, message: string | undefined): void {
    const first = this.lastProbeTime === undefined;
    this.lastProbeTime = this.clock.now();
    if (ok) {
      this.successes++;
      this.failures = 0;
      delete this.message;
    } else {
      this.failures++;
      this.successes = 0;
      this.message = message ?? 'failed';
      this.hooks.failed(this.message);
    }
    const next: ProbeResult =
      ok && (this.successes >= this.probe.successThreshold || this.result === 'Unknown')
        ? 'Success'
        : !ok && this.failures >= this.probe.failureThreshold
          ? 'Failure'
          : this.result;
    // The first attempt is news even when the result stays (readiness Failure: "pending" becomes "failing").
    if (next !== this.result || first) {
      this.result = next;
      this.hooks.changed(next);
    }
  }
}
