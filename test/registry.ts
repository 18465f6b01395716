// A real OCI distribution registry (Debian's docker-registry, distribution 2.8) for the image
// puller's tests: loopback only, a fresh storage directory per instance, optional htpasswd auth or
// token auth (a small token server issuing RS256 JWTs the registry verifies, as Docker Hub does).
// Tests reach into its storage (blobDataPath, tamperBlob) to serve corrupt content on purpose.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, randomUUID, sign, timingSafeEqual, type KeyObject } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './free-port.js';

export interface Registry {
  /** "127.0.0.1:PORT", as image references name it. */
  host: string;
  /** "http://127.0.0.1:PORT" */
  url: string;
  /** The temporary directory holding config, htpasswd and the storage root (DIR/data). */
  dataDir: string;
  /** With `token`: the token server. */
  tokenServer?: TokenServer;
  stop(): Promise<void>;
}

export interface TokenOptions {
  /** name → password: Basic-authenticated users get pull and push on every repository. */
  users?: Record<string, string>;
  /** Repositories anyone may pull (anonymous tokens grant nothing else). */
  publicRepos?: string[];
  /** name → identity token: an OAuth2 refresh_token equal to one of these authenticates as that user. */
  identityTokens?: Record<string, string>;
}

export interface RegistryOptions {
  htpasswd?: { username: string; password: string };
  token?: TokenOptions;
}

/** One request the token server answered (or refused). */
export interface TokenRequest {
  method: 'GET' | 'POST';
  /** How the client authenticated: basic (GET), password or refresh_token (POST); anonymous when none. */
  via: 'anonymous' | 'basic' | 'password' | 'refresh_token';
  /** The user, when authenticated. */
  user?: string;
  /** Scopes asked for, as sent ("repository:a/b:pull"). */
  scopes: string[];
  status: number;
  /** What the token granted. */
  access: Array<{ type: string; name: string; actions: string[] }>;
}

export interface TokenServer {
  /** "http://127.0.0.1:PORT/token" */
  realm: string;
  /** "127.0.0.1:PORT" (list it as insecure: the realm is plain http). */
  host: string;
  service: string;
  issuer: string;
  /** Every request so far, oldest first; tests may empty it. */
  requests: TokenRequest[];
}

export const TOKEN_SERVICE = 'krata-test-registry';
export const TOKEN_ISSUER = 'krata-test-issuer';
const TOKEN_TTL_S = 300;

const REGISTRY_BIN = '/usr/bin/docker-registry';
const START_TIMEOUT_MS = 20_000;
const POLL_MS = 50;
const KILL_GRACE_MS = 2_000;
const LOG_LIMIT = 64 * 1024;

function registryConfig(dir: string, port: number, htpasswdPath?: string, token?: { realm: string; certPath: string }): string {
  // YAML is a superset of JSON: quoting paths through JSON.stringify keeps odd TMPDIRs safe.
  const lines = [
    'version: 0.1',
    'log: {level: warn}',
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(dir, 'data'))}}, delete: {enabled: true}}`,
    // A fixed secret: otherwise the registry generates one and warns about it on every start.
    `http: {addr: "127.0.0.1:${port}", secret: krata-test-secret}`,
  ];
  if (htpasswdPath) lines.push(`auth: {htpasswd: {realm: krata-test, path: ${JSON.stringify(htpasswdPath)}}}`);
  if (token) {
    lines.push(
      `auth: {token: {realm: ${JSON.stringify(token.realm)}, service: ${TOKEN_SERVICE}, ` +
        `issuer: ${TOKEN_ISSUER}, rootcertbundle: ${JSON.stringify(token.certPath)}}}`,
    );
  }
  return lines.join('\n') + '\n';
}

// --- the token server ---

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** libtrust's key ID (what distribution matches a JWT's `kid` against): base32 of 30 bytes of the SPKI's SHA-256, in groups of 4. */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const bytes = createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  // 30 bytes are 240 bits: exactly 48 characters, no padding.
  return out.match(/.{4}/g)!.join(':');
}

function jwt(key: KeyObject, kid: string, claims: Record<string, unknown>): string {
  const input = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', kid }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign('sha256', Buffer.from(input), key))}`;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function readBody(req: IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 64 * 1024) throw new Error('token request body too large');
  }
  return body;
}

