// A client for the OCI distribution API: manifests (with platform selection from indexes) and blobs,
// each checked against its digest before anyone reads it. Anonymous bearer tokens and credentials
// (basic, or token exchange), mirrors tried before the registry, http only for registries listed as
// insecure, retries with backoff for transient failures, and a bound on concurrent blob downloads.
// A pull may bring its own credentials (a namespace's pull secrets, or repository tokens the operator
// obtained): `withAuth` gives a view with them, and every manifest answer says who proved access.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { CredentialStore, Credential } from './credentials.js';
import {
  documentKind,
  LIMITS,
  MANIFEST_ACCEPT,
  ManifestError,
  parseIndex,
  parseJson,
  parseManifest,
  type Descriptor,
  type ImageManifest,
} from './manifest.js';
import { selectManifest, hostPlatform, type Platform } from './platform.js';
import { formatReference, normalizeRegistry, registryEndpoint, type ImageReference } from './reference.js';
import { Semaphore } from '../semaphore.js';
import { isNoSpace } from '../no-space.js';

export interface RegistryOptions {
  credentials?: CredentialStore;
  /** Registry (as in references: "docker.io") → mirror base URLs tried first, in order. */
  mirrors?: Record<string, string[]>;
  /** Registries (host[:port]) reached over plain http. Nothing else is. */
  insecure?: string[];
  /** Attempts per request for transient failures (network, 429, 5xx). */
  attempts?: number;
  /** Milliseconds without progress before a request is abandoned. */
  idleTimeoutMs?: number;
  /** Concurrent blob downloads. */
  concurrency?: number;
  platform?: Platform;
  userAgent?: string;
}

/** `--mirror REGISTRY=URL` flags (the agent's and kratactl's) as RegistryOptions.mirrors. */
export function parseMirrorFlags(flags: readonly string[]): Record<string, string[]> {
  const mirrors: Record<string, string[]> = {};
  for (const m of flags) {
    const eq = m.indexOf('=');
    if (eq <= 0) throw new Error(`--mirror ${JSON.stringify(m)}: expected REGISTRY=URL`);
    (mirrors[m.slice(0, eq)] ??= []).push(m.slice(eq + 1));
  }
  return mirrors;
}

/** A registry answer that is final: retrying will not help (404, 401 after auth, a digest mismatch). */
export class RegistryError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** A bearer token for one repository, obtained elsewhere (the operator): sent as is, never exchanged. */
export interface RepositoryToken {
  /** As references name it ("docker.io", "127.0.0.1:5000"). */
  registry: string;
  repository: string;
  token: string;
  /** ISO 8601; an expired token is not sent. */
  expiresAt: string;
}

/** The credentials one pull brings, beside the node's own. */
export interface PullAuth {
  /** The namespace asking: what it proves is recorded for it (undefined: the node's administrator). */
  namespace?: string;
  /** The namespace's pull secrets (single host), tried before the node's credentials. */
  credentials?: CredentialStore;
  /** Repository-scoped pull tokens (cluster mode), tried before everything else. */
  tokens?: RepositoryToken[];
  /** Why credentials the Guest asked for are missing (a Secret not found ...), added to a refusal. */
  problems?: string[];
}

/**
 * Who showed the registry may serve a manifest: anyone (`public`: anonymous, or through a mirror the
 * node's administrator configured), the node's own credentials (`node`), or the asking namespace's.
 */
export type Proof = 'public' | 'node' | 'namespace';

export interface ResolvedImage {
  ref: ImageReference;
  /** Whose credentials fetched the manifest. */
  proof: Proof;
  /** Digest of the platform's manifest: the image's identity in the cache. */
  digest: string;
  manifest: ImageManifest;
  manifestBytes: Buffer;
  /** The index the manifest was chosen from, if the reference named one. */
  indexDigest?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** Parses `Bearer realm="…",service="…"` (values may contain commas inside quotes). */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return { scheme: '', params: {} };
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g))
    params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme: m[1]!.toLowerCase(), params };
}

