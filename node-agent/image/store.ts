// The image cache: one squashfs per (manifest digest, format), content-addressed under
// <root>/images. An image is committed by renaming its squashfs into place and then its metadata
// file: the metadata is the commit point, so a kill -9 at any moment leaves either a whole image or
// leftovers that `recover()` removes. The squashfs is fsynced before its rename and the metadata
// written atomically (fsync, rename, fsync of the directory), so a power cut leaves the same; recover()
// also removes a committed image whose files do not agree (metadata that does not parse or names
// another digest, a squashfs of another size or without squashfs's magic), should a file system have
// lost what it acknowledged. Concurrent pulls of one image share one job.
import { FORMAT, type PullEvent, type StoredImage } from '../../contracts/agent-api/types.js';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  existsSync,
} from 'node:fs';
import { fsyncDir, writeFileAtomic } from '../../lib/atomic-file.js';
import { basename, join } from 'node:path';
import { packLayers, type PackLayer } from './pack.js';
import { LIMITS, parseImageConfig, type ImageConfig, type ImageManifest } from '../../lib/oci/manifest.js';
import { parseDigest, parseReference, formatReference, type ImageReference } from '../../lib/oci/reference.js';
import { RegistryClient, type PullAuth, type RegistryOptions } from '../../lib/oci/registry.js';
import { AccessRecords } from './access.js';
import type { SquashfsOptions } from './squashfs.js';
import type { UnionLimits } from './layer-union.js';
import { asNoSpace } from '../../lib/no-space.js';
import { faultPoint } from '../../lib/fault-points.js';

export interface PullOptions {
  onEvent?: (e: PullEvent) => void;
  /** The pull's own credentials and the namespace it proves access for (see access.ts). */
  auth?: PullAuth;
}

export interface ImageStoreOptions {
  /** Directory of the cache ("/var/lib/krata/images"); jobs work in its ".partial" subdirectory. */
  root: string;
  registry?: RegistryOptions;
  /** mksquashfs's compression and its bounds (CPU seconds, niceness). */
  squashfs?: SquashfsOptions;
  /** Bounds on what a pack takes in (entries, per directory, path bytes, sizes). */
  limits?: Partial<UnionLimits>;
  /** Wall-clock limit of one pack in ms (pack.ts's default when absent). */
  packTimeoutMs?: number;
  /** The clock, for last-used times (tests). */
  now?: () => Date;
}

export interface GcResult {
  removed: StoredImage[];
  freedBytes: number;
  keptBytes: number;
}

const hexOf = (digest: string) => parseDigest(digest).hex;

export class ImageStore {
  readonly imagesDir: string;
  readonly tmpDir: string;
  private readonly inflight = new Map<string, Promise<StoredImage>>();
  private readonly registry: RegistryClient;
  private readonly now: () => Date;
  /** Who proved access to each cached image. */
  readonly access: AccessRecords;

