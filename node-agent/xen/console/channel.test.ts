// The guest channel's transport and backend without Xen: the ring is a plain page, event channels and
// grants are fakes, and xenstore is an in-memory tree whose watches fire as xenstored's do (once at
// once, then on every change below the path). What the frontend writes is hostile: malformed values
// are refused, and nothing is waited for without a bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConsoleRing, OUT_SIZE, RING_BYTES } from './ring.js';
import { ChannelRingTransport, DEFAULT_CHANNEL_BURST, DEFAULT_CHANNEL_INPUT_LIMIT, DEFAULT_CHANNEL_RATE } from './channel-transport.js';
import { ChannelBackend, ChannelHandshakeError, NoChannelDevice, parseFrontendOffer } from './channel-backend.js';
import { channelBackendPath, channelFrontendPath } from '../devices/channel.js';
import { ringGuest } from '../../../test/doubles/console-ring-guest.js';

const guest = ringGuest;

const tick = () => new Promise<void>((r) => setImmediate(r));

/** Event channels that record what happens to them; `fire(port)` plays the guest's signal. */
function fakeEvtchn() {
  const handlers = new Map<number, () => void>();
  const log: string[] = [];
  let next = 40;
  return {
    log,
    handlers,
    bindInterdomain(domid: number, remote: number, handler: () => void) {
      const local = next++;
      handlers.set(local, handler);
      log.push(`bind ${domid}:${remote} -> ${local}`);
      return local;
    },
    notify: (port: number) => void log.push(`notify ${port}`),
    unbind(port: number) {
      handlers.delete(port);
      log.push(`unbind ${port}`);
    },
    fire: (port: number) => handlers.get(port)?.(),
  };
}

function transport(limits: { rate?: number; burst?: number; input?: number } = {}) {
  const page = Buffer.alloc(RING_BYTES);
  const ev = fakeEvtchn();
  let unmapped = 0;
  let now = 0;
  let timers: { at: number; fn: () => void }[] = [];
  const t = new ChannelRingTransport(7, new ConsoleRing(page), { unmap: () => void unmapped++ }, ev, 40, {
    ...(limits.rate !== undefined ? { rateBytesPerSecond: limits.rate } : {}),
    ...(limits.burst !== undefined ? { burstBytes: limits.burst } : {}),
    ...(limits.input !== undefined ? { inputLimitBytes: limits.input } : {}),
    now: () => now,
    setTimer(fn, ms) {
      const x = { at: now + ms, fn };
      timers.push(x);
      return { cancel: () => void (timers = timers.filter((y) => y !== x)) };
    },
  });
  return {
    t,
    page,
    g: guest(page),
    ev,
    get unmapped() {
      return unmapped;
    },
    advance(to: number) {
      now = to;
      for (const due of timers.filter((x) => x.at <= now)) {
        timers = timers.filter((x) => x !== due);
        due.fn();
      }
    },
  };
}

test('the defaults: 32 MiB/s with a 256 KiB burst out, 256 KiB of input queued', () => {
  assert.equal(DEFAULT_CHANNEL_RATE, 32 * 1024 * 1024);
  assert.equal(DEFAULT_CHANNEL_BURST, 256 * 1024);
  assert.equal(DEFAULT_CHANNEL_INPUT_LIMIT, 256 * 1024);
});

test('bytes the guest writes reach the reader in order; output waits in the ring until there is a reader', async () => {
  const h = transport();
  h.g.write(Buffer.from('HELLO before anyone listened '));
  h.t.service(); // a signal with no reader yet: the bytes stay in the ring
  assert.equal(new ConsoleRing(h.page).outputPending(), 29);
  const got: Buffer[] = [];
  h.t.onData((d) => got.push(d));
  await tick();
  const more = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 253));
  for (let sent = 0; sent < more.length; sent += 1500) {
    h.g.write(more.subarray(sent, sent + 1500));
    h.t.service();
  }
  assert.deepEqual(Buffer.concat(got), Buffer.concat([Buffer.from('HELLO before anyone listened '), more]));
  assert.ok(h.ev.log.includes('notify 40'), 'the guest is told there is room again');
});

