// A client for the OCI distribution API: manifests (with platform selection from indexes) and blobs,
// each checked against its digest before anyone reads it. Anonymous bearer tokens and credentials
// (basic, or token exchange), mirrors tried before the registry, http only for registries listed as
// insecure, retries with backoff for transient failures, and a bound on concurrent blob downloads.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { CredentialStore, Credential } from './credentials.js';
import { documentKind, LIMITS, MANIFEST_ACCEPT, ManifestError, parseIndex, parseJson, parseManifest, type Descriptor, type ImageManifest } from './manifest.js';
import { selectManifest, hostPlatform, type Platform } from './platform.js';
import { formatReference, registryEndpoint, type ImageReference } from './reference.js';
import { Semaphore } from '../semaphore.js';
import { isNoSpace } from './no-space.js';

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
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

export interface ResolvedImage {
  ref: ImageReference;
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
  for (const p of m[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme: m[1]!.toLowerCase(), params };
}


/** One place to send requests for a repository: the registry itself or a mirror. */
interface Endpoint {
  base: string;
  /** Credentials apply to the registry itself, never to mirrors. */
  registry?: string;
}

export class RegistryClient {
  private readonly tokens = new Map<string, string>();
  private readonly basic = new Set<string>();
  private readonly downloads: Semaphore;
  private readonly opts: Required<Pick<RegistryOptions, 'attempts' | 'idleTimeoutMs' | 'concurrency' | 'userAgent'>> & RegistryOptions;

  constructor(opts: RegistryOptions = {}) {
    this.opts = { attempts: 4, idleTimeoutMs: 30_000, concurrency: 3, userAgent: 'krata-node-agent', ...opts };
    this.downloads = new Semaphore(this.opts.concurrency);
    for (const [registry, urls] of Object.entries(opts.mirrors ?? {})) {
      for (const u of urls) {
        const url = new URL(u);
        if (url.protocol === 'http:' && !this.isInsecure(url.host)) throw new Error(`mirror ${u} for ${registry} uses http, but ${url.host} is not listed as an insecure registry`);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`mirror ${u} for ${registry}: only http(s) URLs`);
      }
    }
  }

  private isInsecure(host: string): boolean {
    return (this.opts.insecure ?? []).includes(host);
  }

  private endpoints(ref: ImageReference): Endpoint[] {
    const mirrors = (this.opts.mirrors?.[ref.registry] ?? []).map((u) => ({ base: u.replace(/\/+$/, '') }));
    const host = registryEndpoint(ref.registry);
    return [...mirrors, { base: `${this.isInsecure(ref.registry) || this.isInsecure(host) ? 'http' : 'https'}://${host}`, registry: ref.registry }];
  }

  /** Resolves a reference to one platform's manifest, verified against the digest it is known by. */
  async resolve(ref: ImageReference): Promise<ResolvedImage> {
    const name = formatReference(ref);
    const first = await this.getManifest(ref, ref.digest ?? ref.tag ?? 'latest', name);
    let doc = parseJson(first.bytes, `manifest of ${name}`);
    const kind = documentKind(doc, first.contentType);
    if (kind === 'v1') throw new ManifestError(`${name}: Docker schema 1 manifests are not supported (deprecated; re-push the image)`);
    if (kind === 'manifest') return { ref, digest: first.digest, manifest: parseManifest(doc, `manifest of ${name}`), manifestBytes: first.bytes };
    const index = parseIndex(doc, `index of ${name}`);
    const chosen = selectManifest(index.manifests, this.opts.platform ?? hostPlatform(), `index of ${name}`);
    const m = await this.getManifest(ref, chosen.digest, `${name} (${chosen.digest})`);
    if (m.bytes.length !== chosen.size) throw new RegistryError(`${name}: manifest ${chosen.digest} is ${m.bytes.length} bytes, but the index says ${chosen.size}`);
    doc = parseJson(m.bytes, `manifest ${chosen.digest} of ${name}`);
    if (documentKind(doc, m.contentType) !== 'manifest') throw new ManifestError(`${name}: index entry ${chosen.digest} is not an image manifest`);
    return { ref, digest: m.digest, manifest: parseManifest(doc, `manifest ${chosen.digest} of ${name}`), manifestBytes: m.bytes, indexDigest: first.digest };
  }

  private async getManifest(ref: ImageReference, tagOrDigest: string, name: string): Promise<{ bytes: Buffer; digest: string; contentType?: string }> {
    return this.tryEndpoints(ref, async (ep) => {
      const res = await this.request(ep, ref, `/v2/${ref.repository}/manifests/${tagOrDigest}`, { accept: MANIFEST_ACCEPT });
      const bytes = await readBounded(res, LIMITS.manifestBytes, `manifest of ${name}`, this.opts.idleTimeoutMs);
      const digest = sha256(bytes);
      // By digest: the content must be that digest. By tag: a stated digest must match the content.
      const expected = tagOrDigest.includes(':') ? tagOrDigest : res.headers.get('docker-content-digest') ?? undefined;
      if (expected && expected.startsWith('sha256:') && expected !== digest) throw new RegistryError(`${name}: manifest from ${ep.base} has digest ${digest}, expected ${expected} (tampered or corrupt)`);
      if (expected && !expected.startsWith('sha256:') && tagOrDigest.includes(':')) throw new RegistryError(`${name}: only sha256 manifest digests are supported`);
      return { bytes, digest, contentType: res.headers.get('content-type') ?? undefined };
    });
  }

