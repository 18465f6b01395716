// kratactl attach NAME: the terminal becomes the guest's console. Bytes go both ways untouched (raw
// mode on a TTY, so Ctrl+C reaches the guest); Ctrl+] detaches here, without telling the guest.
import type { Duplex } from 'node:stream';
import { attachSession as attachTerminal } from '../../lib/terminal.js';
import { onWindowResize, windowSize } from '../../lib/window-size.js';
import { AgentError, type AgentClient } from '../agent-client.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient, agentFailure, isGuestKind, namespaceOf } from './common.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';
import { guestWord, resolveGuest } from '../guest-ref.js';

export const ATTACH_HELP = `Attach the terminal to a running guest's console.

Usage: kratactl attach [guest] NAME [options]

Input goes to the guest and its output comes back, byte for byte. Press Ctrl+] to detach (the guest
keeps running).

${AGENT_HELP}
`;

/** Joins io's streams to a console socket until the user detaches or the agent closes the console (lib/terminal.ts). */
export function attachSession(socket: Duplex, io: IO, label: string): Promise<'detached' | 'ended'> {
  return attachTerminal(socket, io, label, (why) => new AgentError(why));
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

/** The flags of `kratactl attach` (completion reads them too). */
export const ATTACH_OPTIONS = { ...AGENT_OPTIONS } as const satisfies FlagSpecs;

export async function attach(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, ATTACH_OPTIONS);
  const args = positionals.length === 2 && isGuestKind(positionals[0]!) ? positionals.slice(1) : positionals;
  if (args.length !== 1) throw new UsageError('attach takes one guest NAME');
  const word = guestWord(args[0]!);
  const ns = namespaceOf(values);
  try {
    const client = agentClient(values, io);
    const { namespace, name } = await resolveGuest(client, word, ns);
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
