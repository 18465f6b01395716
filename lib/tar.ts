// The tar format both ways: the reader takes image layers and imported archives apart (ustar, pax, GNU
// long names, base-256 numbers); the writer feeds mksquashfs one merged stream, and kratactl an OCI
// layout to the node agent (ustar, with pax records for what ustar cannot hold: long names, large
// numbers, xattrs). Layers are hostile input: every field is checked.

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarHeader {
  /** Relative path without leading "./" or "/" and without a trailing "/". */
  path: string;
  type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  /** Seconds since the epoch (whole seconds: squashfs keeps no more). */
  mtime: number;
  /** Content bytes; 0 for everything but files. */
  size: number;
  /** Target of a symlink or hardlink (hardlink: a path in the same archive). */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes (security.capability among them), raw values. */
  xattrs?: Record<string, Buffer>;
}

export const BLOCK = 512;
export const TAR_END = Buffer.alloc(2 * BLOCK);

const TYPE_FLAGS: Record<TarEntryType, string> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' };

/** Zero bytes that bring `size` content bytes up to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

function paxRecord(key: string, value: Buffer): Buffer {
  // "%d %s=%s\n" where the length counts itself.
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function fitsOctal(n: number, width: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < 8 ** (width - 1);
}

function putOctal(block: Buffer, offset: number, width: number, n: number): void {
  block.write(n.toString(8).padStart(width - 1, '0'), offset, width - 1, 'ascii');
}

function putString(block: Buffer, offset: number, width: number, s: string): void {
  Buffer.from(s, 'utf8').copy(block, offset, 0, width);
}

function ustarBlock(h: TarHeader, name: string, prefix: string, linkname: string, typeflag: string, size: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  putString(b, 0, 100, name);
  putOctal(b, 100, 8, fitsOctal(h.mode & 0o7777, 8) ? h.mode & 0o7777 : 0);
  putOctal(b, 108, 8, fitsOctal(h.uid, 8) ? h.uid : 0);
  putOctal(b, 116, 8, fitsOctal(h.gid, 8) ? h.gid : 0);
  putOctal(b, 124, 12, fitsOctal(size, 12) ? size : 0);
  putOctal(b, 136, 12, fitsOctal(h.mtime, 12) ? h.mtime : 0);
  b.fill(0x20, 148, 156);
  b.write(typeflag, 156, 1, 'ascii');
  putString(b, 157, 100, linkname);
  b.write('ustar\x0000', 257, 8, 'binary');
  putString(b, 265, 32, h.uname ?? '');
  putString(b, 297, 32, h.gname ?? '');
  if (h.type === 'char' || h.type === 'block') {
    putOctal(b, 329, 8, h.devmajor ?? 0);
    putOctal(b, 337, 8, h.devminor ?? 0);
  }
  putString(b, 345, 155, prefix);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return b;
}

/** Splits a path into ustar's prefix (155) and name (100) fields, or undefined if it cannot. */
function splitUstar(path: string): [string, string] | undefined {
  if (Buffer.byteLength(path) <= 100) return ['', path];
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name !== '') return [prefix, name];
  }
  return undefined;
}

/** The header blocks of one entry: a pax extended header first when ustar cannot say it all. */
export function encodeHeader(h: TarHeader): Buffer {
  const path = h.type === 'dir' ? `${h.path}/` : h.path;
  const size = h.type === 'file' ? h.size : 0;
  const pax: Buffer[] = [];
  const split = splitUstar(path);
  if (!split) pax.push(paxRecord('path', Buffer.from(path)));
  const linkname = h.linkname ?? '';
  if (Buffer.byteLength(linkname) > 100) pax.push(paxRecord('linkpath', Buffer.from(linkname)));
  if (!fitsOctal(size, 12)) pax.push(paxRecord('size', Buffer.from(String(size))));
  if (!fitsOctal(h.uid, 8)) pax.push(paxRecord('uid', Buffer.from(String(h.uid))));
  if (!fitsOctal(h.gid, 8)) pax.push(paxRecord('gid', Buffer.from(String(h.gid))));
  if (!fitsOctal(h.mtime, 12)) pax.push(paxRecord('mtime', Buffer.from(String(h.mtime))));
  if (h.uname && Buffer.byteLength(h.uname) > 32) pax.push(paxRecord('uname', Buffer.from(h.uname)));
  if (h.gname && Buffer.byteLength(h.gname) > 32) pax.push(paxRecord('gname', Buffer.from(h.gname)));
  for (const [k, v] of Object.entries(h.xattrs ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) pax.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const main = ustarBlock(h, split?.[1] ?? path.slice(-100), split?.[0] ?? '', linkname.slice(0, 100), TYPE_FLAGS[h.type], size);
  if (pax.length === 0) return main;
  const body = Buffer.concat(pax);
  const paxHeader = ustarBlock(
    { path: 'PaxHeader', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: body.length },
    'PaxHeader',
    '',
    '',
    'x',
    body.length,
  );
  return Buffer.concat([paxHeader, body, tarPadding(body.length), main]);
}

/** A whole archive in memory (tests and small archives). */
export function buildTar(entries: Array<Partial<TarHeader> & { path: string; data?: Buffer }>): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? (e.data !== undefined ? 'file' : 'dir');
    const data = type === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    const h: TarHeader = { mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 0, ...e, type, size: data.length };
    out.push(encodeHeader(h), data, tarPadding(data.length));
  }
  out.push(TAR_END);
  return Buffer.concat(out);
}

