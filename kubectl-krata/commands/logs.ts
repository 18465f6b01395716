// kubectl krata logs NAME [-f] [--tail N]: the Guest's console output through krata-api (GET .../log), streamed
// to stdout as it comes; with -f until the Guest's domain ends or we are interrupted (then exit 0).
import { pipeline } from 'node:stream/promises';
import { subresourcePath } from '../../contracts/krata-api/subresources.js';
import { oneGuest, parseFlags } from '../args.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { KUBE_HELP, KUBE_OPTIONS, Kube } from '../kube.js';

export const LOGS_HELP = `Print a Guest's console output.

Usage: kubectl krata logs [guest/]NAME [options]

  -f, --follow          keep printing new output until the Guest's domain ends (or Ctrl+C)
      --tail N          only the last N lines of the history
${KUBE_HELP}
`;

export async function logs(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, { ...KUBE_OPTIONS, follow: { type: 'boolean', short: 'f' }, tail: { type: 'string' } });
  const name = oneGuest(positionals, 'logs');
  const tail = values.tail;
  // kubectl's --tail=-1 means everything.
  if (tail !== undefined && tail !== '-1' && !/^\d{1,9}$/.test(tail)) throw new UsageError(`--tail takes a number of lines, not "${tail}"`);
  const kube = Kube.connect(values, io.env);
  const query = new URLSearchParams();
  if (values.follow) query.set('follow', 'true');
  if (tail !== undefined && tail !== '-1') query.set('tailLines', tail);
  const abort = new AbortController();
  const interrupt = () => abort.abort();
  if (values.follow) {
    process.once('SIGINT', interrupt);
    process.once('SIGTERM', interrupt);
  }
  try {
    const res = await kube.get(subresourcePath(kube.namespace, name, 'log'), query.toString(), abort.signal);
    await pipeline(res, io.stdout, { end: false, signal: abort.signal });
    return EXIT_OK;
  } catch (e) {
    if (abort.signal.aborted) return EXIT_OK;
    throw e;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}
