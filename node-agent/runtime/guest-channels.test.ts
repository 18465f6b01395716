// GuestChannels and PendingTransport without Xen: a domain with the device gets its channel at once and
// the ring behind it later; failures are retried a bounded number of times, then the channel closes; a
// domain without the device has none; a domain dropped while connecting leaves nothing open. The channel
// is a stand-in that records its transport (openGuestChannel is another module's job).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChannelTransport, GuestChannel } from '../channel/types.js';
import { GuestChannels } from './guest-channels.js';
import { PendingTransport } from './pending-transport.js';

class Permanent extends Error {}

/** A ring transport stand-in: records writes, lets the test drain, deliver and close it. */
function fakeRing(log: string[], domid: number, room = Infinity) {
  let reader: ((d: Buffer) => void) | undefined;
  const drains: (() => void)[] = [];
  const closes: (() => void)[] = [];
  const written: Buffer[] = [];
  let queued = 0;
  const t: ChannelTransport = {
    onData: (cb) => void (reader = cb),
    write: (d) => {
      written.push(d);
      queued += d.length;
      return queued < room;
    },
    onDrain: (cb) => (drains.push(cb), () => undefined),
    onClose: (cb) => void closes.push(cb),
    close: () => {
      log.push(`transport ${domid} closed`);
      for (const c of closes.splice(0)) c();
    },
  };
  return {
    t,
    written,
    deliver: (s: string) => reader?.(Buffer.from(s)),
    drain: () => {
      queued = 0;
      for (const d of drains) d();
    },
  };
}

/** The channel stand-in: what it was given, what it heard, whether its transport closed. */
interface Opened {
  transport: ChannelTransport;
  software: string;
  heard: string;
  transportClosed: boolean;
}

function harness(connect: (domid: number, attempt: number) => Promise<ChannelTransport>, devices = new Set([1, 2, 3, 5, 6, 8])) {
  const log: string[] = [];
  const timers: { fn: () => void; ms: number; cancelled: boolean }[] = [];
  const attempts = new Map<number, number>();
  /** Channels in the order they were opened (each test opens one per domain it looks at). */
  const opened: Opened[] = [];
  const channels = new GuestChannels({
    hasDevice: async (domid) => devices.has(domid),
    connect: (domid) => {
      const n = (attempts.get(domid) ?? 0) + 1;
      attempts.set(domid, n);
      return connect(domid, n);
    },
    isPermanent: (e) => e instanceof Permanent,
    open: (transport, opts) => {
      const o: Opened = { transport, software: opts.software, heard: '', transportClosed: false };
      transport.onData((d) => (o.heard += d.toString()));
      transport.onClose(() => (o.transportClosed = true));
      transport.write(Buffer.from('HELLO'));
      opened.push(o);
      return { close: (reason: string) => void log.push(`channel closed: ${reason}`) } as unknown as GuestChannel;
    },
    software: 'krata-node-agent 9.9.9',
    retryMs: 10_000,
    attempts: 3,
    log: (m) => log.push(m),
    setTimer(fn, ms) {
      const t = { fn, ms, cancelled: false };
      timers.push(t);
      return { cancel: () => void (t.cancelled = true) };
    },
  });
  const runTimers = () => {
    for (const t of timers.splice(0)) if (!t.cancelled) t.fn();
  };
  return { channels, log, timers, attempts, opened, runTimers };
}

const settle = () => new Promise<void>((r) => setImmediate(r));

test('the channel exists as soon as the device is known; HELLO waits for the ring, then bytes flow both ways', async () => {
  let land!: (t: ChannelTransport) => void;
  const h = harness(() => new Promise((r) => (land = r)));
  h.channels.ensure(5, true);
  assert.ok(h.channels.get(5), 'created by this agent: the channel is there before ensure() returns');
  h.channels.ensure(5);
  assert.equal(h.attempts.get(5), 1, 'one connect at a time');
  assert.equal(h.opened.at(-1)!.software, 'krata-node-agent 9.9.9');
  const ring = fakeRing(h.log, 5);
  land(ring.t);
  await settle();
  assert.deepEqual(
    ring.written.map((b) => b.toString()),
    ['HELLO'],
    'what the channel wrote before the ring was up goes first',
  );
  ring.deliver('HELLO_ACK');
  assert.equal(h.opened.at(-1)!.heard, 'HELLO_ACK');
  h.channels.ensure(5);
  assert.equal(h.attempts.get(5), 1, 'connected: nothing more to do');
  h.channels.drop(5, 'the domain is gone');
  assert.deepEqual(h.log, ['channel closed: the domain is gone', 'transport 5 closed']);
  assert.equal(h.channels.get(5), undefined);
});

test('an adopted domain is asked whether it has the device; without it there is no channel and nothing is retried', async () => {
  const h = harness(async (domid) => fakeRing([], domid).t);
  h.channels.ensure(4);
  await settle();
  h.channels.ensure(4);
  await settle();
  assert.equal(h.channels.get(4), undefined);
  assert.equal(h.attempts.get(4), undefined, 'no connect for a domain without the device');
  assert.deepEqual(h.log, [], 'an older guest is not an error');
  h.channels.ensure(2);
  await settle();
  assert.ok(h.channels.get(2), 'with the device: a channel');
  assert.equal(h.attempts.get(2), 1);
});

