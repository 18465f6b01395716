// Offline sources: an OCI image layout directory, or a tarball from `docker save` (the legacy
// manifest.json format, or the OCI layout that newer Docker writes), from a path or streamed (the
// local API's import: kratactl sends a file as it is, a layout directory as a tarball). Every blob is checked against
// its digest, as from a registry; a legacy archive has no manifest, so one is derived from its
// config and layers (deterministically: the same archive always gets the same digest).
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, mkdirSync, openSync, readFileSync, closeSync, writeSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import {
  LIMITS,
  ManifestError,
  MediaType,
  documentKind,
  parseImageConfig,
  parseIndex,
  parseJson,
  parseManifest,
  type Descriptor,
  type ImageManifest,
} from '../../lib/oci/manifest.js';
import { hostPlatform, selectManifest, type Platform } from '../../lib/oci/platform.js';
import { formatReference, parseDigest, parseReference } from '../../lib/oci/reference.js';
import type { ImageStore, PullOptions } from './store.js';
import type { StoredImage } from '../../contracts/agent-api/types.js';
import { normalizeTarPath, TarFormatError, TarParser } from '../../lib/tar.js';

export interface ImportOptions extends PullOptions {
  /** Name for the image when the archive carries none (or to override it). */
  name?: string;
  platform?: Platform;
  /** Largest archive member; archives hold whole layers. */
  maxMemberBytes?: number;
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

function readSmall(file: string, max: number, what: string): Buffer {
  const st = lstatSync(file, { throwIfNoEntry: false });
  if (!st || !st.isFile()) throw new ManifestError(`${what}: ${file} is missing or not a regular file`);
  if (st.size > max) throw new ManifestError(`${what}: ${file} is ${st.size} bytes, more than ${max}`);
  return readFileSync(file);
}

/** Unpacks an archive's members (not a filesystem: blobs and JSON) into `dir`, symlinks resolved. */
async function unpackArchive(chunks: AsyncIterable<Buffer>, archive: string, dir: string, maxMember: number): Promise<void> {
  const links: Array<[string, string]> = [];
  let fd: number | undefined;
  let count = 0;
  const parser = new TarParser(
    {
      entry(h) {
        if (++count > 100_000) throw new TarFormatError(`${archive}: more than 100000 members`);
        if (h.type === 'dir') {
          mkdirSync(join(dir, h.path), { recursive: true });
          return false;
        }
        if (h.type === 'symlink' || h.type === 'hardlink') {
          // docker save links duplicate layers ("../<id>/layer.tar"); resolve inside the archive only.
          const target =
            h.type === 'hardlink' ? h.linkname! : normalizeTarPath(join(dirname(h.path), h.linkname!), `${archive}: ${h.path}`);
          links.push([h.path, target]);
          return false;
        }
        if (h.type !== 'file') return false;
        if (h.size > maxMember) throw new TarFormatError(`${archive}: member ${h.path} is ${h.size} bytes, more than ${maxMember}`);
        mkdirSync(join(dir, dirname(h.path)), { recursive: true });
        fd = openSync(join(dir, h.path), 'wx', 0o600);
        return true;
      },
      data(chunk) {
        writeSync(fd!, chunk);
      },
      end() {
        if (fd !== undefined) closeSync(fd);
        fd = undefined;
      },
    },
    archive,
  );
  try {
    for await (const chunk of chunks) parser.write(chunk);
    parser.close();
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  for (const [link, target] of links) {
    const from = join(dir, target);
    if (!existsSync(from) || !lstatSync(from).isFile())
      throw new TarFormatError(`${archive}: ${link} links to ${target}, which is not a file in the archive`);
    mkdirSync(join(dir, dirname(link)), { recursive: true });
    // A copy by hard link inside our own work directory.
    (await import('node:fs')).linkSync(from, join(dir, link));
  }
}

interface Found {
  digest: string;
  manifest: ImageManifest;
  blob: (d: Descriptor) => string;
  names: string[];
}

/** An OCI image layout: index.json → (nested index →) manifest; blobs verified as they are used. */
async function fromOciLayout(dir: string, opts: ImportOptions): Promise<Found> {
  const blob = (d: Descriptor) => join(dir, 'blobs', parseDigest(d.digest).algorithm, parseDigest(d.digest).hex);
  const verified = async (d: Descriptor, what: string): Promise<Buffer> => {
    const bytes = readSmall(blob(d), LIMITS.manifestBytes, what);
    const got = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (got !== d.digest || bytes.length !== d.size)
      throw new ManifestError(`${what}: blob ${d.digest} does not match its digest (got ${got}): refused`);
    return bytes;
  };
  const indexFile = join(dir, 'index.json');
  let index = parseIndex(parseJson(readSmall(indexFile, LIMITS.manifestBytes, 'OCI layout'), indexFile), indexFile);
  let names = index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']).filter((n): n is string => !!n);
  let desc =
    index.manifests.length === 1 ? index.manifests[0]! : selectManifest(index.manifests, opts.platform ?? hostPlatform(), indexFile);
  for (let depth = 0; ; depth++) {
    const bytes = await verified(desc, `${dir}: manifest ${desc.digest}`);
    const doc = parseJson(bytes, `${dir}: manifest ${desc.digest}`);
    const kind = documentKind(doc, desc.mediaType);
    if (kind === 'manifest') return { digest: desc.digest, manifest: parseManifest(doc, `${dir}: manifest ${desc.digest}`), blob, names };
    if (kind !== 'index' || depth > 2) throw new ManifestError(`${dir}: ${desc.digest} is not an image manifest or index`);
    index = parseIndex(doc, `${dir}: index ${desc.digest}`);
    desc = selectManifest(index.manifests, opts.platform ?? hostPlatform(), `${dir}: index ${desc.digest}`);
    names = names.length ? names : [];
  }
}

/** Legacy `docker save`: manifest.json names the config and the (uncompressed) layer files. */
async function fromDockerSave(dir: string, archive: string): Promise<Found> {
  const list = JSON.parse(readSmall(join(dir, 'manifest.json'), LIMITS.manifestBytes, archive).toString('utf8')) as unknown;
  if (!Array.isArray(list) || list.length === 0) throw new ManifestError(`${archive}: manifest.json: expected a non-empty list`);
  if (list.length > 1) throw new ManifestError(`${archive}: manifest.json holds ${list.length} images; import them one at a time`);
  const entry = list[0] as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
  if (typeof entry.Config !== 'string') throw new ManifestError(`${archive}: manifest.json[0].Config: expected a string`);
  if (!Array.isArray(entry.Layers) || entry.Layers.some((l) => typeof l !== 'string'))
    throw new ManifestError(`${archive}: manifest.json[0].Layers: expected a list of strings`);
  const configPath = join(dir, normalizeTarPath(entry.Config, `${archive}: manifest.json[0].Config`));
  const configBytes = readSmall(configPath, LIMITS.configBytes, `${archive}: config`);
  const configDigest = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
  // The config is named by its digest; a mismatch means the archive was altered.
  if (!basename(entry.Config).includes(parseDigest(configDigest).hex))
    throw new ManifestError(`${archive}: config ${entry.Config} does not match its digest ${configDigest}: refused`);
  const layers: Descriptor[] = [];
  const files = new Map<string, string>();
  for (const [i, l] of (entry.Layers as string[]).entries()) {
    const file = join(dir, normalizeTarPath(l, `${archive}: manifest.json[0].Layers[${i}]`));
    if (!existsSync(file)) throw new ManifestError(`${archive}: layer ${l} is missing`);
    const digest = await sha256File(file);
    files.set(digest, file);
    layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: statSync(file).size });
  }
  const manifest: ImageManifest = {
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: configDigest, size: configBytes.length },
    layers,
  };
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: manifest.mediaType, config: manifest.config, layers }));
  const names = Array.isArray(entry.RepoTags) ? entry.RepoTags.filter((t): t is string => typeof t === 'string') : [];
  return {
    digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    manifest,
    blob: (d) => (d.digest === configDigest ? configPath : files.get(d.digest)!),
    names,
  };
}

