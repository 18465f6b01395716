import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, FrameType } from '../../contracts/guest-channel/frames.js';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import { RecordingSink, scriptedChannel, ScriptedGuest, transportPair } from '../../test/doubles/scripted-guest.js';
import { ChannelUnavailable, guestChannelStats, openGuestChannel, type HostGuestChannel } from './index.js';

test('the host says HELLO on open; the guest acknowledges and the channel is up', async () => {
  const { guest, channel } = await scriptedChannel({ software: 'guest-init 9' });
  assert.equal(guest.received[0]!.type, FrameType.HELLO);
  assert.deepEqual(guest.received[0]!.json, { role: 'host', min: 1, max: 2, software: 'test-agent 0.0.0' });
  assert.deepEqual(channel.state(), { phase: 'up', version: 2, guestSoftware: 'guest-init 9', transport: 'console' });
  await channel.ready(10);
  assert.equal(channel.stats.protocolErrors, 0);
  assert.ok(channel.stats.framesIn >= 1 && channel.stats.framesOut >= 1 && channel.stats.bytesIn > 0 && channel.stats.bytesOut > 0);
});

test("a guest HELLO (the host's was lost before guest-init listened) is answered with HELLO_ACK and brings the channel up", async () => {
  const pair = transportPair();
  const received: Buffer[] = [];
  pair.guest.onData((d) => received.push(d));
  const channel = openGuestChannel(pair.host, { software: 'agent' });
  await pair.settle();
  pair.guest.write(encodeFrame(FrameType.HELLO, 0, { role: 'guest', min: 1, max: 3, software: 'newer-init' }));
  await pair.settle();
  assert.deepEqual(channel.state(), { phase: 'up', version: 2, guestSoftware: 'newer-init', transport: 'console' });
  const all = Buffer.concat(received);
  assert.ok(all.includes(encodeFrame(FrameType.HELLO_ACK, 0, { version: 2, software: 'agent' })), 'the highest version both speak');
});

test('a guest with no common version: incompatible, both ranges in the reason; exec and ready say so', async () => {
  const before = guestChannelStats.incompatible;
  const { channel } = await scriptedChannel({ versions: { min: 3, max: 4 } });
  const st = channel.state();
  assert.equal(st.phase, 'incompatible');
  assert.match(st.phase === 'incompatible' ? st.reason : '', /1\.\.2.*3\.\.4/);
  await assert.rejects(channel.ready(10), (e: unknown) => e instanceof ChannelUnavailable && e.state === 'incompatible');
  assert.throws(
    () => channel.exec({ argv: ['true'], tty: false, stdin: false }, new RecordingSink()),
    (e: unknown) => e instanceof ChannelUnavailable && /no common control channel version/.test(e.message),
  );
  assert.ok(guestChannelStats.incompatible > before);
});

test('a guest HELLO with no common version gets a refusal and leaves the channel incompatible, naming both ranges', async () => {
  const pair = transportPair();
  const guest = new ScriptedGuest(pair.guest, { versions: null });
  const channel = openGuestChannel(pair.host, { software: 'agent' });
  guest.hello({ min: 4, max: 7 });
  await pair.settle();
  const st = channel.state();
  assert.equal(st.phase, 'incompatible');
  const reason = st.phase === 'incompatible' ? st.reason : '';
  assert.match(reason, /4\.\.7/);
  assert.match(reason, /agent\) 1\.\.2/);
  assert.equal(channel.stats.protocolErrors, 0);
});

test('garbage, an echoed host HELLO and half a frame before the guest HELLO are skipped, split anywhere', async () => {
  for (const size of [1, 3, 7, 64]) {
    const pair = transportPair({ chunk: size });
    const channel = openGuestChannel(pair.host, { software: 'agent' });
    pair.guest.write(Buffer.from('\r\nWelcome\r\nKC'));
    pair.guest.write(encodeFrame(FrameType.HELLO, 0, { role: 'host', min: 1, max: 1, software: 'agent' })); // echo
    pair.guest.write(encodeFrame(FrameType.STDOUT, 5, Buffer.from('left over')).subarray(3));
    pair.guest.write(encodeFrame(FrameType.HELLO, 0, { role: 'guest', min: 1, max: 1, software: 'g' }));
    await pair.settle();
    assert.equal(channel.state().phase, 'up', `chunks of ${size}`);
    assert.equal(channel.stats.protocolErrors, 0);
  }
});

