// kratactl exec (and attach's window size) in-process, against the real API server and the in-memory
// service with fake guest channels: exit codes, stdin, the request's options, terminals, signals, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { startExecAgentApi } from '../harness/agent-api.js';
import { kratactl, startKratactl } from '../harness/kratactl.js';
import { run } from '../../kratactl/cli.js';
import { NO_TTY_WARNING } from '../../kratactl/commands/exec.js';

/** A terminal as kratactl sees one: isTTY, a size, raw mode recorded. */
function terminal(rows = 30, columns = 100) {
  const stdin = Object.assign(new PassThrough(), { isTTY: true, raw: [] as boolean[], setRawMode: (r: boolean) => stdin.raw.push(r) });
  const stdout = Object.assign(new PassThrough(), { isTTY: true, rows, columns });
  return { stdin, stdout };
}

async function eventually(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(pred(), what);
}

test("exec: the remote exit code is kratactl's (0, 7, 127 with the error), output on stdout and stderr", async (t) => {
  const { socket } = await startExecAgentApi(t);
  const ok = await kratactl(['exec', 'web', '--agent', socket, '--', 'echo', 'hello']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'hello\n');
  assert.equal(ok.stderr, '');
  const seven = await kratactl(['exec', 'guest', 'web', '--agent', socket, '--', 'sh', '-c', 'exit 7']);
  assert.equal(seven.code, 7);
  assert.equal(seven.stderr, 'command terminated with exit code 7\n');
  const missing = await kratactl(['exec', 'web', '--agent', socket, '--', 'no-such-program']);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /^error: exec: "no-such-program": executable file not found in \$PATH\n$/);
  const warn = await kratactl(['exec', 'web', '--agent', socket, '--', 'warn', 'careful']);
  assert.equal(warn.code, 3);
  assert.equal(warn.stderr, 'careful\ncommand terminated with exit code 3\n');
  assert.equal(warn.stdout.length, 0);
});

test('exec -i: stdin goes to the command and comes back whole; without -i the command reads nothing', async (t) => {
  const { socket, channel } = await startExecAgentApi(t);
  const data = randomBytes(3 * 1024 * 1024);
  const r = await kratactl(['exec', '-i', 'web', '--agent', socket, '--', 'cat'], {
    stdin: Readable.from([data.subarray(0, 1000), data.subarray(1000)]),
  });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(data), `got ${r.stdoutBytes.length} of ${data.length} bytes`);
  assert.equal(channel().last!.req.stdin, true);
  const none = await kratactl(['exec', 'web', '--agent', socket, '--', 'true'], { stdin: Readable.from([Buffer.from('unread')]) });
  assert.equal(none.code, 0);
  assert.equal(channel().last!.req.stdin, false);
  assert.equal(channel().last!.received.length, 0);
});

test('exec: a stdout that does not keep up pauses the stream, and the guest is held back (bounded)', async (t) => {
  const { socket, channel } = await startExecAgentApi(t);
  let held: (() => void)[] | undefined = [];
  let taken = 0;
  const stdout = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _enc, done) {
      taken += chunk.length;
      if (held) held.push(done);
      else done();
    },
  });
  const stderr = new PassThrough();
  const code = run(['exec', 'web', '--agent', socket, '--', 'yes'], { stdin: Readable.from([]), stdout, stderr, env: {} });
  await eventually(() => channel().last?.outputBlocked === true, 'the guest is held back');
  const session = channel().last!;
  const produced = session.outputBytes;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(session.outputBytes, produced, 'nothing more is produced while stdout is stalled');
  assert.ok(produced < 8 * 1024 * 1024, `produced ${produced} bytes`);
  process.emit('SIGINT', 'SIGINT');
  const release = held;
  held = undefined;
  for (const done of release) done();
  assert.equal(await code, 130);
  assert.equal(taken, session.outputBytes, 'every byte produced reached stdout');
});

