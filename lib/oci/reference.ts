// Image references with Docker's naming rules (github.com/distribution/reference): what a user writes
// ("alpine", "ghcr.io/org/app:1.2", "localhost:5000/x@sha256:…") becomes registry + repository +
// tag/digest, normalised the way `docker pull` does so that the same image always has the same name.
// References come from user specs and digests from the wire: everything is checked, and errors quote
// the offending input (shortened, escaped) so a bad spec can be found.
import { isIPv6 } from 'node:net';

export interface ImageReference {
  /** host[:port], lowercase; Docker Hub is "docker.io". */
  registry: string;
  /** Path on the registry, e.g. "library/alpine". */
  repository: string;
  tag?: string;
  /** "sha256:<64 hex>" or "sha512:<128 hex>". */
  digest?: string;
}

export class ImageReferenceError extends Error {
  override name = 'ImageReferenceError';
}

const MAX_REFERENCE = 4096;
const MAX_NAME = 255; // distribution's NameTotalLengthMax, counted on registry/repository
const DOCKER_HUB = 'docker.io';
// Names Docker Hub has gone by: all of them are the same registry (and the same credentials).
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

const TAG = /^\w[\w.-]{0,127}$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-*)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])$/i;
const IMAGE_ID = /^[a-f0-9]{64}$/;
const DIGEST_HEX_LENGTH = { sha256: 64, sha512: 128 } as const;

/** The input for an error message: escaped (control characters show) and shortened (inputs may be huge). */
export function quote(s: string, max = 100): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}

export function parseDigest(s: string): { algorithm: 'sha256' | 'sha512'; hex: string } {
  if (typeof s !== 'string') throw new ImageReferenceError(`digest must be a string, not ${typeof s}`);
  if (s.length > 7 + DIGEST_HEX_LENGTH.sha512) throw new ImageReferenceError(`digest ${quote(s)} is too long (${s.length} characters)`);
  const colon = s.indexOf(':');
  if (colon <= 0) throw new ImageReferenceError(`digest ${quote(s)} is not "algorithm:hex"`);
  const algorithm = s.slice(0, colon);
  const hex = s.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new ImageReferenceError(`digest ${quote(s)}: algorithm ${quote(algorithm)} is not supported (sha256, sha512)`);
  }
  const length = DIGEST_HEX_LENGTH[algorithm];
  // Lowercase only, as the OCI spec and go-digest require: two spellings of one digest would be two images.
  if (hex.length !== length || !/^[0-9a-f]*$/.test(hex)) {
    throw new ImageReferenceError(`digest ${quote(s)}: ${algorithm} needs ${length} lowercase hex digits`);
  }
  return { algorithm, hex };
}

/** Whether a reference's first path component names a registry rather than a Docker Hub user. */
function looksLikeRegistry(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

function isHost(host: string): boolean {
  if (host.startsWith('[')) return host.endsWith(']') && isIPv6(host.slice(1, -1));
  return host.length <= 253 && host.split('.').every((c) => c.length <= 63 && DOMAIN_COMPONENT.test(c));
}

function isPort(port: string): boolean {
  return /^[0-9]{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535;
}

/**
 * A registry as host[:port] in its one spelling: lowercase (host names are case-insensitive), Docker
 * Hub's aliases as "docker.io". Used for references and for credential keys alike so the two meet.
 */
export function normalizeRegistry(registry: string): string {
  if (typeof registry !== 'string') throw new ImageReferenceError(`registry must be a string, not ${typeof registry}`);
  // The port follows the last colon, unless that colon is inside an IPv6 literal's brackets.
  const colon = registry.lastIndexOf(':');
  const hasPort = colon > registry.lastIndexOf(']');
  const host = hasPort ? registry.slice(0, colon) : registry;
  if (!isHost(host) || (hasPort && !isPort(registry.slice(colon + 1)))) {
    throw new ImageReferenceError(
      `registry ${quote(registry)} is not a host[:port] (a DNS name, an IPv4 address or a bracketed IPv6 address)`,
    );
  }
  const lower = registry.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? DOCKER_HUB : lower;
}

/** The host to connect to for a registry: Docker Hub's API is not served at docker.io itself. */
export function registryEndpoint(registry: string): string {
  const normalized = normalizeRegistry(registry);
  return normalized === DOCKER_HUB ? 'registry-1.docker.io' : normalized;
}

function checkRepository(repository: string, context: string): void {
  if (/[A-Z]/.test(repository)) {
    throw new ImageReferenceError(`${context}: repository ${quote(repository)} must be lowercase`);
  }
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw new ImageReferenceError(
        `${context}: repository component ${quote(component)} is not valid (lowercase letters and digits, joined by ".", "_", "__" or "-")`,
      );
    }
  }
}

