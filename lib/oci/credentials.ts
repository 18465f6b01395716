// Registry credentials as Docker and Kubernetes keep them: docker config.json files and image pull
// Secrets. Keys are normalised like a reference's registry, so "https://index.docker.io/v1/" (what
// `docker login` writes for Docker Hub) is found when pulling from docker.io. Every input is hostile,
// and secrets never reach an error message, toString(), util.inspect or JSON: those name registries only.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { inspect } from 'node:util';
import { normalizeRegistry, quote } from './reference.js';

export type Credential = { username: string; password: string } | { identityToken: string };

export class CredentialError extends Error {
  override name = 'CredentialError';
}

const MAX_CONFIG_BYTES = 1024 * 1024;

interface Parsed {
  entries: Map<string, Credential>;
  warnings: string[];
}

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    // V8's message quotes the text around the mistake, which may be a password: keep the position only.
    const position = /position (\d+)/.exec((e as Error).message);
    throw new CredentialError(`${source}: not valid JSON${position ? ` (at position ${position[1]})` : ''}`);
  }
}

function decodeUtf8(bytes: Uint8Array, source: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CredentialError(`${source}: not valid UTF-8`);
  }
}

/** Strict standard base64 (Node's decoder silently skips junk); padding optional as some tools drop it. */
function decodeBase64(s: string): Buffer | undefined {
  const body = s.replace(/={1,2}$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(body) || body.length % 4 === 1) return undefined;
  if (body.length !== s.length && s.length % 4 !== 0) return undefined;
  return Buffer.from(body, 'base64');
}