test('writes reach the guest through its 1 KiB input ring; past the bound write() says wait, and onDrain says go on', () => {
  const h = transport({ input: 4096 });
  let drains = 0;
  h.t.onDrain(() => drains++);
  const data = Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 13) % 256));
  let sent = 0;
  while (sent < data.length && h.t.write(data.subarray(sent, sent + 512))) sent += 512;
  sent += 512;
  assert.ok(sent < data.length, 'told to wait before everything was queued');
  assert.ok(h.t.pendingInput <= 4096 + 512);
  const received: Buffer[] = [];
  while (received.reduce((n, b) => n + b.length, 0) < data.length) {
    received.push(h.g.read());
    h.t.service(); // the guest signals that it consumed input
    if (drains > 0) {
      drains = 0;
      while (sent < data.length && h.t.write(data.subarray(sent, sent + 512))) sent += 512;
      sent = Math.min(data.length, sent + 512);
    }
  }
  assert.deepEqual(Buffer.concat(received), data, 'in order, nothing dropped');
});

test('a flooding guest is drained at its budget; the rest comes out when the budget refills, nothing lost', async () => {
  const h = transport({ rate: 64 * 1024, burst: 8 * 1024 });
  let drained = 0;
  const got: Buffer[] = [];
  h.t.onData((d) => {
    drained += d.length;
    got.push(d);
  });
  await tick();
  let written = 0;
  const sent: Buffer[] = [];
  for (let t = 0; t <= 1000; t++) {
    h.advance(t);
    const room = OUT_SIZE - ((h.page.readUInt32LE(3084) - h.page.readUInt32LE(3080)) >>> 0);
    if (room > 0) {
      const chunk = Buffer.from(Array.from({ length: room }, (_, i) => (written + i) % 249));
      h.g.write(chunk);
      sent.push(chunk);
      written += room;
    }
    h.t.service();
  }
  assert.ok(drained <= 64 * 1024 + 8 * 1024, `drained ${drained} bytes in one second`);
  assert.ok(drained >= 60 * 1024, `the budget is used: ${drained}`);
  h.advance(5000);
  assert.equal(drained, written, 'what waited in the ring comes out once the budget allows');
  assert.deepEqual(Buffer.concat(got), Buffer.concat(sent));
});

test('close unbinds and unmaps once, tells the close listeners, and stops serving; a throwing reader is contained', async () => {
  const h = transport();
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  h.t.onData(() => {
    throw new Error('reader bug');
  });
  await tick();
  h.g.write(Buffer.from('x'));
  assert.doesNotThrow(() => h.t.service());
  let closes = 0;
  h.t.onClose(() => closes++);
  h.t.close();
  h.t.close();
  assert.equal(closes, 1);
  assert.equal(h.unmapped, 1);
  assert.deepEqual(
    h.ev.log.filter((l) => l.startsWith('unbind')),
    ['unbind 40'],
  );
  assert.equal(h.t.write(Buffer.from('late')), true, 'a write after close is dropped, never waited on');
  h.g.write(Buffer.from('more'));
  h.t.service();
  assert.equal(new ConsoleRing(h.page).outputPending(), 4, 'nothing is read after close');
  let late = 0;
  h.t.onClose(() => late++);
  await tick();
  assert.equal(late, 1, 'a listener added after close still hears of it');
  await tick();
  process.off('warning', onWarning);
  assert.ok(warnings.some((w) => /reader bug/.test(w)));
});

// ---- the backend's handshake -------------------------------------------------------------------------

/** xenstore in memory, with watches that fire as xenstored's do. */
function memoryXs(initial: Record<string, string> = {}) {
  const values = new Map(Object.entries(initial));
  const watches = new Map<string, { path: string; token: string; handler: (p: string, token: string) => void }>();
  let n = 0;
  // A change fires the watches on the node, its ancestors, and (a removal) its descendants.
  const related = (a: string, b: string) => a === b || a.startsWith(b + '/') || b.startsWith(a + '/');
  const fire = (path: string) => {
    for (const w of [...watches.values()]) if (related(path, w.path)) queueMicrotask(() => w.handler(path, w.token));
  };
  return {
    values,
    writes: [] as string[],
    get watchCount() {
      return watches.size;
    },
    async tryRead(path: string) {
      return values.get(path);
    },
    async write(path: string, value: string | Buffer) {
      this.writes.push(`${path}=${value.toString()}`);
      values.set(path, value.toString());
      fire(path);
    },
    async watch(path: string, handler: (p: string, token: string) => void) {
      const token = `t${n++}`;
      watches.set(token, { path, token, handler });
      queueMicrotask(() => handler(path, token));
      return { path, token, unwatch: async () => void watches.delete(token) };
    },
    /** The guest writes its own frontend directory. */
    set(path: string, value: string) {
      values.set(path, value);
      fire(path);
    },
    rm(prefix: string) {
      for (const k of [...values.keys()]) if (k === prefix || k.startsWith(prefix + '/')) values.delete(k);
      fire(prefix);
    },
  };
}

const D = 7;
const F = channelFrontendPath(D);
const B = channelBackendPath(D);

