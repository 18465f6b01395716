import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { copyToGuest, type GuestMemory } from './memory.js';

/** Frames of one flat buffer, with or without the contiguous fast path. */
function flatMemory(pages: number, withSpan: boolean): GuestMemory & { all: Buffer } {
  const all = Buffer.alloc(pages * 4096);
  const page = (pfn: number) => {
    if (pfn < 0 || pfn >= pages) throw new RangeError(`pfn ${pfn}`);
    return all.subarray(pfn * 4096, (pfn + 1) * 4096);
  };
  return {
    all,
    page,
    mfn: (pfn) => BigInt(pfn + 0x1000),
    p2m: BigUint64Array.from({ length: pages }, (_, pfn) => BigInt(pfn + 0x1000)),
    span: withSpan
      ? (pfn, n) => {
          if (pfn < 0 || pfn + n > pages) throw new RangeError(`pfns ${pfn}+${n}`);
          return all.subarray(pfn * 4096, (pfn + n) * 4096);
        }
      : undefined,
  };
}

test('copyToGuest writes the same bytes page by page and through a span, at any offset', () => {
  for (const [pfn, offset, length] of [
    [0, 0, 4096],
    [1, 100, 9000],
    [2, 4095, 2],
    [0, 0, 1],
    [3, 5000, 4096 * 2 + 7],
  ]) {
    const data = randomBytes(length);
    const slow = flatMemory(8, false);
    const fast = flatMemory(8, true);
    copyToGuest(slow, pfn, offset, data);
    copyToGuest(fast, pfn, offset, data);
    assert.ok(slow.all.equals(fast.all), `pfn ${pfn} offset ${offset} length ${length}`);
    const start = pfn * 4096 + offset;
    assert.ok(slow.all.subarray(start, start + length).equals(data));
    assert.equal(
      slow.all.subarray(0, start).every((b) => b === 0),
      true,
      'nothing written before',
    );
    assert.equal(
      slow.all.subarray(start + length).every((b) => b === 0),
      true,
      'nothing written after',
    );
  }
});

test('copyToGuest refuses to run past the guest frames it was given', () => {
  assert.throws(() => copyToGuest(flatMemory(2, false), 1, 4000, Buffer.alloc(200)), RangeError);
  assert.throws(() => copyToGuest(flatMemory(2, true), 1, 4000, Buffer.alloc(200)), RangeError);
});