/** One place to send requests for a repository: the registry itself or a mirror. */
interface Endpoint {
  base: string;
  /** Credentials apply to the registry itself, never to mirrors. */
  registry?: string;
}

interface Found {
  credential?: Credential;
  /** A repository token given with the pull. */
  token?: string;
  source: 'node' | 'namespace';
}

export class RegistryClient {
  /** endpoint|repository → bearer token, and whose credential obtained it. */
  private readonly tokens = new Map<string, { token: string; proof: Proof }>();
  private readonly basic = new Set<string>();
  private readonly downloads: Semaphore;
  private readonly opts: Required<Pick<RegistryOptions, 'attempts' | 'idleTimeoutMs' | 'concurrency' | 'userAgent'>> & RegistryOptions;
  /** Whose credentials fetched each successful response (read by the manifest requests). */
  private readonly proofs = new WeakMap<Response, Proof>();

  constructor(
    opts: RegistryOptions = {},
    private readonly auth: PullAuth = {},
    downloads?: Semaphore,
  ) {
    this.opts = { attempts: 4, idleTimeoutMs: 30_000, concurrency: 3, userAgent: 'krata-node-agent', ...opts };
    this.downloads = downloads ?? new Semaphore(this.opts.concurrency);
    for (const [registry, urls] of Object.entries(opts.mirrors ?? {})) {
      for (const u of urls) {
        const url = new URL(u);
        if (url.protocol === 'http:' && !this.isInsecure(url.host))
          throw new Error(`mirror ${u} for ${registry} uses http, but ${url.host} is not listed as an insecure registry`);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`mirror ${u} for ${registry}: only http(s) URLs`);
      }
    }
  }

  /**
   * A client for one pull with `auth`'s credentials: its own token cache (tokens obtained with one
   * namespace's credentials never serve another), the same download bound.
   */
  withAuth(auth: PullAuth): RegistryClient {
    return new RegistryClient(this.opts, auth, this.downloads);
  }

  private isInsecure(host: string): boolean {
    return (this.opts.insecure ?? []).includes(host);
  }

  /**
   * Whether the registry serves manifest `digest` of `ref`'s repository to this client's
   * credentials (a GET, verified against the digest); resolves with whose credentials did, throws
   * RegistryError when refused.
   */
  async verifyManifest(ref: ImageReference, digest: string): Promise<Proof> {
    return (await this.getManifest(ref, digest, `${formatReference(ref)} (${digest})`)).proof;
  }

  private endpoints(ref: ImageReference): Endpoint[] {
    const mirrors = (this.opts.mirrors?.[ref.registry] ?? []).map((u) => ({ base: u.replace(/\/+$/, '') }));
    const host = registryEndpoint(ref.registry);
    return [
      ...mirrors,
      { base: `${this.isInsecure(ref.registry) || this.isInsecure(host) ? 'http' : 'https'}://${host}`, registry: ref.registry },
    ];
  }

  /** Resolves a reference to one platform's manifest, verified against the digest it is known by. */
  async resolve(ref: ImageReference): Promise<ResolvedImage> {
    const name = formatReference(ref);
    const first = await this.getManifest(ref, ref.digest ?? ref.tag ?? 'latest', name);
    let doc = parseJson(first.bytes, `manifest of ${name}`);
    const kind = documentKind(doc, first.contentType);
    if (kind === 'v1') throw new ManifestError(`${name}: Docker schema 1 manifests are not supported (deprecated; re-push the image)`);
    if (kind === 'manifest')
      return {
        ref,
        proof: first.proof,
        digest: first.digest,
        manifest: parseManifest(doc, `manifest of ${name}`),
        manifestBytes: first.bytes,
      };
    const index = parseIndex(doc, `index of ${name}`);
    const chosen = selectManifest(index.manifests, this.opts.platform ?? hostPlatform(), `index of ${name}`);
    const m = await this.getManifest(ref, chosen.digest, `${name} (${chosen.digest})`);
    if (m.bytes.length !== chosen.size)
      throw new RegistryError(`${name}: manifest ${chosen.digest} is ${m.bytes.length} bytes, but the index says ${chosen.size}`);
    doc = parseJson(m.bytes, `manifest ${chosen.digest} of ${name}`);
    if (documentKind(doc, m.contentType) !== 'manifest')
      throw new ManifestError(`${name}: index entry ${chosen.digest} is not an image manifest`);
    return {
      ref,
      proof: m.proof,
      digest: m.digest,
      manifest: parseManifest(doc, `manifest ${chosen.digest} of ${name}`),
      manifestBytes: m.bytes,
      indexDigest: first.digest,
    };
  }

  private async getManifest(
    ref: ImageReference,
    tagOrDigest: string,
    name: string,
  ): Promise<{ bytes: Buffer; digest: string; contentType?: string; proof: Proof }> {
    return this.tryEndpoints(ref, async (ep) => {
      const res = await this.request(ep, ref, `/v2/${ref.repository}/manifests/${tagOrDigest}`, { accept: MANIFEST_ACCEPT });
      const bytes = await readBounded(res, LIMITS.manifestBytes, `manifest of ${name}`, this.opts.idleTimeoutMs);
      const digest = sha256(bytes);
      // By digest: the content must be that digest. By tag: a stated digest must match the content.
      const expected = tagOrDigest.includes(':') ? tagOrDigest : (res.headers.get('docker-content-digest') ?? undefined);
      if (expected && expected.startsWith('sha256:') && expected !== digest)
        throw new RegistryError(`${name}: manifest from ${ep.base} has digest ${digest}, expected ${expected} (tampered or corrupt)`);
      if (expected && !expected.startsWith('sha256:') && tagOrDigest.includes(':'))
        throw new RegistryError(`${name}: only sha256 manifest digests are supported`);
      return { bytes, digest, contentType: res.headers.get('content-type') ?? undefined, proof: this.proofs.get(res) ?? 'namespace' };
    });
  }

  /** A small blob (the image config), read into memory and verified. */
  async fetchBlob(ref: ImageReference, desc: Descriptor, maxBytes: number): Promise<Buffer> {
    if (desc.size > maxBytes)
      throw new RegistryError(`${formatReference(ref)}: blob ${desc.digest} of ${desc.size} bytes exceeds ${maxBytes}`);
    return this.tryEndpoints(ref, async (ep) => {
      const res = await this.request(ep, ref, `/v2/${ref.repository}/blobs/${desc.digest}`, {});
      const bytes = await readBounded(res, desc.size, `blob ${desc.digest}`, this.opts.idleTimeoutMs);
      if (bytes.length !== desc.size || sha256(bytes) !== desc.digest)
        throw new RegistryError(
          `blob ${desc.digest} from ${ep.base} does not match its digest (got ${sha256(bytes)}, ${bytes.length} bytes): refused`,
        );
      return bytes;
    });
  }

  /** A layer, streamed to `file` and verified (size and digest) before this resolves. */
  async downloadBlob(
    ref: ImageReference,
    desc: Descriptor,
    file: string,
    onBytes?: (total: number) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.downloads.run(() =>
      this.tryEndpoints(ref, async (ep) => {
        signal?.throwIfAborted(); // the pull failed elsewhere: its work directory is going away
        const res = await this.request(ep, ref, `/v2/${ref.repository}/blobs/${desc.digest}`, {});
        const declared = Number(res.headers.get('content-length') ?? NaN);
        if (Number.isFinite(declared) && declared > desc.size) {
          await res.body?.cancel().catch(() => undefined); // give the connection up rather than leave the body unread
          throw new RegistryError(`blob ${desc.digest} from ${ep.base} is ${declared} bytes, the manifest says ${desc.size}: refused`);
        }
        const hash = createHash('sha256');
        const out = createWriteStream(file);
        // A write error (ENOSPC, the directory removed) must reject this download, never go unhandled.
        const failed = new Promise<never>((_, reject) => out.once('error', reject));
        failed.catch(() => undefined);
        let total = 0;
        try {
          for await (const chunk of idle(res.body!, this.opts.idleTimeoutMs, `blob ${desc.digest}`)) {
            if (signal?.aborted) throw signal.reason;
            total += chunk.length;
            if (total > desc.size)
              throw new RegistryError(
                `blob ${desc.digest} from ${ep.base} is larger than the ${desc.size} bytes the manifest says: refused`,
              );
            hash.update(chunk);
            if (!out.write(chunk)) await Promise.race([once(out, 'drain'), failed]);
            onBytes?.(total);
          }
          out.end();
          await Promise.race([once(out, 'finish'), failed]);
        } finally {
          out.destroy();
        }
        const got = `sha256:${hash.digest('hex')}`;
        if (total !== desc.size || got !== desc.digest)
          throw new RegistryError(`blob ${desc.digest} from ${ep.base} does not match its digest (got ${got}, ${total} bytes): refused`);
      }),
    );
  }

  /** Runs `fn` against each mirror, then the registry; transient failures are retried with backoff. */
  private async tryEndpoints<T>(ref: ImageReference, fn: (ep: Endpoint) => Promise<T>): Promise<T> {
    const eps = this.endpoints(ref);
    let last: unknown;
    for (const ep of eps) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn(ep);
        } catch (e) {
          // Our disk is full: no endpoint does better, and "cannot reach" would hide it.
          if (isNoSpace(e)) throw e;
          last = e;
          const status = e instanceof RegistryError ? e.status : undefined;
          const transient =
            !(e instanceof RegistryError || e instanceof ManifestError) || status === 429 || (status !== undefined && status >= 500);
          if (!transient || attempt >= this.opts.attempts) break;
          await sleep(Math.min(200 * 2 ** (attempt - 1), 5000) * (0.5 + Math.random() / 2));
        }
      }
      // A mirror that fails falls through to the next endpoint; the registry comes last.
    }
    if (last instanceof Error && !(last instanceof RegistryError) && !(last instanceof ManifestError)) {
      throw new RegistryError(`${formatReference(ref)}: cannot reach ${eps.map((e) => e.base).join(', ')}: ${describe(last)}`);
    }
    throw last;
  }

  private async request(ep: Endpoint, ref: ImageReference, path: string, opts: { accept?: string }): Promise<Response> {
    const url = `${ep.base}${path}`;
    const key = `${ep.base}|${ref.repository}`;
    const headers: Record<string, string> = { 'user-agent': this.opts.userAgent };
    if (opts.accept) headers.accept = opts.accept;
    const found = this.credential(ep, ref);
    // A mirror is the administrator's choice for everyone on the node; no header, no credential: anyone.
    let proof: Proof = ep.registry ? 'public' : 'node';
    const auth = () => {
      const token = this.tokens.get(key);
      if (token) {
        headers.authorization = `Bearer ${token.token}`;
        proof = token.proof;
      } else if (this.basic.has(key) && found?.credential) {
        headers.authorization = basicHeader(found.credential);
        proof = found.source;
      }
    };
    // A token given with the pull is sent at once: there is nothing to exchange.
    if (found?.token) this.tokens.set(key, { token: found.token, proof: 'namespace' });
    auth();
    let res = await fetchWithTimeout(url, { headers }, this.opts.idleTimeoutMs);
    if (res.status === 401 && !found?.token) {
      await res.body?.cancel();
      await this.authenticate(ep, ref, res.headers.get('www-authenticate') ?? '', key, found);
      auth();
      res = await fetchWithTimeout(url, { headers }, this.opts.idleTimeoutMs);
    }
    if (res.ok) {
      this.proofs.set(res, proof);
      return res;
    }
    const text = (await errorText(res, this.opts.idleTimeoutMs)).slice(0, 300).trim();
    const what = `${formatReference(ref)}: GET ${url}: HTTP ${res.status}`;
    if (res.status === 401 || res.status === 403) {
      const why = found?.token
        ? ' (the pull token was refused)'
        : found
          ? ' (the credentials were refused)'
          : ' (no credentials for this registry: add them to a docker config.json or an image pull secret)';
      throw new RegistryError(`${what}: access denied${why}${this.problems()}`, res.status);
    }
    if (res.status === 404) throw new RegistryError(`${what}: not found${text ? ` (${text})` : ''}${this.problems()}`, res.status);
    throw new RegistryError(`${what}${text ? `: ${text}` : ''}`, res.status);
  }

  private problems(): string {
    const p = this.auth.problems ?? [];
    return p.length ? `; ${p.join('; ')}` : '';
  }

  /** The credential for the registry itself (never a mirror): the pull's token, the pull's secret, then the node's. */
  private credential(ep: Endpoint, ref: ImageReference): Found | undefined {
    if (!ep.registry) return undefined;
    const registry = normalizeRegistry(ref.registry);
    const now = Date.now();
    const token = this.auth.tokens?.find(
      (t) => t.repository === ref.repository && normalizeRegistry(t.registry) === registry && Date.parse(t.expiresAt) > now,
    );
    if (token) return { token: token.token, source: 'namespace' };
    const mine = this.auth.credentials?.lookup(ref.registry);
    if (mine) return { credential: mine, source: 'namespace' };
    const node = this.opts.credentials?.lookup(ref.registry);
    return node ? { credential: node, source: 'node' } : undefined;
  }

  private async authenticate(ep: Endpoint, ref: ImageReference, header: string, key: string, found: Found | undefined): Promise<void> {
    const cred = found?.credential;
    const challenge = parseChallenge(header);
    if (challenge.scheme === 'basic') {
      if (!cred || !('username' in cred))
        throw new RegistryError(
          `${formatReference(ref)}: ${ep.base} requires a username and password (add ` +
            `them to a docker config.json or an image pull secret)${this.problems()}`,
          401,
        );
      this.basic.add(key);
      return;
    }
    const token = await exchangeToken(challenge, ref.repository, cred, {
      what: formatReference(ref),
      base: ep.base,
      insecure: (h) => this.isInsecure(h),
      timeoutMs: this.opts.idleTimeoutMs,
    });
    this.tokens.set(key, { token: token.token, proof: cred ? found!.source : 'public' });
  }
}

