// Reading manifest files: paths, directories and stdin, with the limits that keep a CLI (and later the
// node agent, which runs as root) safe from huge or binary input.
import { readdir, stat, open } from 'node:fs/promises';
import { join, extname } from 'node:path';
import type { Readable } from 'node:stream';

export const MAX_MANIFEST_BYTES = 1024 * 1024;
const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

export interface Source {
  /** How errors name it: the path as given, or <stdin>. */
  name: string;
  text: string;
}

/** A problem with a whole file; line and column when they are known. */
export interface SourceError {
  file: string;
  line?: number;
  column?: number;
  message: string;
}

export interface ReadResult {
  sources: Source[];
  errors: SourceError[];
}

/**
 * Collect manifests from `-f` arguments as kubectl does: a file, a directory (its .yaml, .yml and
 * .json files in name order; subdirectories with `recursive`), or `-` for stdin.
 */
export async function readSources(paths: string[], options: { recursive?: boolean; stdin?: Readable } = {}): Promise<ReadResult> {
  const result: ReadResult = { sources: [], errors: [] };
  for (const path of paths) {
    if (path === '-') {
      const bytes = await readLimited(options.stdin ?? process.stdin);
      addBytes(result, '<stdin>', bytes);
      continue;
    }
    if (/^https?:\/\//i.test(path)) {
      result.errors.push({ file: path, message: remoteRefusal(path) });
      continue;
    }
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      result.errors.push({ file: path, message: describeFsError(err) });
      continue;
    }
    if (info.isDirectory()) {
      const files = await listManifests(path, options.recursive ?? false, result.errors);
      if (files.length === 0) result.errors.push({ file: path, message: 'directory holds no .yaml, .yml or .json files' });
      for (const file of files) await addFile(result, file);
    } else await addFile(result, path);
  }
  return result;
}

/**
 * kratactl does not fetch manifests: it often runs as root beside the agent, and what a URL serves is
 * better seen, pinned and checked by the user. The message says how to do it in one line.
 */
function remoteRefusal(url: string): string {
  return `kratactl does not fetch manifests from the network; fetch it and pass it on stdin: curl -fsSL '${url}' | kratactl apply -f -`;
}

async function listManifests(dir: string, recursive: boolean, errors: SourceError[]): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    errors.push({ file: dir, message: describeFsError(err) });
    return [];
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const files: string[] = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (recursive) files.push(...(await listManifests(path, recursive, errors)));
    } else if ((entry.isFile() || entry.isSymbolicLink()) && MANIFEST_EXTENSIONS.has(extname(entry.name).toLowerCase())) {
      files.push(path);
    }
  }
  return files;
}

async function addFile(result: ReadResult, path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'r');
    const info = await handle.stat();
    if (!info.isFile()) {
      result.errors.push({ file: path, message: 'not a regular file' });
      return;
    }
    // Read at most one byte past the limit: the size in stat can lie (procfs, a file that grows).
    const buffer = Buffer.alloc(MAX_MANIFEST_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) break;
    }
    addBytes(result, path, buffer.subarray(0, length));
  } catch (err) {
    result.errors.push({ file: path, message: describeFsError(err) });
  } finally {
    await handle?.close();
  }
}

async function readLimited(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    chunks.push(buf);
    length += buf.length;
    if (length > MAX_MANIFEST_BYTES) break;
  }
  return Buffer.concat(chunks).subarray(0, MAX_MANIFEST_BYTES + 1);
}

function addBytes(result: ReadResult, name: string, bytes: Buffer): void {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    result.errors.push({ file: name, message: `larger than the 1 MiB limit for a manifest file` });
    return;
  }
  const decoded = decodeUtf8(bytes);
  if (typeof decoded === 'string') result.sources.push({ name, text: decoded });
  else result.errors.push({ file: name, ...decoded });
}

/** The text, or where the first byte that is not UTF-8 sits. */
export function decodeUtf8(bytes: Buffer): string | { line: number; column: number; message: string } {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return { line: 1, column: 1, message: 'file is UTF-16; save it as UTF-8' };
  }
  try {
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
    const nul = text.indexOf('\0');
    if (nul >= 0) return { ...lineColumn(text, nul), message: 'file contains a NUL byte; is it binary?' };
    return text;
  } catch {
    const offset = firstInvalidUtf8(bytes);
    const before = bytes.subarray(0, offset).toString('utf8');
    return {
      ...lineColumn(before, before.length),
      message: `not valid UTF-8 (byte 0x${bytes[offset]!.toString(16).padStart(2, '0')} at offset ${offset})`,
    };
  }
}

function lineColumn(text: string, index: number): { line: number; column: number } {
  const upTo = text.slice(0, index);
  const line = upTo.split('\n').length;
  return { line, column: index - (upTo.lastIndexOf('\n') + 1) + 1 };
}

/** Offset of the first byte that starts no valid UTF-8 sequence. */
function firstInvalidUtf8(b: Buffer): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    const need = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (need < 0 || i + need >= b.length + (need === 0 ? 1 : 0)) return i;
    for (let k = 1; k <= need; k++) if ((b[i + k]! & 0xc0) !== 0x80) return i;
    const second = b[i + 1]!;
    // Overlong forms, UTF-16 surrogates and code points above U+10FFFF.
    if ((c === 0xe0 && second < 0xa0) || (c === 0xed && second > 0x9f) || (c === 0xf0 && second < 0x90) || (c === 0xf4 && second > 0x8f))
      return i;
    i += need + 1;
  }
  return b.length;
}

function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    default:
      return e.message ?? String(err);
  }
}
