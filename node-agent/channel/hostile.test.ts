import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, FrameType, HEADER_SIZE, MAX_PAYLOAD, windowPayload } from '../../contracts/guest-channel/frames.js';
import { RecordingSink, SAMPLE_METRICS, ScriptedGuest, scriptedChannel, transportPair } from '../../test/doubles/scripted-guest.js';
import { PendingTransport } from '../runtime/pending-transport.js';
import { ChannelUnavailable, guestChannelStats, openGuestChannel, type ExecRequest } from './index.js';
import type { ChannelTransport } from './types.js';

const sleep: ExecRequest = { argv: ['sleep'], tty: false, stdin: false };

function header(type: number, flags: number, stream: number, length: number, magic = 'KC'): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.write(magic, 0, 'latin1');
  h[2] = type;
  h[3] = flags;
  h.writeUInt32LE(stream, 4);
  h.writeUInt32LE(length, 8);
  return h;
}

const json = (o: unknown) => Buffer.from(JSON.stringify(o));

/** What the guest sends once a session (stream 1) runs, and what the closing reason must say. */
const cases: { name: string; bytes: Buffer; reason: RegExp }[] = [
  { name: 'a length over MAX_PAYLOAD', bytes: header(FrameType.STDOUT, 0, 1, MAX_PAYLOAD + 1), reason: /over MAX_PAYLOAD/ },
  { name: 'an unknown type', bytes: header(0x7e, 0, 1, 0), reason: /unknown frame type 0x7e/ },
  { name: 'bad magic after the handshake', bytes: header(FrameType.STDOUT, 0, 1, 0, 'KD'), reason: /bad magic/ },
  { name: 'a flag bit other than FIN', bytes: header(FrameType.STDOUT, 0x80, 1, 0), reason: /other than FIN/ },
  { name: 'an EXIT that is not JSON', bytes: encodeFrame(FrameType.EXIT, 1, Buffer.from('{exit')), reason: /not one JSON object/ },
  { name: 'an EXIT without its fields', bytes: encodeFrame(FrameType.EXIT, 1, { code: 1 }), reason: /EXIT on stream 1 without/ },
  { name: 'an EXIT code out of range', bytes: encodeFrame(FrameType.EXIT, 1, { exitCode: 256 }), reason: /EXIT/ },
  { name: 'a STARTED without a pid', bytes: encodeFrame(FrameType.STARTED, 1, { pid: 'x' }), reason: /without a pid/ },
  { name: 'a frame for a stream never opened', bytes: encodeFrame(FrameType.STDOUT, 99, Buffer.from('x')), reason: /never opened/ },
  { name: 'a session frame on stream 0', bytes: encodeFrame(FrameType.EXIT, 0, { exitCode: 0 }), reason: /never opened/ },
  { name: 'a type only the host sends', bytes: encodeFrame(FrameType.EXEC, 7, { argv: ['sh'] }), reason: /only the host sends/ },
  { name: 'a WINDOW for stdout', bytes: encodeFrame(FrameType.WINDOW, 1, windowPayload(FrameType.STDOUT, 5)), reason: /never receives/ },
  {
    name: 'a WINDOW past the window',
    bytes: encodeFrame(FrameType.WINDOW, 1, windowPayload(FrameType.STDIN, 1)),
    reason: /past its window/,
  },
  { name: 'a short WINDOW', bytes: encodeFrame(FrameType.WINDOW, 1, Buffer.alloc(4)), reason: /malformed WINDOW/ },
  {
    name: 'data after FIN',
    bytes: Buffer.concat([encodeFrame(FrameType.STDOUT, 1, Buffer.alloc(0), 1), encodeFrame(FrameType.STDOUT, 1, Buffer.from('x'))]),
    reason: /after its FIN/,
  },
  { name: 'a HELLO_ACK with a version not spoken', bytes: encodeFrame(FrameType.HELLO_ACK, 0, { version: 9 }), reason: /version 9/ },
  { name: 'a malformed HELLO once up', bytes: encodeFrame(FrameType.HELLO, 0, { role: 'guest', min: 3, max: 1 }), reason: /HELLO/ },
  { name: 'METRICS on an exec stream', bytes: encodeFrame(FrameType.METRICS, 1, SAMPLE_METRICS), reason: /exec stream/ },
];

