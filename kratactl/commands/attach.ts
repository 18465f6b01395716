// kratactl attach NAME: the terminal becomes the guest's console. Bytes go both ways untouched (raw
// mode on a TTY, so Ctrl+C reaches the guest); Ctrl+] detaches here, without telling the guest.
import { parseArgs } from 'node:util';
import type { Duplex, Readable } from 'node:stream';
import { AgentError, type AgentClient } from '../agent-client.js';
import { onWindowResize, windowSize } from '../window-size.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient, agentFailure, checkGuestName, isGuestKind, namespaceOf } from './common.js';

export const ATTACH_HELP = `Attach the terminal to a running guest's console.

Usage: kratactl attach [guest] NAME [options]

Input goes to the guest and its output comes back, byte for byte. Press Ctrl+] to detach (the guest
keeps running).

${AGENT_HELP}
`;

/** Ctrl+] (telnet's escape character). */
export const DETACH_KEY = 0x1d;

type Stdin = Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };

/**
 * Joins io's streams to a console socket until the user detaches or the agent closes the console.
 * The terminal is put back in cooked mode on every way out, including a crash of the process.
 */
export function attachSession(socket: Duplex, io: IO, label: string): Promise<'detached' | 'ended'> {
  const stdin = io.stdin as Stdin;
  const raw = stdin.isTTY === true && typeof stdin.setRawMode === 'function';
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
    socket.on('error', (e) => finish('ended', new AgentError(`the console connection broke: ${e.message}`)));
    process.on('exit', restore);
    if (raw) stdin.setRawMode!(true);
    // Input that ends (a pipe) leaves the session open: output keeps coming until the console closes.
    stdin.on('data', onInput);
    stdin.resume();
  });
}

/**
 * Keeps the console's window size at the terminal's (when stdout is one): at once and on every resize.
 * Best effort: a guest whose channel is not up (409), or an older agent, leaves the size as it was.
 */
export function followConsoleSize(client: AgentClient, namespace: string, name: string, io: IO): () => void {
  const put = (s: { rows: number; cols: number }) => void client.resizeConsole(namespace, name, s.rows, s.cols).catch(() => {});
  const size = windowSize(io.stdout);
  if (!size) return () => {};
  put(size);
  return onWindowResize(io.stdout, put);
}

export async function attach(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { ...AGENT_OPTIONS }, strict: true, allowPositionals: true });
  const args = positionals.length === 2 && isGuestKind(positionals[0]!) ? positionals.slice(1) : positionals;
  if (args.length !== 1) throw new UsageError('attach takes one guest NAME');
  const name = checkGuestName(args[0]!);
  const namespace = namespaceOf(values);
  try {
    const client = agentClient(values, io);
    const socket = await client.attach(namespace, name);
    const stopSize = followConsoleSize(client, namespace, name, io);
    try {
      await attachSession(socket, io, `${namespace}/${name}`);
    } finally {
      stopSize();
    }
    return EXIT_OK;
  } catch (err) {
    return agentFailure(io, err);
  }
}
