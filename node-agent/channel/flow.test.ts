import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameType, INITIAL_WINDOW, parseWindow } from '../../contracts/guest-channel/frames.js';
import { RecordingSink, scriptedChannel } from '../../test/doubles/scripted-guest.js';
import type { ExecRequest } from './index.js';

const req = (argv: string[]): ExecRequest => ({ argv, tty: false, stdin: false });

test("a stalled sink stops its own session's credit while another session keeps flowing", async () => {
  const { pair, guest, channel } = await scriptedChannel();
  const stalled = new RecordingSink();
  stalled.accept = false;
  const flowing = new RecordingSink();
  const a = channel.exec(req(['yes', String(1024 * 1024)]), stalled);
  channel.exec(req(['yes', String(1024 * 1024)]), flowing);
  assert.deepEqual(await flowing.waitExit(), { exitCode: 0 });
  await pair.settle();
  assert.equal(flowing.stdoutBytes, 1024 * 1024);
  assert.equal(stalled.stdoutBytes, INITIAL_WINDOW, 'the stalled session got exactly its window');
  assert.equal(stalled.exits, 0);
  const credited = guest.received
    .filter((f) => f.type === FrameType.WINDOW && f.stream === a.id)
    .reduce((n, f) => n + parseWindow(f.payload)!.increment, 0);
  assert.equal(credited, 0, 'no credit went back for the stalled session');

  stalled.accept = true;
  a.resumeOutput();
  assert.deepEqual(await stalled.waitExit(), { exitCode: 0 });
  assert.equal(stalled.stdoutBytes, 1024 * 1024);
  assert.equal(channel.stats.protocolErrors, 0);
});

test('credit comes back at once when the sink takes the bytes, and per type', async () => {
  const { pair, guest, channel } = await scriptedChannel();
  const sink = new RecordingSink();
  const s = channel.exec(req(['yes', '5000']), sink);
  await sink.waitExit();
  await pair.settle();
  const credited = guest.received
    .filter((f) => f.type === FrameType.WINDOW && f.stream === s.id)
    .map((f) => parseWindow(f.payload)!)
    .reduce((n, w) => (assert.equal(w.dataType, FrameType.STDOUT), n + w.increment), 0);
  // Credit for the output the session took before its EXIT (after EXIT the stream is done).
  assert.ok(credited > 0 && credited <= 5000, `credited ${credited}`);
});

test('a sink that backs up then catches up: credit held meanwhile is returned by resumeOutput', async () => {
  const { pair, channel } = await scriptedChannel({ outputChunk: 1000 });
  const sink = new RecordingSink();
  let calls = 0;
  sink.stdout = (d: Buffer) => {
    sink.out.push(Buffer.from(d));
    return ++calls !== 3; // backs up once, on its third chunk
  };
  const s = channel.exec(req(['yes', String(INITIAL_WINDOW * 3)]), sink);
  await pair.settle();
  assert.equal(sink.stdoutBytes, INITIAL_WINDOW + 2000, 'after backing up, only the credit already returned is used');
  s.resumeOutput();
  await sink.waitExit();
  assert.equal(sink.stdoutBytes, INITIAL_WINDOW * 3);
});

test("output past the guest's window closes the channel (the guest ignores flow control)", async () => {
  const { pair, channel } = await scriptedChannel({ ignoreWindows: true });
  const sink = new RecordingSink();
  sink.accept = false;
  channel.exec(req(['yes', String(INITIAL_WINDOW + 5000)]), sink);
  await pair.settle();
  const st = channel.state();
  assert.equal(st.phase, 'closed');
  assert.match(st.phase === 'closed' ? st.reason : '', /exceed its window/);
  // Whole 2036-byte frames within the window reached the sink; the one that crossed it did not.
  assert.equal(sink.stdoutBytes, Math.floor(INITIAL_WINDOW / 2036) * 2036);
  assert.equal(sink.result?.exitCode, 255);
  assert.equal(channel.stats.protocolErrors, 1);
});

test('with a transport that takes 64 bytes at a time nothing is lost, and its queue never exceeds one frame over', async () => {
  const { pair, channel } = await scriptedChannel({}, { limit: 64, chunk: 61 });
  const sinks = [new RecordingSink(), new RecordingSink()];
  const sessions = sinks.map((s) => channel.exec({ argv: ['cat'], tty: false, stdin: true }, s));
  const inputs = [Buffer.alloc(300000, 0x41), Buffer.alloc(200000, 0x42)];
  sessions.forEach((s, i) => {
    s.writeStdin(inputs[i]!);
    s.endStdin();
  });
  await Promise.all(sinks.map((s) => s.waitExit()));
  sinks.forEach((s, i) => assert.ok(Buffer.concat(s.out).equals(inputs[i]!)));
  assert.ok(pair.host.maxQueued <= 64 + 32768 + 12, `queue reached ${pair.host.maxQueued}`);
});
