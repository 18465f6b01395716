import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConsoleSession } from './backend.js';
import { ConsoleHistory, ConsoleRing, IN_SIZE, OUT_SIZE, RING_BYTES } from './ring.js';
import { consoleFlags, consoleStats } from './throttle.js';
import { ringGuest } from '../../../test/doubles/console-ring-guest.js';
import { RESULT, startConcurrentGuest } from '../../../test/doubles/concurrent-ring-guest.js';

/** Plays the guest's side of the ring. */
const guest = ringGuest;

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

test('history matches a plain concatenation for any split of the output, across growth and wrap', () => {
  let seed = 7;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  for (const limit of [1, 5, 4096, 5000, 10_000]) {
    const h = new ConsoleHistory(limit);
    let all = Buffer.alloc(0);
    for (let i = 0; i < 400; i++) {
      const chunk = Buffer.from(Array.from({ length: rand(i % 50 === 0 ? 12_000 : 300) }, () => rand(256)));
      h.append(chunk);
      all = Buffer.concat([all, chunk]).subarray(-limit);
      assert.deepEqual(h.contents(), all, `limit ${limit}, append ${i}`);
    }
  }
});

test('history of a guest that writes a byte at a time holds one buffer of the limit, no more', () => {
  const limit = 64 * 1024;
  const h = new ConsoleHistory(limit);
  h.append(Buffer.from('x'));
  assert.ok(h.allocatedBytes <= 4096, 'small output, small buffer');
  for (let i = 0; i < 3 * limit; i++) h.append(Buffer.of(i & 0xff));
  assert.equal(h.allocatedBytes, limit);
  const c = h.contents();
  assert.equal(c.length, limit);
  assert.equal(c[limit - 1], (3 * limit - 1) & 0xff);
  assert.equal(c[0], (2 * limit) & 0xff);
});

/** A session over a plain page, with a clock and timers the test moves. */
function session(limits: { rate: number; burst: number; input?: number }) {
  const page = Buffer.alloc(RING_BYTES);
  let now = 0;
  let timers: { at: number; fn: () => void }[] = [];
  let notifies = 0;
  const s = new ConsoleSession(5, new ConsoleRing(page), { unmap() {} }, { notify: () => void notifies++, unbind() {} }, 1, 1 << 20, {
    rateBytesPerSecond: limits.rate,
    burstBytes: limits.burst,
    ...(limits.input !== undefined ? { inputLimitBytes: limits.input } : {}),
    now: () => now,
    setTimer(fn, ms) {
      const t = { at: now + ms, fn };
      timers.push(t);
      return { cancel: () => void (timers = timers.filter((x) => x !== t)) };
    },
  });
  return {
    s,
    g: guest(page),
    page,
    get notifies() {
      return notifies;
    },
    /** Moves time to `t`, running the timers due on the way. */
    advance(t: number) {
      now = t;
      for (const due of timers.filter((x) => x.at <= now)) {
        timers = timers.filter((x) => x !== due);
        due.fn();
      }
    },
  };
}

test('a flooding guest is drained at the budget: the rest waits in its ring, nothing is lost, throttling is counted', () => {
  const h = session({ rate: 64 * 1024, burst: 16 * 1024 });
  const out: Buffer[] = [];
  h.s.on('data', (d: Buffer) => out.push(d));
  const throttledBefore = consoleStats.throttled;
  let written = 0;
  const sent: Buffer[] = [];
  // For one simulated second the guest fills its ring whenever there is room and signals every 1 ms
  // (as an event-channel storm would): unbounded, that is ~2 MiB/s of dom0 work.
  for (let t = 0; t <= 1000; t++) {
    h.advance(t);
    const room = OUT_SIZE - ((h.page.readUInt32LE(3084) - h.page.readUInt32LE(3080)) >>> 0);
    if (room > 0) {
      const chunk = Buffer.from(Array.from({ length: room }, (_, i) => (written + i) % 251));
      h.g.write(chunk);
      sent.push(chunk);
      written += room;
    }
    h.s.service();
  }
  const drained = Buffer.concat(out);
  assert.ok(drained.length <= 16 * 1024 + 64 * 1024, `drained ${drained.length} bytes in 1 s`);
  assert.ok(drained.length >= 64 * 1024, `the budget is used, not starved: ${drained.length}`);
  assert.deepEqual(drained, Buffer.concat(sent).subarray(0, drained.length), 'in order, nothing dropped');
  assert.ok(consoleStats.throttled > throttledBefore, 'throttling is counted');
  // The guest stops: what waited in its ring comes out once the budget allows, without a new signal.
  const pending = written - drained.length;
  assert.ok(pending > 0 && pending <= OUT_SIZE);
  h.advance(2000);
  assert.equal(Buffer.concat(out).length, written, 'the resume timer drains the rest');
});

