// What bench/xen-alternate.sh prints (agent-xen.sh, cold-launch-xen.sh), read back: each side's median
// and our launch's median phases.
import type { Phase } from '../lib/phase-timer.js';

export interface Alternation {
  /** Our median, ms. */
  ours: number;
  /** The baseline's median, ms. */
  baseline: number;
  phases: Phase[];
}

/** The RESULT line and the PHASES lines of the output; undefined without a RESULT. */
export function readAlternation(stdout: string): Alternation | undefined {
  const lines = stdout.split('\n');
  const result = lines.find((l) => l.startsWith('RESULT '));
  if (!result) return undefined;
  const [ours, baseline] = result.split(' ').slice(1).map(Number);
  if (!Number.isFinite(ours) || !Number.isFinite(baseline)) return undefined;
  const phases = medianPhases(lines.filter((l) => l.startsWith('PHASES ')).map((l) => l.slice('PHASES '.length)));
  return { ours: ours!, baseline: baseline!, phases };
}

/** Each phase's median over the runs' breakdowns (JSON objects phase → ms), in the first run's order. */
export function medianPhases(runs: string[]): Phase[] {
  const parsed = runs.flatMap((r) => {
    try {
      const o = JSON.parse(r) as unknown;
      return o && typeof o === 'object' ? [o as Record<string, number>] : [];
    } catch {
      return [];
    }
  });
  const names = [...new Set(parsed.flatMap((o) => Object.keys(o)))];
  return names.map((name) => {
    const v = parsed.map((o) => Number(o[name] ?? 0)).sort((a, b) => a - b);
    return { name, ms: v[Math.floor((v.length - 1) / 2)]! };
  });
}
