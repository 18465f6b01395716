// Packs an image's verified layer blobs into one squashfs: top layer first, each decompressed as a
// stream, taken apart by the tar reader, filtered by the layer union and fed to mksquashfs. Nothing
// is extracted to disk. Each layer's uncompressed bytes are checked against the config's diff_id.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { boundHit, killGroup, spawnBounded, type ChildBounds } from './bounded-child.js';
import { LayerUnion, DEFAULT_UNION_LIMITS, type UnionLimits } from './layer-union.js';
import { SquashfsWriter, type SquashfsOptions } from './squashfs.js';
import { TarParser, TarFormatError, type TarSink } from '../../lib/tar.js';

export interface PackLayer {
  /** A blob file whose digest was already verified. */
  file: string;
  digest: string;
  /** sha256 of the uncompressed tar, from the image config (checked when given). */
  diffId?: string;
  /** Settles when `file` is complete and verified (downloads run while upper layers are packed). */
  ready?: Promise<unknown>;
}

export interface PackProgress {
  layer: number;
  digest: string;
  /** Compressed bytes of this layer read so far. */
  bytes: number;
  done: boolean;
}

export interface PackOptions extends SquashfsOptions {
  limits?: Partial<UnionLimits>;
  /**
   * Wall-clock limit of the pack in ms, not counting waits for downloads (default 30 min): past it,
   * mksquashfs and zstd are killed and the pack fails saying so.
   */
  timeoutMs?: number;
  onProgress?: (p: PackProgress) => void;
}

export const DEFAULT_PACK_TIMEOUT_MS = 30 * 60_000;

/** An error of our own output side (mksquashfs), passed through readLayer as it is. */
class SinkError extends Error {
  constructor(readonly inner: unknown) {
    super('sink');
  }
}

/** Opens a layer blob decompressed, whatever its media type says (the magic bytes decide). */
async function openDecompressed(file: string, onBytes: (n: number) => void, bounds: ChildBounds): Promise<Readable> {
  const head = Buffer.alloc(4);
  const fh = await import('node:fs/promises').then((fs) => fs.open(file, 'r'));
  try {
    await fh.read(head, 0, 4, 0);
  } finally {
    await fh.close();
  }
  const raw = createReadStream(file, { highWaterMark: 1 << 20 });
  raw.on('data', (c: Buffer | string) => onBytes(c.length));
  if (head[0] === 0x1f && head[1] === 0x8b) {
    const gunzip = raw.pipe(createGunzip({ chunkSize: 1 << 18 })).on('error', () => undefined);
    gunzip.on('close', () => raw.destroy()); // stopped early (an error, the time limit): the file closes too
    return gunzip;
  }
  if (head.readUInt32LE(0) === 0xfd2fb528) {
    // Node 20 has no zstd; Debian's zstd is fast and streams (niced and CPU-limited like mksquashfs).
    const child = spawnBounded('zstd', ['-dcq'], bounds, { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()).slice(0, 4096));
    raw.pipe(child.stdin!);
    child.stdin!.on('error', () => undefined);
    const out = child.stdout!;
    child.on('exit', (code, signal) => {
      const bound = boundHit('zstd', signal, bounds);
      if (code || (bound && !out.destroyed)) out.destroy(new Error(bound ?? `zstd: ${err.trim() || `exit ${code}`}`));
    });
    child.on('error', (e) => out.destroy(new Error(`cannot run zstd: ${e.message}`)));
    // Whoever stops reading (an error, a time limit) stops zstd too.
    out.on('close', () => {
      raw.destroy();
      killGroup(child);
    });
    return out;
  }
  return raw;
}

/** Reads one layer through `sink`, checking its diff_id; `flush` passes the output on per chunk. */
/** Decompressed bytes so far, and how many of them the headers said are file content. */
interface Volume {
  raw: number;
  content: number;
  maxOverhead: number;
}

