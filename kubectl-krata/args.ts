// Command-line parsing with kubectl's words: unknown flags refused by name, Guests named NAME or guest/NAME.
import { FlagError, parseFlags as parseKubectlFlags, type FlagSpecs } from '../lib/cli-flags.js';
import { UsageError } from './io.js';

/** kubectl's flag parsing (lib/cli-flags.ts), its errors as this CLI's usage errors. */
export function parseFlags<O extends FlagSpecs>(args: string[], options: O) {
  try {
    return parseKubectlFlags(args, options);
  } catch (e) {
    if (e instanceof FlagError) throw new UsageError(e.message);
    throw e;
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const KIND_WORDS = new Set(['guest', 'guests', 'gst', 'guest.krata.dev', 'guests.krata.dev']);

/** A Guest's name from NAME, guest/NAME or guests/NAME (kubectl's TYPE/NAME). */
export function guestName(word: string): string {
  const slash = word.indexOf('/');
  let name = word;
  if (slash >= 0) {
    if (!KIND_WORDS.has(word.slice(0, slash).toLowerCase())) throw new UsageError(`"${word}": only guests are served (guest/NAME)`);
    name = word.slice(slash + 1);
  }
  if (!DNS_LABEL.test(name))
    throw new UsageError(`"${name}" is not a valid guest name (a DNS label: lowercase letters, digits and "-", at most 63 characters)`);
  return name;
}

/** The one Guest a command takes. */
export function oneGuest(positionals: string[], command: string): string {
  if (positionals.length !== 1)
    throw new UsageError(`${command} takes one guest NAME${positionals.length ? ` (got ${positionals.join(' ')})` : ''}`);
  return guestName(positionals[0]!);
}
