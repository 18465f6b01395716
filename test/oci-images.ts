// Images the tests define in code: layers are tars from buildTar, compressed, hashed and described
// by an image config and a manifest (OCI or Docker schema 2), then pushed to a registry over the
// distribution API, or written offline as an OCI layout or a legacy `docker save` tarball.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { buildTar } from '../lib/tar.js';

export interface LayerSpec {
  tar: Buffer;
  compression: 'gzip' | 'zstd' | 'none';
}

export interface ImageSpec {
  layers: LayerSpec[];
  config?: { Env?: string[]; Cmd?: string[]; Entrypoint?: string[]; User?: string; WorkingDir?: string };
  /** Default amd64. */
  architecture?: string;
  /** Default linux. */
  os?: string;
  variant?: string;
  /** Default oci. */
  mediaTypes?: 'oci' | 'docker';
}

export interface BuiltLayer {
  digest: string;
  mediaType: string;
  size: number;
  /** The blob as pushed (compressed). */
  data: Buffer;
  /** sha256 of the uncompressed tar. */
  diffId: string;
}

export interface BuiltImage {
  manifest: Buffer;
  manifestDigest: string;
  manifestMediaType: string;
  config: Buffer;
  configDigest: string;
  layers: BuiltLayer[];
}

export interface BasicAuth {
  username: string;
  password: string;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

const MEDIA_TYPES = {
  oci: {
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    index: 'application/vnd.oci.image.index.v1+json',
    config: 'application/vnd.oci.image.config.v1+json',
    layer: {
      gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
      zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
      none: 'application/vnd.oci.image.layer.v1.tar',
    },
  },
  docker: {
    manifest: 'application/vnd.docker.distribution.manifest.v2+json',
    index: 'application/vnd.docker.distribution.manifest.list.v2+json',
    config: 'application/vnd.docker.container.image.v1+json',
    // Docker schema 2 has no zstd layer type.
    layer: {
      gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
      zstd: undefined,
      none: 'application/vnd.docker.image.rootfs.diff.tar',
    },
  },
} as const;

// Fixed timestamps keep every digest reproducible from the spec alone.
const EPOCH = '1970-01-01T00:00:00Z';
const ZSTD_MAX_BUFFER = 1 << 30;

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function hexOf(digest: string): string {
  return digest.slice('sha256:'.length);
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function compress(tar: Buffer, compression: LayerSpec['compression']): Buffer {
  switch (compression) {
    case 'gzip':
      return gzipSync(tar);
    case 'zstd':
      return execFileSync('zstd', ['-q', '-c'], { input: tar, maxBuffer: ZSTD_MAX_BUFFER });
    case 'none':
      return tar;
  }
}

/** The uncompressed tar of a built layer, told by its media type (docker save stores tars). */
function decompress(layer: BuiltLayer): Buffer {
  if (/gzip$/.test(layer.mediaType)) return gunzipSync(layer.data);
  if (/zstd$/.test(layer.mediaType)) return execFileSync('zstd', ['-d', '-q', '-c'], { input: layer.data, maxBuffer: ZSTD_MAX_BUFFER });
  return layer.data;
}

function buildLayer(spec: LayerSpec, kind: 'oci' | 'docker'): BuiltLayer {
  const mediaType = MEDIA_TYPES[kind].layer[spec.compression];
  if (mediaType === undefined) throw new Error(`${kind} media types have no ${spec.compression} layer`);
  const data = compress(spec.tar, spec.compression);
  return { digest: sha256(data), mediaType, size: data.length, data, diffId: sha256(spec.tar) };
}

function descriptor(mediaType: string, data: Buffer): Descriptor {
  return { mediaType, digest: sha256(data), size: data.length };
}

export function buildImage(spec: ImageSpec): BuiltImage {
  const kind = spec.mediaTypes ?? 'oci';
  const types = MEDIA_TYPES[kind];
  const layers = spec.layers.map((l) => buildLayer(l, kind));
  const config = json({
    created: EPOCH,
    architecture: spec.architecture ?? 'amd64',
    os: spec.os ?? 'linux',
    ...(spec.variant !== undefined && { variant: spec.variant }),
    config: spec.config ?? {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: EPOCH, created_by: `krata test layer ${i}` })),
  });
  const manifest = json({
    schemaVersion: 2,
    mediaType: types.manifest,
    config: descriptor(types.config, config),
    layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
  });
  return { manifest, manifestDigest: sha256(manifest), manifestMediaType: types.manifest, config, configDigest: sha256(config), layers };
}

