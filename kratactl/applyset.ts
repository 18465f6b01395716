// `kratactl apply --prune --applyset=NAME` (KEP-3659, as kubectl does it): before applying, the parent
// (kept by the node agent, contracts/agent-api/applyset.ts) is written with the union of the kinds and
// namespaces it held and those applied now; every applied object carries the part-of label; after the
// apply, objects of those kinds and namespaces that carry the label but were not applied are deleted,
// and the parent is written with what was applied. Objects without the label, or with another set's,
// are never touched, nor a GuestSet's own Guests (their set deletes them).
import {
  APPLYSET_GROUP_KINDS_ANNOTATION,
  APPLYSET_ID_LABEL,
  APPLYSET_NAMESPACES_ANNOTATION,
  APPLYSET_PART_OF_LABEL,
  APPLYSET_TOOLING_ANNOTATION,
  applySetId,
  listAnnotation,
  type ApplySetParent,
} from '../contracts/agent-api/applyset.js';
import { packageVersion } from '../lib/version.js';
import { AgentError, type AgentClient } from './agent-client.js';
import { UsageError } from './io.js';

/** An applied object, as far as the set is concerned. */
export interface Member {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
}

export interface PruneTarget {
  kind: 'Guest' | 'GuestSet' | 'Secret';
  namespace: string;
  name: string;
}

const GROUP_KINDS: Record<string, PruneTarget['kind']> = { 'Guest.krata.dev': 'Guest', 'GuestSet.krata.dev': 'GuestSet', Secret: 'Secret' };

/** `Kind.group` as the contains-group-kinds annotation spells it (the core group: `Kind`). */
export function groupKind(kind: string): string {
  return kind === 'Secret' ? 'Secret' : `${kind}.krata.dev`;
}

/** --applyset=NAME, or secret/NAME (kubectl's default parent kind); any other kind is refused. */
export function applySetName(value: string): string {
  const slash = value.indexOf('/');
  const kind = slash < 0 ? 'secrets' : value.slice(0, slash);
  const name = slash < 0 ? value : value.slice(slash + 1);
  if (kind !== 'secret' && kind !== 'secrets')
    throw new UsageError(`--applyset: a single host keeps the parent as a Secret; use --applyset=NAME or secret/NAME, not "${value}"`);
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253)
    throw new UsageError(`--applyset: "${name}" is not a valid name (a DNS subdomain)`);
  return name;
}

/** Labels the object as a member of the set `id` (in place: what is shown and what is sent are the same). */
export function labelMember(o: Member, id: string): void {
  o.metadata.labels = { ...o.metadata.labels, [APPLYSET_PART_OF_LABEL]: id };
}

const key = (kind: string, namespace: string, name: string) => `${kind}/${namespace}/${name}`;

function parentOf(name: string, namespace: string, id: string, kinds: string[], namespaces: string[]): ApplySetParent {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      namespace,
      labels: { [APPLYSET_ID_LABEL]: id },
      annotations: {
        [APPLYSET_TOOLING_ANNOTATION]: `kratactl/v${packageVersion()}`,
        [APPLYSET_GROUP_KINDS_ANNOTATION]: kinds.join(','),
        [APPLYSET_NAMESPACES_ANNOTATION]: namespaces.filter((n) => n !== namespace).join(','),
      },
    },
  };
}

export class ApplySetRun {
  private constructor(
    private readonly client: AgentClient,
    readonly name: string,
    readonly namespace: string,
    readonly id: string,
    /** The kinds and namespaces a member may be in: what the parent held before, and what is applied now. */
    private readonly scope: { kinds: string[]; namespaces: string[] },
    private readonly now: { kinds: string[]; namespaces: string[]; keys: Set<string> },
  ) {}

