// guest-init's side of the guest channel (contracts/guest-channel/PROTOCOL.md) in a plain Linux
// process: `guest-init channel --stdio` serves the channel on its stdin/stdout, with this process's
// environment, identity and working directory as the defaults. The frames are encoded and decoded
// by test/doubles/guest-channel-peer.ts, independently of node-agent/channel/, so the two sides check each other.
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { alive, ChannelPeer, INITIAL_WINDOW, T, u32 } from '../../test/doubles/guest-channel-peer.js';

const crate = resolve(dirname(fileURLToPath(import.meta.url)), '../../../guest-init');
const init = join(crate, 'target/debug/guest-init');
const work = realpathSync(mkdtempSync(join(tmpdir(), 'krata-channel-')));

/** `guest-init channel --stdio` with the host's end on its stdin/stdout. */
class Guest extends ChannelPeer {
  private readonly child: ChildProcessWithoutNullStreams;
  stderr = '';

  constructor(env: NodeJS.ProcessEnv = process.env) {
    const child = spawn(init, ['channel', '--stdio'], { cwd: work, env, stdio: ['pipe', 'pipe', 'pipe'] });
    super(
      (d) => child.stdin.write(d),
      () => `stderr: ${this.stderr}`,
    );
    this.child = child;
    child.stdout.on('data', (d: Buffer) => this.data(d));
    child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    child.on('close', () => this.close());
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((r) => (this.closed ? r() : this.child.on('close', () => r())));
    this.child.stdin.end();
    await closed;
  }
}

let guest: Guest;

