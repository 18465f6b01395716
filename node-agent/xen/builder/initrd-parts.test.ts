import assert from 'node:assert/strict';
import { test } from 'node:test';
import { alignPadding, initrdParts } from './initrd-parts.js';

test('an appended archive starts at the next 4-byte boundary, after zeros', () => {
  const archive = Buffer.from('070701-archive');
  for (const size of [1, 2, 3, 4, 5, 4096, 4097]) {
    const initrd = Buffer.alloc(size, 0xaa);
    const all = Buffer.concat(initrdParts(initrd, archive));
    const at = all.length - archive.length;
    assert.equal(at % 4, 0, `initrd of ${size} bytes`);
    assert.ok(at - size < 4 && at >= size);
    assert.ok(all.subarray(0, size).equals(initrd));
    assert.ok(
      all.subarray(size, at).every((b) => b === 0),
      'the gap is zeros: the kernel skips zeros between archives',
    );
    assert.ok(all.subarray(at).equals(archive));
  }
  assert.deepEqual([0, 1, 2, 3, 4].map(alignPadding), [0, 3, 2, 1, 0]);
});

test('without an archive the initrd goes alone; an archive alone is the whole initrd', () => {
  const initrd = Buffer.from('abc');
  assert.deepEqual(initrdParts(initrd, undefined), [initrd]);
  assert.deepEqual(initrdParts(initrd, Buffer.alloc(0)), [initrd]);
  assert.deepEqual(initrdParts(undefined, undefined), []);
  const archive = Buffer.from('x');
  assert.deepEqual(initrdParts(undefined, archive), [archive]);
});
