// `npm run bench -- image`: pull + pack of a ~150 MB, 5-layer gzip image from a local registry into one
// squashfs. Ours: `kratactl image pull --offline` (no agent), cold (empty store) and warm (the
// image already stored). Baseline, in the same run on the same image: skopeo copy to an OCI layout,
// umoci unpack, mksquashfs with the same compression. Every command runs under GNU time for its wall
// time and peak RSS. Both squashfs files must list the same tree, or the bench fails.
import { spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, homedir, tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeHeader, tarPadding, TAR_END, type TarHeader } from '../lib/tar.js';
import { buildImage, pushImage, sha256, type BuiltImage, type BuiltLayer } from '../test/oci-images.js';
import { startRegistry, type Registry } from '../test/registry.js';

/** Bump whenever the generator changes: the blob cache is keyed by it. */
const IMAGE_VERSION = 'v1';
const REPO = 'bench/big';
const TAG = 'v1';
const MB = 1 << 20;
const MTIME = 1_700_000_000; // any fixed time: digests must not depend on the clock
const GOALS = { ratio: 0.6, peak_rss_mb: 150 };

// --- deterministic content ------------------------------------------------------------------------

/** mulberry32: tiny, fast and seeded, so every machine generates the same bytes. */
class Rng {
  constructor(private state: number) {}

  float(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)]!;
  }

  /** Many small, few large: how file sizes spread in a distro tree. */
  logUniform(lo: number, hi: number): number {
    return Math.round(lo * (hi / lo) ** this.float());
  }
}

/** Lowercase words; 800 of them make word salad that gzip -6 shrinks about 3x, like docs and scripts. */
function vocabulary(rng: Rng, count = 800): string[] {
  const words = new Set<string>();
  while (words.size < count) {
    let w = '';
    for (let n = rng.int(2, 9); n > 0; n--) w += String.fromCharCode(97 + rng.int(0, 25));
    words.add(w);
  }
  return [...words];
}

function text(rng: Rng, words: readonly Buffer[], size: number): Buffer {
  const out = Buffer.alloc(size);
  let at = 0;
  let col = 0;
  while (at < size) {
    const w = rng.pick(words);
    at += w.copy(out, at);
    col += w.length + 1;
    if (at < size) out[at++] = col > 64 ? 0x0a : 0x20;
    if (col > 64) col = 0;
  }
  return out;
}