  /** A small blob (the image config), read into memory and verified. */
  async fetchBlob(ref: ImageReference, desc: Descriptor, maxBytes: number): Promise<Buffer> {
    if (desc.size > maxBytes) throw new RegistryError(`${formatReference(ref)}: blob ${desc.digest} of ${desc.size} bytes exceeds ${maxBytes}`);
    return this.tryEndpoints(ref, async (ep) => {
      const res = await this.request(ep, ref, `/v2/${ref.repository}/blobs/${desc.digest}`, {});
      const bytes = await readBounded(res, desc.size, `blob ${desc.digest}`, this.opts.idleTimeoutMs);
      if (bytes.length !== desc.size || sha256(bytes) !== desc.digest) throw new RegistryError(`blob ${desc.digest} from ${ep.base} does not match its digest (got ${sha256(bytes)}, ${bytes.length} bytes): refused`);
      return bytes;
    });
  }

  /** A layer, streamed to `file` and verified (size and digest) before this resolves. */
  async downloadBlob(ref: ImageReference, desc: Descriptor, file: string, onBytes?: (total: number) => void, signal?: AbortSignal): Promise<void> {
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
            if (total > desc.size) throw new RegistryError(`blob ${desc.digest} from ${ep.base} is larger than the ${desc.size} bytes the manifest says: refused`);
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
        if (total !== desc.size || got !== desc.digest) throw new RegistryError(`blob ${desc.digest} from ${ep.base} does not match its digest (got ${got}, ${total} bytes): refused`);
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
          const transient = !(e instanceof RegistryError || e instanceof ManifestError) || status === 429 || (status !== undefined && status >= 500);
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
    const auth = () => {
      const token = this.tokens.get(key);
      if (token) headers.authorization = `Bearer ${token}`;
      else if (this.basic.has(key)) headers.authorization = basicHeader(this.credential(ep, ref)!);
    };
    auth();
    let res = await fetchWithTimeout(url, { headers }, this.opts.idleTimeoutMs);
    if (res.status === 401) {
      await res.body?.cancel();
      await this.authenticate(ep, ref, res.headers.get('www-authenticate') ?? '', key);
      auth();
      res = await fetchWithTimeout(url, { headers }, this.opts.idleTimeoutMs);
    }
    if (res.ok) return res;
    const text = (await errorText(res, this.opts.idleTimeoutMs)).slice(0, 300).trim();
    const what = `${formatReference(ref)}: GET ${url}: HTTP ${res.status}`;
    if (res.status === 401 || res.status === 403) throw new RegistryError(`${what}: access denied${this.credential(ep, ref) ? ' (the credentials were refused)' : ' (no credentials for this registry: add them to a docker config.json or an image pull secret)'}`, res.status);
    if (res.status === 404) throw new RegistryError(`${what}: not found${text ? ` (${text})` : ''}`, res.status);
    throw new RegistryError(`${what}${text ? `: ${text}` : ''}`, res.status);
  }

  private credential(ep: Endpoint, ref: ImageReference): Credential | undefined {
    return ep.registry ? this.opts.credentials?.lookup(ref.registry) : undefined;
  }

  private async authenticate(ep: Endpoint, ref: ImageReference, header: string, key: string): Promise<void> {
    const { scheme, params } = parseChallenge(header);
    const cred = this.credential(ep, ref);
    if (scheme === 'basic') {
      if (!cred || !('username' in cred)) throw new RegistryError(`${formatReference(ref)}: ${ep.base} requires a username and password (add them to a docker config.json or an image pull secret)`, 401);
      this.basic.add(key);
      return;
    }
    if (scheme !== 'bearer' || !params.realm) throw new RegistryError(`${formatReference(ref)}: ${ep.base} asks for unsupported authentication ${JSON.stringify(header.slice(0, 100))}`, 401);
    const realm = new URL(params.realm);
    if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && this.isInsecure(realm.host))) throw new RegistryError(`${formatReference(ref)}: token service ${realm.origin} is not https`, 401);
    const scope = `repository:${ref.repository}:pull`;
    let res: Response;
    if (cred && 'identityToken' in cred) {
      // OAuth2 refresh-token exchange (docker login's identity tokens).
      const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken, service: params.service ?? '', scope, client_id: 'krata' });
      res = await fetchWithTimeout(realm.href, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body }, this.opts.idleTimeoutMs);
    } else {
      if (params.service) realm.searchParams.set('service', params.service);
      realm.searchParams.set('scope', scope);
      res = await fetchWithTimeout(realm.href, { headers: cred ? { authorization: basicHeader(cred) } : {} }, this.opts.idleTimeoutMs);
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new RegistryError(`${formatReference(ref)}: token service ${realm.origin} answered HTTP ${res.status}${cred ? ' (the credentials were refused)' : ''}`, res.status === 401 || res.status === 403 ? 401 : res.status);
    }
    const body = parseJson(await readBounded(res, 1 << 20, 'token response', this.opts.idleTimeoutMs), `token response from ${realm.origin}`);
    const token = body.token ?? body.access_token;
    if (typeof token !== 'string' || token === '') throw new RegistryError(`${formatReference(ref)}: token service ${realm.origin} returned no token`);
    this.tokens.set(key, token);
  }
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
