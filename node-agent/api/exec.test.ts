// The exec upgrade and the console size route, against the real API server, the in-memory service and
// fake guest channels: frames both ways, exit codes, refusals, backpressure, signals, resize, the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { ExecFrame, ExecFrameDecoder, encodeExecFrame, execQueryString, type ExecQuery } from '../../contracts/agent-api/exec.js';
import { FAKE_STDIN_WINDOW } from '../../test/doubles/fake-guest-channel.js';
import { EXEC_OUTPUT_BOUND } from './exec-bridge.js';
import { startExecAgentApi } from '../../test/harness/agent-api.js';

interface Frame {
  type: number;
  payload: Buffer;
}

/** A raw exec client: the upgrade's status and head, then the frames it receives. */
class ExecClient {
  readonly frames: Frame[] = [];
  ended = false;
  private readonly decoder = new ExecFrameDecoder();
  private waiters: (() => void)[] = [];

  constructor(
    readonly socket: Socket,
    readonly status: number,
    readonly head: string,
    readonly body: string,
  ) {}

  listen(): void {
    this.socket.on('data', (d: Buffer) => {
      this.frames.push(...this.decoder.push(d));
      this.wake();
    });
    this.socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    this.socket.resume();
  }

  private wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  send(type: number, payload: Buffer | object = Buffer.alloc(0)): boolean {
    return this.socket.write(encodeExecFrame(type as 1, payload));
  }

  async until(pred: () => boolean, what: string): Promise<void> {
    while (!pred()) {
      if (this.ended) assert.fail(`${what}: the stream ended; frames ${JSON.stringify(this.frames.map((f) => f.type))}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** The EXIT frame's result, once it came (and the agent ended the stream). */
  async exit(): Promise<{ exitCode: number; signal?: number; error?: string }> {
    await this.until(() => this.frames.some((f) => f.type === ExecFrame.exit), 'an EXIT frame');
    const last = this.frames.at(-1)!;
    assert.equal(last.type, ExecFrame.exit, 'EXIT is the last frame');
    while (!this.ended) await new Promise<void>((r) => this.waiters.push(r));
    return JSON.parse(last.payload.toString());
  }

  output(type: number = ExecFrame.stdout): Buffer {
    return Buffer.concat(this.frames.filter((f) => f.type === type).map((f) => f.payload));
  }
}

function openExec(socketPath: string, q: ExecQuery | string, opts: { name?: string; protocol?: string } = {}) {
  const path = `/v1/namespaces/default/guests/${opts.name ?? 'web'}/exec?${typeof q === 'string' ? q : execQueryString(q)}`;
  return new Promise<ExecClient>((resolve, reject) => {
    const socket = connect(socketPath);
    let buf = Buffer.alloc(0);
    socket.on('error', reject);
    socket.on('connect', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: agent\r\nConnection: Upgrade\r\nUpgrade: ${opts.protocol ?? 'krata-exec.v1'}\r\n\r\n`),
    );
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const status = Number(head.split(' ')[1]);
      const rest = buf.subarray(end + 4);
      if (status === 101) {
        socket.off('data', onData);
        socket.pause();
        if (rest.length) socket.unshift(rest);
        return resolve(new ExecClient(socket, status, head, ''));
      }
      socket.off('data', onData);
      const chunks: Buffer[] = [rest];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('end', () => resolve(new ExecClient(socket, status, head, Buffer.concat(chunks).toString())));
    };
    socket.on('data', onData);
  });
}