/** An AES-CTR keystream: incompressible like packed machine code, deterministic, and fast to make. */
function binary(name: string, size: number): Buffer {
  const key = createHash('sha256').update(`${IMAGE_VERSION}:${name}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

// --- layers ---------------------------------------------------------------------------------------

type Meta = Partial<Pick<TarHeader, 'mode' | 'uid' | 'gid'>>;

/**
 * One layer's tar in memory. Parent directories are emitted on first use, with the attributes the
 * image gave them first (image builders repeat a directory's attributes in every layer that uses it).
 */
class LayerWriter {
  private readonly chunks: Buffer[] = [];
  private readonly seen = new Set<string>();
  files = 0;

  constructor(private readonly dirMeta: Map<string, Meta>) {}

  has(path: string): boolean {
    return this.seen.has(path);
  }

  dir(path: string, meta?: Meta): void {
    if (meta) this.dirMeta.set(path, meta);
    if (this.seen.has(path)) return;
    this.parents(path);
    this.entry({ path, type: 'dir', mode: 0o755, ...this.dirMeta.get(path) });
  }

  file(path: string, data: Buffer, meta: Meta = {}): void {
    this.parents(path);
    this.entry({ path, type: 'file', mode: 0o644, ...meta, size: data.length }, data);
    this.files++;
  }

  symlink(path: string, target: string): void {
    this.parents(path);
    this.entry({ path, type: 'symlink', mode: 0o777, linkname: target });
  }

  hardlink(path: string, target: string, meta: Meta = {}): void {
    this.parents(path);
    this.entry({ path, type: 'hardlink', mode: 0o644, ...meta, linkname: target });
  }

  /** Deletes `path` from the layers below (an OCI whiteout file). */
  whiteout(path: string): void {
    const slash = path.lastIndexOf('/');
    this.file(`${path.slice(0, slash + 1)}.wh.${path.slice(slash + 1)}`, Buffer.alloc(0));
  }

  tar(): Buffer {
    return Buffer.concat([...this.chunks, TAR_END]);
  }

  private parents(path: string): void {
    const slash = path.lastIndexOf('/');
    if (slash > 0) this.dir(path.slice(0, slash));
  }

  private entry(h: Partial<TarHeader> & Pick<TarHeader, 'path' | 'type'>, data?: Buffer): void {
    this.seen.add(h.path);
    this.chunks.push(encodeHeader({ mode: 0o644, uid: 0, gid: 0, mtime: MTIME, size: 0, ...h }));
    if (data) this.chunks.push(data, tarPadding(data.length));
  }
}

/** A part of a layer: `text` is a tree of many small files `depth` levels deep; `lib`/`bin` are few-MB binaries. */
interface Area {
  root: string;
  mb: number;
  kind: 'text' | 'lib' | 'bin';
  depth?: number;
  ext?: string;
  /** uid = gid of everything under root (root itself is set up by the layer's extras). */
  owner?: number;
}

interface LayerPlan {
  /** Runs first: fixed entries (symlinks, special modes and owners, hardlinks, the whiteout). */
  extras(w: LayerWriter, rng: Rng, words: readonly Buffer[]): void;
  areas: Area[];
}

// Subdirectories per level of a text tree: broad at the top, narrow deep down, like /usr/share.
const FANOUT = [24, 8, 5, 4, 3, 3, 2];

function fillText(w: LayerWriter, a: Area, rng: Rng, names: readonly string[], words: readonly Buffer[]): void {
  const meta: Meta = a.owner === undefined ? {} : { uid: a.owner, gid: a.owner };
  for (let left = a.mb * MB; left > 0;) {
    let dir = a.root;
    for (let level = 0, depth = rng.int(0, a.depth ?? 0); level < depth; level++) {
      dir += `/${names[level * 40 + rng.int(0, FANOUT[level]! - 1)]}`;
      if (a.owner !== undefined) w.dir(dir, meta);
    }
    // "-" keeps file names apart from directory names (single words).
    const path = `${dir}/${rng.pick(names)}-${rng.pick(names)}${a.ext ?? ''}`;
    if (w.has(path)) continue;
    const size = Math.min(left, rng.logUniform(64, 48 * 1024));
    w.file(path, text(rng, words, size), meta);
    left -= size;
  }
}

function fillBinaries(w: LayerWriter, a: Area, rng: Rng, names: readonly string[]): void {
  for (let left = a.mb * MB; left > 0;) {
    const name = `${rng.pick(names)}${rng.pick(names)}`;
    const file = a.kind === 'lib' ? `lib${name}.so.${rng.int(0, 9)}` : name;
    const path = `${a.root}/${file}`;
    if (w.has(path)) continue;
    const size = Math.min(left, rng.int(1 * MB, 4 * MB));
    w.file(path, binary(path, size), { mode: a.kind === 'lib' ? 0o644 : 0o755 });
    if (a.kind === 'lib') w.symlink(`${a.root}/lib${name}.so`, file);
    left -= size;
  }
}

const PASSWD =
  'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nmail:x:8:8:mail:/var/mail:/usr/sbin/nologin\n';

/** About 57/40/25/15/9 MB with the extras and tar headers; a quarter of it incompressible binaries. */
const LAYERS: LayerPlan[] = [
  {
    // The base system: usrmerge symlinks, special modes and owners, a hardlinked binary, a package to remove later.
    extras(w, rng, words) {
      for (const d of ['bin', 'lib', 'sbin', 'lib64']) w.symlink(d, `usr/${d}`);
      w.dir('tmp', { mode: 0o1777 });
      w.dir('root', { mode: 0o700 });
      w.dir('var/mail', { mode: 0o2775, gid: 8 });
      w.dir('home');
      w.file('etc/os-release', Buffer.from('PRETTY_NAME="krata bench 1"\nID=krata-bench\nVERSION_ID=1\n'));
      w.file('etc/passwd', Buffer.from(PASSWD));
      w.file('etc/shadow', Buffer.from('root:*:19000:0:99999:7:::\n'), { mode: 0o640, gid: 42 });
      w.file('etc/machine-id', Buffer.alloc(0));
      w.file('usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', binary('ld.so', 200 * 1024), { mode: 0o755 });
      w.symlink('usr/lib64/ld-linux-x86-64.so.2', '../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
      w.file('usr/bin/passwd', binary('passwd', 64 * 1024), { mode: 0o4755 });
      w.file('usr/sbin/nologin', binary('nologin', 16 * 1024), { mode: 0o755 });
      w.file('usr/bin/perl', binary('perl', 3 * MB + 512 * 1024), { mode: 0o755 });
      w.hardlink('usr/bin/perl5.36.0', 'usr/bin/perl', { mode: 0o755 });
      for (const f of ['changelog', 'copyright', 'README']) w.file(`usr/share/doc/krata-obsolete/${f}`, text(rng, words, 20_000));
    },
    areas: [
      { root: 'usr/share/doc', mb: 10, kind: 'text', depth: 1 },
      { root: 'usr/share/man', mb: 7, kind: 'text', depth: 2, ext: '.1' },
      { root: 'usr/share/locale', mb: 5, kind: 'text', depth: 3, ext: '.mo' },
      { root: 'usr/share/perl5', mb: 5, kind: 'text', depth: 4, ext: '.pm' },
      { root: 'var/lib/dpkg/info', mb: 5, kind: 'text', ext: '.list' },
      { root: 'etc', mb: 1, kind: 'text', depth: 2, ext: '.conf' },
      { root: 'usr/lib/x86_64-linux-gnu', mb: 10, kind: 'lib' },
      { root: 'usr/bin', mb: 6, kind: 'bin' },
    ],
  },
  {
    // A language runtime: a deep tree of sources.
    extras(w) {
      w.file('usr/bin/python3.11', binary('python3.11', 5 * MB), { mode: 0o755 });
      w.symlink('usr/bin/python3', 'python3.11');
    },
    areas: [
      { root: 'usr/lib/python3/dist-packages', mb: 20, kind: 'text', depth: 5, ext: '.py' },
      { root: 'usr/lib/python3.11', mb: 8, kind: 'text', depth: 2, ext: '.py' },
      { root: 'usr/lib/python3.11/lib-dynload', mb: 4, kind: 'lib' },
    ],
  },
  {
    // Data files: icons, zoneinfo, locales, fonts.
    extras() {},
    areas: [
      { root: 'usr/share/icons/hicolor', mb: 8, kind: 'text', depth: 3, ext: '.svg' },
      { root: 'usr/share/zoneinfo', mb: 4, kind: 'text', depth: 2 },
      { root: 'usr/share/i18n', mb: 6, kind: 'text', depth: 1 },
      { root: 'usr/share/fonts/truetype', mb: 5, kind: 'bin' },
    ],
  },
  {
    // The application; a package of the base removed (the whiteout) and a file replaced.
    extras(w) {
      w.whiteout('usr/share/doc/krata-obsolete');
      w.file('etc/os-release', Buffer.from('PRETTY_NAME="krata bench 1 (app)"\nID=krata-bench\nVERSION_ID=1.1\n'));
    },
    areas: [
      { root: 'opt/app/node_modules', mb: 8, kind: 'text', depth: 6, ext: '.js' },
      { root: 'opt/app/bin', mb: 5, kind: 'bin' },
      { root: 'opt/app/share', mb: 1, kind: 'text', depth: 1, ext: '.json' },
    ],
  },
  {
    // The application's data and its user's home (not root's), a hardlink within the layer.
    extras(w, rng, words) {
      w.dir('home/app', { mode: 0o750, uid: 1000, gid: 1000 });
      w.file('etc/passwd', Buffer.from(`${PASSWD}app:x:1000:1000:app:/home/app:/bin/sh\n`));
      w.file('srv/data/index.json', text(rng, words, 200_000));
      w.hardlink('srv/data/current.json', 'srv/data/index.json');
    },
    areas: [
      { root: 'srv/data', mb: 5, kind: 'text', depth: 2, ext: '.json' },
      { root: 'home/app', mb: 3, kind: 'text', depth: 2, ext: '.txt', owner: 1000 },
    ],
  },
];

interface Generated {
  image: BuiltImage;
  /** Uncompressed: the layer tars' bytes. */
  imageBytes: number;
  files: number;
}

function generate(): Generated {
  const names = vocabulary(new Rng(1));
  const words = names.map((w) => Buffer.from(w));
  const dirMeta = new Map<string, Meta>();
  let files = 0;
  const tars = LAYERS.map((plan, i) => {
    const rng = new Rng(1000 + i);
    const w = new LayerWriter(dirMeta);
    plan.extras(w, rng, words);
    for (const a of plan.areas) {
      if (a.kind === 'text') fillText(w, a, rng, names, words);
      else fillBinaries(w, a, rng, names);
    }
    files += w.files;
    return w.tar();
  });
  const image = buildImage({
    layers: tars.map((tar) => ({ tar, compression: 'gzip' })), // node:zlib's default level: 6
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/opt/app/bin/start'],
      WorkingDir: '/srv/data',
    },
  });
  return { image, imageBytes: tars.reduce((n, t) => n + t.length, 0), files };
}

// --- the blob cache: generation takes a while, the bytes never change for one IMAGE_VERSION --------

function cacheDir(): string {
  return join(process.env.KRATA_CACHE ?? join(homedir(), '.cache/krata'), 'bench-image', IMAGE_VERSION);
}

interface CacheMeta {
  imageBytes: number;
  files: number;
  layers: Array<Omit<BuiltLayer, 'data'>>;
}

function saveGenerated(dir: string, g: Generated): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'blobs'), { recursive: true });
  writeFileSync(join(tmp, 'manifest.json'), g.image.manifest);
  writeFileSync(join(tmp, 'config.json'), g.image.config);
  for (const l of g.image.layers) writeFileSync(join(tmp, 'blobs', l.digest.slice('sha256:'.length)), l.data);
  const meta: CacheMeta = { imageBytes: g.imageBytes, files: g.files, layers: g.image.layers.map(({ data: _, ...l }) => l) };
  writeFileSync(join(tmp, 'meta.json'), JSON.stringify(meta));
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir); // whole or not at all: a killed generation leaves no half cache
}

/** The cached image, or undefined if absent or damaged (a blob that no longer matches its digest). */
function loadGenerated(dir: string): Generated | undefined {
  if (!existsSync(join(dir, 'meta.json'))) return undefined;
  try {
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as CacheMeta;
    const layers = meta.layers.map((l) => ({ ...l, data: readFileSync(join(dir, 'blobs', l.digest.slice('sha256:'.length))) }));
    if (layers.some((l) => sha256(l.data) !== l.digest)) return undefined;
    const manifest = readFileSync(join(dir, 'manifest.json'));
    const config = readFileSync(join(dir, 'config.json'));
    const manifestMediaType = (JSON.parse(manifest.toString()) as { mediaType: string }).mediaType;
    const image: BuiltImage = {
      manifest,
      manifestDigest: sha256(manifest),
      manifestMediaType,
      config,
      configDigest: sha256(config),
      layers,
    };
    return { image, imageBytes: meta.imageBytes, files: meta.files };
  } catch {
    return undefined;
  }
}

function benchImage(): Generated {
  const dir = cacheDir();
  const cached = loadGenerated(dir);
  if (cached) return cached;
  const start = performance.now();
  const g = generate();
  saveGenerated(dir, g);
  console.error(`generated the image in ${((performance.now() - start) / 1000).toFixed(1)} s (cached in ${dir})`);
  return g;
}

// --- measuring ------------------------------------------------------------------------------------

interface Timed {
  wall_s: number;
  rss_mb: number;
}

function tail(s: string): string {
  return s.trim().split('\n').slice(-10).join('\n');
}

/** The command running now, leading its own process group: a signal stops all of it (GNU time's child too). */
let running: ChildProcess | undefined;

/**
 * Runs a command to completion; throws with its output's tail if it fails. Asynchronous so that a
 * SIGINT/SIGTERM handler gets to run while a command does.
 */
async function run(what: string, cmd: string, args: string[]): Promise<string> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  running = child;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  try {
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve, reject) => {
      child.once('error', (e) => reject(new Error(`${what}: cannot run ${cmd}: ${e.message}`)));
      child.once('close', (c, sig) => resolve([c, sig]));
    });
    const stdout = Buffer.concat(out).toString('utf8');
    if (code !== 0)
      throw new Error(
        `${what} failed (${signal ? `signal ${signal}` : `exit ${code}`}):\n${tail(Buffer.concat(err).toString('utf8') || stdout)}`,
      );
    return stdout;
  } finally {
    running = undefined;
  }
}

/** Under GNU time: wall seconds and max RSS (of the process or its largest descendant, as wait4 reports it). */
async function timed(what: string, timeFile: string, cmd: string, args: string[]): Promise<Timed> {
  await run(what, '/usr/bin/time', ['-o', timeFile, '-f', '%e %M', cmd, ...args]);
  const last = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1) ?? '';
  const [wall, rssKb] = last.split(' ').map(Number);
  if (!Number.isFinite(wall) || !Number.isFinite(rssKb)) throw new Error(`${what}: unexpected GNU time output ${JSON.stringify(last)}`);
  return { wall_s: wall!, rss_mb: rssKb! / 1024 };
}

/** kratactl built alongside this bench (dist/kratactl, or wherever tsc put both). */
function kratactl(): string {
  return fileURLToPath(new URL('../kratactl/main.js', import.meta.url));
}

function oursPull(store: string, host: string, timeFile: string): Promise<Timed> {
  const args = [kratactl(), 'image', 'pull', '--offline', '--store', store, '--insecure-registry', host, '-q', `${host}/${REPO}:${TAG}`];
  return timed('kratactl image pull', timeFile, process.execPath, args);
}

/** The first squashfs path anywhere in `image ls -o json` (a `squashfs` field, or a path of format squashfs). */
function findSquashfs(v: unknown): string | undefined {
  if (Array.isArray(v)) return v.map(findSquashfs).find((p) => p !== undefined);
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.squashfs === 'string') return o.squashfs;
  if (typeof o.path === 'string' && (o.format === 'squashfs' || /\.(squashfs|sqfs)$/.test(o.path))) return o.path;
  return Object.values(o)
    .map(findSquashfs)
    .find((p) => p !== undefined);
}

async function oursSquashfs(store: string): Promise<string> {
  const out = await run('kratactl image ls', process.execPath, [kratactl(), 'image', 'ls', '--offline', '--store', store, '-o', 'json']);
  const path = findSquashfs(JSON.parse(out));
  if (!path) throw new Error(`kratactl image ls -o json names no squashfs:\n${out.slice(0, 2000)}`);
  return isAbsolute(path) ? path : join(store, path);
}

interface BaselineRun {
  steps: Timed[];
  sqfs: string;
}

const BASELINE_STEPS = ['skopeo copy', 'umoci unpack', 'mksquashfs'];

async function baselinePull(dir: string, host: string, timeFile: string): Promise<BaselineRun> {
  const oci = join(dir, 'oci');
  const bundle = join(dir, 'bundle');
  const sqfs = join(dir, 'baseline.sqfs');
  mkdirSync(dir, { recursive: true });
  const steps = [
    await timed('skopeo copy', timeFile, 'skopeo', [
      'copy',
      '--src-tls-verify=false',
      `docker://${host}/${REPO}:${TAG}`,
      `oci:${oci}:${TAG}`,
    ]),
    await timed('umoci unpack', timeFile, 'umoci', ['unpack', '--image', `${oci}:${TAG}`, bundle]), // as root: owners kept
    await timed('mksquashfs', timeFile, 'mksquashfs', [
      join(bundle, 'rootfs'),
      sqfs,
      '-comp',
      'zstd',
      '-Xcompression-level',
      '3',
      '-noappend',
      '-quiet',
      '-no-progress',
    ]),
  ];
  return { steps, sqfs };
}

