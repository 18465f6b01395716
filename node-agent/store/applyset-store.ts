// ApplySet parents on a single host (contracts/agent-api/applyset.ts): one JSON file per parent under
// <state>/applysets/<namespace>/<name>.json, written atomically, read at start. kratactl apply --prune
// writes them; they hold only the set's id, its tooling and the kinds and namespaces of its members.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { namespacedFile, writeNamespacedFile } from './namespaced-file.js';
import { isNamespaceName } from '../../contracts/agent-api/pull-secret.js';
import { validateApplySetParent, type ApplySetParent } from '../../contracts/agent-api/applyset.js';

export class ApplySetStore {
  private readonly dir: string;
  private readonly parents = new Map<string, ApplySetParent>();

  /** Loads every parent; a file that cannot be read or checked is reported in `problems` and left in place. */
  constructor(
    stateDir: string,
    readonly problems: string[] = [],
  ) {
    this.dir = join(stateDir, 'applysets');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const ns of readdirSync(this.dir).filter(isNamespaceName)) {
      for (const file of readdirSync(join(this.dir, ns))) {
        if (!file.endsWith('.json')) continue;
        const path = join(this.dir, ns, file);
        try {
          const r = validateApplySetParent(JSON.parse(readFileSync(path, 'utf8')), { namespace: ns, name: file.slice(0, -5) });
          if (!r.object) throw new Error(r.errors.map((e) => `${e.path.join('.')}: ${e.message}`).join('; '));
          this.parents.set(`${ns}/${r.object.metadata.name}`, r.object);
        } catch (e) {
          problems.push(`${path}: ${(e as Error).message}`);
        }
      }
    }
  }

  private path(namespace: string, name: string): string {
    return namespacedFile(this.dir, namespace, name, 'applyset');
  }

  list(namespace?: string): ApplySetParent[] {
    return [...this.parents.values()].filter((p) => namespace === undefined || p.metadata.namespace === namespace);
  }

  get(namespace: string, name: string): ApplySetParent | undefined {
    return this.parents.get(`${namespace}/${name}`);
  }

  /** Stores a checked parent (validateApplySetParent); whether it was created, changed or the same. */
  put(parent: ApplySetParent): 'created' | 'configured' | 'unchanged' {
    const { namespace, name } = parent.metadata;
    const file = this.path(namespace, name);
    const old = this.parents.get(`${namespace}/${name}`);
    const json = JSON.stringify(parent);
    if (old && JSON.stringify(old) === json) return 'unchanged';
    writeNamespacedFile(file, json);
    this.parents.set(`${namespace}/${name}`, parent);
    return old ? 'configured' : 'created';
  }

  remove(namespace: string, name: string): boolean {
    const file = this.path(namespace, name);
    if (!this.parents.delete(`${namespace}/${name}`) && !existsSync(file)) return false;
    rmSync(file, { force: true });
    return true;
  }
}
