// The agent's end of the guest channel (node-agent/channel/, openGuestChannel) against guest-init's
// end (`guest-init channel --stdio`), both for real, over a pipe pair: what runs over console device
// 1 in a guest, without Xen. The two ends were written apart from the protocol page; this checks they agree.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openGuestChannel, type ChannelTransport, type ExecRequest, type ExecResult, type GuestChannel } from '../channel/index.js';

const crate = resolve(dirname(fileURLToPath(import.meta.url)), '../../../guest-init');
const init = join(crate, 'target/debug/guest-init');
const work = realpathSync(mkdtempSync(join(tmpdir(), 'krata-interop-')));

/** guest-init's stdin/stdout as a ChannelTransport. */
function stdioTransport(child: ChildProcessWithoutNullStreams): ChannelTransport {
  return {
    onData: (cb) => child.stdout.on('data', cb),
    write: (d) => child.stdin.write(d),
    onDrain: (cb) => {
      child.stdin.on('drain', cb);
      return () => child.stdin.off('drain', cb);
    },
    onClose: (cb) => child.once('close', () => cb()),
    close: () => child.stdin.end(),
  };
}

let child: ChildProcessWithoutNullStreams;
let channel: GuestChannel;

before(async () => {
  execFileSync('/usr/bin/cargo', ['build', '--offline', '--quiet'], {
    cwd: crate,
    env: { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  child = spawn(init, ['channel', '--stdio'], { cwd: work, env: { ...process.env, KRATA_MAIN: 'main-env' }, stdio: 'pipe' });
  channel = openGuestChannel(stdioTransport(child), { software: 'krata-node-agent interop-test' });
  await channel.ready(10_000);
});

after(async () => {
  channel.close('test over');
  if (child.exitCode === null) await new Promise((r) => child.once('close', r));
  rmSync(work, { recursive: true, force: true });
});

/** Runs one exec; collects its output, feeding `stdin` (then its end) when given. */
function run(req: Partial<ExecRequest> & { argv: string[] }, stdin?: Buffer, stallFirstMs = 0) {
  return new Promise<{ stdout: Buffer; stderr: Buffer; result: ExecResult; pid?: number }>((resolve) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let pid: number | undefined;
    let stalled = stallFirstMs > 0;
    const session = channel.exec(
      { tty: false, stdin: stdin !== undefined, ...req },
      {
        stdout: (d) => {
          out.push(d);
          if (!stalled) return true;
          // Backed up once: no credit goes back until resumeOutput.
          stalled = false;
          setTimeout(() => session.resumeOutput(), stallFirstMs);
          return false;
        },
        stderr: (d) => (err.push(d), true),
        started: (p) => (pid = p),
        exit: (result) => resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err), result, pid }),
      },
    );
    if (stdin === undefined) return;
    let offset = 0;
    const pump = () => {
      while (offset < stdin.length) {
        const chunk = stdin.subarray(offset, offset + 16384);
        offset += chunk.length;
        if (!session.writeStdin(chunk)) return;
      }
      off();
      session.endStdin();
    };
    const off = session.onStdinDrain(pump);
    pump();
  });
}

test('the channel is up on version 2 with guest-init named, on the console (--stdio offers no bulk ring)', () => {
  const s = channel.state();
  assert.equal(s.phase, 'up');
  assert.ok(s.phase === 'up' && s.version === 2 && /krata-guest-init/.test(s.guestSoftware), JSON.stringify(s));
  assert.ok(s.phase === 'up' && s.transport === 'console' && s.bulkRefused === undefined, JSON.stringify(s));
});

test('exit codes: true, exit 7, a missing program (127), a signal (128+15)', async () => {
  assert.deepEqual((await run({ argv: ['true'] })).result, { exitCode: 0 });
  assert.deepEqual((await run({ argv: ['sh', '-c', 'exit 7'] })).result, { exitCode: 7 });
  const missing = await run({ argv: ['/no/such/program'] });
  assert.equal(missing.result.exitCode, 127);
  assert.ok('error' in missing.result && /no\/such\/program/.test(missing.result.error), JSON.stringify(missing.result));
  const killed = await run({ argv: ['sh', '-c', 'kill -TERM $$'] });
  assert.deepEqual(killed.result, { exitCode: 143, signal: 15 });
});

test('stdout and stderr apart; env, cwd over the defaults', async () => {
  const r = await run({ argv: ['sh', '-c', 'echo out $KRATA_MAIN $EXTRA $(pwd); echo err >&2'], env: ['EXTRA=extra'], cwd: '/' });
  assert.equal(r.stdout.toString(), 'out main-env extra /\n');
  assert.equal(r.stderr.toString(), 'err\n');
});

test('4 MiB through stdin and back, with the reader stalled a while: the same bytes', async () => {
  const data = randomBytes(4 * 1024 * 1024);
  const r = await run({ argv: ['cat'] }, data, 300);
  assert.deepEqual(r.result, { exitCode: 0 });
  assert.equal(r.stdout.length, data.length);
  assert.equal(createHash('sha256').update(r.stdout).digest('hex'), createHash('sha256').update(data).digest('hex'));
});

test('a tty session gets its size, and a resize reaches it', async () => {
  const out: Buffer[] = [];
  const result = await new Promise<ExecResult>((resolve) => {
    const s = channel.exec(
      { argv: ['sh', '-c', 'stty size; read line; stty size'], tty: true, stdin: true, rows: 33, cols: 99 },
      { stdout: (d) => (out.push(d), true), stderr: () => true, exit: resolve },
    );
    const wait = setInterval(() => {
      if (!Buffer.concat(out).toString().includes('33 99')) return;
      clearInterval(wait);
      s.resize(44, 120);
      s.writeStdin(Buffer.from('go\n'));
    }, 20);
  });
  assert.deepEqual(result, { exitCode: 0 });
  const text = Buffer.concat(out).toString().replace(/\r/g, '');
  assert.match(text, /^33 99$/m);
  assert.match(text, /^44 120$/m);
});

test('a signal reaches the process group; two sessions at once stay apart', async () => {
  const sleeper = new Promise<ExecResult>((resolve) => {
    const s = channel.exec(
      { argv: ['sleep', '100'], tty: false, stdin: false },
      { stdout: () => true, stderr: () => true, started: () => s.signal(9), exit: resolve },
    );
  });
  const [a, b] = await Promise.all([run({ argv: ['sh', '-c', 'echo a'] }), run({ argv: ['sh', '-c', 'echo b'] })]);
  assert.equal(a.stdout.toString() + b.stdout.toString(), 'a\nb\n');
  assert.deepEqual(await sleeper, { exitCode: 137, signal: 9 });
});

test("the guest's own figures", async () => {
  const m = await channel.metrics(5_000);
  assert.ok(m.memoryTotalBytes > 0 && m.memoryAvailableBytes <= m.memoryTotalBytes, JSON.stringify(m));
  assert.ok(m.processes >= 1 && m.uptimeSeconds > 0, JSON.stringify(m));
});
