// Who may use a cached image. A private image pulled with one namespace's credentials must not be
// served to another namespace that never showed the registry it may have it (Kubernetes'
// "ensure secret pulled images"). Per manifest digest the cache records who proved access, and when:
// anyone (`public`: pulled or checked anonymously), the node's own credentials (`node`: like the
// kubelet's, they serve every namespace), or namespaces one by one. A proof counts for `maxAgeMs`
// (access can be revoked at the registry); then the namespace is checked again. One small JSON file
// per digest under <root>/.access, mode 0600, bounded in namespaces; it goes with its image.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../lib/atomic-file.js';
import { parseDigest } from '../../lib/oci/reference.js';
import type { Proof } from '../../lib/oci/registry.js';

interface Record_ {
  public?: string;
  node?: string;
  /** namespace → when it proved access (ISO 8601). */
  namespaces: Record<string, string>;
}

export interface AccessOptions {
  /** How long a proof counts (default a day). */
  maxAgeMs?: number;
  /** Namespaces remembered per image; the oldest proofs go first (default 1000). */
  maxNamespaces?: number;
  now?: () => Date;
}

export class AccessRecords {
  private readonly dir: string;
  private readonly maxAgeMs: number;
  private readonly maxNamespaces: number;
  private readonly now: () => Date;

  constructor(root: string, opts: AccessOptions = {}) {
    this.dir = join(root, '.access');
    this.maxAgeMs = opts.maxAgeMs ?? 24 * 3600_000;
    this.maxNamespaces = opts.maxNamespaces ?? 1000;
    this.now = opts.now ?? (() => new Date());
  }

  private file(digest: string): string {
    return join(this.dir, `sha256-${parseDigest(digest).hex}.json`);
  }

  private read(digest: string): Record_ {
    try {
      const r = JSON.parse(readFileSync(this.file(digest), 'utf8')) as Record_;
      if (r && typeof r === 'object' && r.namespaces && typeof r.namespaces === 'object') return r;
    } catch {
      // None yet, or unreadable: nobody has proved anything.
    }
    return { namespaces: {} };
  }

  private fresh(at: string | undefined): boolean {
    const t = at === undefined ? NaN : Date.parse(at);
    return Number.isFinite(t) && this.now().getTime() - t < this.maxAgeMs;
  }

  /** Whether `namespace` may use the image without asking the registry (undefined: the node's administrator). */
  allows(digest: string, namespace: string | undefined): boolean {
    if (namespace === undefined) return true;
    const r = this.read(digest);
    return this.fresh(r.public) || this.fresh(r.node) || (Object.hasOwn(r.namespaces, namespace) && this.fresh(r.namespaces[namespace]));
  }

  /**
   * Records a proof (best effort): `namespace` proofs need the namespace (without one, the administrator's pull proves nothing
   * for tenants).
   */
  record(digest: string, proof: Proof, namespace: string | undefined): void {
    if (proof === 'namespace' && namespace === undefined) return;
    const r = this.read(digest);
    const at = this.now().toISOString();
    if (proof === 'public') r.public = at;
    else if (proof === 'node') r.node = at;
    else r.namespaces[namespace!] = at;
    const kept = Object.entries(r.namespaces)
      .filter(([, t]) => this.fresh(t))
      .sort((a, b) => (a[1] < b[1] ? 1 : a[1] > b[1] ? -1 : 0))
      .slice(0, this.maxNamespaces);
    r.namespaces = Object.fromEntries(kept);
    try {
      // Made at the first proof: a cache nothing was ever pulled into holds nothing but images.
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      writeFileAtomic(this.file(digest), JSON.stringify(r), 0o600);
    } catch {
      // A full disk must not fail a pull that worked: without the record, the next use asks again.
    }
  }

  /** The image left the cache: whoever pulls it again proves access again. */
  forget(digest: string): void {
    rmSync(this.file(digest), { force: true });
  }
}