test('console input queues up to its bound, then the writer is told to wait; a drain lets it go on, in order', () => {
  const h = session({ rate: 1 << 20, burst: 1 << 20, input: 8 * 1024 });
  const data = Buffer.from(Array.from({ length: 40 * 1024 }, (_, i) => (i * 7) % 256));
  let drains = 0;
  h.s.onDrain(() => drains++);
  let sent = 0;
  // The guest reads nothing: writes are accepted until the queue holds the bound.
  while (sent < data.length && h.s.write(data.subarray(sent, sent + 1000))) sent += 1000;
  sent += 1000; // the write that said "wait" was still taken
  assert.ok(sent < data.length, 'the writer was told to wait before everything was queued');
  assert.ok(h.s.pendingInput <= 8 * 1024 + 1000, `queued ${h.s.pendingInput} bytes`);
  assert.ok(h.s.pendingInput >= 8 * 1024 - IN_SIZE, 'the ring holds the rest');
  const received: Buffer[] = [];
  while (received.reduce((n, b) => n + b.length, 0) < data.length) {
    received.push(h.g.read());
    h.s.service(); // the guest's signal: it consumed input
    if (drains > 0 && sent < data.length) {
      drains = 0;
      while (sent < data.length && h.s.write(data.subarray(sent, sent + 1000))) sent += 1000;
      sent = Math.min(data.length, sent + 1000);
    }
  }
  assert.deepEqual(Buffer.concat(received), data);
  assert.equal(h.s.pendingInput, 0);
});

test("--console-rate and --console-burst (KiB) set each session's budget; bad values name the flag", () => {
  const limits = consoleFlags('8', '2');
  assert.deepEqual(limits, { rateBytesPerSecond: 8192, burstBytes: 2048 });
  assert.deepEqual(consoleFlags(undefined, undefined), {}, 'unset: the defaults');
  // The limits reach the session: a guest flooding for one second gets 8 KiB plus the 2 KiB burst out.
  const h = session({ rate: limits.rateBytesPerSecond!, burst: limits.burstBytes! });
  let drained = 0;
  h.s.on('data', (d: Buffer) => (drained += d.length));
  for (let t = 0; t <= 1000; t++) {
    h.advance(t);
    const room = OUT_SIZE - ((h.page.readUInt32LE(3084) - h.page.readUInt32LE(3080)) >>> 0);
    if (room > 0) h.g.write(Buffer.alloc(room, 'x'));
    h.s.service();
  }
  assert.ok(drained >= 8192 && drained <= 8192 + 2048, `drained ${drained} bytes in 1 s`);
  for (const [rate, burst, flag] of [
    ['0', undefined, '--console-rate'],
    ['1.5', undefined, '--console-rate'],
    [undefined, '-1', '--console-burst'],
    [undefined, '1048577', '--console-burst'],
    ['1e3', undefined, '--console-rate'],
  ] as const) {
    assert.throws(() => consoleFlags(rate, burst), new RegExp(`^Error: ${flag}: expected a whole number of KiB`));
  }
  // The agent takes them as flags, lists them in --help, and refuses a bad one before it starts.
  const main = fileURLToPath(new URL('../../main.js', import.meta.url));
  const help = spawnSync(process.execPath, [main, '--help'], { encoding: 'utf8' });
  assert.match(help.stdout, /--console-rate KIB_PER_S/);
  assert.match(help.stdout, /--console-burst KIB /);
  const bad = spawnSync(process.execPath, [main, '--state', '/nonexistent/krata-console-flags', '--console-burst', 'lots'], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--console-burst: expected a whole number of KiB from 1 to 1048576, not "lots"/);
});

test('a console session closed twice unbinds, unmaps and says close once', () => {
  const calls: string[] = [];
  const s = new ConsoleSession(
    5,
    new ConsoleRing(Buffer.alloc(RING_BYTES)),
    { unmap: () => void calls.push('unmap') },
    { notify() {}, unbind: () => void calls.push('unbind') },
    1,
    1024,
  );
  s.on('close', () => calls.push('close'));
  s.close();
  s.close();
  assert.deepEqual(calls, ['unbind', 'unmap', 'close']);
});

test('a guest racing the agent on another CPU never sees a torn index, and no byte is lost either way', async () => {
  const sab = new SharedArrayBuffer(4096);
  const total = 4 * 1024 * 1024;
  // Indexes start just below 2^32 and cross every byte boundary as they run.
  const worker = startConcurrentGuest(sab, total, 0xffffff00);
  const done = new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', () => resolve());
  });
  const page = Buffer.from(sab);
  const u32 = new Uint32Array(sab);
  const ring = new ConsoleRing(page);
  let received = 0;
  let wrongOutput = 0;
  let sent = 0;
  const input = Buffer.from(Array.from({ length: 253 * 64 }, (_, i) => i % 253));
  // Spin on this thread while the worker spins on its own; the worker's verdict ends it.
  while (Atomics.load(u32, RESULT.done) === 0) {
    const out = ring.readOutput();
    for (let i = 0; i < out.length; i++) if (out[i] !== (received + i) % 251) wrongOutput++;
    received += out.length;
    if (sent < total) {
      const from = sent % 253;
      sent += ring.writeInput(input.subarray(from, from + Math.min(input.length - from, total - sent)));
    }
  }
  await done;
  assert.equal(
    Atomics.load(u32, RESULT.error),
    0,
    'the guest saw indexes no writer could have written (1 backwards, 2 past prod, 3 input)',
  );
  received += ring.readOutput().length;
  assert.equal(received, total, 'every output byte arrived');
  assert.equal(wrongOutput, 0, 'output in order, unchanged');
  assert.equal(Atomics.load(u32, RESULT.inputGot), total, 'every input byte arrived');
  assert.equal(Atomics.load(u32, RESULT.inputBad), 0, 'input in order, unchanged');
});

test('a page that cannot hold aligned 32-bit indexes is refused', () => {
  const page = Buffer.alloc(4100).subarray(2, 4098);
  assert.throws(() => new ConsoleRing(page), /4-byte aligned/);
});
