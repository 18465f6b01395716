import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { syntheticBzImage, syntheticKernel } from '../../../test/kernels/synthetic.js';
import { decompressKernel } from './decompress.js';
import { KernelCache } from './kernel-cache.js';

function counting() {
  let calls = 0;
  return {
    decompress: (payload: Buffer) => {
      calls++;
      return decompressKernel(payload);
    },
    calls: () => calls,
  };
}

const elf = syntheticKernel();
const image = syntheticBzImage(gzipSync(elf), elf.length);

test('a compressed kernel is decompressed once; an equal image (a new buffer) is served from the cache', () => {
  const c = counting();
  const cache = new KernelCache(undefined, c.decompress);
  const first = cache.kernel(image);
  assert.ok(first.bytes.equals(elf));
  const again = cache.kernel(Buffer.from(image));
  assert.equal(again, first);
  assert.equal(c.calls(), 1);
  const stats = cache.stats();
  assert.deepEqual({ ...stats, bytes: undefined }, { entries: 1, hits: 1, misses: 1, bytes: undefined });
  assert.ok(stats.bytes > elf.length && stats.bytes < elf.length + image.length, 'the kernel and a copy of its payload');
});

test('the key is the bytes: a changed kernel of the same length misses, and the caller changing its buffer does not matter', () => {
  const c = counting();
  const cache = new KernelCache(undefined, c.decompress);
  const mine = Buffer.from(image);
  const first = cache.kernel(mine);
  mine.fill(0); // the cache keeps its own copy of the key
  assert.equal(cache.kernel(Buffer.from(image)), first);
  const other = syntheticKernel({ hypercallPage: 0xffffffff81001000n });
  const otherImage = syntheticBzImage(gzipSync(other), other.length);
  const second = cache.kernel(otherImage);
  assert.notEqual(second, first);
  assert.ok(second.bytes.equals(other));
  assert.equal(c.calls(), 2);
});

test('bounded by entries and bytes, least recently used out; an uncompressed ELF is parsed, never kept', () => {
  const c = counting();
  const kernels = [0, 1, 2].map((i) => syntheticKernel({ hypercallPage: 0xffffffff81001000n + BigInt(i) * 4096n }));
  const images = kernels.map((k) => syntheticBzImage(gzipSync(k), k.length));
  const cache = new KernelCache({ entries: 2, bytes: 1 << 30 }, c.decompress);
  cache.kernel(images[0]!);
  cache.kernel(images[1]!);
  cache.kernel(images[0]!); // 0 is now the most recent
  cache.kernel(images[2]!); // evicts 1
  assert.equal(cache.stats().entries, 2);
  const before = c.calls();
  cache.kernel(images[0]!);
  assert.equal(c.calls(), before, '0 stayed');
  cache.kernel(images[1]!);
  assert.equal(c.calls(), before + 1, '1 was evicted');

  const tiny = new KernelCache({ entries: 4, bytes: 1000 }, c.decompress);
  tiny.kernel(images[0]!);
  assert.equal(tiny.stats().entries, 0, 'larger than the byte bound: not kept');

  const plain = new KernelCache(undefined, c.decompress);
  const parsed = plain.kernel(elf);
  assert.ok(parsed.bytes.equals(elf));
  assert.equal(plain.stats().entries, 0);
});