function backendFixture(front: Record<string, string> = { state: '1' }) {
  const xs = memoryXs({
    [`${B}/type`]: 'krata-channel',
    [`${B}/state`]: '1',
    ...Object.fromEntries(Object.entries(front).map(([k, v]) => [`${F}/${k}`, v])),
  });
  const ev = fakeEvtchn();
  const maps: string[] = [];
  const pages: Buffer[] = [];
  const grants = {
    mapGrant(domid: number, ref: number) {
      maps.push(`map ${domid}:${ref}`);
      const bytes = Buffer.alloc(4096);
      pages.push(bytes);
      return { bytes, pointer: null, address: 0n, length: 4096, unmap: () => void maps.push(`unmap ${domid}:${ref}`) };
    },
    mapGrants(domid: number, refs: readonly number[]) {
      const what = `${domid}:${refs.join(',')}`;
      maps.push(`map ${what}`);
      const bytes = Buffer.alloc(4096 * refs.length);
      pages.push(bytes);
      return { bytes, pointer: null, address: 0n, length: bytes.length, unmap: () => void maps.push(`unmap ${what}`) };
    },
  };
  return { xs, ev, maps, pages, backend: new ChannelBackend(xs, ev, grants) };
}

test('connect waits for the frontend to offer its ring, maps the grant, binds the port and says Connected', async () => {
  const f = backendFixture();
  const connecting = f.backend.connect(D, { timeoutMs: 5000 });
  await tick();
  assert.deepEqual(f.maps, [], 'nothing is mapped while the frontend is still Initialising');
  // hvc_xen writes ring-ref and port in one transaction, then switches to Initialised.
  f.xs.set(`${F}/ring-ref`, '9');
  f.xs.set(`${F}/port`, '5');
  await tick();
  assert.deepEqual(f.maps, [], 'not before state 3');
  f.xs.set(`${F}/state`, '3');
  const t = await connecting;
  assert.deepEqual(f.maps, ['map 7:9']);
  assert.ok(f.ev.log.includes('bind 7:5 -> 40'));
  assert.equal(f.xs.values.get(`${B}/state`), '4');
  assert.equal(f.xs.watchCount, 1, "the wait's watch is gone; one remains on the frontend's state");
  // Bytes the guest puts in the mapped page come out of the transport when it signals.
  const got: Buffer[] = [];
  t.onData((d) => got.push(d));
  await tick();
  guest(f.pages[0]!).write(Buffer.from('KC hello'));
  f.ev.fire(40);
  assert.equal(Buffer.concat(got).toString(), 'KC hello');
  // The domain goes away: its frontend directory is removed, and the transport closes.
  let closed = false;
  t.onClose(() => (closed = true));
  f.xs.rm(`/local/domain/${D}`);
  for (let i = 0; i < 5 && !closed; i++) await tick();
  assert.ok(closed);
  assert.deepEqual(f.maps, ['map 7:9', 'unmap 7:9']);
  assert.ok(f.ev.log.includes('unbind 40'));
  assert.equal(f.xs.watchCount, 0);
});

test('an agent that restarts finds the frontend Connected and serves it again', async () => {
  const f = backendFixture({ state: '4', 'ring-ref': '12', port: '3' });
  const t = await f.backend.connect(D, { timeoutMs: 1000 });
  assert.deepEqual(f.maps, ['map 7:12']);
  t.close();
  assert.deepEqual(f.maps, ['map 7:12', 'unmap 7:12']);
  assert.equal(f.xs.watchCount, 0);
  assert.equal(f.xs.values.get(`${B}/state`), '4', 'closing the transport leaves the device connected for the next agent');
});