test('a failing connect is logged and retried after the pause, a bounded number of times; then the channel closes', async () => {
  const h = harness(async () => {
    throw new Error('no guest channel ring offered within 60000 ms');
  });
  h.channels.ensure(3, true);
  await settle();
  assert.equal(h.timers.length, 1);
  assert.equal(h.timers[0]!.ms, 10_000);
  h.channels.ensure(3);
  assert.equal(h.attempts.get(3), 1, 'a retry is already scheduled');
  assert.equal(h.opened.at(-1)!.transportClosed, false, 'still connecting');
  h.runTimers();
  await settle();
  h.runTimers();
  await settle();
  assert.equal(h.attempts.get(3), 3);
  assert.equal(h.timers.length, 0, 'no fourth attempt');
  h.channels.ensure(3);
  await settle();
  assert.equal(h.attempts.get(3), 3, 'given up');
  assert.match(h.log.at(-1)!, /domain 3: no guest channel ring offered .*; giving up/);
  assert.match(h.log[0]!, /retrying in 10 s/);
  assert.equal(h.opened.at(-1)!.transportClosed, true, 'the channel learns its transport is gone');
});

test('a device that vanished (permanent failure) closes the channel without retrying', async () => {
  const h = harness(async () => {
    throw new Permanent('no device');
  });
  h.channels.ensure(1, true);
  await settle();
  assert.equal(h.attempts.get(1), 1);
  assert.equal(h.timers.length, 0);
  assert.equal(h.opened.at(-1)!.transportClosed, true);
});

test('a domain dropped while connecting: the transport that lands is closed, no retry runs', async () => {
  let land!: (t: ChannelTransport) => void;
  const h = harness((domid, n) => (n === 1 && domid === 6 ? new Promise((r) => (land = r)) : Promise.reject(new Error('x'))));
  h.channels.ensure(6, true);
  h.channels.drop(6, 'destroyed');
  land(fakeRing(h.log, 6).t);
  await settle();
  assert.deepEqual(h.log, ['channel closed: destroyed', 'transport 6 closed']);
  assert.equal(h.channels.get(6), undefined);
  // A failure pending a retry, then dropped: the retry is cancelled.
  h.channels.ensure(8, true);
  await settle();
  h.channels.dropAll('closing');
  h.runTimers();
  await settle();
  assert.equal(h.attempts.get(8), 1);
});

test('the ring closing (the domain went away) closes the channel; it is not reconnected', async () => {
  const log: string[] = [];
  const ring = fakeRing(log, 2);
  const h = harness(async () => ring.t);
  h.channels.ensure(2, true);
  await settle();
  ring.t.close();
  assert.equal(h.opened.at(-1)!.transportClosed, true);
  h.channels.ensure(2);
  await settle();
  assert.equal(h.attempts.get(2), 1);
});

test('a channel factory that throws is logged; the domain has no channel', async () => {
  const log: string[] = [];
  const channels = new GuestChannels({
    hasDevice: async () => true,
    connect: async () => assert.fail('no connect without a channel'),
    isPermanent: () => false,
    open: () => {
      throw new Error('the guest channel is not implemented yet');
    },
    software: 'x',
    log: (m) => log.push(m),
  });
  channels.ensure(2);
  await settle();
  assert.equal(channels.get(2), undefined);
  assert.deepEqual(log, ['guest channel of domain 2: the guest channel is not implemented yet']);
});

test('PendingTransport: bounded queue before the ring, backpressure passed through after, close both ways', async () => {
  const p = new PendingTransport(10);
  let drains = 0;
  p.onDrain(() => drains++);
  assert.equal(p.write(Buffer.from('12345')), true);
  assert.equal(p.write(Buffer.from('67890')), false, 'at the bound: wait');
  const log: string[] = [];
  const ring = fakeRing(log, 9, 100);
  p.attach(ring.t);
  assert.equal(drains, 1, 'the queue went to the ring: writers go on');
  assert.deepEqual(Buffer.concat(ring.written).toString(), '1234567890');
  assert.equal(p.write(Buffer.alloc(100)), false, "the ring's own backpressure");
  ring.drain();
  assert.equal(drains, 2);
  let closed = 0;
  p.onClose(() => closed++);
  p.close();
  p.close();
  assert.deepEqual(log, ['transport 9 closed']);
  assert.equal(closed, 1);
  assert.equal(p.write(Buffer.from('late')), true, 'dropped after close');
  // Attached after close: the late ring is closed at once.
  const late = fakeRing(log, 10);
  p.attach(late.t);
  assert.deepEqual(log, ['transport 9 closed', 'transport 10 closed']);
  let after = 0;
  p.onClose(() => after++);
  await settle();
  assert.equal(after, 1, 'a listener added after close still hears of it');
});
