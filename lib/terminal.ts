// The user's terminal for the clients' interactive commands (kratactl and kubectl-krata): raw mode, put back on
// every way out, and the console session of `attach`, which Ctrl+] leaves.
import type { Duplex, Readable, Writable } from 'node:stream';

export type TerminalStdin = Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };

/** The streams a session joins. */
export interface TerminalIO {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
}

/** Ctrl+] (telnet's escape character). */
export const DETACH_KEY = 0x1d;

/** kubectl's words when -t is asked for but stdin cannot be a terminal. */
export const NO_TTY_WARNING = 'Unable to use a TTY - input is not a terminal or the right kind of file';

/** Whether stdin is a terminal that can go raw. */
export function canBeRaw(stdin: Readable): boolean {
  const s = stdin as TerminalStdin;
  return s.isTTY === true && typeof s.setRawMode === 'function';
}

/** Puts the terminal in raw mode; returns the undo, which also runs if the process exits first. */
export function rawMode(stdin: Readable): () => void {
  const s = stdin as TerminalStdin;
  const restore = () => s.setRawMode!(false);
  s.setRawMode!(true);
  process.on('exit', restore);
  return () => {
    restore();
    process.off('exit', restore);
  };
}

/**
 * Joins io's streams to a console socket until the user detaches or the other end closes the console.
 * The terminal is put back in cooked mode on every way out, including a crash of the process; a broken
 * connection rejects with `broken(why)`.
 */
export function attachSession(
  socket: Duplex,
  io: TerminalIO,
  label: string,
  broken: (why: string) => Error,
): Promise<'detached' | 'ended'> {
  const stdin = io.stdin as TerminalStdin;
  const raw = canBeRaw(stdin);
  io.stderr.write(`attached to ${label}; press Ctrl+] to detach\n`);
  return new Promise((resolve, reject) => {
    let done = false;
    const restore = () => {
      if (raw) stdin.setRawMode!(false);
    };
    const finish = (how: 'detached' | 'ended', err?: Error) => {
      if (done) return;
      done = true;
      stdin.off('data', onInput);
      stdin.pause();
      restore();
      process.off('exit', restore);
      if (how === 'detached') {
        // end, not destroy: input typed just before Ctrl+] still reaches the guest.
        socket.end();
        setTimeout(() => socket.destroy(), 1000).unref();
      } else socket.destroy();
      if (err) return reject(err);
      io.stderr.write(how === 'detached' ? `\ndetached from ${label}\n` : `\nconsole of ${label} closed\n`);
      resolve(how);
    };
    const onInput = (d: Buffer) => {
      const at = d.indexOf(DETACH_KEY);
      if (at < 0) {
        socket.write(d);
        return;
      }
      if (at > 0) socket.write(d.subarray(0, at));
      finish('detached');
    };
    socket.on('data', (d: Buffer) => io.stdout.write(d));
    socket.on('end', () => finish('ended'));
    socket.on('close', () => finish('ended'));
    socket.on('error', (e) => finish('ended', broken(`the console connection broke: ${e.message}`)));
    process.on('exit', restore);
    if (raw) stdin.setRawMode!(true);
    // Input that ends (a pipe) leaves the session open: output keeps coming until the console closes.
    stdin.on('data', onInput);
    stdin.resume();
  });
}
