// The terminal's window size, for exec -t and attach (kratactl and kubectl-krata): read from stdout when it is a
// terminal, and followed through its 'resize' events (a TTY stdout emits one on SIGWINCH).
import type { Writable } from 'node:stream';

type Stdout = Writable & { isTTY?: boolean; rows?: number; columns?: number };

export interface WindowSize {
  rows: number;
  cols: number;
}

/** The terminal's size, when stdout is one. */
export function windowSize(stdout: Writable): WindowSize | undefined {
  const s = stdout as Stdout;
  if (!s.isTTY || !s.rows || !s.columns) return undefined;
  return { rows: s.rows, cols: s.columns };
}

/** Calls `cb` with the new size whenever the window changes; returns the removal. */
export function onWindowResize(stdout: Writable, cb: (size: WindowSize) => void): () => void {
  const handler = () => {
    const size = windowSize(stdout);
    if (size) cb(size);
  };
  stdout.on('resize', handler);
  return () => stdout.off('resize', handler);
}