// --- comparing the trees --------------------------------------------------------------------------

/**
 * `unsquashfs -lln` as sorted "mode uid/gid size path[ -> target]" lines, without the root and the
 * times. Directory sizes are left out: they count squashfs's directory headers, which follow where
 * the inodes landed rather than what the directory holds.
 */
async function listing(sqfs: string): Promise<string[]> {
  const lines: string[] = [];
  for (const line of (await run('unsquashfs -lln', 'unsquashfs', ['-lln', sqfs])).split('\n')) {
    const m = /^(\S+) (\S+)\s+(\S+) \S+ \S+ squashfs-root\/(.*)$/.exec(line);
    if (!m) continue; // the root line, and the blank end
    const [, mode, owner, size, path] = m;
    lines.push(`${mode} ${owner} ${mode!.startsWith('d') ? '-' : size} ${path}`);
  }
  return lines.sort();
}

/** Lines only in one listing, "-" ours / "+" baseline, first `limit`. */
function treeDiff(ours: string[], baseline: string[], limit = 20): string[] {
  const a = new Set(ours);
  const b = new Set(baseline);
  const diff = [...ours.filter((l) => !b.has(l)).map((l) => `- ${l}`), ...baseline.filter((l) => !a.has(l)).map((l) => `+ ${l}`)];
  return diff.sort((x, y) => (x.slice(2) < y.slice(2) ? -1 : 1)).slice(0, limit);
}

