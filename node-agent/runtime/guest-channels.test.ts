// GuestChannels without Xen: connects run in the background, failures are retried a bounded number of
// times, a domain without the device is left alone, and a domain dropped while connecting leaves nothing
// open. The channel itself is a stand-in (openGuestChannel is another module's job).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChannelTransport, GuestChannel } from '../channel/types.js';
import { GuestChannels } from './guest-channels.js';

class Permanent extends Error {}

function fakeTransport(log: string[], domid: number): ChannelTransport {
  return {
    onData: () => undefined,
    write: () => true,
    onDrain: () => () => undefined,
    onClose: () => undefined,
    close: () => void log.push(`transport ${domid} closed`),
  };
}

function harness(connect: (domid: number, attempt: number) => Promise<ChannelTransport>) {
  const log: string[] = [];
  const timers: { fn: () => void; ms: number; cancelled: boolean }[] = [];
  const attempts = new Map<number, number>();
  const opened: { transport: ChannelTransport; software: string }[] = [];
  const channels = new GuestChannels({
    connect: (domid) => {
      const n = (attempts.get(domid) ?? 0) + 1;
      attempts.set(domid, n);
      return connect(domid, n);
    },
    isPermanent: (e) => e instanceof Permanent,
    open: (transport, opts) => {
      opened.push({ transport, software: opts.software });
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

test('ensure() returns at once; the channel appears when the connect lands, opened with the agent as its software', async () => {
  let land!: (t: ChannelTransport) => void;
  const h = harness(() => new Promise((r) => (land = r)));
  h.channels.ensure(5);
  h.channels.ensure(5);
  assert.equal(h.attempts.get(5), 1, 'one connect at a time');
  assert.equal(h.channels.get(5), undefined);
  land(fakeTransport(h.log, 5));
  await settle();
  assert.ok(h.channels.get(5));
  assert.equal(h.opened[0]!.software, 'krata-node-agent 9.9.9');
  h.channels.ensure(5);
  assert.equal(h.attempts.get(5), 1, 'connected: nothing more to do');
  h.channels.drop(5, 'the domain is gone');
  assert.deepEqual(h.log, ['channel closed: the domain is gone', 'transport 5 closed']);
  assert.equal(h.channels.get(5), undefined);
});

test('a failing connect is logged and retried after the pause, a bounded number of times', async () => {
  const h = harness(async () => {
    throw new Error('no guest channel ring offered within 60000 ms');
  });
  h.channels.ensure(3);
  await settle();
  assert.equal(h.timers.length, 1);
  assert.equal(h.timers[0]!.ms, 10_000);
  h.channels.ensure(3);
  assert.equal(h.attempts.get(3), 1, 'a retry is already scheduled');
  h.runTimers();
  await settle();
  h.runTimers();
  await settle();
  assert.equal(h.attempts.get(3), 3);
  assert.equal(h.timers.length, 0, 'no fourth attempt');
  h.channels.ensure(3);
  assert.equal(h.attempts.get(3), 3, 'out of attempts');
  assert.match(h.log.at(-1)!, /domain 3: no guest channel ring offered .*; giving up/);
  assert.match(h.log[0]!, /retrying in 10 s/);
});

test('a domain without the channel device is not retried and has no channel', async () => {
  const h = harness(async () => {
    throw new Permanent('no device');
  });
  h.channels.ensure(4);
  await settle();
  h.channels.ensure(4);
  await settle();
  assert.equal(h.attempts.get(4), 1);
  assert.equal(h.timers.length, 0);
  assert.equal(h.channels.get(4), undefined);
  assert.deepEqual(h.log, [], 'an older guest is not an error');
});

test('a domain dropped while connecting: the transport that lands is closed, no retry runs', async () => {
  let land!: (t: ChannelTransport) => void;
  const h = harness((domid, n) => (n === 1 && domid === 6 ? new Promise((r) => (land = r)) : Promise.reject(new Error('x'))));
  h.channels.ensure(6);
  h.channels.drop(6, 'destroyed');
  land(fakeTransport(h.log, 6));
  await settle();
  assert.deepEqual(h.log, ['transport 6 closed']);
  assert.equal(h.channels.get(6), undefined);
  assert.equal(h.opened.length, 0);
  // A failure pending a retry, then dropped: the retry is cancelled.
  h.channels.ensure(8);
  await settle();
  h.channels.dropAll('closing');
  h.runTimers();
  await settle();
  assert.equal(h.attempts.get(8), 1);
});

test('a channel factory that throws closes the transport and counts as a failed attempt', async () => {
  const log: string[] = [];
  const channels = new GuestChannels({
    connect: async (domid) => fakeTransport(log, domid),
    isPermanent: () => false,
    open: () => {
      throw new Error('the guest channel is not implemented yet');
    },
    software: 'x',
    attempts: 1,
    log: (m) => log.push(m),
  });
  channels.ensure(2);
  await settle();
  assert.equal(channels.get(2), undefined);
  assert.deepEqual(log, ['transport 2 closed', 'guest channel of domain 2: the guest channel is not implemented yet; giving up']);
});