test('a guest that never answers: ready() times out with a message that says what to do; exec refuses', async () => {
  const clock = new FakeClock();
  const { channel } = await scriptedChannel({ versions: null }, {}, clock);
  assert.equal(channel.state().phase, 'connecting');
  assert.throws(
    () => channel.exec({ argv: ['true'], tty: false, stdin: false }, new RecordingSink()),
    (e: unknown) => e instanceof ChannelUnavailable && e.state === 'connecting' && /booting/.test(e.message),
  );
  const ready = channel.ready(5000);
  clock.advance(4999);
  let settled = false;
  void ready.catch(() => (settled = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, false);
  clock.advance(1);
  await assert.rejects(ready, (e: unknown) => {
    assert.ok(e instanceof ChannelUnavailable);
    assert.match(e.message, /did not come up within 5 s/);
    assert.match(e.message, /predates the channel/);
    return true;
  });
});

test('ready() waiting when the guest comes up resolves, and its timer is cancelled', async () => {
  const clock = new FakeClock();
  const pair = transportPair();
  const guest = new ScriptedGuest(pair.guest, { versions: null });
  const channel = openGuestChannel(pair.host, { software: 'agent', clock });
  const ready = channel.ready(1000);
  assert.equal(clock.pending, 1);
  guest.hello();
  await pair.settle();
  await ready;
  assert.equal(clock.pending, 0);
});

test('a guest HELLO once up resets: pending execs end with an error, pending metrics reject, then it goes on', async () => {
  const resets = guestChannelStats.resets;
  const { pair, guest, channel } = await scriptedChannel({ metrics: 'never' });
  const sink = new RecordingSink();
  channel.exec({ argv: ['sleep'], tty: false, stdin: false }, sink);
  const metrics = assert.rejects(channel.metrics(60000), (e: unknown) => e instanceof ChannelUnavailable && /restarted/.test(e.message));
  await pair.settle();
  assert.equal(sink.pid, 100);
  guest.hello();
  await pair.settle();
  assert.deepEqual(sink.result, { exitCode: 255, error: "the guest's init restarted the control channel" });
  await metrics;
  assert.equal(channel.state().phase, 'up');
  assert.equal(guestChannelStats.resets, resets + 1);
  assert.equal(channel.stats.protocolErrors, 0);
  const again = new RecordingSink();
  const s = channel.exec({ argv: ['exit', '3'], tty: false, stdin: false }, again);
  assert.equal(s.id, 3, 'stream ids (1: the exec, 2: metrics) are not reused after a reset');
  assert.deepEqual(await again.waitExit(), { exitCode: 3 });
  assert.equal(sink.exits, 1);
});

test('close() ends the channel for good and closes the transport', async () => {
  const { pair, channel } = await scriptedChannel();
  const sink = new RecordingSink();
  channel.exec({ argv: ['sleep'], tty: false, stdin: false }, sink);
  channel.close('the Guest was deleted');
  assert.deepEqual(channel.state(), { phase: 'closed', reason: 'the Guest was deleted' });
  assert.equal(sink.result?.exitCode, 255);
  assert.ok(pair.host.closed);
  assert.equal(channel.stats.protocolErrors, 0);
  await assert.rejects(channel.metrics(10), (e: unknown) => e instanceof ChannelUnavailable && /restart the Guest/.test(e.message));
  assert.deepEqual((channel as HostGuestChannel).memory(), {
    decoderBytes: 0,
    outboxBytes: 0,
    outboxFrames: 0,
    stdinQueued: 0,
    sessions: 0,
    pendingMetrics: 0,
  });
});

test("adopting a running guest: the tail of the old conversation is skipped and the guest's HELLO_ACK brings it up", async () => {
  const pair = transportPair({ chunk: 5 });
  const channel = openGuestChannel(pair.host, { software: 'agent' });
  pair.guest.write(encodeFrame(FrameType.STDOUT, 12, Buffer.alloc(300, 0x4b)).subarray(100));
  pair.guest.write(encodeFrame(FrameType.EXIT, 12, { exitCode: 0 }));
  pair.guest.write(encodeFrame(FrameType.HELLO_ACK, 0, { version: 1, software: 'running-init' }));
  await pair.settle();
  assert.deepEqual(channel.state(), { phase: 'up', version: 1, guestSoftware: 'running-init', transport: 'console' });
  assert.equal(channel.stats.protocolErrors, 0);
});
