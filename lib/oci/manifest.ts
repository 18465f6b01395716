// Manifests, indexes and image configs as they come off the wire: media types, shape checks with
// errors that name the document and field, and the parts of the config a guest needs.
import { parseDigest } from './reference.js';

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/** What a registry is asked for: every manifest and index type we read. */
export const MANIFEST_ACCEPT = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerList, MediaType.dockerManifest].join(', ');

const LAYER_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.diff.tar',
  // Deprecated but still published: content is an ordinary layer.
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
]);

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageIndex {
  mediaType: string;
  manifests: Descriptor[];
}

/** The runtime part of an image config (OCI "config" object) that a guest's process needs. */
export interface ImageRuntimeConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  ExposedPorts?: Record<string, unknown>;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  config: ImageRuntimeConfig;
  diffIds: string[];
}

export const LIMITS = { manifestBytes: 4 << 20, configBytes: 8 << 20, layers: 500, indexEntries: 1000 };

/** An image document that is malformed; the message names the document and the field. */
export class ManifestError extends Error {}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ManifestError(`${where}: expected an object`);
  return v as Record<string, unknown>;
}

function str(v: unknown, where: string): string {
  if (typeof v !== 'string') throw new ManifestError(`${where}: expected a string`);
  return v;
}

function strings(v: unknown, where: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw new ManifestError(`${where}: expected a list of strings`);
  return v as string[];
}

export function parseJson(bytes: Buffer, source: string): Record<string, unknown> {
  try {
    return obj(JSON.parse(bytes.toString('utf8')), source);
  } catch (e) {
    if (e instanceof ManifestError) throw e;
    throw new ManifestError(`${source}: not valid JSON (${(e as Error).message})`);
  }
}

function descriptor(v: unknown, where: string): Descriptor {
  const o = obj(v, where);
  const digest = str(o.digest, `${where}.digest`);
  try {
    parseDigest(digest);
  } catch (e) {
    throw new ManifestError(`${where}.digest: ${(e as Error).message}`);
  }
  const size = o.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw new ManifestError(`${where}.size: expected a non-negative integer`);
  const d: Descriptor = { mediaType: o.mediaType === undefined ? '' : str(o.mediaType, `${where}.mediaType`), digest, size };
  if (o.platform !== undefined) {
    const p = obj(o.platform, `${where}.platform`);
    d.platform = { os: str(p.os, `${where}.platform.os`), architecture: str(p.architecture, `${where}.platform.architecture`) };
    if (p.variant !== undefined) d.platform.variant = str(p.variant, `${where}.platform.variant`);
  }
  if (o.annotations !== undefined) d.annotations = obj(o.annotations, `${where}.annotations`) as Record<string, string>;
  return d;
}

/** Tells an index from a manifest: the media type field, else the HTTP content type, else the shape. */
export function documentKind(doc: Record<string, unknown>, contentType: string | undefined): 'index' | 'manifest' | 'v1' {
  const mt = (typeof doc.mediaType === 'string' ? doc.mediaType : (contentType ?? '')).split(';')[0]!.trim();
  if (doc.schemaVersion === 1 || mt.startsWith('application/vnd.docker.distribution.manifest.v1')) return 'v1';
  if (mt === MediaType.ociIndex || mt === MediaType.dockerList) return 'index';
  if (mt === MediaType.ociManifest || mt === MediaType.dockerManifest) return 'manifest';
  return Array.isArray(doc.manifests) ? 'index' : 'manifest';
}

export function parseIndex(doc: Record<string, unknown>, source: string): ImageIndex {
  if (!Array.isArray(doc.manifests)) throw new ManifestError(`${source}: manifests: expected a list`);
  if (doc.manifests.length > LIMITS.indexEntries) throw new ManifestError(`${source}: more than ${LIMITS.indexEntries} manifests`);
  return {
    mediaType: typeof doc.mediaType === 'string' ? doc.mediaType : MediaType.ociIndex,
    manifests: doc.manifests.map((m, i) => descriptor(m, `${source}: manifests[${i}]`)),
  };
}

export function parseManifest(doc: Record<string, unknown>, source: string): ImageManifest {
  if (doc.schemaVersion !== 2)
    throw new ManifestError(`${source}: schemaVersion ${JSON.stringify(doc.schemaVersion)} is not supported (only 2)`);
  const config = descriptor(doc.config, `${source}: config`);
  if (!Array.isArray(doc.layers)) throw new ManifestError(`${source}: layers: expected a list`);
  if (doc.layers.length > LIMITS.layers) throw new ManifestError(`${source}: more than ${LIMITS.layers} layers`);
  const layers = doc.layers.map((l, i) => {
    const d = descriptor(l, `${source}: layers[${i}]`);
    if (!LAYER_TYPES.has(d.mediaType)) {
      throw new ManifestError(
        `${source}: layers[${i}].mediaType ${JSON.stringify(d.mediaType)} is not a layer type ` +
          `krata can unpack${d.mediaType.includes('foreign') ? ' (a foreign, Windows layer)' : ''}`,
      );
    }
    return d;
  });
  if (config.size > LIMITS.configBytes)
    throw new ManifestError(`${source}: config.size ${config.size} exceeds ${LIMITS.configBytes} bytes`);
  return { mediaType: typeof doc.mediaType === 'string' ? doc.mediaType : MediaType.ociManifest, config, layers };
}

export function parseImageConfig(bytes: Buffer, source: string): ImageConfig {
  const doc = parseJson(bytes, source);
  const rootfs = obj(doc.rootfs, `${source}: rootfs`);
  const diffIds = strings(rootfs.diff_ids, `${source}: rootfs.diff_ids`) ?? [];
  diffIds.forEach((d, i) => {
    try {
      parseDigest(d);
    } catch (e) {
      throw new ManifestError(`${source}: rootfs.diff_ids[${i}]: ${(e as Error).message}`);
    }
  });
  const c = doc.config === undefined || doc.config === null ? {} : obj(doc.config, `${source}: config`);
  const config: ImageRuntimeConfig = {};
  if (c.User !== undefined && c.User !== '') config.User = str(c.User, `${source}: config.User`);
  const env = strings(c.Env, `${source}: config.Env`);
  if (env) config.Env = env;
  const entrypoint = strings(c.Entrypoint, `${source}: config.Entrypoint`);
  if (entrypoint) config.Entrypoint = entrypoint;
  const cmd = strings(c.Cmd, `${source}: config.Cmd`);
  if (cmd) config.Cmd = cmd;
  if (c.WorkingDir !== undefined && c.WorkingDir !== '') config.WorkingDir = str(c.WorkingDir, `${source}: config.WorkingDir`);
  if (c.ExposedPorts !== undefined && c.ExposedPorts !== null) config.ExposedPorts = obj(c.ExposedPorts, `${source}: config.ExposedPorts`);
  if (c.Labels !== undefined && c.Labels !== null) config.Labels = obj(c.Labels, `${source}: config.Labels`) as Record<string, string>;
  if (c.StopSignal !== undefined && c.StopSignal !== '') config.StopSignal = str(c.StopSignal, `${source}: config.StopSignal`);
  const out: ImageConfig = {
    architecture: str(doc.architecture, `${source}: architecture`),
    os: str(doc.os, `${source}: os`),
    config,
    diffIds,
  };
  if (doc.variant !== undefined) out.variant = str(doc.variant, `${source}: variant`);
  return out;
}