async function checkSameTree(oursSqfs: string, baselineSqfs: string): Promise<number> {
  const ours = await listing(oursSqfs);
  const baseline = await listing(baselineSqfs);
  const diff = treeDiff(ours, baseline);
  if (diff.length)
    throw new Error(`same_tree: false: kratactl's squashfs (-) and the baseline's (+) differ; first differences:\n${diff.join('\n')}`);
  return ours.length;
}

// --- the bench ------------------------------------------------------------------------------------

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, digits: number) => Number(x.toFixed(digits));

interface Samples {
  cold: Timed[];
  warm: Timed[];
  baseline: BaselineRun[];
  entries: number;
}

async function oursRun(i: number, dir: string, host: string, timeFile: string, s: Samples): Promise<string> {
  const store = join(dir, 'store');
  mkdirSync(store, { recursive: true });
  const cold = await oursPull(store, host, timeFile);
  const warm = await oursPull(store, host, timeFile);
  s.cold.push(cold);
  s.warm.push(warm);
  console.error(
    `run ${i + 1}: kratactl image pull: cold ${cold.wall_s.toFixed(2)} s, ` +
      `${cold.rss_mb.toFixed(0)} MB; warm ${warm.wall_s.toFixed(2)} s, ${warm.rss_mb.toFixed(0)} MB`,
  );
  return store;
}

