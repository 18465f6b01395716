// Image pull secrets on a single host: one file per Secret under <state>/secrets/<namespace>/<name>.json,
// mode 0600 in 0700 directories, written atomically. A Guest's spec.imagePullSecrets names Secrets of
// its own namespace only. The API shows metadata (name, namespace, type, registries), never data.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Guest } from '../../crds/generated/types.js';
import { namespacedFile, writeNamespacedFile } from './namespaced-file.js';
import { CredentialStore } from '../../lib/oci/credentials.js';
import { isNamespaceName, isPullSecretName, validatePullSecret, type PullSecret } from '../../contracts/agent-api/pull-secret.js';
import type { PullAuth } from '../../lib/oci/registry.js';

/** What the API may show of a Secret. */
export interface SecretInfo {
  namespace: string;
  name: string;
  type: PullSecret['type'];
  registries: string[];
  /** Its labels (an ApplySet's members carry applyset.kubernetes.io/part-of). */
  labels?: Record<string, string>;
}

export class SecretStore {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'secrets');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  private path(namespace: string, name: string): string {
    return namespacedFile(this.dir, namespace, name, 'secret');
  }

  /** Stores a validated Secret; returns whether it was created, changed or the same. */
  put(secret: PullSecret): 'created' | 'configured' | 'unchanged' {
    const namespace = secret.metadata.namespace ?? 'default';
    const file = this.path(namespace, secret.metadata.name);
    const json = JSON.stringify({ ...secret, metadata: { ...secret.metadata, namespace } });
    const old = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
    if (old === json) return 'unchanged';
    writeNamespacedFile(file, json);
    return old === undefined ? 'created' : 'configured';
  }

  /** Would `put` create, configure or leave it (dry runs). */
  compare(secret: PullSecret): 'created' | 'configured' | 'unchanged' {
    const namespace = secret.metadata.namespace ?? 'default';
    const file = this.path(namespace, secret.metadata.name);
    if (!existsSync(file)) return 'created';
    return readFileSync(file, 'utf8') === JSON.stringify({ ...secret, metadata: { ...secret.metadata, namespace } })
      ? 'unchanged'
      : 'configured';
  }

  get(namespace: string, name: string): PullSecret | undefined {
    let text: string;
    try {
      text = readFileSync(this.path(namespace, name), 'utf8');
    } catch {
      return undefined;
    }
    // Checked again: the file is ours, but a hand-edited one must fail here, not at a pull.
    return validatePullSecret(JSON.parse(text)).object;
  }

  remove(namespace: string, name: string): boolean {
    const file = this.path(namespace, name);
    if (!existsSync(file)) return false;
    rmSync(file, { force: true });
    return true;
  }

  list(namespace?: string): SecretInfo[] {
    const out: SecretInfo[] = [];
    const namespaces = namespace === undefined ? readdirSync(this.dir).filter(isNamespaceName) : [namespace];
    for (const ns of namespaces) {
      if (!existsSync(join(this.dir, ns))) continue;
      for (const file of readdirSync(join(this.dir, ns)).sort()) {
        const name = file.replace(/\.json$/, '');
        if (name === file || !isPullSecretName(name)) continue;
        const s = this.get(ns, name);
        if (s)
          out.push({
            namespace: ns,
            name,
            type: s.type,
            registries: CredentialStore.fromPullSecret(s, `Secret ${ns}/${name}`).registries,
            ...(s.metadata.labels ? { labels: s.metadata.labels } : {}),
          });
      }
    }
    return out;
  }

  /** The credentials of `names` in `namespace`, earlier names winning per registry; missing ones are problems. */
  credentials(namespace: string, names: readonly string[]): PullAuth {
    const stores: CredentialStore[] = [];
    const problems: string[] = [];
    for (const name of names) {
      const s = isPullSecretName(name) ? this.get(namespace, name) : undefined;
      if (!s) problems.push(`image pull secret ${namespace}/${name} not found`);
      else stores.push(CredentialStore.fromPullSecret(s, `Secret ${namespace}/${name}`));
    }
    return { namespace, credentials: CredentialStore.empty().merge(...stores), ...(problems.length && { problems }) };
  }

  /** A Guest's pull credentials: the Secrets its spec names, in its own namespace. */
  forGuest(g: Guest): PullAuth {
    return this.credentials(
      g.metadata.namespace ?? 'default',
      (g.spec.imagePullSecrets ?? []).map((r) => r.name ?? ''),
    );
  }
}