async function readLayer(
  layer: PackLayer,
  sink: TarSink,
  flush: () => Promise<void>,
  onBytes: (n: number) => void,
  bounds: ChildBounds,
  track: (s: Readable | undefined) => void,
  volume: Volume,
): Promise<void> {
  const source = `layer ${layer.digest}`;
  const parser = new TarParser(
    { entry: (h) => ((volume.content += h.type === 'file' ? h.size : 0), sink.entry(h)), data: (c) => sink.data(c), end: () => sink.end() },
    source,
  );
  const hash = createHash('sha256');
  const stream = await openDecompressed(layer.file, onBytes, bounds);
  track(stream);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      parser.write(chunk);
      // Content is counted from the headers, before it arrives: this never overstates the rest.
      volume.raw += chunk.length;
      if (volume.raw - volume.content > volume.maxOverhead)
        throw new TarFormatError(
          `${source}: more than ${volume.maxOverhead} bytes that are not file ` +
            `content (tar headers, records, padding, data after the end) in all layers`,
        );
      await flush().catch((e: unknown) => {
        throw new SinkError(e);
      });
    }
  } catch (e) {
    if (e instanceof SinkError) throw e.inner;
    if (e instanceof TarFormatError) throw e;
    throw new TarFormatError(`${source}: cannot decompress: ${(e as Error).message}`);
  } finally {
    track(undefined);
    stream.destroy();
  }
  parser.close();
  const diffId = `sha256:${hash.digest('hex')}`;
  if (layer.diffId && layer.diffId !== diffId)
    throw new TarFormatError(`${source}: uncompressed content is ${diffId}, but the image config says ${layer.diffId}`);
}

/**
 * Writes the squashfs of `layers` (in manifest order: base first) to `out`. On failure `out` may
 * hold a partial file: the caller writes to a temporary name and removes it.
 */
export async function packLayers(layers: PackLayer[], out: string, opts: PackOptions = {}): Promise<{ entries: number }> {
  const writer = new SquashfsWriter(out, opts);
  let pending: Buffer[] = [];
  const limits = { ...DEFAULT_UNION_LIMITS, ...opts.limits };
  const union = new LayerUnion((chunk) => pending.push(chunk), limits);
  const volume: Volume = { raw: 0, content: 0, maxOverhead: limits.maxOverheadBytes };
  const flush = async () => {
    if (pending.length === 0) return;
    const chunks = pending;
    pending = [];
    await writer.write(chunks);
  };
  // The time limit: it runs while we pack, not while a layer is still downloading.
  const limitMs = opts.timeoutMs ?? DEFAULT_PACK_TIMEOUT_MS;
  let leftMs = limitMs;
  let since = 0;
  let timer: NodeJS.Timeout | undefined;
  let reading: Readable | undefined;
  let timedOut: Error | undefined;
  const track = (s: Readable | undefined) => (reading = s);
  const resume = () => {
    since = Date.now();
    timer = setTimeout(
      () => {
        timedOut = new Error(`packing took longer than the ${limitMs / 1000} s limit (pack timeout): mksquashfs was killed`);
        reading?.destroy(timedOut);
        void writer.abort(timedOut.message);
      },
      Math.max(leftMs, 0),
    );
  };
  const pause = () => {
    clearTimeout(timer);
    leftMs -= Date.now() - since;
  };
  let entries = 0;
  resume();
  try {
    for (let i = layers.length - 1; i >= 0; i--) {
      const layer = layers[i]!;
      pause();
      await layer.ready;
      resume();
      let bytes = 0;
      const sink = union.layer(i, `layer ${i + 1}/${layers.length} (${layer.digest})`);
      const counting: TarSink = { entry: (h) => (entries++, sink.entry(h)), data: (c) => sink.data(c), end: () => sink.end() };
      await readLayer(
        layer,
        counting,
        flush,
        (n) => {
          bytes += n;
          opts.onProgress?.({ layer: i, digest: layer.digest, bytes, done: false });
        },
        opts,
        track,
        volume,
      );
      sink.finish();
      opts.onProgress?.({ layer: i, digest: layer.digest, bytes, done: true });
    }
    // Hardlink targets that a layer hid from itself: read those layers once more.
    for (const i of [...union.rereads.keys()].sort((a, b) => b - a)) {
      await readLayer(
        { ...layers[i]!, diffId: undefined },
        union.reread(i, `layer ${i + 1}/${layers.length} (${layers[i]!.digest})`),
        flush,
        () => undefined,
        opts,
        track,
        { ...volume, raw: 0, content: 0 },
      );
    }
    union.finish();
    await flush();
    await writer.close();
  } catch (e) {
    await writer.abort();
    throw timedOut ?? e;
  } finally {
    clearTimeout(timer);
  }
  return { entries };
}
