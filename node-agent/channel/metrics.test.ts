import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameType } from '../../contracts/guest-channel/frames.js';
import { FakeClock } from '../../test/doubles/fake-clock.js';
import { SAMPLE_METRICS, scriptedChannel } from '../../test/doubles/scripted-guest.js';
import { ChannelUnavailable, MAX_PENDING_METRICS } from './index.js';

test('metrics() asks the guest on a new stream and resolves with its figures', async () => {
  const { guest, channel } = await scriptedChannel({ metrics: { ...SAMPLE_METRICS, extra: 'ignored' } });
  assert.deepEqual(await channel.metrics(1000), SAMPLE_METRICS);
  const req = guest.received.find((f) => f.type === FrameType.METRICS_REQUEST)!;
  assert.equal(req.stream, 1);
  assert.equal(req.payload.length, 0);
});

test('metrics() times out on the clock; a late answer is dropped, not an error', async () => {
  const clock = new FakeClock();
  const { pair, guest, channel } = await scriptedChannel({ metrics: 'never' }, {}, clock);
  const m = assert.rejects(channel.metrics(2000), (e: unknown) => {
    assert.ok(e instanceof ChannelUnavailable);
    assert.match(e.message, /did not answer a metrics request within 2 s/);
    return true;
  });
  await pair.settle();
  clock.advance(2000);
  await m;
  guest.send(FrameType.METRICS, 1, SAMPLE_METRICS);
  await pair.settle();
  assert.equal(channel.state().phase, 'up');
  assert.equal(channel.memory().pendingMetrics, 0);
});

test(`at most ${MAX_PENDING_METRICS} metrics requests wait at once`, async () => {
  const clock = new FakeClock();
  const { pair, channel } = await scriptedChannel({ metrics: 'never' }, {}, clock);
  const waiting = Array.from({ length: MAX_PENDING_METRICS }, () => channel.metrics(1000).catch((e: unknown) => e));
  await assert.rejects(channel.metrics(1000), (e: unknown) => e instanceof ChannelUnavailable && /not answered/.test(e.message));
  await pair.settle();
  clock.advance(1000);
  for (const e of await Promise.all(waiting)) assert.ok(e instanceof ChannelUnavailable);
  assert.equal(channel.memory().pendingMetrics, 0);
});

test('metrics() when the channel is not up rejects at once', async () => {
  const { channel } = await scriptedChannel({ versions: null });
  await assert.rejects(channel.metrics(1000), (e: unknown) => e instanceof ChannelUnavailable && e.state === 'connecting');
});

for (const [name, bad] of [
  ['a negative figure', { ...SAMPLE_METRICS, memoryFreeBytes: -1 }],
  ['an infinite load (1e400 in JSON)', 'inf'],
  ['a missing figure', { ...SAMPLE_METRICS, processes: undefined }],
  ['a fractional byte count', { ...SAMPLE_METRICS, memoryTotalBytes: 1.5 }],
  ['an absurd figure', { ...SAMPLE_METRICS, load1: 1e12 }],
  ['a string', { ...SAMPLE_METRICS, uptimeSeconds: '12' }],
] as const) {
  test(`METRICS with ${name} is a protocol error`, async () => {
    const { pair, guest, channel } = await scriptedChannel({ metrics: 'never' });
    const m = assert.rejects(channel.metrics(60000), ChannelUnavailable);
    await pair.settle();
    const body =
      bad === 'inf'
        ? Buffer.from(JSON.stringify(SAMPLE_METRICS).replace('"load1":0.25', '"load1":1e400'))
        : Buffer.from(JSON.stringify(bad));
    guest.send(FrameType.METRICS, 1, body);
    await pair.settle();
    await m;
    const st = channel.state();
    assert.equal(st.phase, 'closed');
    assert.match(st.phase === 'closed' ? st.reason : '', /METRICS on stream 1/);
    assert.equal(channel.stats.protocolErrors, 1);
  });
}
