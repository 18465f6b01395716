// Choosing this host's image from an OCI image index / Docker manifest list. Compatibility follows
// containerd: arm64 without a variant is v8, an x86-64-v3 host also runs v2 and baseline images, a
// 32-bit arm v7 host also runs v6 and v5; BuildKit's attestations (unknown/unknown) are never images.
// Indexes come from the wire: odd entries are skipped, never trusted, and quoted safely in errors.
import { parseDigest, quote } from './reference.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export class PlatformError extends Error {
  override name = 'PlatformError';
}

interface IndexEntry {
  platform?: { os: string; architecture: string; variant?: string; 'os.version'?: string };
  annotations?: Record<string, string>;
  mediaType?: string;
  digest: string;
}

// Node's process.arch → the OCI (GOARCH) name; arm64 hosts are all v8 or later, which runs v8 images.
const NODE_ARCH: Record<string, { architecture: string; variant?: string }> = {
  x64: { architecture: 'amd64' },
  arm64: { architecture: 'arm64', variant: 'v8' },
  ia32: { architecture: '386' },
  arm: { architecture: 'arm' },
};

// What an index entry may point at to be an image (nested indexes and artifacts are not).
const IMAGE_MANIFEST_TYPES = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
]);

const COMPONENT = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const EXACT = 100; // ranks above any "runs here too" variant
const MAX_LISTED = 20;

/** `arch` defaults to this process's; passing one lets a caller (or test) ask about another host. */
export function hostPlatform(arch: string = process.arch): Platform {
  const mapped = NODE_ARCH[arch];
  if (mapped === undefined || !Object.hasOwn(NODE_ARCH, arch)) {
    throw new PlatformError(`no image platform for process.arch ${quote(arch)} (known: ${Object.keys(NODE_ARCH).join(', ')})`);
  }
  return { os: 'linux', ...mapped };
}

export function parsePlatform(s: string): Platform {
  const parts = typeof s === 'string' && s.length <= 200 ? s.split('/') : [];
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => COMPONENT.test(p))) {
    const shown = typeof s === 'string' ? quote(s) : typeof s;
    throw new PlatformError(`platform ${shown} is not "os/architecture[/variant]" in lowercase (e.g. linux/amd64, linux/arm64/v8)`);
  }
  const [os, architecture, variant] = parts as [string, string, string?];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, ...(p.variant !== undefined ? [p.variant] : [])].join('/');
}

/** A platform from the wire for an error message: plain when it looks like one, quoted otherwise. */
function showPlatform(p: Platform): string {
  const parts = [p.os, p.architecture, ...(p.variant !== undefined ? [p.variant] : [])];
  return parts.every((x) => /^[\w.+-]{1,64}$/.test(x)) ? parts.join('/') : quote(parts.join('/'), 60);
}

function level(v: string | undefined, pattern: RegExp, none: number): number | undefined {
  if (v === undefined) return none;
  const m = pattern.exec(v);
  return m ? Number(m[1]) : undefined;
}

/** Variants an older CPU generation built for run here too: accept `have` up to `want`, the closest first. */
function downward(want: number | undefined, have: number | undefined): number | undefined {
  return want !== undefined && have !== undefined && have <= want ? have : undefined;
}

/** How well an image built for `have` suits a host wanting `want` (same os/architecture); undefined: it does not run. */
function variantRank(architecture: string, want: string | undefined, have: string | undefined): number | undefined {
  if (want === have) return EXACT;
  switch (architecture) {
    case 'arm64':
      return (want ?? 'v8') === (have ?? 'v8') ? EXACT - 1 : undefined;
    case 'amd64':
      // x86-64 microarchitecture levels: v1 is the baseline, the same as no variant.
      return downward(level(want, /^v([1-4])$/, 1), level(have, /^v([1-4])$/, 1));
    case 'arm':
      // containerd reads a missing 32-bit arm variant as v7.
      return downward(level(want, /^v([5-8])$/, 7), level(have, /^v([5-8])$/, 7));
    default:
      // Without a wanted variant any will do, though an entry without one is preferred (EXACT above).
      return want === undefined ? 0 : undefined;
  }
}

/** The entry's platform if it is an image for some real platform; undefined for attestations and oddities. */
function imagePlatform(entry: IndexEntry): Platform | undefined {
  if (entry === null || typeof entry !== 'object') return undefined;
  const { platform, annotations, mediaType } = entry;
  // BuildKit marks attestation manifests with this annotation (and platform unknown/unknown).
  if (annotations !== null && typeof annotations === 'object' && Object.hasOwn(annotations, 'vnd.docker.reference.type')) return undefined;
  if (mediaType !== undefined && !IMAGE_MANIFEST_TYPES.has(mediaType)) return undefined;
  if (platform === null || typeof platform !== 'object') return undefined;
  const { os, architecture, variant } = platform;
  if (typeof os !== 'string' || typeof architecture !== 'string' || (variant !== undefined && typeof variant !== 'string'))
    return undefined;
  if (os === 'unknown' || architecture === 'unknown') return undefined;
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

function noMatch(want: Platform, available: Platform[], skipped: number, source: string): PlatformError {
  const names = [...new Set(available.map(showPlatform))];
  const listed = names.length > MAX_LISTED ? [...names.slice(0, MAX_LISTED), `… ${names.length - MAX_LISTED} more`] : names;
  const has = names.length > 0 ? `available: ${listed.join(', ')}` : 'it lists no platform images';
  const skip = skipped > 0 ? ` (${skipped} attestation/unknown ${skipped === 1 ? 'entry' : 'entries'} skipped)` : '';
  return new PlatformError(`${source}: no image for ${showPlatform(want)}; ${has}${skip}`);
}

/** The manifest in an index that suits `want` best; ties go to the first listed, as the index's author ordered them. */
export function selectManifest<D extends IndexEntry>(manifests: D[], want: Platform, source: string): D {
  if (!Array.isArray(manifests))
    throw new PlatformError(`${source}: manifests must be an array, not ${manifests === null ? 'null' : typeof manifests}`);
  let best: { entry: D; rank: number } | undefined;
  const available: Platform[] = [];
  let skipped = 0;
  for (const entry of manifests) {
    const platform = imagePlatform(entry);
    if (platform === undefined) {
      skipped++;
      continue;
    }
    available.push(platform);
    if (platform.os !== want.os || platform.architecture !== want.architecture) continue;
    const rank = variantRank(want.architecture, want.variant, platform.variant);
    if (rank !== undefined && (best === undefined || rank > best.rank)) best = { entry, rank };
  }
  if (best === undefined) throw noMatch(want, available, skipped, source);
  try {
    parseDigest(best.entry.digest);
  } catch (e) {
    throw new PlatformError(`${source}: the manifest for ${showPlatform(want)} has a bad digest: ${(e as Error).message}`);
  }
  return best.entry;
}
