// kratactl logs NAME [-f] [--tail N]: what the guest printed on its console (the agent keeps a bounded
// history per guest), then, with -f, its live output until the guest ends or kratactl is interrupted.
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient, agentFailure, isGuestKind, namespaceOf, untilInterrupted } from './common.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';
import { guestWord, resolveGuest } from '../guest-ref.js';

export const LOGS_HELP = `Print a guest's console output.

Usage: kratactl logs [guest] NAME [options]

  -f, --follow          keep printing new output until the guest's domain ends (or Ctrl+C)
      --tail N          only the last N lines of the history
${AGENT_HELP}
`;

/** The flags of `kratactl logs` (completion reads them too). */
export const LOGS_OPTIONS = {
  ...AGENT_OPTIONS,
  follow: { type: 'boolean', short: 'f' },
  tail: { type: 'string' },
} as const satisfies FlagSpecs;

export async function logs(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, LOGS_OPTIONS);
  const args = positionals.length === 2 && isGuestKind(positionals[0]!) ? positionals.slice(1) : positionals;
  if (args.length !== 1) throw new UsageError('logs takes one guest NAME');
  const word = guestWord(args[0]!);
  const tail = values.tail;
  if (tail !== undefined && !/^\d{1,9}$/.test(tail)) throw new UsageError(`--tail takes a number of lines, not "${tail}"`);
  const namespace = namespaceOf(values);
  const client = agentClient(values, io);
  const read = async (signal?: AbortSignal) => {
    const ref = await resolveGuest(client, word, namespace);
    await client.logs(
      ref.namespace,
      ref.name,
      { follow: values.follow, ...(tail !== undefined ? { tail: Number(tail) } : {}), signal },
      io.stdout,
    );
  };
  if (values.follow) return untilInterrupted(io, read);
  try {
    await read();
    return EXIT_OK;
  } catch (err) {
    return agentFailure(io, err);
  }
}