  constructor(private readonly opts: ImageStoreOptions) {
    this.imagesDir = opts.root;
    this.tmpDir = join(opts.root, '.partial');
    this.registry = new RegistryClient(opts.registry);
    this.now = opts.now ?? (() => new Date());
    mkdirSync(this.imagesDir, { recursive: true, mode: 0o700 });
    mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 });
    this.access = new AccessRecords(opts.root, { now: this.now });
  }

  /**
   * Removes what interrupted jobs left: work directories of jobs no longer running, and squashfs
   * files that were never committed by their metadata; and committed images whose files disagree
   * (`damaged`: each with why). Call once at startup, before any pull.
   */
  recover(): { removed: string[]; damaged: string[] } {
    const damaged: string[] = [];
    const removed: string[] = [];
    for (const name of readdirSync(this.tmpDir)) {
      rmSync(join(this.tmpDir, name), { recursive: true, force: true });
      removed.push(join(this.tmpDir, name));
    }
    const names = new Set(readdirSync(this.imagesDir).filter((n) => !n.startsWith('.')));
    for (const name of names) {
      const full = join(this.imagesDir, name);
      const committed = name.endsWith(`.${FORMAT}`)
        ? names.has(name.replace(/\.squashfs$/, '.json'))
        : name.endsWith('.json')
          ? names.has(name.replace(/\.json$/, `.${FORMAT}`))
          : false;
      if (!committed) {
        rmSync(full, { recursive: true, force: true });
        removed.push(full);
      }
    }
    for (const name of readdirSync(this.imagesDir)) {
      if (!/^sha256-[0-9a-f]{64}\.json$/.test(name)) continue;
      const meta = join(this.imagesDir, name);
      const why = this.disagreement(meta);
      if (!why) continue;
      const image = meta.replace(/\.json$/, `.${FORMAT}`);
      rmSync(meta, { force: true });
      fsyncDir(this.imagesDir);
      rmSync(image, { force: true });
      this.access.forget(`sha256:${name.slice(7, 71)}`);
      damaged.push(`${meta}: ${why}`);
      removed.push(meta, image);
    }
    return { removed, damaged };
  }

  /** Why a committed image's metadata and squashfs disagree, or undefined if they agree. */
  private disagreement(meta: string): string | undefined {
    let img: StoredImage;
    try {
      img = JSON.parse(readFileSync(meta, 'utf8')) as StoredImage;
    } catch (e) {
      return `unreadable metadata (${(e as Error).message})`;
    }
    const image = meta.replace(/\.json$/, `.${FORMAT}`);
    if (typeof img !== 'object' || img === null || img.digest !== `sha256:${basename(meta).slice(7, 71)}` || img.path !== image)
      return 'the metadata names another image';
    let size: number;
    const magic = Buffer.alloc(4);
    try {
      size = statSync(image).size;
      const fd = openSync(image, 'r');
      try {
        readSync(fd, magic, 0, 4, 0);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      return `the squashfs cannot be read (${(e as Error).message})`;
    }
    if (size !== img.size) return `the squashfs has ${size} bytes, the metadata says ${img.size}`;
    if (magic.toString('latin1') !== 'hsqs') return 'the squashfs does not start with squashfs magic';
    return undefined;
  }

  private metaPath(digest: string): string {
    return join(this.imagesDir, `sha256-${hexOf(digest)}.json`);
  }

  private imagePath(digest: string): string {
    return join(this.imagesDir, `sha256-${hexOf(digest)}.${FORMAT}`);
  }

  /** Every committed image. */
  list(): StoredImage[] {
    const out: StoredImage[] = [];
    for (const name of readdirSync(this.imagesDir).sort()) {
      if (!name.endsWith('.json')) continue;
      const img = this.readMeta(join(this.imagesDir, name));
      if (img && existsSync(img.path)) out.push(img);
    }
    return out;
  }

  private readMeta(file: string): StoredImage | undefined {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as StoredImage;
    } catch {
      return undefined; // removed meanwhile
    }
  }

  /** An image by manifest digest, by a name it was pulled as, or by a unique digest prefix. */
  find(refOrDigest: string): StoredImage | undefined {
    const all = this.list();
    if (/^(sha256:)?[0-9a-f]{6,64}$/.test(refOrDigest)) {
      const want = refOrDigest.startsWith('sha256:') ? refOrDigest : `sha256:${refOrDigest}`;
      const hits = all.filter((i) => i.digest.startsWith(want));
      if (hits.length > 1) throw new Error(`${refOrDigest} matches ${hits.length} images; give more of the digest`);
      if (hits[0]) return hits[0];
    }
    let ref: ImageReference;
    try {
      ref = parseReference(refOrDigest);
    } catch {
      return undefined;
    }
    const name = formatReference(ref);
    if (ref.digest) return all.find((i) => i.digest === ref.digest);
    return all.find((i) => i.names.includes(name));
  }

  /**
   * The image for `reference`, pulled if needed. A reference with a digest that is cached needs no
   * network; a tag is resolved against the registry every time (tags move).
   */
  async pull(reference: string, opts: PullOptions = {}): Promise<StoredImage> {
    const ref = parseReference(reference);
    const name = formatReference(ref);
    const registry = opts.auth ? this.registry.withAuth(opts.auth) : this.registry;
    const namespace = opts.auth?.namespace;
    if (ref.digest) {
      const hit = this.find(ref.digest);
      if (hit) {
        await this.authorize(ref, hit, opts.auth);
        return this.touch(hit, name, opts);
      }
    }
    const resolved = await registry.resolve(ref);
    const known = this.get(resolved.digest);
    if (known) {
      this.access.record(known.digest, resolved.proof, namespace);
      return this.touch(known, name, opts);
    }
    opts.onEvent?.({
      kind: 'resolved',
      ref: name,
      digest: resolved.digest,
      layers: resolved.manifest.layers.map((l) => ({ digest: l.digest, size: l.size })),
    });
    const img = await this.shared(resolved.digest, name, opts, (work) => this.pullInto(work, ref, resolved.manifest, opts, registry));
    this.access.record(img.digest, resolved.proof, namespace);
    return img;
  }

  /** Whether `auth`'s namespace may use the cached `img` without asking the registry. */
  allowed(img: StoredImage, auth: PullAuth | undefined): boolean {
    // Imported images came from the node's administrator; nothing to ask a registry about.
    return img.source === 'import' || this.access.allows(img.digest, auth?.namespace);
  }

  /**
   * Makes sure `auth`'s namespace may use the cached `img` as `ref`: if it has not proved access, the
   * registry is asked for the manifest by digest with the namespace's credentials (anonymously if it
   * has none); a refusal throws the registry's error, a success is recorded.
   */
  async authorize(ref: ImageReference, img: StoredImage, auth: PullAuth | undefined): Promise<void> {
    if (this.allowed(img, auth)) return;
    const proof = await this.registry.withAuth(auth ?? {}).verifyManifest(ref, img.digest);
    this.access.record(img.digest, proof, auth?.namespace);
  }

  /** A committed image by exact manifest digest. */
  get(digest: string): StoredImage | undefined {
    const img = existsSync(this.metaPath(digest)) ? this.readMeta(this.metaPath(digest)) : undefined;
    return img && existsSync(img.path) ? img : undefined;
  }

  /** A cached image used (again) under `name`: the name is added, the last-used time moves. */
  touch(img: StoredImage, name: string, opts: PullOptions = {}): StoredImage {
    opts.onEvent?.({ kind: 'cached', ref: name, digest: img.digest });
    const updated: StoredImage = {
      ...img,
      names: img.names.includes(name) ? img.names : [...img.names, name],
      lastUsedAt: this.now().toISOString(),
    };
    this.claimName(name, img.digest);
    writeFileAtomic(this.metaPath(img.digest), JSON.stringify(updated, null, 2));
    return updated;
  }

  /** A tag names one image: it is taken from any other image that had it. */
  private claimName(name: string, digest: string): void {
    for (const other of this.list()) {
      if (other.digest === digest || !other.names.includes(name)) continue;
      writeFileAtomic(this.metaPath(other.digest), JSON.stringify({ ...other, names: other.names.filter((n) => n !== name) }, null, 2));
    }
  }

  /** Runs one job per digest; callers for the same digest share it. */
  async shared(
    digest: string,
    name: string,
    opts: PullOptions,
    job: (work: string) => Promise<{ config: ImageConfig; source: StoredImage['source'] }>,
  ): Promise<StoredImage> {
    let p = this.inflight.get(digest);
    if (!p) {
      p = this.build(digest, name, job).finally(() => this.inflight.delete(digest));
      this.inflight.set(digest, p);
    }
    const img = await p;
    // A second caller may have asked under another name.
    const result = img.names.includes(name) ? img : this.touch(img, name, {});
    opts.onEvent?.({ kind: 'done', digest: img.digest, size: img.size });
    return result;
  }

  private async build(
    digest: string,
    name: string,
    job: (work: string) => Promise<{ config: ImageConfig; source: StoredImage['source'] }>,
  ): Promise<StoredImage> {
    const work = join(this.tmpDir, `${hexOf(digest).slice(0, 16)}-${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(work, { mode: 0o700 });
    let placed = false;
    try {
      const { config, source } = await job(work);
      const packed = join(work, `image.${FORMAT}`);
      const fd = openSync(packed, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      faultPoint('image.packed'); // a packed squashfs in a job's work directory under .partial
      renameSync(packed, this.imagePath(digest));
      placed = true;
      faultPoint('image.placed'); // a squashfs in the cache without its metadata
      const now = this.now().toISOString();
      const img: StoredImage = {
        digest,
        format: FORMAT,
        names: [name],
        path: this.imagePath(digest),
        size: statSync(this.imagePath(digest)).size,
        config,
        source,
        createdAt: now,
        lastUsedAt: now,
      };
      this.claimName(name, digest);
      writeFileAtomic(this.metaPath(digest), JSON.stringify(img, null, 2));
      return img;
    } catch (e) {
      this.uncommit(digest, placed);
      throw asNoSpace(e, `image ${digest} to ${this.imagesDir}`) ?? e;
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }

  /**
   * After a failed commit: the squashfs renamed into place goes (no orphan, also until the next
   * recover()), and so does a metadata temporary a failed write left. An image another process
   * committed meanwhile (its metadata exists) is left alone.
   */
  private uncommit(digest: string, placed: boolean): void {
    const meta = this.metaPath(digest);
    if (existsSync(meta)) return;
    if (placed) rmSync(this.imagePath(digest), { force: true });
    const tmp = `${basename(meta)}.tmp-`;
    for (const f of readdirSync(this.imagesDir)) if (f.startsWith(tmp)) rmSync(join(this.imagesDir, f), { force: true });
  }

  /** Downloads config and layers (bounded concurrency) while packing from the top layer down. */
  private async pullInto(
    work: string,
    ref: ImageReference,
    manifest: ImageManifest,
    opts: PullOptions,
    registry = this.registry,
  ): Promise<{ config: ImageConfig; source: 'registry' }> {
    const configBytes = await registry.fetchBlob(ref, manifest.config, LIMITS.configBytes);
    const config = parseImageConfig(configBytes, `config ${manifest.config.digest} of ${formatReference(ref)}`);
    if (config.diffIds.length !== manifest.layers.length)
      throw new Error(
        `${formatReference(ref)}: the config lists ${config.diffIds.length} ` +
          `layers (rootfs.diff_ids), the manifest ${manifest.layers.length}`,
      );
    // Downloads run (bounded) while upper layers are packed; a failure anywhere stops them all, and
    // the job's directory is removed only once none can still write into it.
    const abort = new AbortController();
    let cause: unknown;
    const downloads = manifest.layers.map((l, i) => {
      const file = join(work, `layer-${i}`);
      const p = registry
        .downloadBlob(ref, l, file, (bytes) => opts.onEvent?.({ kind: 'download', layer: l.digest, bytes, total: l.size }), abort.signal)
        .then(() => {
          opts.onEvent?.({ kind: 'downloaded', layer: l.digest });
          return file;
        });
      p.catch((e) => {
        if (abort.signal.aborted) return;
        cause = e;
        abort.abort(new Error('another layer of this image failed'));
      });
      return p;
    });
    // Top-down: the pack reads layer i only once its download is verified.
    const layers: PackLayer[] = manifest.layers.map((l, i) => ({
      file: join(work, `layer-${i}`),
      digest: l.digest,
      diffId: config.diffIds[i],
      ready: downloads[i],
    }));
    try {
      await this.pack(
        layers,
        work,
        opts,
        manifest.layers.map((l) => l.size),
      );
    } catch (e) {
      if (!abort.signal.aborted) abort.abort(e);
      await Promise.allSettled(downloads);
      throw cause ?? e;
    }
    return { config, source: 'registry' };
  }

  async pack(layers: PackLayer[], work: string, opts: PullOptions, sizes: number[]): Promise<void> {
    await packLayers(layers, join(work, `image.${FORMAT}`), {
      ...this.opts.squashfs,
      ...(this.opts.limits ? { limits: this.opts.limits } : {}),
      ...(this.opts.packTimeoutMs !== undefined ? { timeoutMs: this.opts.packTimeoutMs } : {}),
      onProgress: (p) =>
        opts.onEvent?.(
          p.done ? { kind: 'unpacked', layer: p.digest } : { kind: 'unpack', layer: p.digest, bytes: p.bytes, total: sizes[p.layer] ?? 0 },
        ),
    });
  }

  /** Removes an image (by digest, name or digest prefix) unless a Guest uses it. */
  remove(refOrDigest: string, inUse: Set<string> = new Set()): StoredImage {
    const img = this.find(refOrDigest);
    if (!img) throw new Error(`no image ${refOrDigest} in the cache`);
    if (inUse.has(img.digest)) throw new Error(`image ${img.names[0] ?? img.digest} is used by a Guest`);
    this.delete(img);
    return img;
  }

  private delete(img: StoredImage): void {
    // Metadata first: without it the squashfs is an uncommitted leftover, never served.
    rmSync(this.metaPath(img.digest), { force: true });
    fsyncDir(this.imagesDir);
    rmSync(this.imagePath(img.digest), { force: true });
    this.access.forget(img.digest);
  }

  /**
   * Garbage collection: images no Guest uses (`inUse`: manifest digests) are removed, least
   * recently used first, until the cache fits `budgetBytes` (0: remove every unused image).
   */
  gc(inUse: Set<string>, budgetBytes: number): GcResult {
    const all = this.list();
    let total = all.reduce((s, i) => s + i.size, 0);
    const removed: StoredImage[] = [];
    const candidates = all
      .filter((i) => !inUse.has(i.digest) && !this.inflight.has(i.digest))
      .sort((a, b) => (a.lastUsedAt < b.lastUsedAt ? -1 : a.lastUsedAt > b.lastUsedAt ? 1 : 0));
    for (const img of candidates) {
      if (total <= budgetBytes && budgetBytes > 0) break;
      this.delete(img);
      total -= img.size;
      removed.push(img);
    }
    return { removed, freedBytes: removed.reduce((s, i) => s + i.size, 0), keptBytes: total };
  }
}
