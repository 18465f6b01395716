// How the daemons (krata-node-agent, krata-operator, krata-api) log: pino, as JSON lines (the default,
// for collectors, as controller-runtime's production logger) or as text lines for people reading them in
// a terminal (lib/log-text.ts), chosen by --log-format or, without it, KRATA_LOG_FORMAT.
import { pino, type Logger } from 'pino';
import { textDestination } from './log-text.js';

export type LogFormat = 'json' | 'text';

/** The --help lines of the two log flags, the same in every daemon (`width`: where descriptions start). */
export function logFlagsHelp(width: number): string {
  const line = (flag: string, text: string) => `  ${flag.padEnd(width - 2)}${text}\n`;
  return (
    line('--log-level LEVEL', 'trace, debug, info, warn, error or fatal (default info)') +
    line('--log-format FORMAT', 'json (one object a line; the default) or text (readable lines);') +
    line('', 'without it, $KRATA_LOG_FORMAT')
  );
}

/** The format --log-format (`flag`) or else KRATA_LOG_FORMAT (`env`) names; json when neither does. */
export function logFormat(flag: string | undefined, env: string | undefined = process.env.KRATA_LOG_FORMAT): LogFormat {
  const [from, v] = flag !== undefined ? ['--log-format', flag] : ['KRATA_LOG_FORMAT', env];
  if (v === undefined || (v === '' && from === 'KRATA_LOG_FORMAT')) return 'json';
  if (v === 'json' || v === 'text') return v;
  throw new Error(`${from}: expected text or json, not ${JSON.stringify(v)}`);
}

/** The daemon's logger, writing to stdout; every JSON record names the `component`, text lines do not. */
export function daemonLogger(
  component: string,
  level: string,
  format: LogFormat,
  out: { write(s: string): unknown } = process.stdout,
): Logger {
  const opts = { level, base: { component } };
  return format === 'text' ? pino(opts, textDestination(out, new Set(['component']))) : pino(opts);
}
