// The reconcile metrics every krata controller exports, under the same names in the operator and the
// node agent (as controller-runtime's controller_runtime_reconcile_* are the same in every operator):
// reconciles by result, errors by reason, the time a reconcile takes and the queue's depth, each
// labelled with the controller (guest, guestset).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { errorReason } from './error-reason.js';
import type { HandlerResult } from './work-queue.js';

/** Told after each reconcile: how long it took, and the error it failed with. */
export type ReconcileObserver = (ms: number, error?: unknown) => void;

/** Distinct reasons a controller's error counter keeps; later ones are counted as Other. */
const MAX_REASONS = 24;

export class ReconcileMetrics {
  private readonly total: Counter<'controller' | 'result'>;
  private readonly errors: Counter<'controller' | 'reason'>;
  private readonly duration: Histogram<'controller'>;
  private readonly depths = new Map<string, () => number>();
  private readonly reasons = new Map<string, Set<string>>();

  constructor(registry: Registry) {
    this.total = new Counter({
      name: 'krata_reconcile_total',
      help: 'Reconciles, by controller and result (success or error)',
      labelNames: ['controller', 'result'] as const,
      registers: [registry],
    });
    this.errors = new Counter({
      name: 'krata_reconcile_errors_total',
      help: 'Reconciles that failed (and were retried), by controller and reason (ErrImagePull, Conflict, ENOSPC, an error class)',
      labelNames: ['controller', 'reason'] as const,
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'krata_reconcile_duration_seconds',
      help: 'Time one reconcile took, by controller',
      labelNames: ['controller'] as const,
      buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60],
      registers: [registry],
    });
    const depths = this.depths;
    new Gauge({
      name: 'krata_reconcile_queue_depth',
      help: 'Keys queued or being reconciled, by controller',
      labelNames: ['controller'] as const,
      registers: [registry],
      collect() {
        for (const [controller, depth] of depths) this.set({ controller }, depth());
      },
    });
  }

  /** What `controller` calls after each reconcile. Its series exist (at 0) from now on. */
  observer(controller: string): ReconcileObserver {
    this.total.inc({ controller, result: 'success' }, 0);
    this.total.inc({ controller, result: 'error' }, 0);
    this.duration.zero({ controller });
    const seen = this.reasons.get(controller) ?? new Set<string>();
    this.reasons.set(controller, seen);
    return (ms, error) => {
      this.duration.observe({ controller }, ms / 1000);
      if (error === undefined) return void this.total.inc({ controller, result: 'success' });
      this.total.inc({ controller, result: 'error' });
      let reason = errorReason(error);
      if (!seen.has(reason)) {
        if (seen.size < MAX_REASONS) seen.add(reason);
        else reason = 'Other';
      }
      this.errors.inc({ controller, reason });
    };
  }

  /** Reports `controller`'s queue depth at each scrape. */
  queue(controller: string, depth: () => number): void {
    this.depths.set(controller, depth);
  }
}

/** `handler`, timed and told to `observe` (none: `handler` itself). */
export function timed(
  handler: (key: string) => Promise<HandlerResult>,
  observe?: ReconcileObserver,
): (key: string) => Promise<HandlerResult> {
  if (!observe) return handler;
  return async (key) => {
    const t0 = performance.now();
    try {
      const r = await handler(key);
      observe(performance.now() - t0);
      return r;
    } catch (e) {
      observe(performance.now() - t0, e);
      throw e;
    }
  };
}