/** Imports an OCI layout directory or a docker-save tarball into the store. */
export async function importImage(store: ImageStore, path: string, opts: ImportOptions = {}): Promise<StoredImage> {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) throw new Error(`${path}: no such file or directory`);
  if (st.isDirectory()) return importFrom(store, path, opts, async () => path);
  return importArchive(store, createReadStream(path, { highWaterMark: 1 << 20 }), path, opts);
}

/**
 * Imports a tar stream: a docker-save archive, or an OCI layout as a tarball. `path` names the archive
 * in messages and, when it carries no name, in the image's.
 */
export function importArchive(store: ImageStore, chunks: AsyncIterable<Buffer>, path: string, opts: ImportOptions = {}) {
  return importFrom(store, path, opts, async (work) => {
    const dir = join(work, 'archive');
    mkdirSync(dir);
    await unpackArchive(chunks, path, dir, opts.maxMemberBytes ?? 64 * 2 ** 30);
    return dir;
  });
}

/** The import proper, from the directory `open` gives (the layout itself, or an unpacked archive). */
async function importFrom(store: ImageStore, path: string, opts: ImportOptions, open: (work: string) => Promise<string>) {
  const work = join(store.tmpDir, `import-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(work, { mode: 0o700 });
  try {
    const dir = await open(work);
    let found: Found;
    if (existsSync(join(dir, 'oci-layout')) && existsSync(join(dir, 'index.json'))) found = await fromOciLayout(dir, opts);
    else if (existsSync(join(dir, 'manifest.json'))) found = await fromDockerSave(dir, path);
    else throw new ManifestError(`${path}: neither an OCI image layout (oci-layout, index.json) nor a docker save archive (manifest.json)`);
    const name =
      opts.name ??
      found.names.map(nameOf).find((n) => n) ??
      `import/${
        basename(path)
          .replace(/[^a-z0-9._-]/gi, '')
          .toLowerCase() || 'image'
      }@${found.digest}`;
    const ref = formatReference(parseReference(name));
    const known = store.get(found.digest);
    if (known) return store.touch(known, ref, opts);
    opts.onEvent?.({
      kind: 'resolved',
      ref,
      digest: found.digest,
      layers: found.manifest.layers.map((l) => ({ digest: l.digest, size: l.size })),
    });
    return await store.shared(found.digest, ref, opts, async (jobDir) => {
      const configFile = found.blob(found.manifest.config);
      const configBytes = readSmall(configFile, LIMITS.configBytes, `${path}: config`);
      if (`sha256:${createHash('sha256').update(configBytes).digest('hex')}` !== found.manifest.config.digest)
        throw new ManifestError(`${path}: config does not match its digest ${found.manifest.config.digest}: refused`);
      const config = parseImageConfig(configBytes, `${path}: config ${found.manifest.config.digest}`);
      if (config.diffIds.length !== found.manifest.layers.length)
        throw new ManifestError(`${path}: the config lists ${config.diffIds.length} layers, the manifest ${found.manifest.layers.length}`);
      const layers = [];
      for (const [i, l] of found.manifest.layers.entries()) {
        const file = found.blob(l);
        if (!existsSync(file)) throw new ManifestError(`${path}: layer ${l.digest} is missing`);
        const got = await sha256File(file);
        if (got !== l.digest) throw new ManifestError(`${path}: layer ${l.digest} does not match its digest (got ${got}): refused`);
        opts.onEvent?.({ kind: 'downloaded', layer: l.digest });
        layers.push({ file, digest: l.digest, diffId: config.diffIds[i] });
      }
      await store.pack(
        layers,
        jobDir,
        opts,
        found.manifest.layers.map((l) => l.size),
      );
      return { config, source: 'import' };
    });
  } finally {
    (await import('node:fs')).rmSync(work, { recursive: true, force: true });
  }
}

/** A usable reference from an archive's name ("alpine:3.19", "docker.io/x/y:1"); a bare tag is not. */
function nameOf(n: string): string | undefined {
  try {
    if (/^[\w][\w.-]{0,127}$/.test(n) && !n.includes('/') && !n.includes(':')) return undefined;
    return formatReference(parseReference(n));
  } catch {
    return undefined;
  }
}
