// A guest as the user names it: a Guest's NAME (in the command's namespace), or its UUID
// (`status.uuid`, the Xen domain's handle that `list` and `launch` print), as krata's CLI took either.
// A UUID finds the Guest in any namespace; every command that takes a guest NAME resolves it here.
import type { Guest } from '../crds/generated/types.js';
import { AgentError, type AgentClient } from './agent-client.js';
import { checkGuestName } from './commands/common.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const isUuid = (word: string): boolean => UUID.test(word);

export interface GuestRef {
  namespace: string;
  name: string;
}

/** Checks a NAME or UUID word before anything is asked of the agent (a usage error otherwise); a UUID comes back lower-case. */
export function guestWord(word: string): string {
  return isUuid(word) ? word.toLowerCase() : checkGuestName(word);
}

/** The Guests whose current domain has this UUID (every namespace): none, one, or (never expected) several. */
export function withUuid(guests: Guest[], uuid: string): Guest[] {
  return guests.filter((g) => g.status?.uuid?.toLowerCase() === uuid.toLowerCase());
}

/**
 * A word (checked by guestWord) → the Guest it names. A UUID is looked up across namespaces and must be
 * unique; a UUID no Guest has is taken as a name (a Guest may be named like one), and when no Guest has
 * that name either, the 404 says both. Anything else is a name in `namespace`, as before.
 */
export async function resolveGuest(client: AgentClient, word: string, namespace: string, guests?: Guest[]): Promise<GuestRef> {
  if (!isUuid(word)) return { namespace, name: word };
  const found = withUuid(guests ?? (await client.list()), word);
  if (found.length > 1)
    throw new AgentError(
      `UUID ${word} is the domain of several guests (${found.map((g) => `${g.metadata.namespace}/${g.metadata.name}`).join(', ')})`,
      409,
    );
  if (found[0]) return { namespace: found[0].metadata.namespace ?? namespace, name: found[0].metadata.name };
  try {
    await client.get(namespace, word);
  } catch (err) {
    if (err instanceof AgentError && err.status === 404)
      throw new AgentError(`no guest has UUID ${word}, and no guest is named so in namespace "${namespace}"`, 404);
    throw err;
  }
  return { namespace, name: word };
}

/** resolveGuest for several (word, namespace) pairs, with one list of the Guests for all the UUIDs among them. */
export async function resolveGuests(client: AgentClient, refs: GuestRef[]): Promise<GuestRef[]> {
  const guests = refs.some((r) => isUuid(r.name)) ? await client.list() : [];
  const out: GuestRef[] = [];
  for (const r of refs) out.push(await resolveGuest(client, r.name, r.namespace, guests));
  return out;
}