/** Where a token exchange may go and how long it may take. */
export interface ExchangeOptions {
  /** The image, for messages. */
  what: string;
  /** The registry's base URL, for messages. */
  base: string;
  /** Hosts reached over plain http. */
  insecure: (host: string) => boolean;
  timeoutMs: number;
}

/**
 * The distribution token flow for one repository, pull only: a GET with Basic credentials (or none:
 * anonymous), or a refresh-token POST for identity tokens. The agent's pulls and the operator's
 * repository tokens both come from here.
 */
export async function exchangeToken(
  challenge: { scheme: string; params: Record<string, string> },
  repository: string,
  cred: Credential | undefined,
  o: ExchangeOptions,
): Promise<{ token: string; expiresInS: number }> {
  const { scheme, params } = challenge;
  if (scheme !== 'bearer' || !params.realm)
    throw new RegistryError(
      `${o.what}: ${o.base} asks for unsupported authentication ` +
        `${JSON.stringify(`${scheme} ${Object.keys(params).join(',')}`.slice(0, 100))}`,
      401,
    );
  let realm: URL;
  try {
    realm = new URL(params.realm);
  } catch {
    throw new RegistryError(`${o.what}: ${o.base} names a token service that is not a URL`, 401);
  }
  if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && o.insecure(realm.host)))
    throw new RegistryError(`${o.what}: token service ${realm.origin} is not https`, 401);
  const scope = `repository:${repository}:pull`;
  let res: Response;
  if (cred && 'identityToken' in cred) {
    // OAuth2 refresh-token exchange (docker login's identity tokens).
    const body = new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: cred.identityToken,
      service: params.service ?? '',
      scope,
      client_id: 'krata',
    });
    res = await fetchWithTimeout(
      realm.href,
      { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body },
      o.timeoutMs,
    );
  } else {
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', scope);
    res = await fetchWithTimeout(realm.href, { headers: cred ? { authorization: basicHeader(cred) } : {} }, o.timeoutMs);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new RegistryError(
      `${o.what}: token service ${realm.origin} answered HTTP ${res.status}${cred ? ' (the credentials were refused)' : ''}`,
      res.status === 401 || res.status === 403 ? 401 : res.status,
    );
  }
  const body = parseJson(await readBounded(res, 1 << 20, 'token response', o.timeoutMs), `token response from ${realm.origin}`);
  const token = body.token ?? body.access_token;
  if (typeof token !== 'string' || token === '') throw new RegistryError(`${o.what}: token service ${realm.origin} returned no token`);
  // The spec's default lifetime is 60 s; a service may say otherwise (bounded: a day).
  const expiresIn =
    typeof body.expires_in === 'number' && Number.isFinite(body.expires_in) && body.expires_in >= 1
      ? Math.min(body.expires_in, 86_400)
      : 60;
  return { token, expiresInS: expiresIn };
}