test('exec: a stdout that is closed (EPIPE) ends the command, as SIGPIPE would (141)', async (t) => {
  const { socket, channel } = await startExecAgentApi(t);
  const stdout = new Writable({
    write(_chunk: Buffer, _enc, done) {
      done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    },
  });
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await run(['exec', 'web', '--agent', socket, '--', 'yes'], { stdin: Readable.from([]), stdout, stderr, env: {} });
  assert.equal(code, 141);
  assert.equal(err, 'command terminated with exit code 141\n');
  await eventually(() => channel().last!.closed, 'the session is closed');
});

test('exec: -e, -w and -u reach the request; the command keeps its own dashes after --', async (t) => {
  const { socket, channel } = await startExecAgentApi(t);
  const r = await kratactl([
    'exec',
    'web',
    '-n',
    'default',
    '-e',
    'A=1',
    '--env',
    'B=x=y',
    '-w',
    '/srv',
    '-u',
    '1000:1000',
    '--agent',
    socket,
    '--',
    'request',
    '-e',
    '--',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(channel().last!.req, {
    argv: ['request', '-e', '--'],
    env: ['A=1', 'B=x=y'],
    cwd: '/srv',
    user: '1000:1000',
    tty: false,
    stdin: false,
  });
});

test('exec -it on a terminal: raw mode (put back), the window size at start and on resize', async (t) => {
  const { socket, channel } = await startExecAgentApi(t);
  const { stdin, stdout } = terminal(30, 100);
  const p = startKratactl(['exec', '-it', 'web', '--agent', socket, '--', 'cat'], { stdin, stdout });
  await eventually(() => channel().last !== undefined && stdin.raw.length === 1, 'the session runs, the terminal raw');
  const session = channel().last!;
  assert.deepEqual([session.req.tty, session.req.rows, session.req.cols], [true, 30, 100]);
  stdout.rows = 50;
  stdout.columns = 132;
  stdout.emit('resize');
  await eventually(() => session.resizes.length === 1, 'the resize is sent');
  assert.deepEqual(session.resizes, [[50, 132]]);
  stdin.write('ls\r');
  await eventually(() => p.stdout === 'ls\r', 'typed input is echoed by cat');
  stdin.end();
  assert.equal(await p.code, 0, p.stderr);
  assert.deepEqual(stdin.raw, [true, false], 'raw mode on, then off');
});

test('exec -t without a terminal warns as kubectl does and goes on without one; -t without -i has none', async (t) => {
  const { socket, channel } = await startExecAgentApi(t);
  const r = await kratactl(['exec', '-it', 'web', '--agent', socket, '--', 'true']);
  assert.equal(r.code, 0);
  assert.equal(r.stderr, `${NO_TTY_WARNING}\n`);
  assert.equal(channel().last!.req.tty, false);
  const { stdin, stdout } = terminal();
  const quiet = await kratactl(['exec', '-t', 'web', '--agent', socket, '--', 'true'], { stdin, stdout });
  assert.equal(quiet.code, 0);
  assert.equal(quiet.stderr, '');
  assert.equal(channel().last!.req.tty, false);
  assert.deepEqual(stdin.raw, []);
});

test('exec forwards SIGINT and SIGTERM to the remote process group; its death by signal is 128+N', async (t) => {
  const { socket, channel } = await startExecAgentApi(t);
  const p = startKratactl(['exec', 'web', '--agent', socket, '--', 'sleep']);
  await eventually(() => channel().last !== undefined, 'the session runs');
  await new Promise((r) => setTimeout(r, 20));
  process.emit('SIGINT', 'SIGINT');
  assert.equal(await p.code, 130, p.stderr);
  assert.equal(p.stderr, 'command terminated with exit code 130\n');
  assert.deepEqual(channel().last!.signals, [2]);
  assert.equal(process.listenerCount('SIGINT'), 0, 'the handlers are removed');

  // A command that ignores the signal: the third one gives up and closes the session.
  channel().programs.set('stubborn', () => {});
  const q = startKratactl(['exec', 'web', '--agent', socket, '--', 'stubborn']);
  await eventually(() => channel().last?.req.argv[0] === 'stubborn', 'the session runs');
  await new Promise((r) => setTimeout(r, 20));
  for (let i = 0; i < 3; i++) process.emit('SIGTERM', 'SIGTERM');
  assert.equal(await q.code, 143);
  await eventually(() => channel().last!.closed, 'the session is closed');
  assert.deepEqual(channel().last!.signals, [15, 15], 'the first two were forwarded before the close');
  assert.match(q.stderr, /exec ended by SIGTERM/);
});

test("exec errors: no guest, no running domain, channel not up (exit 1 with the agent's message); usage errors (2)", async (t) => {
  const { socket, service } = await startExecAgentApi(t);
  const nope = await kratactl(['exec', 'nope', '--agent', socket, '--', 'true']);
  assert.equal(nope.code, 1);
  assert.equal(nope.stderr, 'error: guest "nope" not found in namespace "default"\n');
  const idle = await kratactl(['exec', 'idle', '--agent', socket, '--', 'true']);
  assert.equal(idle.code, 1);
  assert.match(idle.stderr, /^error: guest default\/idle has no running domain \(phase Pending\)/);
  service.channel('default', 'web')!.setState({ phase: 'closed', reason: 'guest-init never answered' });
  const down = await kratactl(['exec', 'web', '--agent', socket, '--', 'true']);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /^error: the channel is closed: guest-init never answered\n$/);
  const gone = await kratactl(['exec', 'web', '--agent', join(socket, '..', 'none.sock'), '--', 'true']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /is krata-node-agent running\?/);

  for (const [args, why] of [
    [['exec', 'web', 'true'], /exec needs -- before the command/],
    [['exec', 'web', '--'], /exec needs a COMMAND after --/],
    [['exec', '--', 'true'], /exec takes one guest NAME before --/],
    [['exec', 'a', 'b', '--', 'true'], /exec takes one guest NAME before --/],
    [['exec', 'web', '-e', 'NOVALUE', '--', 'true'], /-e "NOVALUE": expected KEY=VALUE/],
    [['exec', 'web', '-w', 'rel', '--', 'true'], /-w "rel": the working directory must be an absolute path/],
    [['exec', 'Web', '--', 'true'], /not a valid guest name/],
    [['exec', 'web', '--bogus', '--', 'true'], /unknown flag: --bogus/],
  ] as const) {
    const r = await kratactl(['exec', '--agent', socket, ...args.slice(1)]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, why, args.join(' '));
  }
  const help = await kratactl(['exec', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: kratactl exec \[guest\] NAME \[options\] -- COMMAND \[ARG\.\.\.\]/);
});

test('attach on a terminal sets the console size at start and on resize; a channel that is not up is ignored quietly', async (t) => {
  const { socket, service, channel } = await startExecAgentApi(t);
  const { stdin, stdout } = terminal(40, 120);
  const p = startKratactl(['attach', 'web', '--agent', socket], { stdin, stdout });
  await eventually(() => channel().consoleSizes.length === 1, 'the size is set at start');
  assert.deepEqual(channel().consoleSizes, [[40, 120]]);
  stdout.rows = 45;
  stdout.columns = 160;
  stdout.emit('resize');
  await eventually(() => channel().consoleSizes.length === 2, 'and on resize');
  assert.deepEqual(channel().consoleSizes[1], [45, 160]);
  stdin.write(Buffer.from([0x1d]));
  assert.equal(await p.code, 0);
  assert.equal(stdout.listenerCount('resize'), 0, 'no longer followed after detaching');

  service.noChannel.add('default/web');
  const t2 = terminal();
  const q = startKratactl(['attach', 'web', '--agent', socket], { stdin: t2.stdin, stdout: t2.stdout });
  await eventually(() => q.stderr.includes('press Ctrl+] to detach'), 'attached');
  await new Promise((r) => setTimeout(r, 50));
  t2.stdin.write(Buffer.from([0x1d]));
  assert.equal(await q.code, 0);
  assert.doesNotMatch(q.stderr, /error|409/);
});