test("the console transport maps the guest's bulk ring as one range and carries bytes both ways over it", async () => {
  const f = backendFixture({ state: '4', 'ring-ref': '12', port: '3' });
  const t = await f.backend.connect(D, { timeoutMs: 1000 });
  assert.ok(t.openBulk, 'the backend lets the channel open the bulk ring');
  const bulk = t.openBulk({ refs: [20, 21, 22, 23, 24], port: 6, inPages: 2, outPages: 2 });
  assert.deepEqual(f.maps.slice(1), ['map 7:20,21,22,23,24']);
  const bind = f.ev.log.find((l) => l.startsWith('bind 7:6'));
  assert.ok(bind, 'the bulk port is bound');
  const local = Number(bind.split(' -> ')[1]);
  const page = f.pages[1]!;
  // The guest writes 6000 bytes to "out" (after the header and 2 in pages) and publishes out_prod.
  const data = Buffer.alloc(6000, 0x5a);
  data.copy(page, 3 * 4096);
  page.writeUInt32LE(6000, 12);
  const got: Buffer[] = [];
  bulk.onData((d) => got.push(d));
  await tick();
  assert.equal(Buffer.concat(got).length, 6000, 'more than a console ring moves in one event');
  assert.equal(page.readUInt32LE(8), 6000, 'out_cons follows');
  // Input lands in "in" (page 1) with in_prod at byte 4; a ring's worth (8 KiB) at most.
  assert.equal(bulk.write(Buffer.alloc(10_000, 1)), true);
  assert.equal(page.readUInt32LE(4), 8192);
  assert.equal(page[4096], 1);
  page.writeUInt32LE(8192, 0); // the guest consumed it all
  f.ev.fire(local);
  assert.equal(page.readUInt32LE(4), 10_000, 'the rest follows once the guest made room');
  bulk.close();
  assert.deepEqual(f.maps.slice(-1), ['unmap 7:20,21,22,23,24']);
  assert.ok(f.ev.log.includes(`unbind ${local}`));
  t.close();
});

test('a malformed bulk offer is refused without mapping anything', async () => {
  const f = backendFixture({ state: '4', 'ring-ref': '12', port: '3' });
  const t = await f.backend.connect(D, { timeoutMs: 1000 });
  const bad = [
    { refs: [20, 21, 22], port: 6, inPages: 3, outPages: 1 }, // not a power of two
    { refs: [20, 21, 22], port: 6, inPages: 1, outPages: 64 }, // too many pages
    { refs: [20, 21], port: 6, inPages: 1, outPages: 1 }, // count does not match
    { refs: [20, 2, 22], port: 6, inPages: 1, outPages: 1 }, // a reserved grant
    { refs: [20, 21, 22], port: 0, inPages: 1, outPages: 1 },
    { refs: [20, 21.5, 22], port: 6, inPages: 1, outPages: 1 },
  ];
  for (const offer of bad) assert.throws(() => t.openBulk!(offer), ChannelHandshakeError, JSON.stringify(offer));
  assert.deepEqual(f.maps, ['map 7:12']);
  t.close();
});

test('malformed offers are refused without mapping anything', async () => {
  const bad: Record<string, string>[] = [
    { state: '3', 'ring-ref': '9' }, // no port
    { state: '3', 'ring-ref': 'nine', port: '5' },
    { state: '3', 'ring-ref': '9 ', port: '5' },
    { state: '3', 'ring-ref': '-9', port: '5' },
    { state: '3', 'ring-ref': '0', port: '5' }, // the console's reserved grant
    { state: '3', 'ring-ref': '4294967296', port: '5' },
    { state: '3', 'ring-ref': '9', port: '0' },
    { state: '3', 'ring-ref': '9', port: '131072' },
    { state: '3', 'ring-ref': '9', port: '0x10' },
    { state: '3', 'ring-ref': '9'.repeat(4000), port: '5' },
    { state: 'three', 'ring-ref': '9', port: '5' },
    { state: '5', 'ring-ref': '9', port: '5' }, // closing
  ];
  for (const front of bad) {
    const f = backendFixture(front);
    await assert.rejects(f.backend.connect(D, { timeoutMs: 5000 }), ChannelHandshakeError, JSON.stringify(front).slice(0, 80));
    assert.deepEqual(f.maps, []);
    assert.equal(f.xs.watchCount, 0, 'the watch goes with the refusal');
    assert.equal(f.xs.values.get(`${B}/state`), '1', 'never Connected');
  }
  assert.deepEqual(parseFrontendOffer({ state: '3', ringRef: '8', port: '131071' }, D), { ringRef: 8, port: 131071 });
  assert.equal(parseFrontendOffer({ state: '1' }, D), undefined, 'still Initialising: wait');
  assert.equal(parseFrontendOffer({ state: '2', ringRef: 'junk' }, D), undefined, 'InitWait: values not read yet');
});

test('a frontend that never offers its ring: connect gives up after its bound; one that goes away fails at once', async (t) => {
  // The wait's timer does not hold the process open (unref): this keeps the test's alive.
  const alive = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(alive));
  const f = backendFixture();
  await assert.rejects(
    f.backend.connect(D, { timeoutMs: 30 }),
    (e: Error) => e instanceof ChannelHandshakeError && /within 30 ms/.test(e.message),
  );
  assert.equal(f.xs.watchCount, 0);
  const g = backendFixture();
  const connecting = g.backend.connect(D, { timeoutMs: 60_000 });
  await tick();
  g.xs.rm(F);
  await assert.rejects(connecting, /is gone/);
});