// ---------------------------------------------------------------------------------------------------
// Reader: a push parser (bytes in, callbacks out) so a layer streams through without buffering entries.

export interface TarLimits {
  /** Longest path or link target, in bytes. */
  maxPathBytes: number;
  /** Largest pax or GNU long-name record. */
  maxMetaBytes: number;
}

export const DEFAULT_TAR_LIMITS: TarLimits = { maxPathBytes: 4096, maxMetaBytes: 1 << 20 };

export interface TarSink {
  /** One entry's header; return true to receive its content through `data`. */
  entry(h: TarHeader): boolean;
  data(chunk: Buffer): void;
  /** The entry's content is complete (called for every entry, wanted or not). */
  end(): void;
}

/** A layer that is not a valid tar archive, or breaks a rule; `where` names the entry. */
export class TarFormatError extends Error {}

function parseNumber(field: Buffer, what: string, where: string): number {
  if (field[0]! & 0x80) {
    // base-256 (GNU): big-endian two's complement in the remaining bits; only non-negative here.
    if (field[0] === 0xff) throw new TarFormatError(`${where}: negative ${what}`);
    let n = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) {
      n = n * 256 + field[i]!;
      if (n > Number.MAX_SAFE_INTEGER) throw new TarFormatError(`${where}: ${what} is too large`);
    }
    return n;
  }
  const s = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^[ \0]+/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`${where}: ${what} field ${JSON.stringify(s)} is not octal`);
  return parseInt(s, 8);
}

function cString(field: Buffer): string {
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? field.length : nul).toString('utf8');
}

function decimal(value: Buffer, key: string, where: string): number {
  const s = value.toString('latin1');
  if (!/^\d+(\.\d+)?$/.test(s)) throw new TarFormatError(`${where}: pax ${key}=${JSON.stringify(s.slice(0, 40))} is not a number`);
  const n = Math.floor(Number(s));
  if (!Number.isSafeInteger(n)) throw new TarFormatError(`${where}: pax ${key} is too large`);
  return n;
}

/** Parses "LEN key=value\n" records; values stay bytes (xattrs are binary). */
function parsePax(body: Buffer, where: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < body.length) {
    if (body[i] === 0) break; // padding some writers leave
    const sp = body.indexOf(0x20, i);
    const len = sp === -1 ? NaN : Number(body.toString('latin1', i, sp));
    if (!Number.isSafeInteger(len) || len <= sp - i + 1 || i + len > body.length || body[i + len - 1] !== 0x0a)
      throw new TarFormatError(`${where}: malformed pax record at byte ${i}`);
    const eq = body.indexOf(0x3d, sp + 1);
    if (eq === -1 || eq >= i + len - 1) throw new TarFormatError(`${where}: pax record without "=" at byte ${i}`);
    out.set(body.toString('utf8', sp + 1, eq), body.subarray(eq + 1, i + len - 1));
    i += len;
  }
  return out;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/**
 * Normalises an archive path to "a/b/c" ("" is the root). Absolute paths are taken relative to the
 * root as tar does; ".." anywhere is refused rather than resolved, since no legitimate layer needs it.
 */
