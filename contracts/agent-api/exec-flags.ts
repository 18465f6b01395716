// kubectl exec's flags as an exec query, for both clients (kratactl exec, kubectl krata exec): the same
// checks of -e, -w and -u, and kubectl's terminal rules (-t needs -i, and a stdin that is a terminal: without
// one, a warning and no terminal), with the window's size when there is one.
import { NO_TTY_WARNING, canBeRaw } from '../../lib/terminal.js';
import { windowSize } from '../../lib/window-size.js';
import type { TerminalIO } from '../../lib/terminal.js';
import type { ExecQuery } from './exec.js';
import type { FlagSpecs } from '../../lib/cli-flags.js';

export interface ExecFlags {
  stdin?: boolean;
  tty?: boolean;
  env?: string[];
  workdir?: string;
  user?: string;
}

/** The flags that set them, as both clients parse them (lib/cli-flags.ts): -i, -t, -e, -w, -u. */
export const EXEC_FLAG_SPECS = {
  stdin: { type: 'boolean', short: 'i' },
  tty: { type: 'boolean', short: 't' },
  env: { type: 'string', short: 'e', multiple: true },
  workdir: { type: 'string', short: 'w' },
  user: { type: 'string', short: 'u' },
} as const satisfies FlagSpecs;

/** -e KEY=VALUE, an absolute -w, a non-empty -u; each refusal is `usage(message)`, thrown. */
export function checkExecFlags(values: ExecFlags, usage: (message: string) => Error): void {
  for (const kv of values.env ?? []) if (kv.indexOf('=') <= 0) throw usage(`-e ${JSON.stringify(kv)}: expected KEY=VALUE`);
  if (values.workdir !== undefined && !values.workdir.startsWith('/'))
    throw usage(`-w ${JSON.stringify(values.workdir)}: the working directory must be an absolute path`);
  if (values.user === '') throw usage('-u needs a USER');
}

/** The query for `command` with these flags; `tty` says whether the session is on a (raw) terminal. */
export function execQueryOf(command: string[], values: ExecFlags, io: TerminalIO): { query: ExecQuery; withStdin: boolean; tty: boolean } {
  const withStdin = values.stdin === true;
  let tty = values.tty === true && withStdin;
  if (tty && !canBeRaw(io.stdin)) {
    io.stderr.write(`${NO_TTY_WARNING}\n`);
    tty = false;
  }
  const size = tty ? windowSize(io.stdout) : undefined;
  const query: ExecQuery = {
    command,
    ...(values.env?.length ? { env: values.env } : {}),
    ...(values.workdir !== undefined ? { workingDir: values.workdir } : {}),
    ...(values.user !== undefined ? { user: values.user } : {}),
    ...(withStdin ? { stdin: true } : {}),
    ...(tty ? { tty: true } : {}),
    ...(size ?? {}),
  };
  return { query, withStdin, tty };
}
