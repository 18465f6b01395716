import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { FrameType, INITIAL_WINDOW, MAX_SESSIONS } from '../../contracts/guest-channel/frames.js';
import { RecordingSink, scriptedChannel } from '../../test/doubles/scripted-guest.js';
import { ChannelUnavailable, type ExecRequest } from './index.js';

const req = (argv: string[], more: Partial<ExecRequest> = {}): ExecRequest => ({ argv, tty: false, stdin: false, ...more });

test("exit codes: the guest's code, 128+signal, and the error with 126/127 when it could not start", async () => {
  const { channel } = await scriptedChannel({
    program: (r) =>
      r.argv[0] === 'kill'
        ? { kind: 'signal', signal: 9 }
        : r.argv[0] === 'say'
          ? { kind: 'exit', code: 0, stdout: 'hello\n', stderr: 'warn\n' }
          : r.argv[0] === 'true'
            ? { kind: 'exit', code: 0 }
            : r.argv[0] === 'exit'
              ? { kind: 'exit', code: 7 }
              : { kind: 'fail', error: `${r.argv[0]}: not found`, exitCode: 127 },
  });
  const run = async (argv: string[]) => {
    const sink = new RecordingSink();
    channel.exec(req(argv), sink);
    return { result: await sink.waitExit(), sink };
  };
  assert.deepEqual((await run(['true'])).result, { exitCode: 0 });
  assert.deepEqual((await run(['exit'])).result, { exitCode: 7 });
  assert.deepEqual((await run(['kill'])).result, { exitCode: 137, signal: 9 });
  const missing = await run(['nope']);
  assert.deepEqual(missing.result, { exitCode: 127, error: 'nope: not found' });
  assert.equal(missing.sink.pid, undefined, 'no STARTED when it could not start');
  const say = await run(['say']);
  assert.equal(say.sink.stdoutText, 'hello\n');
  assert.equal(say.sink.stderrText, 'warn\n');
  assert.ok(say.sink.pid! >= 100);
  assert.equal(say.sink.exits, 1);
});

test('the EXEC frame carries the request; stream ids count from 1', async () => {
  const { pair, guest, channel } = await scriptedChannel();
  const a = channel.exec(
    req(['sleep'], { env: ['A=1'], cwd: '/srv', user: '1000:1000', tty: true, stdin: true, rows: 24, cols: 80 }),
    new RecordingSink(),
  );
  const b = channel.exec(req(['sleep']), new RecordingSink());
  assert.deepEqual([a.id, b.id], [1, 2]);
  await pair.settle();
  const execs = guest.received.filter((f) => f.type === FrameType.EXEC);
  assert.deepEqual(
    execs.map((f) => [f.stream, f.json]),
    [
      [1, { argv: ['sleep'], env: ['A=1'], cwd: '/srv', user: '1000:1000', tty: true, stdin: true, rows: 24, cols: 80 }],
      [2, { argv: ['sleep'], tty: false, stdin: false }],
    ],
  );
  assert.throws(() => channel.exec(req([]), new RecordingSink()), RangeError);
  assert.throws(() => channel.exec(req(['x'], { env: ['A='.padEnd(40000, 'x')] }), new RecordingSink()), /over the channel's 32768/);
});

test('two sessions interleaved over frames split into 7-byte chunks each get only their own output', async () => {
  const { channel } = await scriptedChannel(
    {
      program: (r) => ({
        kind: 'print',
        bytes: Number(r.argv[1]),
        fill: r.argv[0]!.charCodeAt(0),
        stream: r.argv[2] === 'err' ? 'stderr' : 'stdout',
      }),
      outputChunk: 100,
    },
    { chunk: 7 },
  );
  const a = new RecordingSink();
  const b = new RecordingSink();
  channel.exec(req(['a', '30000']), a);
  channel.exec(req(['b', '20000', 'err']), b);
  await Promise.all([a.waitExit(), b.waitExit()]);
  assert.equal(a.stdoutBytes, 30000);
  assert.ok(Buffer.concat(a.out).every((c) => c === 0x61));
  assert.equal(
    b.err.reduce((n, x) => n + x.length, 0),
    20000,
  );
  assert.ok(Buffer.concat(b.err).every((c) => c === 0x62));
  assert.equal(b.stdoutBytes, 0);
  assert.equal(channel.stats.protocolErrors, 0);
});

test("stdin goes through and back (1 MiB, checksums match) and never past the guest's window", async () => {
  const { pair, guest, channel } = await scriptedChannel({}, { limit: 1024 });
  const sink = new RecordingSink();
  const s = channel.exec(req(['cat'], { stdin: true }), sink);
  const data = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + (i >> 9)) & 0xff;
  let waits = 0;
  for (let off = 0; off < data.length; off += 16384) {
    if (!s.writeStdin(data.subarray(off, off + 16384))) {
      waits++;
      await new Promise<void>((r) => {
        const off2 = s.onStdinDrain(() => {
          off2();
          r();
        });
      });
    }
  }
  s.endStdin();
  assert.deepEqual(await sink.waitExit(), { exitCode: 0 });
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  assert.equal(sha(Buffer.concat(sink.out)), sha(data));
  assert.ok(waits > 0, 'the writer was asked to wait');
  assert.deepEqual(guest.violations, []);
  assert.ok(pair.host.maxQueued < 1024 + 32768 + 12, `the transport's queue reached ${pair.host.maxQueued}`);
});