function stringField(entry: JsonObject, name: string, where: string, source: string): string | undefined {
  const v = entry[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new CredentialError(`${source}: ${where}.${name} must be a string, not ${typeName(v)}`);
  return v;
}

/** The "auth" field: base64 of "username:password", split at the first colon as Docker does. */
function decodeAuth(auth: string, where: string, source: string): { username: string; password: string } {
  const bytes = decodeBase64(auth);
  let text: string | undefined;
  try {
    text = bytes && new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // Junk that happens to be base64 ("nope") decodes to non-UTF-8: the same mistake as any other.
  }
  const colon = text === undefined ? -1 : text.indexOf(':');
  if (text === undefined || colon <= 0) {
    throw new CredentialError(`${source}: ${where}.auth is not base64 of "username:password" (UTF-8)`);
  }
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** One auths entry; undefined when it holds nothing usable (e.g. `{}`, left by `docker login` with a helper). */
function parseEntry(entry: unknown, where: string, source: string): Credential | undefined {
  if (!isObject(entry)) throw new CredentialError(`${source}: ${where} must be an object, not ${typeName(entry)}`);
  const auth = stringField(entry, 'auth', where, source);
  const username = stringField(entry, 'username', where, source);
  const password = stringField(entry, 'password', where, source);
  const identityToken = stringField(entry, 'identitytoken', where, source);
  // A malformed auth is an error even when a token would win: the file is broken and should be fixed.
  const fromAuth = auth ? decodeAuth(auth, where, source) : undefined;
  if (identityToken) return Object.freeze({ identityToken });
  if (fromAuth) return Object.freeze(fromAuth);
  if (username && password !== undefined) return Object.freeze({ username, password });
  return undefined;
}

/** Docker's ConvertToHostname (drop the scheme, then everything from the first "/"), then the registry's one spelling. */
function registryOfKey(key: string): string | undefined {
  const host = key.replace(/^https?:\/\//i, '').split('/')[0]!;
  try {
    return normalizeRegistry(host);
  } catch {
    return undefined;
  }
}

function keyLabel(prefix: string, key: string): string {
  return `${prefix}[${quote(key)}]`;
}

/** An auths map: registry key → entry. Earlier keys win when two spell the same registry. */
function parseAuths(auths: JsonObject, prefix: string, source: string): Parsed & { unusable: string[] } {
  const entries = new Map<string, Credential>();
  const keys = new Map<string, string>();
  const warnings: string[] = [];
  const unusable: string[] = [];
  for (const [key, entry] of Object.entries(auths)) {
    const where = keyLabel(prefix, key);
    const registry = registryOfKey(key);
    if (registry === undefined) throw new CredentialError(`${source}: ${where} is not a registry host[:port] or URL`);
    const credential = parseEntry(entry, where, source);
    if (credential === undefined) {
      unusable.push(registry);
    } else if (keys.has(registry)) {
      const first = keyLabel(prefix, keys.get(registry)!);
      warnings.push(`${source}: ${first} and ${where} both name ${registry}; using ${first}`);
    } else {
      entries.set(registry, credential);
      keys.set(registry, key);
    }
  }
  return { entries, warnings, unusable };
}

/** credsStore and credHelpers name programs (docker-credential-*) a daemon cannot run: say who loses out. */
function helperWarnings(doc: JsonObject, parsed: Parsed & { unusable: string[] }, source: string): string[] {
  const warnings: string[] = [];
  const { credHelpers, credsStore } = doc;
  const helped = new Set<string>();
  if (credHelpers !== undefined && credHelpers !== null) {
    if (!isObject(credHelpers)) throw new CredentialError(`${source}: credHelpers must be an object, not ${typeName(credHelpers)}`);
    for (const [key, helper] of Object.entries(credHelpers)) {
      if (typeof helper !== 'string')
        throw new CredentialError(`${source}: ${keyLabel('credHelpers', key)} must be a string, not ${typeName(helper)}`);
      const registry = registryOfKey(key) ?? quote(key);
      helped.add(registry);
      const fallback = parsed.entries.has(registry) ? 'using its auths entry instead' : 'no credentials for it';
      warnings.push(
        `${source}: ${registry} relies on credential helper docker-credential-${helper}, which a daemon cannot run (${fallback})`,
      );
    }
  }
  if (credsStore !== undefined && credsStore !== null && credsStore !== '') {
    if (typeof credsStore !== 'string') throw new CredentialError(`${source}: credsStore must be a string, not ${typeName(credsStore)}`);
    const relying = [...new Set(parsed.unusable)].filter((r) => !helped.has(r) && !parsed.entries.has(r));
    const who = relying.length > 0 ? `${relying.join(', ')} rely on it and have no credentials here` : 'no registry here relies on it';
    warnings.push(`${source}: credsStore docker-credential-${credsStore} cannot be run by a daemon (${who})`);
  }
  return warnings;
}

function parseDockerConfig(text: string, source: string): Parsed {
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw new CredentialError(`${source}: larger than ${MAX_CONFIG_BYTES} bytes`);
  const doc = parseJson(text, source);
  if (!isObject(doc)) throw new CredentialError(`${source}: a docker config must be a JSON object, not ${typeName(doc)}`);
  const auths = doc.auths ?? {};
  if (!isObject(auths)) throw new CredentialError(`${source}: auths must be an object, not ${typeName(auths)}`);
  const parsed = parseAuths(auths, 'auths', source);
  return { entries: parsed.entries, warnings: [...parsed.warnings, ...helperWarnings(doc, parsed, source)] };
}

/** A pull secret's data value: base64 (as the API serves Secrets) of UTF-8 text. */
function secretText(data: JsonObject, key: string, source: string): string {
  const where = `${source} data[${quote(key)}]`;
  const value = data[key];
  if (typeof value !== 'string') throw new CredentialError(`${source}: data[${quote(key)}] is missing (or not a string)`);
  if (value.length > (MAX_CONFIG_BYTES / 3) * 4 + 4) throw new CredentialError(`${where}: larger than ${MAX_CONFIG_BYTES} bytes`);
  const bytes = decodeBase64(value);
  if (bytes === undefined) throw new CredentialError(`${where}: not valid base64`);
  return decodeUtf8(bytes, where);
}

/** Reads a file of at most MAX_CONFIG_BYTES; undefined when it does not exist. */
async function readConfigFile(path: string): Promise<string | undefined> {
  let handle;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang the agent in open().
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new CredentialError(`${path}: cannot open: ${(e as Error).message}`);
  }
  try {
    if (!(await handle.stat()).isFile()) throw new CredentialError(`${path}: not a regular file`);
    // Read one byte past the limit instead of trusting stat: the file may grow while it is read.
    const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0 || (length += bytesRead) === buffer.length) break;
    }
    if (length > MAX_CONFIG_BYTES) throw new CredentialError(`${path}: larger than ${MAX_CONFIG_BYTES} bytes`);
    return decodeUtf8(buffer.subarray(0, length), path);
  } finally {
    await handle.close();
  }
}

