// Command-line flags parsed the way kubectl (cobra/pflag) parses them, so kubectl users' habits work:
// `--output=yaml`, `--output yaml`, `-o yaml`, `-oyaml`, `-o=yaml`, combined shorthands (`-it`, `-itn ns`),
// `--watch=false` for a boolean, flags before or after positionals, and `--` ending the flags. Errors are
// pflag's wording with a "did you mean" for a mistyped flag; Node's own parser messages never show.
import { closest } from './closest.js';

export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
}

export type FlagSpecs = Record<string, FlagSpec>;

type FlagValue<S extends FlagSpec> = S extends { type: 'boolean' }
  ? S extends { multiple: true }
    ? boolean[]
    : boolean
  : S extends { multiple: true }
    ? string[]
    : string;

export type FlagValues<O extends FlagSpecs> = { -readonly [K in keyof O]?: FlagValue<O[K]> };

export interface ParsedFlags<O extends FlagSpecs> {
  values: FlagValues<O>;
  /** Every word that is not a flag, those after `--` included. */
  positionals: string[];
  /** How many positionals came before `--` (all of them when there is none): pflag's ArgsLenAtDash. */
  beforeDash: number;
}

/** A command line that does not parse; the CLIs print it as a usage error (exit 2). */
export class FlagError extends Error {}

const TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

/**
 * `interspersed: false` is pflag's SetInterspersed(false): the first word that is not a flag ends the
 * flags, and it and every word after it are positionals (a command line for something else, as in
 * `kratactl launch IMAGE CMD...`).
 */
export function parseFlags<O extends FlagSpecs>(
  args: readonly string[],
  options: O,
  opts: { interspersed?: boolean } = {},
): ParsedFlags<O> {
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(options)) if (spec.short) byShort.set(spec.short, name);
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  let beforeDash: number | undefined;

  const set = (name: string, spec: FlagSpec, raw: string | undefined, shown: string) => {
    let value: string | boolean;
    if (spec.type === 'boolean') {
      if (raw === undefined || TRUE.has(raw)) value = true;
      else if (FALSE.has(raw)) value = false;
      else throw new FlagError(`invalid argument "${raw}" for "${shown}" flag: a boolean flag takes true or false`);
    } else {
      if (raw === undefined) throw new FlagError(`flag needs an argument: ${shown}`);
      value = raw;
    }
    if (spec.multiple) ((values[name] ??= []) as unknown[]).push(value);
    else values[name] = value;
  };

  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (beforeDash !== undefined || arg === '-' || !arg.startsWith('-')) {
      if (opts.interspersed === false && beforeDash === undefined) {
        positionals.push(...args.slice(i));
        break;
      }
      positionals.push(arg);
      continue;
    }
    if (arg === '--') {
      beforeDash = positionals.length;
      continue;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const spec = options[name];
      if (!spec) throw new FlagError(`unknown flag: --${name}${suggest(name, Object.keys(options), '--')}`);
      let raw = eq < 0 ? undefined : arg.slice(eq + 1);
      if (raw === undefined && spec.type === 'string' && i + 1 < args.length) raw = args[++i];
      set(name, spec, raw, `--${name}`);
      continue;
    }
    // One or more shorthands: booleans until one that takes a value, which takes the rest (after an
    // optional '=') or the next word.
    for (let j = 1; j < arg.length; j++) {
      const c = arg[j]!;
      const name = byShort.get(c);
      if (name === undefined) throw new FlagError(`unknown shorthand flag: '${c}' in ${arg}`);
      const spec = options[name]!;
      const rest = arg.slice(j + 1);
      if (spec.type === 'boolean') {
        if (rest.startsWith('=')) {
          set(name, spec, rest.slice(1), `-${c}, --${name}`);
          break;
        }
        set(name, spec, undefined, `-${c}, --${name}`);
        continue;
      }
      let raw: string | undefined = rest.startsWith('=') ? rest.slice(1) : rest;
      if (raw === '') raw = i + 1 < args.length ? args[++i] : undefined;
      if (raw === undefined) throw new FlagError(`flag needs an argument: '${c}' in -${c}`);
      set(name, spec, raw, `-${c}`);
      break;
    }
  }
  return { values: values as FlagValues<O>, positionals, beforeDash: beforeDash ?? positionals.length };
}

function suggest(word: string, names: string[], prefix: string): string {
  const near = closest(word, names);
  return near ? ` (did you mean ${prefix}${near}?)` : '';
}