test('stdin to a process that does not read stops at the window; the queue is bounded by writeStdin saying wait', async () => {
  const { pair, guest, channel } = await scriptedChannel({ stallStdin: true });
  const s = channel.exec(req(['sleep'], { stdin: true }), new RecordingSink());
  let written = 0;
  while (s.writeStdin(Buffer.alloc(8192, 1))) {
    written += 8192;
    await pair.settle();
    assert.ok(written < 4 * INITIAL_WINDOW, 'writeStdin never said wait');
  }
  await pair.settle();
  assert.equal(guest.stdinOf(s.id), INITIAL_WINDOW);
  assert.deepEqual(guest.violations, []);
  const mem = channel.memory();
  assert.ok(mem.stdinQueued <= 64 * 1024 + 8192, `stdin queued: ${mem.stdinQueued}`);
});

test('resize, signal and close reach the guest; close ends the session once and later frames for it are dropped', async () => {
  const { pair, guest, channel } = await scriptedChannel();
  const sig = new RecordingSink();
  const a = channel.exec(req(['sleep']), sig);
  a.resize(30, 100);
  a.resize(31, 101);
  assert.throws(() => a.resize(0, 80), RangeError);
  assert.throws(() => a.signal(64), RangeError);
  await pair.settle();
  a.signal(15);
  assert.deepEqual(await sig.waitExit(), { exitCode: 143, signal: 15 });
  assert.deepEqual(guest.signals, [{ stream: 1, signal: 15 }]);
  assert.deepEqual(guest.resizes.at(-1), { stream: 1, rows: 31, cols: 101 });

  const closed = new RecordingSink();
  const b = channel.exec(req(['sleep']), closed);
  await pair.settle();
  b.close();
  assert.equal(closed.exits, 1);
  assert.equal(closed.result?.exitCode, 255);
  await pair.settle();
  assert.deepEqual(guest.closedStreams, [b.id]);
  guest.send(FrameType.STDOUT, b.id, Buffer.from('late'));
  guest.send(FrameType.EXIT, b.id, { exitCode: 0 });
  await pair.settle();
  assert.equal(channel.state().phase, 'up');
  assert.equal(closed.exits, 1);
  assert.equal(closed.stdoutBytes, 0);
});

test('a session closed before its EXEC left the host is never sent at all', async () => {
  const { pair, guest, channel } = await scriptedChannel();
  pair.guest.pauseDelivery();
  // Fill the transport so that the next EXEC waits in the host's queue.
  const first = channel.exec(req(['sleep'], { env: ['X='.padEnd(8000, 'x')] }), new RecordingSink());
  const second = channel.exec(req(['sleep']), new RecordingSink());
  second.close();
  pair.guest.resumeDelivery();
  await pair.settle();
  assert.deepEqual(
    guest.received.filter((f) => f.type === FrameType.EXEC || f.type === FrameType.CLOSE).map((f) => [f.type, f.stream]),
    [[FrameType.EXEC, first.id]],
  );
});

test(`at most ${MAX_SESSIONS} sessions: the next is refused before anything is sent, and one ending frees a slot`, async () => {
  const { pair, guest, channel } = await scriptedChannel();
  const sessions = Array.from({ length: MAX_SESSIONS }, () => channel.exec(req(['sleep']), new RecordingSink()));
  assert.throws(
    () => channel.exec(req(['sleep']), new RecordingSink()),
    (e: unknown) => e instanceof ChannelUnavailable && e.state === 'up' && /16 exec sessions/.test(e.message),
  );
  await pair.settle();
  assert.equal(guest.received.filter((f) => f.type === FrameType.EXEC).length, MAX_SESSIONS);
  sessions[0]!.signal(9);
  await pair.settle();
  const next = channel.exec(req(['true']), new RecordingSink());
  assert.equal(next.id, MAX_SESSIONS + 1);
});

test('resizeConsole sends RESIZE on stream 0 when up and drops it otherwise', async () => {
  const { pair, guest, channel } = await scriptedChannel();
  channel.resizeConsole(50, 132);
  await pair.settle();
  assert.deepEqual(guest.resizes, [{ stream: 0, rows: 50, cols: 132 }]);
  const silent = await scriptedChannel({ versions: null });
  silent.channel.resizeConsole(50, 132);
  await silent.pair.settle();
  assert.equal(silent.guest.received.filter((f) => f.type === FrameType.RESIZE).length, 0);
});
