// The union of an image's layers, computed top-down so that each layer streams through once and
// straight into one merged tar archive: an entry of a lower layer is written only if nothing above
// hides it (same path, a whiteout, an opaque directory, or a non-directory ancestor). Hardlinks whose
// target is hidden get the target's content under their own name; a target earlier in the same layer
// needs a second read of that layer (`rereads`), which is rare.
import { encodeHeader, TAR_END, tarPadding, TarFormatError, type TarHeader, type TarSink } from '../../lib/tar.js';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** What a layer says about a path (for the layers below it). */
interface Said {
  kind: 'dir' | 'other' | 'whiteout';
  /** A directory whose lower contents are hidden (opaque marker, or whiteout + re-created dir). */
  opaque: boolean;
  symlink: boolean;
}

export interface UnionLimits {
  /** Entries of all layers (whiteouts and hidden entries included: the union remembers each). */
  maxEntries: number;
  /**
   * Entries of one directory in the result. mksquashfs -tar is quadratic in them (16k: ~1 s of
   * CPU, 32k: ~5 s, 80k: ~100 s); real images have a few thousand at most.
   */
  maxDirEntries: number;
  /** Bytes of all entries' paths and hardlink targets: what the union keeps in memory per entry. */
  maxPathBytes: number;
  /** Largest single file. */
  maxFileBytes: number;
  /** Sum of all layers' content bytes. */
  maxTotalBytes: number;
  /**
   * Decompressed bytes of all layers that are not file content (headers, pax records, padding,
   * anything after the end): without it, a small blob could make us gunzip and parse without end.
   */
  maxOverheadBytes: number;
}

export const DEFAULT_UNION_LIMITS: UnionLimits = {
  maxEntries: 1_000_000,
  maxDirEntries: 16_384,
  maxPathBytes: 256 * 2 ** 20,
  maxFileBytes: 32 * 2 ** 30,
  maxTotalBytes: 64 * 2 ** 30,
  maxOverheadBytes: 4 * 2 ** 30,
};

interface PendingLink {
  /** Hardlink entries (visible in the result) waiting for their target's content, in order. */
  links: string[];
  /** Layer of the links; the target is the nearest regular file at that path in this layer or below. */
  layer: number;
}

function parentsOf(path: string): string[] {
  const out: string[] = [];
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) out.push(path.slice(0, i));
  return out;
}

export class LayerUnion {
  private readonly upper = new Map<string, Said>();
  /** Paths written to the output, with whether each is a directory. */
  private readonly written = new Map<string, boolean>();
  /** Every ancestor directory of a written path (to add any the layers never define). */
  private readonly neededDirs = new Set<string>();
  /** Hardlinks to emit at the end, once their targets are in the archive: [link, target]. */
  private readonly finalLinks: Array<[string, string]> = [];
  /** Hardlink targets not yet found, by target path. */
  private readonly pending = new Map<string, PendingLink>();
  /** Layers to read again for hardlink targets hidden earlier in the same layer: layer → target → links. */
  readonly rereads = new Map<number, Map<string, string[]>>();
  private entries = 0;
  private totalBytes = 0;
  private pathBytes = 0;
  /** Names in each directory of the result (written or implied), by directory path ("" is the root). */
  private readonly dirEntries = new Map<string, number>();
  /** The layer being read, for errors raised while writing (`layer i/n (digest)`). */
  private source = '';

  constructor(
    private readonly out: (chunk: Buffer) => void,
    private readonly limits: UnionLimits = DEFAULT_UNION_LIMITS,
  ) {}