function call(socketPath: string, method: string, path: string, body?: string) {
  return new Promise<{ status: number; headers: Record<string, unknown>; json: any }>((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function eventually(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(pred(), what);
}

const settle = (ms = 150) => new Promise((r) => setTimeout(r, ms));

test('exec: 101, STARTED, output frames, then EXIT with the exit code as the last frame', async (t) => {
  const { socket: socketPath } = await startExecAgentApi(t);
  const c = await openExec(socketPath, { command: ['echo', 'hello', 'world'] });
  assert.equal(c.status, 101);
  assert.match(c.head, /\r\nupgrade: krata-exec\.v1/i);
  c.listen();
  assert.deepEqual(await c.exit(), { exitCode: 0 });
  assert.equal(c.frames[0]!.type, ExecFrame.started);
  assert.ok(JSON.parse(c.frames[0]!.payload.toString()).pid > 0);
  assert.equal(c.output().toString(), 'hello world\n');

  for (const [command, code] of [
    [['true'], 0],
    [['sh', '-c', 'exit 7'], 7],
    [['false'], 1],
  ] as const) {
    const e = await openExec(socketPath, { command: [...command] });
    e.listen();
    assert.deepEqual(await e.exit(), { exitCode: code }, command.join(' '));
  }
  const missing = await openExec(socketPath, { command: ['no-such-program'] });
  missing.listen();
  const r = await missing.exit();
  assert.equal(r.exitCode, 127);
  assert.match(r.error!, /no-such-program.*not found/);

  const warn = await openExec(socketPath, { command: ['warn', 'careful'] });
  warn.listen();
  assert.equal((await warn.exit()).exitCode, 3);
  assert.equal(warn.output(ExecFrame.stderr).toString(), 'careful\n');
  assert.equal(warn.output(ExecFrame.stdout).length, 0);
});

test('exec: the query becomes the request (env, workingDir, user, tty and its size, stdin)', async (t) => {
  const { socket: socketPath, channel } = await startExecAgentApi(t);
  const q: ExecQuery = {
    command: ['request', 'a b', ''],
    env: ['A=1', 'B=x=y'],
    workingDir: '/srv',
    user: '1000:1000',
    stdin: true,
    tty: true,
    rows: 40,
    cols: 132,
  };
  const c = await openExec(socketPath, q);
  c.listen();
  assert.equal((await c.exit()).exitCode, 0);
  const expected = {
    argv: ['request', 'a b', ''],
    env: ['A=1', 'B=x=y'],
    cwd: '/srv',
    user: '1000:1000',
    tty: true,
    stdin: true,
    rows: 40,
    cols: 132,
  };
  assert.deepEqual(JSON.parse(c.output().toString()), expected);
  assert.deepEqual(channel().last!.req, expected);
  const plain = await openExec(socketPath, { command: ['true'] });
  plain.listen();
  await plain.exit();
  assert.deepEqual(channel().last!.req, { argv: ['true'], tty: false, stdin: false });
});

test('exec refusals are plain HTTP answers: 404, 409 (no domain, no channel, not up), 400 naming the parameter, 426', async (t) => {
  const { socket: socketPath, service } = await startExecAgentApi(t);
  const refused = async (q: ExecQuery | string, opts: { name?: string; protocol?: string } = {}) => {
    const c = await openExec(socketPath, q, opts);
    assert.notEqual(c.status, 101);
    return { status: c.status, message: JSON.parse(c.body).message as string };
  };
  const nope = await refused({ command: ['true'] }, { name: 'nope' });
  assert.equal(nope.status, 404);
  assert.match(nope.message, /guest "nope" not found/);
  const idle = await refused({ command: ['true'] }, { name: 'idle' });
  assert.equal(idle.status, 409);
  assert.match(idle.message, /no running domain \(phase Pending\)/);

  service.noChannel.add('default/web');
  assert.match((await refused({ command: ['true'] })).message, /no control channel/);
  service.noChannel.delete('default/web');
  service.channel('default', 'web')!.setState({ phase: 'connecting' });
  service.channelReadyMs = 50;
  const slow = await refused({ command: ['true'] });
  assert.equal(slow.status, 409);
  assert.match(slow.message, /did not answer the channel handshake/);
  service.channel('default', 'web')!.setState({ phase: 'incompatible', reason: 'the guest speaks versions 2..3, the agent 1..1' });
  const old = await refused({ command: ['true'] });
  assert.equal(old.status, 409);
  assert.match(old.message, /incompatible: the guest speaks versions 2\.\.3/);
  service.channel('default', 'web')!.setState({ phase: 'up', version: 1, guestSoftware: 'x', transport: 'console' });

  for (const [q, param] of [
    ['', /command is required/],
    ['command=', /command: the first one \(the program\) is empty/],
    ['command=ls&env=NOEQUALS', /env: "NOEQUALS" is not NAME=VALUE/],
    ['command=ls&env==x', /env: "=x" is not NAME=VALUE/],
    ['command=ls&rows=0&cols=80', /rows must be a whole number from 1 to 65535, not "0"/],
    ['command=ls&rows=24&cols=65536', /cols must be a whole number from 1 to 65535/],
    ['command=ls&rows=24', /cols is missing/],
    ['command=ls&workingDir=srv', /workingDir must be an absolute path/],
    ['command=ls&user=a%20b', /user must be NAME, UID, NAME:GROUP or UID:GID/],
    ['command=ls&stdin=maybe', /stdin must be true or false/],
    ['command=ls&tty=true&tty=false', /tty appears more than once/],
    ['command=ls%00x', /command: "ls\\u0000x" contains a NUL byte/],
    ['command=ls&shell=bash', /unknown query parameter "shell"/],
  ] as const) {
    const r = await refused(q);
    assert.equal(r.status, 400, q);
    assert.match(r.message, param, q);
  }
  assert.equal(service.channel('default', 'web')!.sessions.length, 0, 'nothing refused reached the guest');

  assert.equal((await refused({ command: ['true'] }, { protocol: 'krata-console.v1' })).status, 400);
  const plain = await call(socketPath, 'GET', '/v1/namespaces/default/guests/web/exec?command=true');
  assert.equal(plain.status, 426);
  assert.equal(plain.headers.upgrade, 'krata-exec.v1');
  assert.match(plain.json.message, /exec needs "Connection: Upgrade" and "Upgrade: krata-exec\.v1"/);
  assert.equal((await call(socketPath, 'POST', '/v1/namespaces/default/guests/web/exec')).status, 405);
});

test('exec: 8 MiB through stdin and back arrive whole (checksum), then stdinEnd ends cat', async (t) => {
  const { socket: socketPath, channel } = await startExecAgentApi(t);
  const c = await openExec(socketPath, { command: ['cat'], stdin: true });
  c.listen();
  const data = randomBytes(8 * 1024 * 1024);
  for (let at = 0; at < data.length; at += 60_000) c.send(ExecFrame.stdin, data.subarray(at, at + 60_000));
  c.send(ExecFrame.stdinEnd);
  assert.deepEqual(await c.exit(), { exitCode: 0 });
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  assert.equal(sha(c.output()), sha(data));
  assert.ok(channel().last!.stdinEnded);
});

test('exec: a client that stops reading holds the guest back; the agent buffers a bounded amount', async (t) => {
  const { socket: socketPath, channel } = await startExecAgentApi(t);
  const c = await openExec(socketPath, { command: ['yes'] });
  // The client reads nothing: the socket stays paused.
  await eventually(() => channel().last?.outputBlocked === true, 'the sink said false');
  const session = channel().last!;
  const held = session.outputBytes;
  await settle(300);
  assert.equal(session.outputBytes, held, 'no output is taken while the client does not read');
  // What the sink took is the agent's bound plus what the kernel's socket buffers hold, not a flood.
  assert.ok(held < EXEC_OUTPUT_BOUND + 4 * 1024 * 1024, `took ${held} bytes`);
  c.listen();
  await eventually(() => session.outputBytes > held + 1024 * 1024, 'output flows again once the client reads (resumeOutput)');
  c.send(ExecFrame.signal, { signal: 15 });
  assert.deepEqual(await c.exit(), { exitCode: 143, signal: 15 });
  assert.deepEqual(session.signals, [15]);
  assert.equal(c.output().length, session.outputBytes, 'every byte the sink took reached the client');
});

test('exec: a channel that ignores the held-back sink is cut past the hard limit, not buffered', async (t) => {
  const { socket: socketPath, channel } = await startExecAgentApi(t);
  const chunk = Buffer.alloc(32 * 1024, 'z');
  // A broken guest side: keeps pushing after the sink said false.
  channel().programs.set('flood', (s) => {
    const more = () => {
      if (s.done) return;
      for (let i = 0; i < 64; i++) s.write('stdout', chunk);
      setImmediate(more);
    };
    more();
  });
  const c = await openExec(socketPath, { command: ['flood'] });
  const closed = new Promise((r) => c.socket.on('close', r));
  // The client reads nothing (its socket stays paused).
  await eventually(() => channel().last?.closed === true, 'the session is closed');
  c.socket.destroy();
  await closed;
  assert.ok(channel().last!.outputBytes < 16 * 1024 * 1024, `took ${channel().last!.outputBytes} bytes`);
});

test('exec: stdin the guest does not read pauses the client, bounded, and then all arrives in order', async (t) => {
  const { socket: socketPath, channel } = await startExecAgentApi(t);
  channel().stallStdin = true;
  const c = await openExec(socketPath, { command: ['cat'], stdin: true });
  c.listen();
  const data = randomBytes(4 * 1024 * 1024);
  let flushed = false;
  for (let at = 0; at < data.length; at += 60_000) c.send(ExecFrame.stdin, data.subarray(at, at + 60_000));
  c.socket.write(Buffer.alloc(0), () => (flushed = true));
  await eventually(() => (channel().last?.queuedStdin ?? 0) >= FAKE_STDIN_WINDOW, 'the stdin window filled');
  await settle(300);
  const session = channel().last!;
  assert.ok(session.queuedStdin <= FAKE_STDIN_WINDOW + 128 * 1024, `queued ${session.queuedStdin} bytes of stdin`);
  assert.equal(flushed, false, "the client's writes are held back, not dropped");
  session.unstall();
  c.send(ExecFrame.stdinEnd);
  assert.deepEqual(await c.exit(), { exitCode: 0 });
  assert.ok(Buffer.concat(session.received).equals(data), 'stdin arrives whole and in order');
  assert.ok(c.output().equals(data));
});

test('exec: resize and signal frames reach the session; the client leaving closes it', async (t) => {
  const { socket: socketPath, channel } = await startExecAgentApi(t);
  const c = await openExec(socketPath, { command: ['sleep'], tty: true, rows: 24, cols: 80 });
  c.listen();
  await c.until(() => c.frames.some((f) => f.type === ExecFrame.started), 'STARTED');
  c.send(ExecFrame.resize, { rows: 50, cols: 120 });
  await eventually(() => channel().last!.resizes.length === 1, 'resize forwarded');
  assert.deepEqual(channel().last!.resizes, [[50, 120]]);
  c.send(ExecFrame.signal, { signal: 2 });
  assert.deepEqual(await c.exit(), { exitCode: 130, signal: 2 });

  const gone = await openExec(socketPath, { command: ['sleep'] });
  gone.listen();
  await gone.until(() => gone.frames.length > 0, 'STARTED');
  const session = channel().last!;
  gone.socket.destroy();
  await eventually(() => session.closed, 'the session is closed when the client goes away');
});

test('exec: a malformed client frame ends the session with an EXIT that says why', async (t) => {
  const { socket: socketPath, channel } = await startExecAgentApi(t);
  const cases: [ExecQuery, Buffer, RegExp][] = [
    [{ command: ['sleep'] }, encodeExecFrame(ExecFrame.stdout, Buffer.from('x')), /frame type 2 is not one a client sends/],
    [{ command: ['sleep'] }, Buffer.from([ExecFrame.stdin, 0xff, 0xff, 0xff, 0x7f]), /over 65536/],
    [{ command: ['sleep'] }, encodeExecFrame(ExecFrame.stdin, Buffer.from('x')), /opened without stdin/],
    [{ command: ['sleep'] }, encodeExecFrame(ExecFrame.resize, { rows: 0, cols: 80 }), /resize is not/],
    [{ command: ['sleep'] }, encodeExecFrame(ExecFrame.signal, { signal: 64 }), /signal is not/],
    [{ command: ['sleep'] }, encodeExecFrame(ExecFrame.signal, Buffer.from('{')), /signal is not/],
  ];
  for (const [q, frame, why] of cases) {
    const c = await openExec(socketPath, q);
    c.listen();
    await c.until(() => c.frames.length > 0, 'STARTED');
    c.socket.write(frame);
    const r = await c.exit();
    assert.equal(r.exitCode, 1);
    assert.match(r.error!, /the client sent a malformed exec frame/);
    assert.match(r.error!, why);
    assert.ok(channel().last!.closed, 'the session is closed');
  }
});

test('exec: a client that left while the channel came up never leaves a session behind', async (t) => {
  const { socket: socketPath, service } = await startExecAgentApi(t);
  const channel = service.channel('default', 'web')!;
  channel.setState({ phase: 'connecting' });
  const socket = connect(socketPath);
  await new Promise((r) => socket.on('connect', r));
  socket.write(
    'GET /v1/namespaces/default/guests/web/exec?command=sleep HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: krata-exec.v1\r\n\r\n',
  );
  await eventually(() => channel.readyCalls.length === 1, 'the agent waits for the channel');
  socket.destroy();
  await settle(50);
  channel.setState({ phase: 'up', version: 1, guestSoftware: 'x', transport: 'console' });
  await eventually(() => channel.sessions.length === 1 && channel.last!.closed, 'the session opened late is closed at once');
});

test('exec: stopping the agent ends a running exec with an EXIT saying so', async (t) => {
  const { socket: socketPath, channel, server } = await startExecAgentApi(t);
  const c = await openExec(socketPath, { command: ['sleep'] });
  c.listen();
  await c.until(() => c.frames.length > 0, 'STARTED');
  await server.close();
  const r = await c.exit();
  assert.match(r.error!, /the node agent is stopping/);
  assert.ok(channel().last!.closed);
});

test('PUT console/size: 204 and the size reaches the channel; 400, 404, 409 otherwise', async (t) => {
  const { socket: socketPath, service, channel } = await startExecAgentApi(t);
  const put = (name: string, body: string) => call(socketPath, 'PUT', `/v1/namespaces/default/guests/${name}/console/size`, body);
  assert.equal((await put('web', '{"rows":40,"cols":120}')).status, 204);
  assert.deepEqual(channel().consoleSizes, [[40, 120]]);
  for (const body of ['{"rows":0,"cols":80}', '{"rows":24}', '{"rows":24,"cols":1.5}', '[]', 'nope']) {
    const r = await put('web', body);
    assert.equal(r.status, 400, body);
  }
  assert.match((await put('web', '{"rows":24,"cols":"80"}')).json.message, /cols must be a whole number from 1 to 65535/);
  assert.equal((await put('nope', '{"rows":24,"cols":80}')).status, 404);
  const idle = await put('idle', '{"rows":24,"cols":80}');
  assert.equal(idle.status, 409);
  assert.match(idle.json.message, /no running domain/);
  channel().setState({ phase: 'connecting' });
  const down = await put('web', '{"rows":24,"cols":80}');
  assert.equal(down.status, 409);
  assert.match(down.json.message, /control channel of guest "web" is not up/);
  assert.deepEqual(channel().consoleSizes, [[40, 120]]);
  service.noChannel.add('default/web');
  assert.equal((await put('web', '{"rows":24,"cols":80}')).status, 409);
});