export function normalizeTarPath(raw: string, where: string, limits: TarLimits = DEFAULT_TAR_LIMITS): string {
  if (raw.includes('\0')) throw new TarFormatError(`${where}: path contains NUL`);
  if (Buffer.byteLength(raw) > limits.maxPathBytes) throw new TarFormatError(`${where}: path is longer than ${limits.maxPathBytes} bytes`);
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new TarFormatError(`${where}: path ${JSON.stringify(raw)} contains ".." (path traversal)`);
  if (parts.some((p) => Buffer.byteLength(p) > 255))
    throw new TarFormatError(`${where}: a component of ${JSON.stringify(raw.slice(0, 80))} is longer than 255 bytes`);
  return parts.join('/');
}

/** Global pax keys (git archive writes one, "comment"); each entry gets a copy of them all. */
const MAX_GLOBAL_PAX_KEYS = 64;

type State = 'header' | 'meta' | 'data' | 'pad' | 'done';

export class TarParser {
  private state: State = 'header';
  private buf: Buffer[] = [];
  private buffered = 0;
  private need = BLOCK;
  private remaining = 0;
  private padding = 0;
  private wanted = false;
  private metaKind = '';
  private pax = new Map<string, Buffer>();
  private globalPax = new Map<string, Buffer>();
  private longName?: string;
  private longLink?: string;
  private zeroBlocks = 0;
  private count = 0;
  private current = '';

  constructor(
    private readonly sink: TarSink,
    private readonly source: string,
    private readonly limits: TarLimits = DEFAULT_TAR_LIMITS,
  ) {}

  /** Entries seen so far (headers of real entries, not pax or long-name records). */
  get entries(): number {
    return this.count;
  }

