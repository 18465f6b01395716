// Kernel payload decompression: gzip with Node's zlib; xz, zstd and lz4 with the system's liblzma,
// libzstd and liblz4 through koffi (dpkg and apt depend on all three, so every Debian dom0 has them).
// The kernel build appends the decompressed size as 4 little-endian bytes; it sizes the output, within
// a bound, and anything that disagrees with it is an error.
import koffi from 'koffi';
import { gunzipSync } from 'node:zlib';
import { BootImageError } from './errors.js';

export const MAX_KERNEL_BYTES = 512 * 1024 * 1024;

export type Compression = 'gzip' | 'xz' | 'zstd' | 'lz4' | 'none';

const MAGICS: [Compression | 'bzip2' | 'lzma' | 'lzo', number[]][] = [
  ['gzip', [0x1f, 0x8b]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
  ['none', [0x7f, 0x45, 0x4c, 0x46]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['lzma', [0x5d, 0x00, 0x00]],
  ['lzo', [0x89, 0x4c, 0x5a, 0x4f]],
];

export function detectCompression(data: Buffer): Compression {
  for (const [name, magic] of MAGICS) {
    if (data.length >= magic.length && magic.every((b, i) => data[i] === b)) {
      if (name === 'bzip2' || name === 'lzma' || name === 'lzo') {
        throw new BootImageError(
          `kernel payload is ${name}-compressed; krata loads gzip, xz, zstd and lz4 kernels (rebuild with one of those)`,
        );
      }
      return name as Compression;
    }
  }
  throw new BootImageError(`kernel payload has unknown compression (first bytes ${data.subarray(0, 6).toString('hex')})`);
}

/** The size the kernel build appended, bounded. */
function appendedSize(data: Buffer): number {
  const size = data.readUInt32LE(data.length - 4);
  if (size === 0 || size > MAX_KERNEL_BYTES)
    throw new BootImageError(`kernel payload claims ${size} bytes decompressed (limit ${MAX_KERNEL_BYTES})`);
  return size;
}

export function decompressKernel(data: Buffer): Buffer {
  const kind = detectCompression(data);
  switch (kind) {
    case 'none':
      return data;
    case 'gzip':
      return gunzip(data, appendedSize(data));
    case 'xz':
      return xz(data, appendedSize(data));
    case 'zstd':
      return zstd(data, appendedSize(data));
    case 'lz4':
      return lz4Legacy(data, appendedSize(data));
  }
}

interface Codecs {
  lzmaStreamBufferDecode: (...a: unknown[]) => number;
  zstdDecompress: (...a: unknown[]) => number | bigint;
  zstdIsError: (code: number | bigint) => number;
  zstdGetErrorName: (code: number | bigint) => string;
  lz4DecompressSafe: (src: Buffer, dst: Buffer, srcSize: number, dstCap: number) => number;
}
let codecs: Codecs | undefined;

function library(name: string, pkg: string): ReturnType<typeof koffi.load> {
  try {
    return koffi.load(name);
  } catch (e) {
    throw new BootImageError(`cannot load ${name} to decompress the kernel (Debian package ${pkg}): ${(e as Error).message}`);
  }
}

function load(): Codecs {
  if (!codecs) {
    const lzma = library('liblzma.so.5', 'liblzma5');
    const zstdLib = library('libzstd.so.1', 'libzstd1');
    const lz4 = library('liblz4.so.1', 'liblz4-1');
    codecs = {
      lzmaStreamBufferDecode: lzma.func(
        'int lzma_stream_buffer_decode(_Inout_ uint64_t *memlimit, uint32_t flags, void *allocator, const uint8_t ' +
          '*in, _Inout_ size_t *in_pos, size_t in_size, _Out_ uint8_t *out, _Inout_ size_t *out_pos, size_t out_size)',
      ),
      zstdDecompress: zstdLib.func('size_t ZSTD_decompress(_Out_ void *dst, size_t dstCapacity, const void *src, size_t srcSize)'),
      zstdIsError: zstdLib.func('unsigned int ZSTD_isError(size_t code)'),
      zstdGetErrorName: zstdLib.func('const char *ZSTD_getErrorName(size_t code)'),
      lz4DecompressSafe: lz4.func('int LZ4_decompress_safe(const char *src, _Out_ char *dst, int compressedSize, int dstCapacity)'),
    };
  }
  return codecs;
}

function gunzip(data: Buffer, size: number): Buffer {
  let out: Buffer;
  try {
    out = gunzipSync(data.subarray(0, data.length - 4), { maxOutputLength: MAX_KERNEL_BYTES });
  } catch (e) {
    throw new BootImageError(`gzip kernel payload does not decode: ${(e as Error).message}`);
  }
  if (out.length !== size) throw new BootImageError(`gzip kernel payload decoded to ${out.length} bytes, the image says ${size}`);
  return out;
}

const LZMA_STREAM_END = 1;

function xz(data: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size);
  const memlimit = [256n * 1024n * 1024n];
  const inPos = [0];
  const outPos = [0];
  // The appended size word follows the xz stream; decoding stops at the stream's end.
  const ret = load().lzmaStreamBufferDecode(memlimit, 0, null, data, inPos, data.length - 4, out, outPos, out.length);
  if (ret !== 0 && ret !== LZMA_STREAM_END) throw new BootImageError(`xz kernel payload does not decode (liblzma error ${ret})`);
  if (Number(outPos[0]) !== size) throw new BootImageError(`xz kernel payload decoded to ${outPos[0]} bytes, the image says ${size}`);
  return out;
}

function zstd(data: Buffer, size: number): Buffer {
  const c = load();
  const out = Buffer.alloc(size);
  const n = c.zstdDecompress(out, out.length, data, data.length - 4);
  if (c.zstdIsError(n)) throw new BootImageError(`zstd kernel payload does not decode: ${c.zstdGetErrorName(n)}`);
  if (Number(n) !== size) throw new BootImageError(`zstd kernel payload decoded to ${n} bytes, the image says ${size}`);
  return out;
}

/** The kernel's "legacy" LZ4 format: magic, then blocks of {u32 compressed size, LZ4 block}, each ≤ 8 MiB out. */
function lz4Legacy(data: Buffer, size: number): Buffer {
  const c = load();
  const out = Buffer.alloc(size);
  const BLOCK = 8 * 1024 * 1024;
  let at = 4;
  let written = 0;
  const end = data.length - 4;
  while (at + 4 <= end && written < size) {
    const blockSize = data.readUInt32LE(at);
    at += 4;
    if (blockSize === 0x184c2102) continue; // a concatenated stream's magic
    if (blockSize === 0 || at + blockSize > end)
      throw new BootImageError(`lz4 kernel payload has a block of ${blockSize} bytes past its end`);
    const room = Math.min(BLOCK, size - written);
    const n = c.lz4DecompressSafe(data.subarray(at, at + blockSize), out.subarray(written, written + room), blockSize, room);
    if (n < 0) throw new BootImageError(`lz4 kernel payload block at offset ${at - 4} does not decode`);
    written += n;
    at += blockSize;
  }
  if (written !== size) throw new BootImageError(`lz4 kernel payload decoded to ${written} bytes, the image says ${size}`);
  return out;
}
