// An exec session's life on the client (kratactl and kubectl-krata, as kubectl exec): the terminal raw with -t
// and the remote size following the window, or else the signals we receive passed to the remote process group;
// everything put back when the session ends.
import { constants } from 'node:os';
import { rawMode, type TerminalIO } from './terminal.js';
import { onWindowResize } from './window-size.js';

/** What the session drives: an exec stream (contracts/agent-api/exec-stream.ts). */
export interface RemoteExec<R> {
  readonly result: Promise<R>;
  resize(rows: number, cols: number): void;
  signal(signo: number): void;
  /** Gives up on the stream, ending it with this result (the guest kills the process group). */
  close(result: { exitCode: number; error: string }): void;
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const;
/** The same signal this many times: the command ignores it, so we give up and close the session. */
const GIVE_UP_AFTER = 3;

/** Runs the stream to its end with the terminal raw (tty) or signals forwarded; everything is put back after. */
export async function execSession<R>(stream: RemoteExec<R>, io: TerminalIO, tty: boolean): Promise<R> {
  const cleanup: (() => void)[] = [];
  if (tty) {
    cleanup.push(rawMode(io.stdin));
    cleanup.push(onWindowResize(io.stdout, (s) => stream.resize(s.rows, s.cols)));
  }
  const counts = new Map<string, number>();
  for (const name of FORWARDED) {
    const signo = constants.signals[name];
    const handler = () => {
      const n = (counts.get(name) ?? 0) + 1;
      counts.set(name, n);
      // On a terminal, Ctrl+C and Ctrl+\ are bytes for the remote side; a signal from elsewhere ends the session.
      if (tty || n >= GIVE_UP_AFTER) stream.close({ exitCode: 128 + signo, error: `exec ended by ${name}` });
      else stream.signal(signo);
    };
    process.on(name, handler);
    cleanup.push(() => process.off(name, handler));
  }
  try {
    return await stream.result;
  } finally {
    for (const undo of cleanup.reverse()) undo();
  }
}