  write(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && this.state !== 'done') {
      if (this.state === 'data') {
        const n = Math.min(this.remaining, chunk.length - off);
        if (this.wanted) this.sink.data(chunk.subarray(off, off + n));
        off += n;
        this.remaining -= n;
        if (this.remaining === 0) this.finishData();
        continue;
      }
      if (this.state === 'pad') {
        const n = Math.min(this.padding, chunk.length - off);
        off += n;
        this.padding -= n;
        if (this.padding === 0) this.state = 'header';
        continue;
      }
      // header and meta records are gathered whole
      const n = Math.min(this.need - this.buffered, chunk.length - off);
      this.buf.push(chunk.subarray(off, off + n));
      this.buffered += n;
      off += n;
      if (this.buffered < this.need) continue;
      const whole = Buffer.concat(this.buf, this.buffered);
      this.buf = [];
      this.buffered = 0;
      if (this.state === 'header') this.header(whole);
      else this.meta(whole);
    }
  }

  /** The input ended; throws if it ended inside an entry or before the end-of-archive blocks. */
  close(): void {
    if (this.state === 'done') return;
    // Many writers stop after the last entry's padding (no zero blocks); accept that, but not a cut.
    if (this.state === 'header' && this.buffered === 0) return;
    throw new TarFormatError(`${this.source}: archive is truncated${this.current ? ` inside entry ${JSON.stringify(this.current)}` : ''}`);
  }

  private finishData(): void {
    this.sink.end();
    this.padding = (BLOCK - (this.dataSize % BLOCK)) % BLOCK;
    this.state = this.padding ? 'pad' : 'header';
  }

  private dataSize = 0;

  private header(block: Buffer): void {
    if (block.every((b) => b === 0)) {
      if (++this.zeroBlocks === 2) this.state = 'done';
      return;
    }
    const where = `${this.source}: entry ${this.count + 1}`;
    if (this.zeroBlocks) throw new TarFormatError(`${where}: data after an end-of-archive block`);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
    const stored = parseNumber(block.subarray(148, 156), 'checksum', where);
    if (stored !== sum) throw new TarFormatError(`${where}: header checksum mismatch (not a tar archive, or corrupt)`);
    const typeflag = String.fromCharCode(block[156]!);
    const size = parseNumber(block.subarray(124, 136), 'size', where);
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > this.limits.maxMetaBytes)
        throw new TarFormatError(
          `${where}: ${typeflag === 'x' || typeflag === 'g' ? 'pax' : 'GNU long-name'} ` +
            `record of ${size} bytes exceeds ${this.limits.maxMetaBytes}`,
        );
      this.metaKind = typeflag;
      this.dataSize = size;
      this.need = size + ((BLOCK - (size % BLOCK)) % BLOCK);
      this.state = 'meta';
      if (this.need === 0) this.meta(Buffer.alloc(0));
      return;
    }
    const type = TYPES[typeflag];
    if (!type) throw new TarFormatError(`${where}: unsupported entry type ${JSON.stringify(typeflag)}`);
    const magic = block.toString('latin1', 257, 263);
    const prefix = magic.startsWith('ustar') ? cString(block.subarray(345, 500)) : '';
    const pax = new Map([...this.globalPax, ...this.pax]);
    this.pax = new Map();
    const rawPath =
      pax.get('path')?.toString('utf8') ??
      this.longName ??
      (prefix ? `${prefix}/${cString(block.subarray(0, 100))}` : cString(block.subarray(0, 100)));
    const rawLink = pax.get('linkpath')?.toString('utf8') ?? this.longLink ?? cString(block.subarray(157, 257));
    this.longName = this.longLink = undefined;
    this.current = rawPath;
    const at = `${this.source}: ${JSON.stringify(rawPath.slice(0, 200))}`;
    const h: TarHeader = {
      path: normalizeTarPath(rawPath, at, this.limits),
      type,
      mode: parseNumber(block.subarray(100, 108), 'mode', at) & 0o7777,
      uid: pax.has('uid') ? decimal(pax.get('uid')!, 'uid', at) : parseNumber(block.subarray(108, 116), 'uid', at),
      gid: pax.has('gid') ? decimal(pax.get('gid')!, 'gid', at) : parseNumber(block.subarray(116, 124), 'gid', at),
      mtime: pax.has('mtime') ? decimal(pax.get('mtime')!, 'mtime', at) : parseNumber(block.subarray(136, 148), 'mtime', at),
      size: pax.has('size') ? decimal(pax.get('size')!, 'size', at) : size,
    };
    const uname = pax.get('uname')?.toString('utf8') ?? cString(block.subarray(265, 297));
    const gname = pax.get('gname')?.toString('utf8') ?? cString(block.subarray(297, 329));
    if (uname) h.uname = uname;
    if (gname) h.gname = gname;
    if (type === 'symlink' || type === 'hardlink') {
      if (rawLink === '') throw new TarFormatError(`${at}: ${type} without a target`);
      if (rawLink.includes('\0') || Buffer.byteLength(rawLink) > this.limits.maxPathBytes)
        throw new TarFormatError(`${at}: ${type} target is invalid or longer than ${this.limits.maxPathBytes} bytes`);
      h.linkname = type === 'hardlink' ? normalizeTarPath(rawLink, `${at} (hardlink target)`, this.limits) : rawLink;
    }
    if (type === 'char' || type === 'block') {
      h.devmajor = parseNumber(block.subarray(329, 337), 'devmajor', at);
      h.devminor = parseNumber(block.subarray(337, 345), 'devminor', at);
    }
    for (const [k, v] of pax) {
      if (k.startsWith('SCHILY.xattr.')) (h.xattrs ??= {})[k.slice('SCHILY.xattr.'.length)] = Buffer.from(v);
      else if (k.startsWith('LIBARCHIVE.xattr.'))
        (h.xattrs ??= {})[decodeURIComponent(k.slice('LIBARCHIVE.xattr.'.length))] = Buffer.from(v.toString('latin1'), 'base64');
    }
    // Only regular files carry content; hardlinks and others with a size field are ustar oddities.
    const dataBytes = type === 'file' ? h.size : 0;
    if (type !== 'file') h.size = 0;
    this.count++;
    this.wanted = this.sink.entry(h);
    this.dataSize = dataBytes;
    this.remaining = dataBytes;
    if (dataBytes === 0) {
      this.sink.end();
      this.state = 'header';
    } else this.state = 'data';
  }

  private meta(whole: Buffer): void {
    const body = whole.subarray(0, this.dataSize);
    const where = `${this.source}: entry ${this.count + 1}`;
    if (this.metaKind === 'x') this.pax = parsePax(body, where);
    else if (this.metaKind === 'g') {
      // Global records set defaults; a global name or size would apply to every entry, so not those.
      for (const [k, v] of parsePax(body, where)) if (k !== 'path' && k !== 'linkpath' && k !== 'size') this.globalPax.set(k, v);
      // They are merged into every later entry: many global records would make each entry cost more.
      let bytes = 0;
      for (const [k, v] of this.globalPax) bytes += k.length + v.length;
      if (bytes > this.limits.maxMetaBytes || this.globalPax.size > MAX_GLOBAL_PAX_KEYS)
        throw new TarFormatError(
          `${where}: global pax records hold more than ${MAX_GLOBAL_PAX_KEYS} keys or ${this.limits.maxMetaBytes} bytes`,
        );
    } else if (this.metaKind === 'L') this.longName = cString(body);
    else this.longLink = cString(body);
    this.need = BLOCK;
    this.state = 'header';
  }
}