before(async () => {
  execFileSync('/usr/bin/cargo', ['build', '--offline', '--quiet'], {
    cwd: crate,
    env: { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  guest = new Guest({ ...process.env, KRATA_INHERITED: 'from-the-main-process' });
  await guest.handshake();
});

after(async () => {
  await guest.stop();
  rmSync(work, { recursive: true, force: true });
});

test('handshake: HELLO first, the highest common version, 0 when there is none, a new HELLO kills the sessions', async () => {
  const g = new Guest();
  try {
    const hello = await g.next('HELLO');
    assert.deepEqual([hello.type, hello.stream], [T.HELLO, 0]);
    const h = JSON.parse(hello.payload.toString());
    assert.deepEqual([h.role, h.min, h.max], ['guest', 1, 2]);
    assert.match(h.software, /^krata-guest-init \d+\.\d+\.\d+$/);

    g.json(T.HELLO, 0, { role: 'host', min: 3, max: 4, software: 'future' });
    const refused = JSON.parse((await g.next('HELLO_ACK')).payload.toString());
    assert.equal(refused.version, 0);
    assert.match(refused.error, /1\.\.2.*3\.\.4/);
    // Not up: this EXEC must be ignored, so the next frame is the second HELLO's answer.
    g.json(T.EXEC, 99, { argv: ['true'], tty: false, stdin: false });
    g.json(T.HELLO, 0, { role: 'host', min: 1, max: 4, software: 'test' });
    const ack = await g.next('HELLO_ACK');
    // Version 2, but --stdio never offers a bulk ring: no BULK_OFFER follows (the queue check below).
    assert.deepEqual([ack.type, JSON.parse(ack.payload.toString()).version], [T.HELLO_ACK, 2]);

    const s = g.exec({ argv: ['sleep', '100'] });
    const pid = await g.until(() => s.started, 'STARTED');
    assert.ok(alive(pid));
    g.json(T.HELLO, 0, { role: 'host', min: 1, max: 1, software: 'restarted' });
    await g.until(() => (alive(pid) ? undefined : true), 'the old session killed by the reset');
    const again = await g.next('HELLO_ACK');
    assert.equal(JSON.parse(again.payload.toString()).version, 1);
    assert.equal(s.exit, undefined, 'the old conversation gets no EXIT');
    assert.equal(g.queue.length, 0, 'nothing for the ignored EXEC');
  } finally {
    await g.stop();
  }
});

test('exit codes: true is 0, sh -c "exit 7" is 7, a missing program is 127 with an error', async () => {
  const t = guest.exec({ argv: ['true'] });
  assert.deepEqual(await t.ended(), { exitCode: 0 });
  assert.ok(t.started! > 0, 'STARTED came first');
  assert.deepEqual(t.types.slice(0, 1), [T.STARTED]);

  const seven = guest.exec({ argv: ['sh', '-c', 'exit 7'] });
  assert.deepEqual(await seven.ended(), { exitCode: 7 });

  const missing = guest.exec({ argv: ['no-such-program-here'] });
  const e = await missing.ended();
  assert.equal(e.exitCode, 127);
  assert.match(e.error!, /no-such-program-here.*not found in PATH/);
  assert.equal(missing.started, undefined, 'no STARTED for a process that never ran');

  const plain = join(work, 'not-executable');
  writeFileSync(plain, 'data', { mode: 0o644 });
  const notExec = guest.exec({ argv: [plain] });
  const n = await notExec.ended();
  assert.equal(n.exitCode, 126);
  assert.equal(n.error, `execve ${plain}: Permission denied (os error 13)`);
});

test('1 MiB through stdin to cat and back, within the windows: output stops at the credit until WINDOW', async () => {
  const data = randomBytes(1 << 20);
  const s = guest.exec({ argv: ['cat'], stdin: true });
  s.returnCredit = false;
  const writing = s.write(data, true);
  // No credit returned: cat blocks once the window is used, so it stops reading, and the guest
  // stops crediting stdin.
  await guest.until(() => (s.bytes() === INITIAL_WINDOW && s.stdinWindow === 0 ? true : undefined), 'stdout at the credit, stdin held');
  assert.ok(s.stdinSent < data.length, `backpressure reached stdin: ${s.stdinSent} of ${data.length} sent`);
  assert.equal(s.bytes(), INITIAL_WINDOW);
  s.returnCredit = true;
  s.grant(T.STDOUT, INITIAL_WINDOW);
  await writing;
  assert.deepEqual(await s.ended(), { exitCode: 0 });
  const out = Buffer.concat(s.out[T.STDOUT]);
  assert.equal(out.length, data.length);
  assert.equal(createHash('sha256').update(out).digest('hex'), createHash('sha256').update(data).digest('hex'));
  assert.ok(s.fin[T.STDOUT] && s.fin[T.STDERR], 'both outputs reached EOF before EXIT');
});

test('EXIT waits for output to end, but not for what a process left behind holding it', async () => {
  // The subshell keeps stdout open after sh exits: EXIT comes once it has been quiet for 2 s.
  const s = guest.exec({ argv: ['sh', '-c', '(sleep 6; echo late) & echo early; exit 1'] });
  assert.deepEqual(await s.ended(), { exitCode: 1 });
  assert.equal(s.text(), 'early\n');
  assert.equal(s.fin[T.STDOUT], false, 'stdout never reached EOF');
});

test('stderr is separate from stdout', async () => {
  const s = guest.exec({ argv: ['sh', '-c', 'echo to-out; echo to-err >&2; exit 2'] });
  assert.deepEqual(await s.ended(), { exitCode: 2 });
  assert.equal(s.text(T.STDOUT), 'to-out\n');
  assert.equal(s.text(T.STDERR), 'to-err\n');
});

test('tty: stty size shows rows and cols, RESIZE reaches an interactive shell', async () => {
  // `-t` without `-i`: the pty is still stdin, the host just sends nothing.
  const size = guest.exec({ argv: ['stty', 'size'], tty: true, rows: 33, cols: 101 });
  assert.deepEqual(await size.ended(), { exitCode: 0 });
  assert.equal(size.text().trim(), '33 101');
  assert.equal(size.bytes(T.STDERR), 0, 'no STDERR frames on a tty');

  const sh = guest.exec({ argv: ['sh'], tty: true, stdin: true, rows: 24, cols: 80, env: ['PS1=$ '] });
  await sh.write(Buffer.from('tty -s && echo on-a-tty; stty size\n'));
  await guest.until(() => (/on-a-tty\r?\n24 80/.test(sh.text()) ? true : undefined), 'the first stty size');
  const rc = Buffer.alloc(4);
  rc.writeUInt16LE(50, 0);
  rc.writeUInt16LE(132, 2);
  guest.send(T.RESIZE, sh.id, rc);
  await sh.write(Buffer.from('stty size\n'));
  await guest.until(() => (/50 132/.test(sh.text()) ? true : undefined), 'the size after RESIZE');
  await sh.write(Buffer.from('exit 3\n'));
  assert.deepEqual(await sh.ended(), { exitCode: 3 });
});

test('SIGNAL 15 ends sleep with {"signal":15}; CLOSE kills the process group', async () => {
  const s = guest.exec({ argv: ['sleep', '100'] });
  await guest.until(() => s.started, 'STARTED');
  guest.send(T.SIGNAL, s.id, u32(15));
  assert.deepEqual(await s.ended(), { signal: 15 });

  // The shell's child is in its group too: CLOSE kills both.
  const c = guest.exec({ argv: ['sh', '-c', 'sleep 100 & echo $!; wait'] });
  const pid = await guest.until(() => c.started, 'STARTED');
  const child = Number(await guest.until(() => (c.text().includes('\n') ? c.text().trim() : undefined), 'the child pid'));
  guest.send(T.CLOSE, c.id);
  await guest.until(() => (alive(pid) || alive(child) ? undefined : true), 'both processes gone');
});

test("env and cwd overrides are seen by the process; the defaults are the main process's; user resolves", async () => {
  const s = guest.exec({ argv: ['sh', '-c', 'echo "$K|$KRATA_INHERITED|$(pwd)"'], env: ['K=V=W'], cwd: '/tmp' });
  assert.deepEqual(await s.ended(), { exitCode: 0 });
  assert.equal(s.text(), 'V=W|from-the-main-process|/tmp\n');

  const d = guest.exec({ argv: ['pwd'] });
  await d.ended();
  assert.equal(d.text(), `${work}\n`, 'the default working directory');

  const o = guest.exec({ argv: ['sh', '-c', 'echo $KRATA_INHERITED'], env: ['KRATA_INHERITED=over'] });
  await o.ended();
  assert.equal(o.text(), 'over\n');

  if (process.getuid?.() === 0) {
    const u = guest.exec({ argv: ['id', '-u'], user: '65534:65534', cwd: '/' });
    assert.deepEqual(await u.ended(), { exitCode: 0 });
    assert.equal(u.text(), '65534\n');
  }
  const bad = guest.exec({ argv: ['true'], cwd: '/no/such/dir' });
  const e = await bad.ended();
  assert.deepEqual([e.exitCode, e.error], [126, 'chdir /no/such/dir: No such file or directory (os error 2)']);
});

test('METRICS_REQUEST is answered with plausible figures', async () => {
  guest.send(T.METRICS_REQUEST, 9000);
  const f = await guest.next('METRICS');
  assert.deepEqual([f.type, f.stream], [T.METRICS, 9000]);
  const m = JSON.parse(f.payload.toString());
  assert.ok(m.memoryTotalBytes > 0 && m.memoryAvailableBytes > 0 && m.memoryFreeBytes > 0, JSON.stringify(m));
  assert.ok(m.memoryAvailableBytes <= m.memoryTotalBytes && m.memoryFreeBytes <= m.memoryTotalBytes);
  assert.ok(m.processes >= 1 && m.runningProcesses >= 1 && m.runningProcesses <= m.processes);
  assert.ok(m.load1 >= 0 && m.load5 >= 0 && m.load15 >= 0 && m.uptimeSeconds > 0);
});