for (const c of cases) {
  test(`hostile: ${c.name} closes the channel for good, counted, ending every session`, async () => {
    const before = guestChannelStats.protocolErrors;
    const { pair, guest, channel } = await scriptedChannel();
    const sink = new RecordingSink();
    channel.exec(sleep, sink);
    await pair.settle();
    guest.sendRaw(c.bytes);
    await pair.settle();
    const st = channel.state();
    assert.equal(st.phase, 'closed');
    assert.match(st.phase === 'closed' ? st.reason : '', /^protocol error: /);
    assert.match(st.phase === 'closed' ? st.reason : '', c.reason);
    assert.equal(channel.stats.protocolErrors, 1);
    assert.equal(guestChannelStats.protocolErrors, before + 1);
    assert.equal(sink.exits, 1);
    assert.equal(sink.result?.exitCode, 255);
    assert.match((sink.result as { error: string }).error, /protocol error/);
    assert.ok(pair.host.closed, 'the transport is closed');
    assert.equal(channel.memory().decoderBytes, 0);
    assert.throws(
      () => channel.exec(sleep, new RecordingSink()),
      (e: unknown) => e instanceof ChannelUnavailable && e.state === 'closed',
    );
  });
}

test('a frame cut short when the transport closes ends the channel and its sessions, not counted as an error', async () => {
  const before = guestChannelStats.protocolErrors;
  const { pair, guest, channel } = await scriptedChannel();
  const sink = new RecordingSink();
  channel.exec(sleep, sink);
  await pair.settle();
  guest.sendRaw(encodeFrame(FrameType.STDOUT, 1, Buffer.from('half of this')).subarray(0, 15));
  await pair.settle();
  assert.equal(channel.state().phase, 'up');
  assert.equal(channel.memory().decoderBytes, 15);
  pair.guest.close();
  await pair.settle();
  const st = channel.state();
  assert.equal(st.phase, 'closed');
  assert.match(st.phase === 'closed' ? st.reason : '', /middle of a frame/);
  assert.equal(sink.result?.exitCode, 255);
  assert.equal(channel.stats.protocolErrors, 0);
  assert.equal(guestChannelStats.protocolErrors, before);
  assert.equal(channel.memory().decoderBytes, 0);
});

test("a sink that throws on the guest's output does not throw out of the transport: the channel closes, counted", async () => {
  const { pair, channel } = await scriptedChannel();
  const sink = new RecordingSink();
  sink.stdout = () => {
    throw new Error('boom');
  };
  channel.exec({ argv: ['yes', '10'], tty: false, stdin: false }, sink);
  await pair.settle();
  const st = channel.state();
  assert.equal(st.phase, 'closed');
  assert.match(st.phase === 'closed' ? st.reason : '', /boom/);
  assert.equal(channel.stats.protocolErrors, 1);
});

test('a flood of tiny frames while the guest reads nothing: the host keeps owed credit as counts, its queues stay bounded', async () => {
  const { pair, guest, channel } = await scriptedChannel();
  const sink = new RecordingSink();
  const s = channel.exec(sleep, sink);
  await pair.settle();
  pair.guest.pauseDelivery(); // the guest stops draining its input ring
  const one = encodeFrame(FrameType.STDOUT, s.id, Buffer.from('x'));
  for (let round = 0; round < 20; round++) {
    guest.sendRaw(Buffer.concat(Array.from({ length: 1000 }, () => one)));
    // Empty data frames cost nothing either.
    guest.sendRaw(Buffer.concat(Array.from({ length: 100 }, () => encodeFrame(FrameType.STDOUT, s.id))));
    await pair.settle();
    const mem = channel.memory();
    assert.ok(mem.outboxFrames <= 2, `outbox frames: ${mem.outboxFrames}`);
    assert.ok(mem.outboxBytes <= 64, `outbox bytes: ${mem.outboxBytes}`);
    assert.ok(mem.decoderBytes <= HEADER_SIZE + MAX_PAYLOAD);
    assert.ok(pair.host.queued <= 4096 + 64, `transport queue: ${pair.host.queued}`);
  }
  assert.equal(sink.stdoutBytes, 20000);
  assert.equal(channel.state().phase, 'up');
  pair.guest.resumeDelivery();
  await pair.settle();
  assert.equal(channel.memory().outboxFrames, 0);
});