/** "repository:a/b:pull,push" → its parts; anything else (e.g. "registry:catalog:*") is ignored. */
function parseScope(scope: string): { name: string; actions: string[] } | undefined {
  const m = /^repository:([^:]+):([a-z*,]+)$/.exec(scope);
  return m ? { name: m[1]!, actions: m[2]!.split(',').filter(Boolean) } : undefined;
}

async function startTokenServer(
  dir: string,
  opts: TokenOptions,
): Promise<{ server: TokenServer; certPath: string; close(): Promise<void> }> {
  const keyPath = join(dir, 'token.key');
  const certPath = join(dir, 'token.crt');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=krata-test-token'],
    { stdio: 'ignore' },
  );
  const key = createPrivateKey(readFileSync(keyPath));
  const kid = libtrustKeyId(createPublicKey(key));
  const users = opts.users ?? {};
  const identityTokens = opts.identityTokens ?? {};
  const publicRepos = new Set(opts.publicRepos ?? []);
  const requests: TokenRequest[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://token');
    const reply = (status: number, body: unknown, entry?: Omit<TokenRequest, 'status'>) => {
      if (entry) requests.push({ ...entry, status });
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (url.pathname !== '/token' || (req.method !== 'GET' && req.method !== 'POST')) return reply(404, { error: 'not found' });
    let via: TokenRequest['via'] = 'anonymous';
    let user: string | undefined;
    let scopes: string[];
    let refused = false;
    let service: string | null;
    if (req.method === 'GET') {
      scopes = url.searchParams
        .getAll('scope')
        .flatMap((s) => s.split(' '))
        .filter(Boolean);
      service = url.searchParams.get('service');
      const auth = req.headers.authorization;
      if (auth) {
        const m = /^Basic\s+(\S+)$/i.exec(auth);
        const text = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
        const colon = text.indexOf(':');
        via = 'basic';
        user = colon > 0 ? text.slice(0, colon) : undefined;
        const password = colon > 0 ? text.slice(colon + 1) : '';
        refused = user === undefined || !Object.hasOwn(users, user) || !sameSecret(users[user]!, password);
      }
    } else {
      const form = new URLSearchParams(await readBody(req));
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      service = form.get('service');
      const grant = form.get('grant_type');
      if (grant === 'password') {
        via = 'password';
        user = form.get('username') ?? undefined;
        refused = user === undefined || !Object.hasOwn(users, user) || !sameSecret(users[user]!, form.get('password') ?? '');
      } else if (grant === 'refresh_token') {
        via = 'refresh_token';
        const token = form.get('refresh_token') ?? '';
        user = Object.entries(identityTokens).find(([, t]) => sameSecret(t, token))?.[0];
        refused = user === undefined;
      } else {
        return reply(400, { error: 'unsupported_grant_type' }, { method: 'POST', via: 'anonymous', scopes, access: [] });
      }
    }
    const method = req.method as 'GET' | 'POST';
    if (refused)
      return reply(401, { error: 'invalid credentials' }, { method, via, ...(user !== undefined && { user }), scopes, access: [] });
    if (service !== null && service !== TOKEN_SERVICE)
      return reply(400, { error: `unknown service ${service}` }, { method, via, scopes, access: [] });
    // Grants: the requested actions that this client may have (distribution then checks them per request).
    const access: TokenRequest['access'] = [];
    for (const s of scopes) {
      const scope = parseScope(s);
      if (!scope) continue;
      const allowed = user !== undefined ? ['pull', 'push'] : publicRepos.has(scope.name) ? ['pull'] : [];
      const actions = scope.actions.filter((a) => allowed.includes(a));
      if (actions.length) access.push({ type: 'repository', name: scope.name, actions });
    }
    const now = Math.floor(Date.now() / 1000);
    const token = jwt(key, kid, {
      iss: TOKEN_ISSUER,
      sub: user ?? '',
      aud: TOKEN_SERVICE,
      exp: now + TOKEN_TTL_S,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    });
    reply(
      200,
      { token, access_token: token, expires_in: TOKEN_TTL_S, issued_at: new Date(now * 1000).toISOString() },
      { method, via, ...(user !== undefined && { user }), scopes, access },
    );
  };

  const http: Server = createHttpServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(e.message);
    });
  });
  await new Promise<void>((resolve, reject) => http.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = http.address();
  if (address === null || typeof address === 'string') throw new Error('token server: no TCP port');
  const host = `127.0.0.1:${address.port}`;
  const close = async () => {
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  };
  return { server: { realm: `http://${host}/token`, host, service: TOKEN_SERVICE, issuer: TOKEN_ISSUER, requests }, certPath, close };
}

