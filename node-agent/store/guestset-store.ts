// The node agent's GuestSets on a single host: one JSON file per set under
// <state>/guestsets/<namespace>/<name>.json, written atomically, beside the Guests (guest-store.ts).
// As the API server would, the store owns uid, generation (bumped when the spec changes, a scale
// included), resourceVersion and creationTimestamp; status is the GuestSet controller's.
// Every write emits 'change' with the set's key, which the controller follows.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { GuestSet, GuestSetStatus } from '../../crds/generated/types.js';
import { metaTime } from '../../crds/meta.js';
import { fsyncDir, writeFileAtomic } from '../../lib/atomic-file.js';

export const setKey = (namespace: string, name: string) => `${namespace}/${name}`;

export class GuestSetStore extends EventEmitter {
  private readonly sets = new Map<string, GuestSet>();
  private revision = 0;
  private readonly dir: string;

  /** Loads every set; a file that cannot be read is reported in `problems` and left in place. */
  constructor(
    stateDir: string,
    readonly problems: string[] = [],
  ) {
    super();
    this.setMaxListeners(0);
    this.dir = join(stateDir, 'guestsets');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const ns of readdirSync(this.dir)) {
      for (const file of readdirSync(join(this.dir, ns))) {
        if (!file.endsWith('.json')) continue;
        try {
          const set = JSON.parse(readFileSync(join(this.dir, ns, file), 'utf8')) as GuestSet;
          this.revision = Math.max(this.revision, Number(set.metadata.resourceVersion ?? 0));
          this.sets.set(setKey(set.metadata.namespace ?? 'default', set.metadata.name), set);
        } catch (e) {
          problems.push(`${join(this.dir, ns, file)}: ${(e as Error).message}`);
        }
      }
    }
  }

  list(namespace?: string): GuestSet[] {
    return [...this.sets.values()].filter((s) => namespace === undefined || s.metadata.namespace === namespace);
  }

  get(key: string): GuestSet | undefined {
    return this.sets.get(key);
  }

  /** Creates or updates a set's metadata (labels, annotations) and spec; its status is kept. */
  put(set: GuestSet, now: Date): 'created' | 'configured' | 'unchanged' {
    const namespace = set.metadata.namespace ?? 'default';
    const key = setKey(namespace, set.metadata.name);
    const old = this.sets.get(key);
    const { labels, annotations } = set.metadata;
    if (!old) {
      const metadata: GuestSet['metadata'] = {
        name: set.metadata.name,
        namespace,
        uid: randomUUID(),
        generation: 1,
        creationTimestamp: metaTime(now),
        ...(labels ? { labels } : {}),
        ...(annotations ? { annotations } : {}),
      };
      this.write({ apiVersion: set.apiVersion, kind: set.kind, metadata, spec: set.spec });
      return 'created';
    }
    const specChanged = !isDeepStrictEqual(old.spec, set.spec);
    if (!specChanged && isDeepStrictEqual(old.metadata.labels, labels) && isDeepStrictEqual(old.metadata.annotations, annotations))
      return 'unchanged';
    const metadata = { ...old.metadata, labels, annotations, generation: (old.metadata.generation ?? 1) + (specChanged ? 1 : 0) };
    if (!labels) delete metadata.labels;
    if (!annotations) delete metadata.annotations;
    this.write({ ...old, metadata, spec: set.spec });
    return 'configured';
  }

  /** The scale subresource: spec.replicas only (a new generation when it changes). */
  scale(key: string, replicas: number): GuestSet | undefined {
    const old = this.sets.get(key);
    if (!old) return undefined;
    if (old.spec.replicas === replicas) return old;
    const next = {
      ...old,
      metadata: { ...old.metadata, generation: (old.metadata.generation ?? 1) + 1 },
      spec: { ...old.spec, replicas },
    };
    this.write(next);
    return this.sets.get(key);
  }

  setStatus(key: string, status: GuestSetStatus): void {
    const old = this.sets.get(key);
    if (!old || isDeepStrictEqual(old.status, status)) return;
    this.write({ ...old, status });
  }

  remove(key: string): GuestSet | undefined {
    const set = this.sets.get(key);
    if (!set) return undefined;
    const dir = join(this.dir, set.metadata.namespace ?? 'default');
    const file = join(dir, `${set.metadata.name}.json`);
    if (existsSync(file)) {
      rmSync(file);
      fsyncDir(dir);
    }
    this.sets.delete(key);
    this.emit('change', key);
    return set;
  }

  private write(set: GuestSet): void {
    const namespace = set.metadata.namespace ?? 'default';
    const next = { ...set, metadata: { ...set.metadata, resourceVersion: String(this.revision + 1) } };
    const dir = join(this.dir, namespace);
    if (!existsSync(dir)) {
      mkdirSync(dir, { mode: 0o700 });
      fsyncDir(this.dir);
    }
    writeFileAtomic(join(dir, `${set.metadata.name}.json`), JSON.stringify(next), 0o600);
    this.revision++;
    const key = setKey(namespace, set.metadata.name);
    this.sets.set(key, next);
    this.emit('change', key);
  }
}
