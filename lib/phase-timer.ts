// Where a launch spends its time: named phases, each closed by the next mark. The domain builder and the
// node agent mark the phases they own into one timer, so a benchmark (or KRATA_TRACE) prints one
// breakdown from "read files" to "first console byte".

export interface Phase {
  /** What ran, e.g. "populate memory". */
  name: string;
  /** Milliseconds it took. */
  ms: number;
}

export interface PhaseTimer {
  /** Closes the phase running since the previous mark (or the timer's start) under `name`. */
  mark(name: string): void;
  /** The phases so far, in order; a name marked twice is two entries. */
  phases(): Phase[];
}

/** A timer that records nothing, for callers that do not ask for a breakdown. */
export const noPhases: PhaseTimer = { mark: () => {}, phases: () => [] };

/**
 * A timer starting now. `now` defaults to performance.now(); `onMark` sees each phase as it closes
 * (KRATA_TRACE prints them to stderr).
 */
export function startPhaseTimer(now: () => number = () => performance.now(), onMark?: (p: Phase) => void): PhaseTimer {
  let last = now();
  const done: Phase[] = [];
  return {
    mark(name) {
      const t = now();
      const p = { name, ms: Math.round((t - last) * 100) / 100 };
      last = t;
      done.push(p);
      onMark?.(p);
    },
    phases: () => done.slice(),
  };
}

/** One line per phase and a total, for a benchmark's output. */
export function formatPhases(phases: Phase[]): string {
  const width = Math.max(5, ...phases.map((p) => p.name.length));
  const total = phases.reduce((s, p) => s + p.ms, 0);
  return [...phases, { name: 'total', ms: total }].map((p) => `${p.name.padEnd(width)}  ${p.ms.toFixed(1).padStart(8)} ms`).join('\n');
}
