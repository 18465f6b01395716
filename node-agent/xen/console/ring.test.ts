import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConsoleHistory, ConsoleRing, IN_SIZE, OUT_SIZE, RING_BYTES } from './ring.js';

/** Plays the guest's side of the ring. */
function guest(page: Buffer) {
  return {
    write(data: Buffer) {
      let prod = page.readUInt32LE(3084);
      for (const b of data) page[1024 + (prod++ >>> 0) % OUT_SIZE] = b;
      page.writeUInt32LE(prod >>> 0, 3084);
    },
    read(): Buffer {
      let cons = page.readUInt32LE(3072);
      const prod = page.readUInt32LE(3076);
      const out: number[] = [];
      while (cons !== prod) out.push(page[(cons++ >>> 0) % IN_SIZE]!);
      page.writeUInt32LE(cons >>> 0, 3072);
      return Buffer.from(out);
    },
  };
}

test('output written by the guest comes out in order across the wrap, indexes wrapping at 2^32', () => {
  const page = Buffer.alloc(4096);
  // Start near the top of the u32 range so the counters overflow during the test.
  page.writeUInt32LE(0xfffffff0, 3080);
  page.writeUInt32LE(0xfffffff0, 3084);
  const ring = new ConsoleRing(page);
  const g = guest(page);
  const text = Buffer.from('x'.repeat(1500) + 'hello from the guest\n');
  g.write(text.subarray(0, 1000));
  assert.deepEqual(ring.readOutput(), text.subarray(0, 1000));
  g.write(text.subarray(1000));
  assert.deepEqual(ring.readOutput(), text.subarray(1000));
  assert.equal(ring.readOutput().length, 0);
});

test('input longer than the ring is taken in parts, each part the right bytes', () => {
  const page = Buffer.alloc(RING_BYTES);
  const ring = new ConsoleRing(page);
  const g = guest(page);
  const data = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
  let sent = 0;
  const received: Buffer[] = [];
  while (sent < data.length) {
    sent += ring.writeInput(data.subarray(sent));
    received.push(g.read());
  }
  assert.deepEqual(Buffer.concat(received), data);
  assert.equal(ring.writeInput(Buffer.alloc(IN_SIZE + 5)), IN_SIZE, 'a full ring takes no more');
});

test('a guest that lies about its indexes cannot make us read or write out of bounds', () => {
  const page = Buffer.alloc(RING_BYTES);
  page.writeUInt32LE(0, 3080);
  page.writeUInt32LE(0x7fffffff, 3084); // claims 2 GiB of output
  const ring = new ConsoleRing(page);
  assert.equal(ring.readOutput().length, OUT_SIZE);
  page.writeUInt32LE(0, 3072);
  page.writeUInt32LE(5000, 3076); // input "used" beyond the ring
  assert.equal(ring.writeInput(Buffer.from('a')), 0);
});

test('history keeps the newest bytes within its limit', () => {
  const h = new ConsoleHistory(10);
  h.append(Buffer.from('abcdef'));
  h.append(Buffer.from('ghijkl'));
  assert.equal(h.contents().toString(), 'cdefghijkl');
  h.append(Buffer.from('0123456789ABC'));
  assert.equal(h.contents().toString(), '3456789ABC');
});
