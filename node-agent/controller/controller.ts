// The controller, in controller-runtime's mould: it owns the work queue (per-key back-off, bounded
// workers), starts the sources that feed it (store and domain events, finished pulls, the periodic
// resync) and runs the Reconciler for each key, timed for the metrics (lib/reconcile-metrics.ts). A
// failed reconcile is a ReconcileError event and a retry; it decides nothing itself.
import type { Clock } from '../../lib/clock.js';
import { timed, type ReconcileObserver } from '../../lib/reconcile-metrics.js';
import { WorkQueue } from '../../lib/work-queue.js';
import type { EventRecorder } from '../reconcile/events.js';
import type { LaunchPhases } from '../reconcile/launch-phases.js';
import type { Reconciler } from '../reconcile/reconciler.js';
import type { PeriodicResync } from './resync.js';
import type { Source, SourceSink } from './sources.js';

export interface ControllerOptions {
  /** Reconciles at once (default 8). */
  concurrency?: number;
  /** Called after each reconcile with its duration and error (metrics). */
  observe?: ReconcileObserver;
  /** Told when a key is queued: a launch's breakdown starts there. */
  launches?: Pick<LaunchPhases, 'queued'>;
}

export class GuestController {
  readonly queue: WorkQueue;
  private readonly sink: SourceSink;
  private readonly stops: Array<() => void> = [];

  /** Event sources feed the queue from here on; the resync starts with run(). */
  constructor(
    reconciler: Reconciler,
    sources: readonly Source[],
    private readonly resyncSource: PeriodicResync,
    private readonly recorder: EventRecorder,
    clock: Clock,
    opts: ControllerOptions = {},
  ) {
    this.queue = new WorkQueue(
      timed((key) => reconciler.reconcile(key), opts.observe),
      { concurrency: opts.concurrency ?? 8, clock },
      (key, err) => {
        // The same failure again counts up one event (kubectl's "x5 over 2m"), so no delay in the text.
        this.recorder.warning(key, 'ReconcileError', (err as Error).message);
      },
    );
    const launches = opts.launches;
    this.sink = {
      add: (key) => {
        launches?.queued(key);
        this.queue.add(key);
      },
      background: (p, reason) => this.background(p, reason),
    };
    for (const s of sources) this.stops.push(s.start(this.sink));
  }

  /** Starts the loop: a full resync now and every resync period. */
  run(): void {
    this.stops.push(this.resyncSource.start(this.sink));
  }

  /** A full resync now (tests; the timer does it otherwise). */
  resync(): Promise<void> {
    return this.resyncSource.resync();
  }

  /** No more keys in; reconciles in progress finish (wait with `queue.idle()`). */
  stop(): void {
    for (const stop of this.stops.splice(0).reverse()) stop();
    this.queue.stop();
  }

  /** Work started outside the queue (resync, event handling): a failure is an event, not a crash. */
  private background(p: Promise<unknown>, reason: string): void {
    p.catch((e: Error) => this.recorder.host(reason, e?.message ?? String(e)));
  }
}
