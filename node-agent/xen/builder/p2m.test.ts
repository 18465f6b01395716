import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newP2m, p2mWords, setExtent } from './p2m.js';

test('setExtent records the same frames as BigInt arithmetic, across a 2^32 boundary and with high bits', () => {
  const pages = 4096;
  for (const [first, mfn, order] of [
    [0, 0x12345n, 0],
    [512, 0x80000n, 9],
    [1024, 0x1_0000_0000n - 512n, 9], // a superpage ending exactly at 2^32
    [1536, 0x1_0000_0000n - 100n, 9], // carries into the high half mid-extent
    [2048, 0xab_ffff_fe00n, 9],
    [4095, 0xff_ffff_ffffn, 0],
  ] as [number, bigint, number][]) {
    const p2m = newP2m(pages);
    setExtent(p2mWords(p2m), first, Number(mfn & 0xffffffffn), Number(mfn >> 32n), order);
    for (let j = 0; j < 2 ** order; j++) assert.equal(p2m[first + j], mfn + BigInt(j), `pfn ${first + j}`);
    assert.equal(
      p2m.every((v, pfn) => (pfn >= first && pfn < first + 2 ** order) || v === 0n),
      true,
      'nothing written outside the extent',
    );
  }
});

test('setExtent refuses an extent outside the table', () => {
  const words = p2mWords(newP2m(1024));
  assert.throws(() => setExtent(words, 1000, 0, 0, 9), RangeError);
  assert.throws(() => setExtent(words, -1, 0, 0, 0), RangeError);
  assert.doesNotThrow(() => setExtent(words, 512, 0, 0, 9));
});