export class CredentialStore {
  readonly #entries: ReadonlyMap<string, Credential>;
  /** What could not be used (credential helpers, duplicate keys), one sentence each, naming the source. */
  readonly warnings: string[];

  private constructor(parsed: Parsed) {
    this.#entries = parsed.entries;
    this.warnings = parsed.warnings;
  }

  static empty(): CredentialStore {
    return new CredentialStore({ entries: new Map(), warnings: [] });
  }

  /** A docker config.json's text; `source` (its path) names it in errors and warnings. */
  static fromDockerConfig(json: string, source: string): CredentialStore {
    if (typeof json !== 'string') throw new CredentialError(`${source}: a docker config must be text, not ${typeName(json)}`);
    return new CredentialStore(parseDockerConfig(json, source));
  }

  /** A Kubernetes Secret of type kubernetes.io/dockerconfigjson or the legacy kubernetes.io/dockercfg. */
  static fromPullSecret(secret: unknown, source: string): CredentialStore {
    if (!isObject(secret)) throw new CredentialError(`${source}: a pull secret must be an object, not ${typeName(secret)}`);
    const { type, data } = secret;
    if (!isObject(data)) throw new CredentialError(`${source}: data must be an object, not ${typeName(data)}`);
    if (type === 'kubernetes.io/dockerconfigjson') {
      return new CredentialStore(parseDockerConfig(secretText(data, '.dockerconfigjson', source), `${source} data[".dockerconfigjson"]`));
    }
    if (type === 'kubernetes.io/dockercfg') {
      const where = `${source} data[".dockercfg"]`;
      // The legacy format is config.json's auths map on its own.
      const auths = parseJson(secretText(data, '.dockercfg', source), where);
      if (!isObject(auths)) throw new CredentialError(`${where}: must be a JSON object of registries, not ${typeName(auths)}`);
      const { entries, warnings } = parseAuths(auths, '', where);
      return new CredentialStore({ entries, warnings });
    }
    const shown = typeof type === 'string' ? quote(type) : typeName(type);
    throw new CredentialError(`${source}: type ${shown} is not a pull secret (kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg)`);
  }

  /** docker config.json files, earlier ones winning; files that do not exist are skipped. */
  static async fromFiles(paths: string[]): Promise<CredentialStore> {
    const stores: CredentialStore[] = [];
    for (const path of paths) {
      const text = await readConfigFile(path);
      if (text !== undefined) stores.push(CredentialStore.fromDockerConfig(text, path));
    }
    return CredentialStore.empty().merge(...stores);
  }

  /** One store of this and `others`; for a registry in several, the earliest store's credential wins. */
  merge(...others: CredentialStore[]): CredentialStore {
    const entries = new Map<string, Credential>();
    const warnings: string[] = [];
    for (const store of [this, ...others]) {
      for (const [registry, credential] of store.#entries) if (!entries.has(registry)) entries.set(registry, credential);
      warnings.push(...store.warnings);
    }
    return new CredentialStore({ entries, warnings });
  }

  /** The credential for a registry, in any spelling normalizeRegistry accepts ("index.docker.io" is docker.io). */
  lookup(registry: string): Credential | undefined {
    return this.#entries.get(normalizeRegistry(registry));
  }

  get registries(): string[] {
    return [...this.#entries.keys()].sort();
  }

  toJSON(): { registries: string[] } {
    return { registries: this.registries };
  }

  toString(): string {
    return `CredentialStore(${this.registries.join(', ')})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
