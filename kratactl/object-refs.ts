// What kubectl's commands take as objects: `TYPE`, `TYPE NAME...`, `TYPE/NAME...`, `TYPE1,TYPE2`;
// `kratactl get` also reads NAMEs without a kind as Guests' (`kratactl get web`). The agent serves Guests and GuestSets.
import { resolveKind } from '../crds/validate.js';
import { UsageError } from './io.js';
import { checkGuestName, checkKindWord } from './commands/common.js';
import { guestWord } from './guest-ref.js';

export type AgentKind = 'Guest' | 'GuestSet';

export interface ObjectRefs {
  /** Objects named, in the order given. */
  named: { kind: AgentKind; name: string }[];
  /** Kinds given without names (every object of the kind). */
  kinds: AgentKind[];
  /** One object named (kubectl then prints it, not a List). */
  single: boolean;
}

function kindOf(word: string, command: string): AgentKind | undefined {
  const k = resolveKind(word)?.kind;
  if (k === 'Guest' || k === 'GuestSet') return k;
  checkKindWord(word, command);
  return undefined;
}

/** Reads the object words of `command`; `defaultKind` when none are given (get: Guests; others: none). */
export function parseObjectRefs(words: string[], command: string, defaultKind?: AgentKind): ObjectRefs {
  if (words.length === 0) return { named: [], kinds: defaultKind ? [defaultKind] : [], single: false };
  const slashed = words.filter((w) => w.includes('/'));
  if (slashed.length) {
    if (slashed.length !== words.length) {
      const first = words[0]!;
      if (!first.includes('/') && kindOf(first.split(',')[0]!, command))
        throw new UsageError(
          `there is no need to specify a resource type as a separate argument when passing arguments in resource/name form ` +
            `(e.g. 'kratactl ${command} resource/<resource_name>' instead of 'kratactl ${command} resource resource/<resource_name>'`,
        );
      throw new UsageError(`arguments in resource/name form must have a single resource and name`);
    }
    const named = words.map((w) => {
      const [type, name, extra] = w.split('/');
      if (!type || !name || extra !== undefined)
        throw new UsageError(`arguments in resource/name form must have a single resource and name`);
      const kind = kindOf(type, command);
      if (!kind) throw new UsageError(`the server doesn't have a resource type "${type}"`);
      return { kind, name: kind === 'Guest' ? guestWord(name) : checkGuestName(name) };
    });
    return { named, kinds: [], single: named.length === 1 };
  }
  const [first, ...names] = words;
  const types = first!.split(',');
  const kinds = types.map((t) => kindOf(t, command));
  if (kinds.every((k) => k !== undefined)) {
    const unique = [...new Set(kinds)];
    if (names.length === 0) return { named: [], kinds: unique, single: false };
    if (unique.length > 1) throw new UsageError(`a name cannot be given with several types (${first}); use TYPE/NAME`);
    const named = names.map((n) => ({ kind: unique[0]!, name: unique[0] === 'Guest' ? guestWord(n) : checkGuestName(n) }));
    return { named, kinds: [], single: named.length === 1 };
  }
  if (types.length > 1) throw new UsageError(`the server doesn't have a resource type "${types.find((_, i) => !kinds[i])}"`);
  if (command !== 'get') throw new UsageError(`${command} needs a kind first: kratactl ${command} guest ${first}`);
  // No kind first: every word is a Guest's name (get's short form).
  const named = words.map((n) => ({ kind: 'Guest' as const, name: guestWord(n) }));
  return { named, kinds: [], single: named.length === 1 };
}

/** kubectl's plural resource for messages: guests, guestsets. */
export function resourceOf(kind: AgentKind): string {
  return kind === 'Guest' ? 'guests' : 'guestsets';
}