  /** A TarSink for layer `index` (top layer first, each layer once, in descending order). */
  layer(index: number, source: string): TarSink & { finish(): void } {
    const current = new Map<string, Said>();
    /** Regular files of this layer that were hidden, for same-layer hardlinks to them. */
    const hiddenFiles = new Set<string>();
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the sink's own methods have their own `this`
    const union = this;
    let writing = false;
    const where = (p: string) => `${source}: ${JSON.stringify(p)}`;
    const opaqueDir = (): Said => ({ kind: 'dir', opaque: true, symlink: false });
    union.source = source;

    function note(path: string, u: Said): void {
      const prev = current.get(path);
      if (!prev) current.set(path, u);
      else if (prev.kind === 'dir' && u.kind === 'dir') prev.opaque ||= u.opaque;
      // A whiteout and a directory of one name in one layer: the directory replaces the lower one.
      else if ((prev.kind === 'whiteout' && u.kind === 'dir') || (prev.kind === 'dir' && u.kind === 'whiteout'))
        current.set(path, opaqueDir());
      else if (prev.kind === 'whiteout') current.set(path, u);
      else if (u.kind === 'whiteout')
        return; // a whiteout only acts on lower layers
      else
        throw new TarFormatError(
          `${where(path)}: appears twice in the layer${prev.kind !== u.kind ? ' as a directory and a non-directory' : ''}`,
        );
    }

    /** Is `path` of this layer hidden by the layers above? */
    function hidden(path: string): boolean {
      for (const p of parentsOf(path)) {
        const u = union.upper.get(p);
        if (u && (u.kind !== 'dir' || u.opaque)) return true;
      }
      return union.upper.has(path);
    }

    function checkParents(path: string): void {
      for (const p of parentsOf(path)) {
        const c = current.get(p);
        if (c?.kind === 'other')
          throw new TarFormatError(
            `${where(path)}: its parent ${JSON.stringify(p)} is ${c.symlink ? 'a symlink' : 'not a directory'} in the same layer`,
          );
        if (c?.kind === 'whiteout') current.set(p, opaqueDir()); // deleted and re-created below
      }
    }

    return {
      entry(h: TarHeader): boolean {
        if (++union.entries > union.limits.maxEntries)
          throw new TarFormatError(`${where(h.path)}: the image has more than ${union.limits.maxEntries} entries`);
        union.pathBytes += Buffer.byteLength(h.path) + (h.type === 'hardlink' ? Buffer.byteLength(h.linkname ?? '') : 0);
        if (union.pathBytes > union.limits.maxPathBytes)
          throw new TarFormatError(`${where(h.path)}: the image's paths exceed ${union.limits.maxPathBytes} bytes in all`);
        if (h.type === 'file') {
          if (h.size > union.limits.maxFileBytes)
            throw new TarFormatError(`${where(h.path)}: file of ${h.size} bytes exceeds the ${union.limits.maxFileBytes}-byte limit`);
          union.totalBytes += h.size;
          if (union.totalBytes > union.limits.maxTotalBytes)
            throw new TarFormatError(`${where(h.path)}: the image's content exceeds ${union.limits.maxTotalBytes} bytes`);
        }
        writing = false;
        const slash = h.path.lastIndexOf('/');
        const base = h.path.slice(slash + 1);
        const dir = slash === -1 ? '' : h.path.slice(0, slash);
        if (h.path === '') return false; // the root: squashfs gets fixed root attributes
        checkParents(h.path);
        if (base === OPAQUE) {
          if (dir !== '') note(dir, opaqueDir());
          else throw new TarFormatError(`${where(h.path)}: opaque marker at the root`);
          return false;
        }
        if (base.startsWith(WHITEOUT)) {
          const name = base.slice(WHITEOUT.length);
          if (name.startsWith(WHITEOUT)) return false; // other AUFS metadata (.wh..wh.plnk, ...)
          if (name === '' || name === '.' || name === '..') throw new TarFormatError(`${where(h.path)}: invalid whiteout`);
          const target = dir ? `${dir}/${name}` : name;
          const p = union.pending.get(target);
          if (p && p.layer > index)
            throw new TarFormatError(
              `${source}: hardlink ${JSON.stringify(p.links[0])} points to ${JSON.stringify(target)}, which a lower layer deletes`,
            );
          note(target, { kind: 'whiteout', opaque: false, symlink: false });
          return false;
        }
        const isDir = h.type === 'dir';
        note(h.path, { kind: isDir ? 'dir' : 'other', opaque: false, symlink: h.type === 'symlink' });
        const pend = union.pending.get(h.path);
        const isHidden = hidden(h.path);
        if (pend && pend.layer > index) {
          // The nearest version of a hardlink target from a layer above.
          union.pending.delete(h.path);
          if (h.type !== 'file')
            throw new TarFormatError(
              `${source}: hardlink ${JSON.stringify(pend.links[0])} points to ${JSON.stringify(h.path)}, which is a ${h.type} here`,
            );
          if (!isHidden) for (const l of pend.links) union.finalLinks.push([l, h.path]);
          else {
            const [first, ...rest] = pend.links as [string, ...string[]];
            for (const l of rest) union.finalLinks.push([l, first]);
            union.emit({ ...h, path: first });
            writing = true;
            return true;
          }
        }
        if (isHidden) {
          if (h.type === 'file') hiddenFiles.add(h.path);
          return false;
        }
        // Layers above put entries under this path without defining it: they used it as a directory.
        if (!isDir && union.neededDirs.has(h.path)) {
          throw new TarFormatError(
            `${where(h.path)}: is a ${h.type} here, but a layer above puts entries under ` +
              `it (a ${h.type === 'symlink' ? 'symlink' : 'non-directory'} used as a parent)`,
          );
        }
        if (h.type === 'hardlink') {
          const target = h.linkname!;
          if (target === h.path) throw new TarFormatError(`${where(h.path)}: hardlink to itself`);
          const t = current.get(target);
          if (t?.kind === 'dir') throw new TarFormatError(`${where(h.path)}: hardlink to directory ${JSON.stringify(target)}`);
          if (t && !hiddenFiles.has(target) && union.written.has(target)) {
            // Already in the archive, or (a hardlink itself) written at the end: link after it.
            if (union.deferred.has(target)) union.finalLinks.push([h.path, target]);
            else union.emit(h);
          } else if (t && hiddenFiles.has(target)) {
            // Target hidden by a layer above but read already: fetch its content on a second pass.
            const layerReads = union.rereads.get(index) ?? new Map<string, string[]>();
            union.rereads.set(index, layerReads);
            const list = layerReads.get(target) ?? [];
            list.push(h.path);
            layerReads.set(target, list);
            union.defer(h.path);
          } else if (t) {
            throw new TarFormatError(`${where(h.path)}: hardlink to ${JSON.stringify(target)}, which is not a regular file in this layer`);
          } else {
            const p = union.pending.get(target);
            if (p && p.layer !== index)
              throw new TarFormatError(`${where(h.path)}: hardlink target ${JSON.stringify(target)} is ambiguous across layers`);
            if (p) p.links.push(h.path);
            else union.pending.set(target, { links: [h.path], layer: index });
            union.defer(h.path);
          }
          return false;
        }
        union.emit(h);
        writing = h.type === 'file' && h.size > 0;
        return writing;
      },
      data(chunk: Buffer): void {
        if (writing) union.out(chunk);
      },
      end(): void {
        if (writing) union.padFile();
        writing = false;
      },
      finish(): void {
        for (const [path, u] of current) {
          const above = union.upper.get(path);
          if (!above) union.upper.set(path, u);
          // A directory above, but deleted, replaced or made opaque here: nothing below it shows.
          else if (above.kind === 'dir' && (u.kind !== 'dir' || u.opaque)) above.opaque = true;
        }
      },
    };
  }