async function baselineRun(i: number, dir: string, host: string, timeFile: string, s: Samples): Promise<BaselineRun> {
  const b = await baselinePull(dir, host, timeFile);
  s.baseline.push(b);
  const steps = b.steps.map((t, k) => `${BASELINE_STEPS[k]} ${t.wall_s.toFixed(2)} s, ${t.rss_mb.toFixed(0)} MB`).join('; ');
  console.error(`run ${i + 1}: baseline ${sum(b.steps).toFixed(2)} s (${steps})`);
  return b;
}

const sum = (steps: Timed[]) => steps.reduce((n, t) => n + t.wall_s, 0);

/** Cold runs alternating which side goes first, so neither always gets the warmer page cache. */
async function measure(runs: number, work: string, host: string): Promise<Samples> {
  const s: Samples = { cold: [], warm: [], baseline: [], entries: 0 };
  const timeFile = join(work, 'time.out');
  for (let i = 0; i < runs; i++) {
    const dir = join(work, `run-${i + 1}`);
    const ours = () => oursRun(i, join(dir, 'ours'), host, timeFile, s);
    const theirs = () => baselineRun(i, join(dir, 'baseline'), host, timeFile, s);
    let store: string;
    let base: BaselineRun;
    if (i % 2 === 0) [store, base] = [await ours(), await theirs()];
    else [base, store] = [await theirs(), await ours()];
    if (i === 0) s.entries = await checkSameTree(await oursSquashfs(store), base.sqfs);
    rmSync(dir, { recursive: true, force: true }); // ~0.5 GB a run
  }
  return s;
}