/** What a registry wants for one repository, asked with a bare GET /v2/: nothing, Basic, or a bearer challenge. */
export async function registryChallenge(
  base: string,
  timeoutMs: number,
): Promise<{ scheme: string; params: Record<string, string> } | undefined> {
  const res = await fetchWithTimeout(`${base}/v2/`, { headers: { 'user-agent': 'krata-operator' } }, timeoutMs);
  await res.body?.cancel().catch(() => undefined);
  if (res.ok) return undefined;
  if (res.status !== 401) throw new RegistryError(`${base}/v2/: HTTP ${res.status}`, res.status);
  return parseChallenge(res.headers.get('www-authenticate') ?? '');
}

function basicHeader(c: Credential): string {
  if (!('username' in c)) return '';
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

function describe(e: Error): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? e.message;
}

async function fetchWithTimeout(url: string, init: RequestInit, ms: number): Promise<Response> {
  // Only the wait for headers is bounded here; bodies are bounded by `idle`.
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(new Error(`no response in ${ms} ms`)), ms);
  try {
    return await fetch(url, { ...init, signal: ctrl.signal, redirect: 'follow' });
  } finally {
    clearTimeout(timer);
  }
}

/** The body's chunks, failing when none arrives for `ms`. */
async function* idle(body: ReadableStream<Uint8Array>, ms: number, what: string): AsyncGenerator<Buffer> {
  const reader = body.getReader();
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no data for ${ms} ms`)), ms)));
      const r = await Promise.race([reader.read(), stalled]).finally(() => clearTimeout(timer));
      if (r.done) return;
      yield Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** The start of an error response's body, for the message: bounded in size and time, the rest given up. */
async function errorText(res: Response, ms: number): Promise<string> {
  if (!res.body) return '';
  const parts: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of idle(res.body, ms, 'error response')) {
      parts.push(chunk);
      if ((total += chunk.length) >= 4096) break;
    }
  } catch {
    // A body that stalls or breaks: what arrived is enough.
  }
  return Buffer.concat(parts).toString('utf8');
}

async function readBounded(res: Response, max: number, what: string, ms: number): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => undefined); // give the connection up rather than leave the body unread
    throw new RegistryError(`${what} is ${declared} bytes, more than the ${max} allowed`);
  }
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of idle(res.body!, ms, what)) {
    total += chunk.length;
    if (total > max) throw new RegistryError(`${what} is more than the ${max} bytes allowed`);
    parts.push(chunk);
  }
  return Buffer.concat(parts, total);
}
