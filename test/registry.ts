// A real OCI distribution registry (Debian's docker-registry, distribution 2.8) for the image
// puller's tests: loopback only, a fresh storage directory per instance, optional htpasswd auth.
// Tests reach into its storage (blobDataPath, tamperBlob) to serve corrupt content on purpose.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Registry {
  /** "127.0.0.1:PORT", as image references name it. */
  host: string;
  /** "http://127.0.0.1:PORT" */
  url: string;
  /** The temporary directory holding config, htpasswd and the storage root (DIR/data). */
  dataDir: string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  htpasswd?: { username: string; password: string };
}

const REGISTRY_BIN = '/usr/bin/docker-registry';
const START_TIMEOUT_MS = 20_000;
const POLL_MS = 50;
const KILL_GRACE_MS = 2_000;
const LOG_LIMIT = 64 * 1024;

/** A port nobody listens on right now (the kernel picks it; racy in theory, fine on a test machine). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no TCP port from the kernel');
  return address.port;
}

function registryConfig(dir: string, port: number, htpasswdPath?: string): string {
  // YAML is a superset of JSON: quoting paths through JSON.stringify keeps odd TMPDIRs safe.
  const lines = [
    'version: 0.1',
    'log: {level: warn}',
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(dir, 'data'))}}, delete: {enabled: true}}`,
    // A fixed secret: otherwise the registry generates one and warns about it on every start.
    `http: {addr: "127.0.0.1:${port}", secret: krata-test-secret}`,
  ];
  if (htpasswdPath) lines.push(`auth: {htpasswd: {realm: krata-test, path: ${JSON.stringify(htpasswdPath)}}}`);
  return lines.join('\n') + '\n';
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
  const dataDir = mkdtempSync(join(tmpdir(), 'krata-registry-'));
  try {
    const port = await freePort();
    let htpasswdPath: string | undefined;
    if (opts.htpasswd) {
      htpasswdPath = join(dataDir, 'htpasswd');
      writeHtpasswd(htpasswdPath, opts.htpasswd.username, opts.htpasswd.password);
    }
    const configPath = join(dataDir, 'config.yml');
    writeFileSync(configPath, registryConfig(dataDir, port, htpasswdPath));
    return await launch(dataDir, configPath, port, opts.htpasswd ? 401 : 200);
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(dataDir: string, configPath: string, port: number, readyStatus: number): Promise<Registry> {
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
  return { host: `127.0.0.1:${port}`, url, dataDir, stop };
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