/** bcrypt is the only hash the registry's htpasswd reader accepts (other entries are ignored). */
function writeHtpasswd(path: string, username: string, password: string): void {
  writeFileSync(path, execFileSync('htpasswd', ['-Bbn', username, password]));
}

/** Keeps the tail of the registry's output for error messages. */
function captureOutput(child: ChildProcess): () => string {
  let log = '';
  const append = (chunk: Buffer) => {
    log = (log + chunk.toString('utf8')).slice(-LOG_LIMIT);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  return () => log;
}

async function answersV2(url: string, expectedStatus: number): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) });
    await res.arrayBuffer();
    return res.status === expectedStatus;
  } catch {
    return false; // not listening yet
  }
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  if (opts.htpasswd && opts.token) throw new Error('startRegistry: htpasswd or token auth, not both');
  const dataDir = mkdtempSync(join(tmpdir(), 'krata-registry-'));
  let token: Awaited<ReturnType<typeof startTokenServer>> | undefined;
  try {
    const port = await freePort();
    let htpasswdPath: string | undefined;
    if (opts.htpasswd) {
      htpasswdPath = join(dataDir, 'htpasswd');
      writeHtpasswd(htpasswdPath, opts.htpasswd.username, opts.htpasswd.password);
    }
    if (opts.token) token = await startTokenServer(dataDir, opts.token);
    const configPath = join(dataDir, 'config.yml');
    writeFileSync(
      configPath,
      registryConfig(dataDir, port, htpasswdPath, token && { realm: token.server.realm, certPath: token.certPath }),
    );
    return await launch(dataDir, configPath, port, opts.htpasswd || opts.token ? 401 : 200, token);
  } catch (err) {
    await token?.close();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(
  dataDir: string,
  configPath: string,
  port: number,
  readyStatus: number,
  token?: { server: TokenServer; close(): Promise<void> },
): Promise<Registry> {
  const child = spawn(REGISTRY_BIN, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = captureOutput(child);
  let exit: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = signal ? `signal ${signal}` : `status ${code}`;
      resolve();
    });
    child.once('error', (err) => {
      exit = err.message; // spawn failed: no 'exit' follows
      resolve();
    });
  });
  // A test process that dies without stop() must not leave a registry behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', killOnExit);
    if (exit === undefined) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
    await token?.close();
    rmSync(dataDir, { recursive: true, force: true });
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exit !== undefined) {
      const log = output();
      await stop();
      throw new Error(`docker-registry exited (${exit}) before serving:\n${log}`);
    }
    if (await answersV2(url, readyStatus)) break;
    if (Date.now() > deadline) {
      const log = output();
      await stop();
      throw new Error(`docker-registry did not answer GET /v2/ with ${readyStatus} within ${START_TIMEOUT_MS} ms:\n${log}`);
    }
    await sleep(POLL_MS);
  }
  return { host: `127.0.0.1:${port}`, url, dataDir, ...(token && { tokenServer: token.server }), stop };
}

function digestHex(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new Error(`not a sha256 digest: ${digest}`);
  return m[1];
}

/** Where distribution 2.8's filesystem driver keeps a blob's bytes. */
export function blobDataPath(reg: Registry, digest: string): string {
  const hex = digestHex(digest);
  return `${reg.dataDir}/data/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
}

/**
 * Changes one byte of a stored blob, same size, so the registry serves content that no longer
 * matches its digest. In a gzip stream it is a byte of the header's MTIME, so the blob still
 * decompresses to the same tar: only a digest check can catch it. Elsewhere it is the last byte
 * (an uncompressed tar's end-of-archive padding, a zstd frame's checksum).
 */
export function tamperBlob(reg: Registry, digest: string): void {
  const path = blobDataPath(reg, digest);
  const data = readFileSync(path);
  if (data.length === 0) throw new Error(`blob ${digest} is empty: nothing to tamper with`);
  const isGzip = data.length > 10 && data[0] === 0x1f && data[1] === 0x8b;
  const at = isGzip ? 4 : data.length - 1;
  data[at] ^= 0xff;
  writeFileSync(path, data);
}