  /**
   * Reads the parent (refusing one another tool manages) and, unless `dryRun`, writes it with the union of
   * what it held and what `members` adds, before anything is applied: a failure later leaves the set's
   * scope wide enough that the next apply prunes what this one created.
   */
  static async begin(client: AgentClient, name: string, namespace: string, members: Member[], dryRun: boolean): Promise<ApplySetRun> {
    const id = applySetId(name, namespace);
    const old = await client.getApplySet(namespace, name);
    const tooling = old?.metadata.annotations[APPLYSET_TOOLING_ANNOTATION];
    if (tooling && !tooling.startsWith('kratactl/'))
      throw new AgentError(`applyset ${namespace}/${name} is managed by ${tooling}, not kratactl; nothing was applied`, 409);
    const nsOf = (m: Member) => m.metadata.namespace ?? namespace;
    const now = {
      kinds: [...new Set(members.map((m) => groupKind(m.kind)))].sort(),
      namespaces: [...new Set(members.map(nsOf))].sort(),
      keys: new Set(members.map((m) => key(m.kind, nsOf(m), m.metadata.name))),
    };
    const scope = {
      kinds: [...new Set([...listAnnotation(old?.metadata.annotations[APPLYSET_GROUP_KINDS_ANNOTATION]), ...now.kinds])].sort(),
      namespaces: [
        ...new Set([namespace, ...listAnnotation(old?.metadata.annotations[APPLYSET_NAMESPACES_ANNOTATION]), ...now.namespaces]),
      ].sort(),
    };
    const run = new ApplySetRun(client, name, namespace, id, scope, now);
    const taken = await run.othersMembers();
    if (taken.length)
      throw new AgentError(
        `${taken.join(', ')} belong${taken.length === 1 ? 's' : ''} to another applyset; nothing was applied ` +
          `(delete ${taken.length === 1 ? 'it' : 'them'}, or apply ${taken.length === 1 ? 'it' : 'them'} with that set)`,
        409,
      );
    if (!dryRun) await client.putApplySet(parentOf(name, namespace, id, scope.kinds, scope.namespaces));
    return run;
  }

  /** Objects about to be applied that exist labelled as another set's members: taking them would strip that set. */
  private async othersMembers(): Promise<string[]> {
    const theirs = (labels?: Record<string, string>) => {
      const v = labels?.[APPLYSET_PART_OF_LABEL];
      return v !== undefined && v !== this.id;
    };
    const out: string[] = [];
    const check = (kind: PruneTarget['kind'], namespace: string, name: string, labels?: Record<string, string>) => {
      if (this.now.keys.has(key(kind, namespace, name)) && theirs(labels)) out.push(`${kind} ${namespace}/${name}`);
    };
    for (const ns of this.now.namespaces) {
      if (this.now.kinds.includes('Guest.krata.dev'))
        for (const g of await this.client.list(ns)) check('Guest', ns, g.metadata.name, g.metadata.labels);
      if (this.now.kinds.includes('GuestSet.krata.dev'))
        for (const s of await this.client.listGuestSets(ns)) check('GuestSet', ns, s.metadata.name, s.metadata.labels);
      if (this.now.kinds.includes('Secret')) for (const s of await this.client.listSecrets(ns)) check('Secret', ns, s.name, s.labels);
    }
    return out;
  }

  /** The set's members on the host that were not applied now: the set's kinds, in its namespaces, with its label. */
  async stale(): Promise<PruneTarget[]> {
    const ours = (labels?: Record<string, string>) => labels?.[APPLYSET_PART_OF_LABEL] === this.id;
    const out: PruneTarget[] = [];
    const add = (kind: PruneTarget['kind'], namespace: string, name: string) => {
      if (!this.now.keys.has(key(kind, namespace, name))) out.push({ kind, namespace, name });
    };
    const kinds = new Set(this.scope.kinds.map((k) => GROUP_KINDS[k]).filter((k) => k !== undefined));
    for (const ns of this.scope.namespaces) {
      if (kinds.has('GuestSet'))
        for (const s of await this.client.listGuestSets(ns)) if (ours(s.metadata.labels)) add('GuestSet', ns, s.metadata.name);
      if (kinds.has('Guest'))
        for (const g of await this.client.list(ns))
          if (ours(g.metadata.labels) && !g.metadata.deletionTimestamp && !g.metadata.ownerReferences?.length)
            add('Guest', ns, g.metadata.name);
      if (kinds.has('Secret')) for (const s of await this.client.listSecrets(ns)) if (ours(s.labels)) add('Secret', ns, s.name);
    }
    return out;
  }

  /** Deletes the stale members (Secrets last: a Guest pruned now may still pull with one); each as it goes, a 404 being done already. */
  async prune(targets: PruneTarget[], done: (t: PruneTarget) => void): Promise<void> {
    const order = { GuestSet: 0, Guest: 1, Secret: 2 };
    for (const t of [...targets].sort((a, b) => order[a.kind] - order[b.kind])) {
      try {
        if (t.kind === 'Guest') await this.client.delete(t.namespace, t.name);
        else if (t.kind === 'GuestSet') await this.client.deleteGuestSet(t.namespace, t.name);
        else await this.client.deleteSecret(t.namespace, t.name);
      } catch (err) {
        if (!(err instanceof AgentError && err.status === 404)) throw err;
      }
      done(t);
    }
  }

  /** After the prune: the parent records exactly what was applied. */
  async finish(): Promise<void> {
    await this.client.putApplySet(parentOf(this.name, this.namespace, this.id, this.now.kinds, this.now.namespaces));
  }
}