export function buildIndex(
  entries: Array<{ image: BuiltImage; platform: { os: string; architecture: string; variant?: string } }>,
  mediaTypes: 'oci' | 'docker' = 'oci',
): { index: Buffer; digest: string; mediaType: string } {
  const mediaType = MEDIA_TYPES[mediaTypes].index;
  const index = json({
    schemaVersion: 2,
    mediaType,
    manifests: entries.map(({ image, platform }) => ({
      ...descriptor(image.manifestMediaType, image.manifest),
      platform: {
        architecture: platform.architecture,
        os: platform.os,
        ...(platform.variant !== undefined && { variant: platform.variant }),
      },
    })),
  });
  return { index, digest: sha256(index), mediaType };
}

// --- the distribution API (push side) ---

function headers(auth: BasicAuth | undefined, extra: Record<string, string> = {}): Record<string, string> {
  if (!auth) return extra;
  return { ...extra, Authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` };
}

/**
 * A request with basic auth; a registry with token auth answers 401 with a Bearer challenge, and
 * the request is sent again with a token from the challenge's realm (fetched with the same basic auth).
 */
async function send(
  url: string,
  method: string,
  auth: BasicAuth | undefined,
  extra: Record<string, string> = {},
  body?: Buffer,
): Promise<Response> {
  const res = await fetch(url, { method, headers: headers(auth, extra), body });
  const challenge = res.headers.get('www-authenticate') ?? '';
  if (res.status !== 401 || !/^bearer\s/i.test(challenge)) return res;
  await res.arrayBuffer();
  const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
  if (!params.realm) throw new Error(`${method} ${url}: Bearer challenge without a realm: ${challenge}`);
  const realm = new URL(params.realm);
  if (params.service) realm.searchParams.set('service', params.service);
  if (params.scope) realm.searchParams.set('scope', params.scope);
  const tokenRes = await fetch(realm, { headers: headers(auth) });
  const text = await tokenRes.text();
  if (!tokenRes.ok) throw new Error(`${method} ${url}: token from ${realm.href}: HTTP ${tokenRes.status} ${text}`);
  const { token, access_token } = JSON.parse(text) as { token?: string; access_token?: string };
  return fetch(url, { method, headers: { ...extra, Authorization: `Bearer ${token ?? access_token}` }, body });
}

/** Reads the body either way (frees the connection) and throws unless the status is expected. */
async function expectStatus(res: Response, expected: number[], what: string): Promise<void> {
  const body = await res.text();
  if (!expected.includes(res.status)) throw new Error(`${what}: HTTP ${res.status} ${body}`);
}

async function pushBlob(base: string, repo: string, digest: string, data: Buffer, auth?: BasicAuth): Promise<void> {
  const blobUrl = `${base}/v2/${repo}/blobs/${digest}`;
  const head = await send(blobUrl, 'HEAD', auth);
  await expectStatus(head, [200, 404], `HEAD ${blobUrl}`);
  if (head.status === 200) return; // the registry has it (a layer shared between images)

  const post = await send(`${base}/v2/${repo}/blobs/uploads/`, 'POST', auth);
  await expectStatus(post, [202], `POST ${repo} blob upload`);
  const location = post.headers.get('location');
  if (!location) throw new Error(`POST ${repo} blob upload: 202 without a Location`);
  // The Location may be relative; its query (the upload state) must survive untouched.
  const upload = new URL(location, base).href;
  const putUrl = `${upload}${upload.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
  const put = await send(putUrl, 'PUT', auth, { 'Content-Type': 'application/octet-stream' }, data);
  await expectStatus(put, [201], `PUT ${repo} blob ${digest}`);
}

async function putManifest(
  base: string,
  repo: string,
  reference: string,
  body: Buffer,
  mediaType: string,
  auth?: BasicAuth,
): Promise<void> {
  const res = await send(`${base}/v2/${repo}/manifests/${reference}`, 'PUT', auth, { 'Content-Type': mediaType }, body);
  await expectStatus(res, [201], `PUT ${repo} manifest ${reference}`);
  // The registry hashes what it stored: a different digest means it rewrote the manifest.
  const stored = res.headers.get('docker-content-digest');
  if (stored !== null && stored !== sha256(body))
    throw new Error(`PUT ${repo} manifest ${reference}: stored as ${stored}, sent ${sha256(body)}`);
}

async function pushImageBlobs(base: string, repo: string, img: BuiltImage, auth?: BasicAuth): Promise<void> {
  await pushBlob(base, repo, img.configDigest, img.config, auth);
  for (const layer of img.layers) await pushBlob(base, repo, layer.digest, layer.data, auth);
}

export async function pushImage(reg: { url: string }, repo: string, tag: string, img: BuiltImage, auth?: BasicAuth): Promise<void> {
  await pushImageBlobs(reg.url, repo, img, auth);
  await putManifest(reg.url, repo, tag, img.manifest, img.manifestMediaType, auth);
}

/** The images go in by digest (an index may only name manifests the repository has), then the index under the tag. */
export async function pushIndex(
  reg: { url: string },
  repo: string,
  tag: string,
  images: BuiltImage[],
  index: { index: Buffer; mediaType: string },
  auth?: BasicAuth,
): Promise<void> {
  for (const img of images) {
    await pushImageBlobs(reg.url, repo, img, auth);
    await putManifest(reg.url, repo, img.manifestDigest, img.manifest, img.manifestMediaType, auth);
  }
  await putManifest(reg.url, repo, tag, index.index, index.mediaType, auth);
}

// --- offline formats (kratactl image import) ---

/** An OCI image layout (image-spec's image-layout.md) holding one image. */
export function writeOciLayout(dir: string, img: BuiltImage, refName?: string): void {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (digest: string, data: Buffer) => writeFileSync(join(blobs, hexOf(digest)), data);
  put(img.manifestDigest, img.manifest);
  put(img.configDigest, img.config);
  for (const layer of img.layers) put(layer.digest, layer.data);
  const manifest = {
    ...descriptor(img.manifestMediaType, img.manifest),
    ...(refName !== undefined && { annotations: { 'org.opencontainers.image.ref.name': refName } }),
  };
  writeFileSync(join(dir, 'oci-layout'), json({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'index.json'), json({ schemaVersion: 2, mediaType: MEDIA_TYPES.oci.index, manifests: [manifest] }));
}

/** "registry:5000/name:tag" → ["registry:5000/name", "tag"]: the tag follows the last colon after the last slash. */
function splitRepoTag(repoTag: string): [string, string] {
  const colon = repoTag.lastIndexOf(':');
  if (colon <= repoTag.lastIndexOf('/')) return [repoTag, 'latest'];
  return [repoTag.slice(0, colon), repoTag.slice(colon + 1)];
}

/** The legacy `docker save` tarball: manifest.json, the config, each layer uncompressed at <id>/layer.tar. */
export function writeDockerSave(file: string, img: BuiltImage, repoTags: string[]): void {
  const configName = `${hexOf(img.configDigest)}.json`;
  const layerIds = img.layers.map((l) => hexOf(l.diffId));
  const entries: Array<{ path: string; data?: Buffer }> = [{ path: configName, data: img.config }];
  const seen = new Set<string>();
  img.layers.forEach((layer, i) => {
    const id = layerIds[i] as string;
    if (seen.has(id)) return; // the same tar twice: one directory, named twice in manifest.json
    seen.add(id);
    entries.push({ path: id }, { path: `${id}/layer.tar`, data: decompress(layer) });
  });
  const repositories: Record<string, Record<string, string>> = {};
  const top = layerIds[layerIds.length - 1] ?? '';
  for (const repoTag of repoTags) {
    const [name, tag] = splitRepoTag(repoTag);
    (repositories[name] ??= {})[tag] = top;
  }
  entries.push(
    { path: 'manifest.json', data: json([{ Config: configName, RepoTags: repoTags, Layers: layerIds.map((id) => `${id}/layer.tar`) }]) },
    { path: 'repositories', data: json(repositories) },
  );
  writeFileSync(file, buildTar(entries));
}