test('a flood of guest HELLOs while the guest reads nothing leaves one answer queued', async () => {
  const { pair, guest, channel } = await scriptedChannel();
  pair.guest.pauseDelivery();
  const hello = encodeFrame(FrameType.HELLO, 0, { role: 'guest', min: 1, max: 1, software: 'x' });
  for (let round = 0; round < 10; round++) {
    guest.sendRaw(Buffer.concat(Array.from({ length: 500 }, () => hello)));
    await pair.settle();
    assert.ok(channel.memory().outboxFrames <= 1);
    assert.ok(pair.host.queued <= 4096 + 100, `transport queue: ${pair.host.queued}`);
  }
  assert.equal(channel.state().phase, 'up');
});

test('a flood of late answers for ended streams is dropped without growth', async () => {
  const { pair, guest, channel } = await scriptedChannel();
  const sink = new RecordingSink();
  channel.exec({ argv: ['true'], tty: false, stdin: false }, sink);
  await sink.waitExit();
  const late = encodeFrame(FrameType.STDOUT, 1, Buffer.alloc(1000));
  for (let i = 0; i < 50; i++) guest.sendRaw(Buffer.concat(Array.from({ length: 100 }, () => late)));
  await pair.settle();
  assert.equal(channel.state().phase, 'up');
  assert.deepEqual(channel.memory(), { decoderBytes: 0, outboxBytes: 0, outboxFrames: 0, stdinQueued: 0, sessions: 0, pendingMetrics: 0 });
  assert.equal(sink.stdoutBytes, 0);
});

test('before the handshake, garbage and even malformed frames are skipped, not counted', async () => {
  const { pair, guest, channel } = await scriptedChannel({ versions: null });
  guest.sendRaw(header(0x7e, 0xff, 1, 0xffffffff));
  guest.sendRaw(encodeFrame(FrameType.EXIT, 3, { exitCode: 1 }));
  guest.sendRaw(json({ noise: true }));
  await pair.settle();
  assert.equal(channel.state().phase, 'connecting');
  assert.equal(channel.stats.protocolErrors, 0);
  assert.ok(channel.memory().decoderBytes <= HEADER_SIZE + MAX_PAYLOAD);
  guest.hello();
  await pair.settle();
  assert.equal(channel.state().phase, 'up');
});

test('a protocol error discards a ring transport (the guest may go on writing) rather than closing it; its owner closes it', async () => {
  const pair = transportPair();
  const calls: string[] = [];
  // The xen transport's shape: one that can drain and throw away what the guest still writes.
  const ring: ChannelTransport = {
    onData: (cb) => pair.host.onData(cb),
    write: (d) => pair.host.write(d),
    onDrain: (cb) => pair.host.onDrain(cb),
    onClose: (cb) => pair.host.onClose(cb),
    close: () => {
      calls.push('close');
      pair.host.close();
    },
    discard: () => void calls.push('discard'),
  };
  const pending = new PendingTransport();
  const guest = new ScriptedGuest(pair.guest, {});
  const channel = openGuestChannel(pending, { software: 'test-agent 0.0.0' });
  pending.attach(ring);
  await pair.settle();
  assert.equal(channel.state().phase, 'up');
  const sink = new RecordingSink();
  channel.exec(sleep, sink);
  await pair.settle();
  guest.sendRaw(header(0x7e, 0, 1, 0));
  await pair.settle();
  const st = channel.state();
  assert.match(st.phase === 'closed' ? st.reason : '', /protocol error: .*unknown frame type 0x7e/);
  assert.equal(sink.result?.exitCode, 255);
  assert.deepEqual(calls, ['discard'], 'drained and discarded, not released');
  // The owner (runtime/guest-channels.ts, when the domain goes) releases the ring, once.
  channel.close('the domain is gone');
  pending.close();
  pending.close();
  assert.deepEqual(calls, ['discard', 'close']);
});