  /** Paths present in the result but written later (hardlinks whose target comes later). */
  private readonly deferred = new Set<string>();

  private reserve(path: string, dir: boolean): void {
    if (!this.written.has(path) && !this.neededDirs.has(path)) this.countIn(path);
    this.written.set(path, dir);
    for (const p of parentsOf(path)) {
      if (this.neededDirs.has(p)) continue;
      if (!this.written.has(p)) this.countIn(p);
      this.neededDirs.add(p);
    }
  }

  /** A new name in the result: one more entry in its directory. */
  private countIn(path: string): void {
    const slash = path.lastIndexOf('/');
    const dir = slash === -1 ? '' : path.slice(0, slash);
    const n = (this.dirEntries.get(dir) ?? 0) + 1;
    this.dirEntries.set(dir, n);
    if (n > this.limits.maxDirEntries)
      throw new TarFormatError(
        `${this.source}: directory ${JSON.stringify(dir === '' ? '/' : dir)} has ` +
          `more than ${this.limits.maxDirEntries} entries (the limit per directory)`,
      );
  }

  private defer(path: string): void {
    this.reserve(path, false);
    this.deferred.add(path);
  }

  /** Writes an entry's header (and padding bookkeeping); content follows through `out`. */
  emit(h: TarHeader): void {
    this.deferred.delete(h.path);
    this.reserve(h.path, h.type === 'dir');
    this.out(encodeHeader(h));
    if (h.type === 'file') this.padAfter = h.size;
  }

  private padAfter = 0;

  /** Called by the reader after a written file's content: pads it to a whole block. */
  padFile(): void {
    if (this.padAfter) this.out(tarPadding(this.padAfter));
    this.padAfter = 0;
  }

  /** Hardlink targets never found (the archive is invalid). */
  unresolved(): string[] {
    return [...this.pending.keys()];
  }

  /** A sink for a second read of `layer`, writing the hidden targets its hardlinks need. */
  reread(index: number, source: string): TarSink {
    const wanted = new Map(this.rereads.get(index) ?? []);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the sink's own methods have their own `this`
    const union = this;
    union.source = source;
    let writing = false;
    return {
      entry(h: TarHeader): boolean {
        writing = false;
        const links = wanted.get(h.path);
        if (!links || h.type !== 'file') return false;
        wanted.delete(h.path); // the first version in the layer is the one the links saw
        const [first, ...rest] = links as [string, ...string[]];
        for (const l of rest) union.finalLinks.push([l, first]);
        union.emit({ ...h, path: first });
        writing = true;
        return true;
      },
      data(chunk: Buffer): void {
        if (writing) union.out(chunk);
      },
      end(): void {
        if (writing) union.padFile();
        writing = false;
      },
    };
  }

  /** Hardlinks, directories no layer defined, and the end-of-archive blocks. */
  finish(): void {
    const missing = this.unresolved();
    if (missing.length) throw new TarFormatError(`hardlink target ${JSON.stringify(missing[0])} is in no layer`);
    this.source = 'the image';
    for (const [link, target] of this.finalLinks) {
      this.out(encodeHeader({ path: link, type: 'hardlink', linkname: target, mode: 0, uid: 0, gid: 0, mtime: 0, size: 0 }));
    }
    for (const d of this.neededDirs) {
      if (!this.written.has(d)) this.emit({ path: d, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0 });
    }
    this.out(TAR_END);
  }
}
