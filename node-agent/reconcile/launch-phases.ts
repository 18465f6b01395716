// Where a Guest's launch spends its time, from the moment its change was queued to its Running status:
// the controller notes when a key is queued, the reconcile that creates the domain starts a phase
// timer (lib/phase-timer.ts) from that moment, the create step and the hypervisor (and the domain
// builder below it) mark their phases into it, and the finished breakdown goes to `onLaunch` (the
// agent's krata_launch_phase_seconds histogram and a debug log line).
import { startPhaseTimer, type Phase, type PhaseTimer } from '../../lib/phase-timer.js';

export interface LaunchReport {
  /** The Guest ("<namespace>/<name>"). */
  key: string;
  /** The domain started. */
  domid: number;
  phases: Phase[];
}

export class LaunchPhases {
  /** When each key was first queued since its last reconcile: at most one entry per Guest key. */
  private readonly queuedAt = new Map<string, number>();
  /** Launches waiting for their image: the next reconcile of the key carries on with the same timer. */
  private readonly parked = new Map<string, PhaseTimer>();

  constructor(
    private readonly onLaunch: (r: LaunchReport) => void = () => {},
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A source queued `key`; the first time since its last reconcile starts its clock. */
  queued(key: string): void {
    if (!this.queuedAt.has(key)) this.queuedAt.set(key, this.now());
  }

  /**
   * A reconcile of `key` starts: a timer from when it was queued (or from now), its first phase
   * "queue pickup" already closed; or the timer of the launch parked waiting for its image, whose
   * "image pull" phase closes now. The key's next change starts a new clock.
   */
  begin(key: string): PhaseTimer {
    const since = this.queuedAt.get(key);
    this.queuedAt.delete(key);
    const parked = this.parked.get(key);
    if (parked) {
      this.parked.delete(key);
      parked.mark('image pull');
      return parked;
    }
    let start = since;
    const timer = startPhaseTimer(() => {
      if (start === undefined) return this.now();
      const t = start;
      start = undefined;
      return t;
    });
    timer.mark('queue pickup');
    return timer;
  }

  /** The launch of `key` waits for its image (pulled beside the workers): its next reconcile carries on. */
  park(key: string, timer: PhaseTimer): void {
    this.parked.set(key, timer);
  }

  /** The keys waiting with a clock or a parked launch (tests: nothing kept for Guests reconciled since). */
  get waiting(): number {
    return this.queuedAt.size + this.parked.size;
  }

  /** A domain started and its status says Running: the breakdown goes out. A throwing listener is not the launch's failure. */
  finish(key: string, timer: PhaseTimer, domid: number): void {
    try {
      this.onLaunch({ key, domid, phases: timer.phases() });
    } catch (e) {
      process.emitWarning(`a launch-phase listener threw: ${(e as Error).message}`);
    }
  }
}