test('a domain without console device 1 (an older agent started it) is NoChannelDevice; so is a backend of another type', async () => {
  const f = backendFixture();
  f.xs.values.delete(`${B}/type`);
  await assert.rejects(f.backend.connect(D), NoChannelDevice);
  f.xs.values.set(`${B}/type`, 'ioemu');
  await assert.rejects(f.backend.connect(D), NoChannelDevice);
  assert.equal(await f.backend.hasDevice(D), false);
  const none = new ChannelBackend(memoryXs({ [`${B}/type`]: 'krata-channel' }), fakeEvtchn(), undefined);
  await assert.rejects(none.connect(D), /needs \/dev\/xen\/gntdev/);
});

test('a failing bind leaves nothing mapped; a failing state write leaves nothing bound', async () => {
  const f = backendFixture({ state: '3', 'ring-ref': '9', port: '5' });
  f.ev.bindInterdomain = () => {
    throw new Error('EINVAL');
  };
  await assert.rejects(f.backend.connect(D), /EINVAL/);
  assert.deepEqual(f.maps, ['map 7:9', 'unmap 7:9']);
  const g = backendFixture({ state: '3', 'ring-ref': '9', port: '5' });
  g.xs.write = async () => {
    throw new Error('EACCES');
  };
  await assert.rejects(g.backend.connect(D), /EACCES/);
  assert.deepEqual(g.maps, ['map 7:9', 'unmap 7:9']);
  assert.ok(g.ev.log.includes('unbind 40'));
});

test('a reader that closes the transport while reading: the unmapped ring is never touched again', async () => {
  const page = Buffer.alloc(RING_BYTES);
  const real = new ConsoleRing(page);
  let unmapped = false;
  // As the real page after munmap: any access is a fault (SIGSEGV in the agent).
  const ring = new Proxy(real, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        if (unmapped) throw new Error(`ring.${String(prop)} after unmap`);
        return Reflect.apply(v, target, args);
      };
    },
  });
  const ev = fakeEvtchn();
  const t = new ChannelRingTransport(7, ring, { unmap: () => void (unmapped = true) }, ev, 40);
  t.onData(() => t.close()); // the channel closes on a protocol violation, inside delivery
  guest(page).write(Buffer.alloc(3000, 0x41)); // more than one read's worth stays in the ring
  await tick();
  assert.doesNotThrow(() => t.service());
  assert.equal(t.isClosed, true);
  assert.equal(unmapped, true);
});

test('a frontend that starts closing (the guest shutting down) is answered with backend state Closed', async () => {
  const f = backendFixture({ state: '4', 'ring-ref': '12', port: '3' });
  const t = await f.backend.connect(D, { timeoutMs: 1000 });
  let closed = false;
  t.onClose(() => (closed = true));
  f.xs.set(`${F}/state`, '5');
  for (let i = 0; i < 10 && f.xs.values.get(`${B}/state`) !== '6'; i++) await tick();
  assert.ok(closed, 'the transport closes');
  assert.equal(f.xs.values.get(`${B}/state`), '6', "Linux's frontend waits for this before the guest powers off");
});

test('discard: a guest that goes on writing is drained at a console budget, thrown away, input dropped; close releases once', async () => {
  const h = transport();
  const got: Buffer[] = [];
  h.t.onData((d) => got.push(d));
  await tick();
  let closes = 0;
  h.t.onClose(() => closes++);
  h.t.discard();
  h.t.write(Buffer.from('dropped'));
  assert.equal(h.t.pendingInput, 0);
  assert.equal(h.g.read().length, 0, 'nothing reaches the guest');
  // The guest writes far more than the console's 256 KiB burst: each ring's worth is taken and dropped.
  let written = 0;
  const chunk = Buffer.alloc(OUT_SIZE, 0x41);
  let t = 0;
  while (written < 1024 * 1024) {
    if (new ConsoleRing(h.page).outputPending() === 0) {
      h.g.write(chunk);
      written += chunk.length;
      h.t.service();
    } else h.advance((t += 10)); // the budget refills (1 MiB/s): a timer resumes draining
  }
  assert.deepEqual(got, [], 'nothing delivered');
  assert.ok(t >= 700, `1 MiB at 1 MiB/s past a 256 KiB burst takes ~750 ms of budget, took ${t} ms`);
  assert.equal(closes, 0, 'not closed: the ring is still served');
  assert.equal(h.unmapped, 0);
  h.t.close();
  h.t.close();
  assert.equal(h.unmapped, 1);
  assert.equal(h.ev.log.filter((l) => l.startsWith('unbind')).length, 1);
  assert.equal(closes, 1);
});