function checkTag(tag: string, context: string): void {
  if (!TAG.test(tag)) {
    throw new ImageReferenceError(
      `${context}: tag ${quote(tag)} is not valid (letters, digits, "_", "." and "-", not starting with "." or "-", at most 128)`,
    );
  }
}

function checkDigest(digest: string, context: string): void {
  try {
    parseDigest(digest);
  } catch (e) {
    throw new ImageReferenceError(`${context}: ${(e as Error).message}`);
  }
}

/** The checks and normalisation parse and format share, on a reference already split into its parts. */
function canonical(
  registry: string,
  repository: string,
  tag: string | undefined,
  digest: string | undefined,
  context: string,
): ImageReference {
  let normalized: string;
  try {
    normalized = normalizeRegistry(registry);
  } catch (e) {
    throw new ImageReferenceError(`${context}: ${(e as Error).message}`);
  }
  if (repository === '') throw new ImageReferenceError(`${context}: the repository name is empty`);
  // Official images live under library/ on Docker Hub: "alpine" and "library/alpine" are one image.
  const path = normalized === DOCKER_HUB && !repository.includes('/') ? `library/${repository}` : repository;
  checkRepository(path, context);
  if (tag !== undefined) checkTag(tag, context);
  if (digest !== undefined) checkDigest(digest, context);
  const name = `${normalized}/${path}`;
  if (name.length > MAX_NAME) throw new ImageReferenceError(`${context}: name ${quote(name)} is longer than ${MAX_NAME} characters`);
  const result: ImageReference = { registry: normalized, repository: path };
  if (tag !== undefined) result.tag = tag;
  if (digest !== undefined) result.digest = digest;
  // A digest pins the image by itself; "latest" is only the default when nothing else says which.
  if (tag === undefined && digest === undefined) result.tag = 'latest';
  return result;
}

/** Splits "name[:tag][@digest]": the tag's colon is the last one after the last "/" (a port's is before). */
function splitReference(ref: string): { name: string; tag?: string; digest?: string } {
  const at = ref.indexOf('@');
  const digest = at >= 0 ? ref.slice(at + 1) : undefined;
  const rest = at >= 0 ? ref.slice(0, at) : ref;
  const colon = rest.lastIndexOf(':');
  if (colon <= rest.lastIndexOf('/')) return { name: rest, digest };
  return { name: rest.slice(0, colon), tag: rest.slice(colon + 1), digest };
}

export function parseReference(ref: string): ImageReference {
  if (typeof ref !== 'string') throw new ImageReferenceError(`image reference must be a string, not ${typeof ref}`);
  if (ref === '') throw new ImageReferenceError('image reference is empty');
  if (ref.length > MAX_REFERENCE) {
    throw new ImageReferenceError(`image reference ${quote(ref, 60)} is ${ref.length} characters long (at most ${MAX_REFERENCE})`);
  }
  const context = `image reference ${quote(ref)}`;
  if (/[\s\p{C}]/u.test(ref)) throw new ImageReferenceError(`${context} contains whitespace or control characters`);
  // Docker refuses these: a bare image ID would otherwise be taken for a Docker Hub repository.
  if (IMAGE_ID.test(ref)) throw new ImageReferenceError(`${context} is a 64-hex image ID, not a repository name`);
  const { name, tag, digest } = splitReference(ref);
  const slash = name.indexOf('/');
  const first = name.slice(0, slash);
  if (slash >= 0 && looksLikeRegistry(first)) return canonical(first, name.slice(slash + 1), tag, digest, context);
  return canonical(DOCKER_HUB, name, tag, digest, context);
}

export function formatReference(r: ImageReference): string {
  // Callers may hand over parsed JSON: a number where a string belongs would slip through the regexes.
  for (const key of ['registry', 'repository', 'tag', 'digest'] as const) {
    const value: unknown = r[key];
    if (typeof value !== 'string' && !(value === undefined && (key === 'tag' || key === 'digest'))) {
      throw new ImageReferenceError(`image reference field ${key} must be a string, not ${value === null ? 'null' : typeof value}`);
    }
  }
  const raw = `${r.registry}/${r.repository}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
  const context = `image reference ${quote(raw)}`;
  // A registry that reads as a Docker Hub user ("foo") would not survive being parsed back.
  if (typeof r.registry !== 'string' || !looksLikeRegistry(r.registry)) {
    throw new ImageReferenceError(`${context}: registry ${quote(String(r.registry))} needs a "." or ":" or to be "localhost"`);
  }
  const c = canonical(r.registry, r.repository, r.tag, r.digest, context);
  return `${c.registry}/${c.repository}${c.tag !== undefined ? `:${c.tag}` : ''}${c.digest !== undefined ? `@${c.digest}` : ''}`;
}