function summary(s: Samples, g: Generated, runs: number): Record<string, unknown> {
  const ours = median(s.cold.map((t) => t.wall_s));
  const baseline = median(s.baseline.map((b) => sum(b.steps)));
  const maxRss = (ts: Timed[]) => round(Math.max(...ts.map((t) => t.rss_mb)), 1);
  return {
    bench: 'image',
    ours_s: round(ours, 2),
    baseline_s: round(baseline, 2),
    ratio: round(ours / baseline, 2),
    peak_rss_mb: maxRss(s.cold),
    warm_s: round(median(s.warm.map((t) => t.wall_s)), 2),
    baseline_peak_rss_mb: maxRss(s.baseline.flatMap((b) => b.steps)),
    baseline_steps_s: Object.fromEntries(
      BASELINE_STEPS.map((name, k) => [name, round(median(s.baseline.map((b) => b.steps[k]!.wall_s)), 2)]),
    ),
    warm_peak_rss_mb: maxRss(s.warm),
    image_mb: round(g.imageBytes / MB, 1),
    compressed_mb: round(g.image.layers.reduce((n, l) => n + l.size, 0) / MB, 1),
    layers: g.image.layers.length,
    files: g.files,
    same_tree: true,
    tree_entries: s.entries,
    runs,
    ours:
      'kratactl image pull, direct mode (no agent): registry → store → ' +
      'squashfs (zstd -3), cold = empty store, warm = image already stored',
    baseline:
      `skopeo copy docker:// → oci: + umoci unpack (as root) + mksquashfs dir -comp ` +
      `zstd -Xcompression-level 3 (default: ${availableParallelism()} threads)`,
    rss_note: "GNU time's max RSS: the largest single process of the command's tree, not their sum",
    goals: GOALS,
  };
}

export async function imageBench(runs = Number(process.env.KRATA_BENCH_RUNS ?? 3)): Promise<Record<string, unknown>> {
  if (!existsSync(kratactl())) throw new Error(`${kratactl()} is missing: run npm run build first`);
  const g = benchImage();
  console.error(`image: ${g.image.layers.length} layers, ${(g.imageBytes / MB).toFixed(1)} MB uncompressed, ${g.files} files`);
  const work = mkdtempSync(join(tmpdir(), 'krata-bench-image-'));
  let reg: Registry | undefined;
  // A bench stopped by Ctrl-C still removes its ~GB of temporary files (the registry kills itself on exit).
  const onSignal = () => {
    if (running?.pid) process.kill(-running.pid, 'SIGKILL');
    rmSync(work, { recursive: true, force: true });
    if (reg) rmSync(reg.dataDir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  try {
    reg = await startRegistry();
    await pushImage(reg, REPO, TAG, g.image);
    return summary(await measure(runs, work, reg.host), g, runs);
  } finally {
    process.removeListener('SIGINT', onSignal).removeListener('SIGTERM', onSignal);
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
