// Cluster mode's pull credentials: the repository tokens the operator put into each Guest's desired
// record (contract.ts, DesiredPullAuth), held in memory only, by Guest and uid. They are never written
// to the store's files: an agent restart reads them from Redis again.
import type { DesiredPullAuth } from '../../contracts/redis/contract.js';
import type { Guest } from '../../crds/generated/types.js';
import type { PullAuth } from '../../lib/oci/registry.js';

export class PullTokens {
  private readonly byGuest = new Map<string, { uid: string; auth: DesiredPullAuth }>();

  /** The desired record of `key` (namespace/name) now carries `auth` (or none). */
  set(key: string, uid: string, auth: DesiredPullAuth | undefined): void {
    if (auth) this.byGuest.set(key, { uid, auth });
    else this.byGuest.delete(key);
  }

  delete(key: string): void {
    this.byGuest.delete(key);
  }

  /** A Guest's credentials: its tokens if the record for this very uid had any. */
  forGuest(g: Guest): PullAuth {
    const namespace = g.metadata.namespace ?? 'default';
    const key = `${namespace}/${g.metadata.name}`;
    const held = this.byGuest.get(key);
    if (!held || held.uid !== g.metadata.uid) return { namespace };
    return { namespace, tokens: held.auth.tokens, ...(held.auth.problems && { problems: held.auth.problems }) };
  }
}
