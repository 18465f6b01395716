// kratactl exec NAME -- CMD...: kubectl exec for krata. The command runs in the guest beside its main
// process; stdin is passed with -i, a terminal with -t (raw, its size following the window), signals
// kratactl receives go to the remote process group, and the remote exit code is kratactl's.
import type { ExecResult } from '../../contracts/agent-api/exec.js';
import { checkExecFlags, EXEC_FLAG_SPECS, execQueryOf } from '../../contracts/agent-api/exec-flags.js';
import { ExecStream } from '../../contracts/agent-api/exec-stream.js';
import { execSession } from '../../lib/exec-session.js';
import { NO_TTY_WARNING } from '../../lib/terminal.js';
import { AgentError } from '../agent-client.js';
import { UsageError, type IO } from '../io.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient, agentFailure, isGuestKind, namespaceOf } from './common.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';
import { guestWord, resolveGuest } from '../guest-ref.js';

export const EXEC_HELP = `Run a command in a running guest.

Usage: kratactl exec [guest] NAME [options] -- COMMAND [ARG...]

The command runs beside the guest's main process, with that process's environment, working directory
and user unless told otherwise. kratactl exits with the command's exit code (128+N when signal N
killed it; a non-zero one is also printed, as kubectl does). Without -t, SIGINT, SIGTERM, SIGHUP and
SIGQUIT sent to kratactl go to the command's process group; the third of the same signal gives up and
closes the session (with -t, a signal from outside the terminal closes it at once).

  -i, --stdin            pass stdin to the command (without it the command reads nothing)
  -t, --tty              run the command on a terminal; with -i and a terminal on stdin, that terminal
                         is put in raw mode and the remote size follows the window (as kubectl, -t
                         needs -i)
  -e, --env KEY=VALUE    set an environment variable (repeatable)
  -w, --workdir DIR      the working directory (an absolute path)
  -u, --user USER        NAME, UID, NAME:GROUP or UID:GID (as the image's User)
${AGENT_HELP}
`;

export { NO_TTY_WARNING };

/** The options before `--`, and the command after it. */
function splitCommand(argv: string[]): { own: string[]; command: string[] } {
  const dash = argv.indexOf('--');
  if (dash < 0) throw new UsageError('exec needs -- before the command: kratactl exec NAME -- COMMAND [ARG...]');
  const command = argv.slice(dash + 1);
  if (command.length === 0 || command[0] === '') throw new UsageError('exec needs a COMMAND after --');
  return { own: argv.slice(0, dash), command };
}

/** The flags of `kratactl exec` (completion reads them too). */
export const EXEC_OPTIONS = { ...AGENT_OPTIONS, ...EXEC_FLAG_SPECS } as const satisfies FlagSpecs;

export async function exec(argv: string[], io: IO): Promise<number> {
  const { own, command } = splitCommand(argv);
  const { values, positionals } = parseFlags(own, EXEC_OPTIONS);
  const args = positionals.length === 2 && isGuestKind(positionals[0]!) ? positionals.slice(1) : positionals;
  if (args.length !== 1) throw new UsageError('exec takes one guest NAME before --');
  const word = guestWord(args[0]!);
  const namespace = namespaceOf(values);
  checkExecFlags(values, (m) => new UsageError(m));

  const stdin = io.stdin;
  const { query, withStdin, tty } = execQueryOf(command, values, io);

  let result: ExecResult;
  try {
    const client = agentClient(values, io);
    const ref = await resolveGuest(client, word, namespace);
    const socket = await client.exec(ref.namespace, ref.name, query);
    const failure = (why: string) => new AgentError(why);
    result = await execSession(
      new ExecStream(socket, { ...(withStdin ? { stdin } : {}), stdout: io.stdout, stderr: io.stderr, failure }),
      io,
      tty,
    );
  } catch (err) {
    return agentFailure(io, err);
  }
  // kubectl's words for a command that failed; its own error instead when it could not start.
  if ('error' in result) io.stderr.write(`error: ${result.error}\n`);
  else if (result.exitCode !== 0) io.stderr.write(`command terminated with exit code ${result.exitCode}\n`);
  return result.exitCode;
}
