// Image pull secrets in cluster mode. The operator, not the hosts, reads a Guest's Secrets (it may
// `get secrets` in namespaces that bind ClusterRole krata-pull-secret-reader) and trades their
// credentials at the registry's token service for a short-lived bearer token scoped to pulling the
// one repository the Guest's image is in. Only that token crosses Redis, in the Guest's desired
// record (contract.ts, DesiredPullAuth); passwords, identity tokens and docker configs never do. A registry
// that only takes Basic auth gets no token:
// the record says why, and the pull fails with it. Tokens are shared by Guests of one namespace, Secret
// list and repository, and renewed once half their lifetime is gone (the Guest is requeued for it).
import { PULL_AUTH_LIMITS, type DesiredPullAuth } from '../contracts/redis/contract.js';
import type { Guest } from '../crds/generated/types.js';
import { CredentialError, CredentialStore } from '../lib/oci/credentials.js';
import { parseReference, registryEndpoint } from '../lib/oci/reference.js';
import { exchangeToken, registryChallenge } from '../lib/oci/registry.js';
import { isNotFound, KubeError } from './kube/client.js';

export interface SecretReader {
  getSecret(namespace: string, name: string): Promise<{ type?: string; data?: Record<string, string> }>;
}

export interface PullTokenOptions {
  /** Registries (host[:port]) and token services reached over plain http. Nothing else is. */
  insecure?: string[];
  timeoutMs?: number;
  /** After a failure (Secret missing, registry down), asked again this much later (default 30 s). */
  retryMs?: number;
  now?: () => number;
}

interface Entry {
  auth: DesiredPullAuth;
  renewAt: number;
  expiresAt: number;
}

const MAX_ENTRIES = 10_000;

export class PullTokenIssuer {
  private readonly cache = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Entry>>();
  private readonly now: () => number;

  constructor(
    private readonly secrets: SecretReader,
    private readonly opts: PullTokenOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  private keyOf(g: Guest): { key: string; names: string[] } | undefined {
    const names = (g.spec.imagePullSecrets ?? []).map((r) => r.name).filter((n): n is string => typeof n === 'string' && n !== '');
    if (names.length === 0) return undefined;
    return { key: `${g.metadata.namespace ?? 'default'}\n${names.join(',')}\n${g.spec.image}`, names };
  }

  /** What the last `forGuest` gave for this Guest, if still valid (a republish writes it again). */
  cached(g: Guest): DesiredPullAuth | undefined {
    const k = this.keyOf(g);
    const e = k && this.cache.get(k.key);
    return e && e.expiresAt > this.now() ? e.auth : undefined;
  }

  /** The Guest's pull credentials for its desired record, and when to ask again. */
  async forGuest(g: Guest): Promise<{ auth?: DesiredPullAuth; renewInMs?: number }> {
    const k = this.keyOf(g);
    if (!k) return {};
    const now = this.now();
    let e = this.cache.get(k.key);
    if (!e || e.renewAt <= now) {
      let p = this.inflight.get(k.key);
      if (!p) {
        p = this.issue(g, k.names).finally(() => this.inflight.delete(k.key));
        this.inflight.set(k.key, p);
      }
      const fresh = await p;
      // A failed renewal (registry down) keeps the tokens that still work, with the new reasons.
      if (e && fresh.auth.tokens.length === 0 && e.auth.tokens.length > 0 && e.expiresAt > now)
        e = {
          auth: { ...e.auth, ...(fresh.auth.problems && { problems: fresh.auth.problems }) },
          renewAt: fresh.renewAt,
          expiresAt: e.expiresAt,
        };
      else e = fresh;
      if (this.cache.size >= MAX_ENTRIES)
        for (const [key, old] of this.cache) if (old.expiresAt <= now || this.cache.size >= MAX_ENTRIES) this.cache.delete(key);
      this.cache.set(k.key, e);
    }
    return { auth: e.auth, renewInMs: Math.max(1000, e.renewAt - this.now()) };
  }

  private async issue(g: Guest, names: string[]): Promise<Entry> {
    const namespace = g.metadata.namespace ?? 'default';
    const now = this.now();
    const retry = { renewAt: now + (this.opts.retryMs ?? 30_000), expiresAt: now + (this.opts.retryMs ?? 30_000) };
    const problems: string[] = [];
    let ref;
    try {
      ref = parseReference(g.spec.image);
    } catch {
      return { auth: { tokens: [] }, ...retry }; // the host reports the bad reference itself
    }
    // The first Secret with credentials for the image's registry wins, as for the kubelet.
    let credential;
    for (const name of names) {
      let secret;
      try {
        secret = await this.secrets.getSecret(namespace, name);
      } catch (e) {
        if (isNotFound(e)) problems.push(`image pull secret ${namespace}/${name} not found`);
        else if (e instanceof KubeError && e.status === 403)
          problems.push(
            `the operator may not read Secret ${namespace}/${name}: bind ClusterRole ` +
              `krata-pull-secret-reader in namespace ${namespace} (manifests/README.md)`,
          );
        else
          problems.push(
            `image pull secret ${namespace}/${name} could not be read${e instanceof KubeError && e.status ? ` (HTTP ${e.status})` : ''}`,
          );
        continue;
      }
      try {
        credential = CredentialStore.fromPullSecret(secret, `Secret ${namespace}/${name}`).lookup(ref.registry);
      } catch (e) {
        if (!(e instanceof CredentialError)) throw e;
        problems.push(e.message);
        continue;
      }
      if (credential) break;
    }
    if (!credential) {
      problems.push(`no image pull secret of the Guest (${names.join(', ')}) has credentials for ${ref.registry}`);
      return { auth: { tokens: [], problems: bounded(problems) }, ...retry };
    }
    const host = registryEndpoint(ref.registry);
    const insecure = (h: string) => (this.opts.insecure ?? []).includes(h);
    const base = `${insecure(ref.registry) || insecure(host) ? 'http' : 'https'}://${host}`;
    const timeoutMs = this.opts.timeoutMs ?? 15_000;
    try {
      const challenge = await registryChallenge(base, timeoutMs);
      // An open registry: nothing to send.
      if (!challenge) return { auth: { tokens: [], ...(problems.length && { problems: bounded(problems) }) }, ...retry };
      if (challenge.scheme === 'basic') {
        problems.push(
          `${ref.registry} accepts only Basic auth: krata does not send passwords to hosts ` +
            `through Redis (use a registry with token auth, or the node's docker config)`,
        );
        return { auth: { tokens: [], problems: bounded(problems) }, ...retry };
      }
      const t = await exchangeToken(challenge, ref.repository, credential, { what: g.spec.image, base, insecure, timeoutMs });
      const expiresAt = now + t.expiresInS * 1000;
      const token = { registry: ref.registry, repository: ref.repository, token: t.token, expiresAt: new Date(expiresAt).toISOString() };
      return {
        auth: { tokens: [token], ...(problems.length && { problems: bounded(problems) }) },
        renewAt: now + (t.expiresInS * 1000) / 2,
        expiresAt,
      };
    } catch (e) {
      problems.push(`no pull token for ${ref.registry}/${ref.repository}: ${(e as Error).message}`);
      return { auth: { tokens: [], problems: bounded(problems) }, ...retry };
    }
  }
}

/** Problems are bounded in the record (contract.ts, PULL_AUTH_LIMITS). */
const bounded = (list: string[]) =>
  list.slice(0, PULL_AUTH_LIMITS.problems).map((s) => (Buffer.byteLength(s) > PULL_AUTH_LIMITS.problemBytes ? `${s.slice(0, 300)}…` : s));
