// Named kill points for fault-injection tests on real Xen (e2e *-chaos*): the process SIGKILLs
// itself when it reaches a point named in $KRATA_FAULT_POINTS. Off unless that variable is set; the
// variable is read once, at the first point reached, so a point costs one Set lookup when it is off.
//
//   KRATA_FAULT_POINTS=create.domain-created            SIGKILL the first time the point is reached
//   KRATA_FAULT_POINTS=teardown.loops-detached@3,x.y    ...the third time; several points at once
//
// $KRATA_FAULT_TRACE=PATH appends "<name>\n" to PATH at every point reached (before a kill), so a
// test can tell which points a run passed through.
import { appendFileSync } from 'node:fs';

interface Armed {
  /** The hit that kills (1-based). */
  at: number;
  hits: number;
}

let armed: Map<string, Armed> | undefined;
let trace: string | undefined;

/** Parses $KRATA_FAULT_POINTS ("name[@n],..."); throws naming the bad entry. */
export function parseFaultPoints(spec: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const raw of spec.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const m = /^([a-z0-9][a-z0-9.-]*)(?:@([1-9][0-9]{0,5}))?$/.exec(entry);
    if (!m) throw new Error(`KRATA_FAULT_POINTS: bad entry ${JSON.stringify(entry)} (want name or name@N, N ≥ 1)`);
    out.set(m[1], m[2] === undefined ? 1 : Number(m[2]));
  }
  return out;
}

function load(): Map<string, Armed> {
  const spec = process.env.KRATA_FAULT_POINTS ?? '';
  trace = process.env.KRATA_FAULT_TRACE || undefined;
  const map = new Map<string, Armed>();
  for (const [name, at] of parseFaultPoints(spec)) map.set(name, { at, hits: 0 });
  return map;
}

/**
 * A named point in a multi-step operation where a crash would leave partial state behind. Kills this
 * process with SIGKILL (no cleanup, no exit handlers: as a power cut or the OOM killer would) when the
 * point is armed and reached for the armed time.
 */
export function faultPoint(name: string): void {
  armed ??= load();
  if (trace !== undefined) {
    try {
      appendFileSync(trace, `${name}\n`);
    } catch {
      // tracing is best effort: a test reads what made it to the file
    }
  }
  const a = armed.get(name);
  if (a === undefined) return;
  a.hits += 1;
  if (a.hits === a.at) process.kill(process.pid, 'SIGKILL');
}

/** For tests: forget the parsed variable so the next point reads it again. */
export function resetFaultPoints(): void {
  armed = undefined;
  trace = undefined;
}
