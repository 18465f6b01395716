// kubectl krata exec NAME [-i] [-t] -- CMD...: a command in a running Guest, through krata-api's exec websocket
// carrying the agent's exec frames (contracts/agent-api/exec.ts). Behaves as kratactl exec: stdin with -i, a raw
// terminal with -it (its size following SIGWINCH), our signals passed to the remote process group, and the remote
// exit code as ours.
import { createWebSocketStream } from 'ws';
import { execQueryString, type ExecResult } from '../../contracts/agent-api/exec.js';
import { checkExecFlags, EXEC_FLAG_SPECS, execQueryOf } from '../../contracts/agent-api/exec-flags.js';
import { ExecStream } from '../../contracts/agent-api/exec-stream.js';
import { WEBSOCKET_PROTOCOL } from '../../contracts/krata-api/subresources.js';
import { execSession } from '../../lib/exec-session.js';
import { oneGuest, parseFlags } from '../args.js';
import { CommandError, UsageError, type IO } from '../io.js';
import { KUBE_HELP, KUBE_OPTIONS, Kube, closeWatch } from '../kube.js';

export const EXEC_HELP = `Run a command in a running Guest.

Usage: kubectl krata exec [guest/]NAME [options] -- COMMAND [ARG...]

The command runs beside the Guest's main process, with that process's environment, working directory
and user unless told otherwise. The exit status is the command's (128+N when signal N killed it; a
non-zero one is also printed, as kubectl does). Without -t, SIGINT, SIGTERM, SIGHUP and SIGQUIT go to
the command's process group; the third of the same signal gives up and closes the session.

  -i, --stdin            pass stdin to the command (without it the command reads nothing)
  -t, --tty              run the command on a terminal (with -i and a terminal on stdin: raw mode,
                         the remote size follows the window)
  -e, --env KEY=VALUE    set an environment variable (repeatable)
  -w, --workdir DIR      the working directory (an absolute path)
  -u, --user USER        NAME, UID, NAME:GROUP or UID:GID
${KUBE_HELP}
`;

export async function exec(argv: string[], io: IO): Promise<number> {
  const dash = argv.indexOf('--');
  if (dash < 0) throw new UsageError('exec needs -- before the command: kubectl krata exec NAME -- COMMAND [ARG...]');
  const command = argv.slice(dash + 1);
  if (command.length === 0 || command[0] === '') throw new UsageError('exec needs a COMMAND after --');
  const { values, positionals } = parseFlags(argv.slice(0, dash), { ...KUBE_OPTIONS, ...EXEC_FLAG_SPECS });
  const name = oneGuest(positionals, 'exec');
  checkExecFlags(values, (m) => new UsageError(m));
  const kube = Kube.connect(values, io.env);
  const { query, withStdin, tty } = execQueryOf(command, values, io);
  const ws = await kube.websocket(name, 'exec', WEBSOCKET_PROTOCOL.exec!, execQueryString(query));
  const closed = closeWatch(ws);
  // Each binary message is one or more frames; the stream's decoder reads them as the bytes they are.
  const socket = createWebSocketStream(ws);
  const stream = new ExecStream(socket, {
    ...(withStdin ? { stdin: io.stdin } : {}),
    stdout: io.stdout,
    stderr: io.stderr,
    peer: 'krata-api',
    failure: (why) => new CommandError(closed() ? `${why} (${closed()})` : why),
  });
  const result: ExecResult = await execSession(stream, io, tty);
  // kubectl's words for a command that failed; its own error instead when it could not start.
  if ('error' in result) io.stderr.write(`error: ${result.error}\n`);
  else if (result.exitCode !== 0) io.stderr.write(`command terminated with exit code ${result.exitCode}\n`);
  return result.exitCode;
}
