// kubectl-krata's websocket streams against a fake krata-api over HTTPS: exec (exit codes, stdin, -t's raw
// terminal and resize frames, signals), attach (typed input, resize messages, Ctrl+] detaching), port-forward
// (two concurrent connections, data both ways) and refused upgrades (403).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { EXEC_PROTOCOL } from '../../contracts/agent-api/exec.js';
import { CONSOLE_PROTOCOL, PORTFORWARD_PROTOCOL } from '../../contracts/agent-api/endpoints.js';
import { FakeKrataApi } from '../doubles/fake-krata-api.js';
import { freePort } from '../free-port.js';
import { plugin, startPlugin, writeKubeconfig } from '../harness/kubectl-krata.js';

/** A terminal as the plugin sees one: isTTY, a size, raw mode recorded. */
function terminal(rows = 30, columns = 100) {
  const stdin = Object.assign(new PassThrough(), { isTTY: true, raw: [] as boolean[], setRawMode: (r: boolean) => stdin.raw.push(r) });
  const stdout = Object.assign(new PassThrough(), { isTTY: true, rows, columns });
  return { stdin, stdout };
}

async function eventually(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(pred(), what);
}

async function setup(t: TestContext) {
  const api = await FakeKrataApi.start(t);
  api.addGuest('team-a', 'web');
  const kc = writeKubeconfig(t, api.url, api.caFile, 'unused');
  return { api, k: ['--kubeconfig', kc.path] };
}

test('exec: exit codes (0, 7, 127 with the error), stdout and stderr, the subprotocol and the token', async (t) => {
  const { api, k } = await setup(t);
  const ok = await plugin(['exec', 'web', ...k, '--', 'echo', 'hello', 'there']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'hello there\n');
  assert.equal(ok.stderr, '');
  assert.equal(api.requests.at(-1)!.protocol, EXEC_PROTOCOL);
  assert.equal(api.execs.at(-1)!.user, 'alice');
  const seven = await plugin(['exec', 'guest/web', ...k, '--', 'sh', '-c', 'exit 7']);
  assert.equal(seven.code, 7);
  assert.equal(seven.stderr, 'command terminated with exit code 7\n');
  const warn = await plugin(['exec', 'web', ...k, '--', 'warn', 'careful']);
  assert.equal(warn.code, 3);
  assert.equal(warn.stderr, 'careful\ncommand terminated with exit code 3\n');
  const missing = await plugin(['exec', 'web', ...k, '--', 'no-such-program']);
  assert.equal(missing.code, 127);
  assert.equal(missing.stderr, 'error: exec: "no-such-program": executable file not found in $PATH\n');
  // The stream ends without EXIT: krata-api's reason is said, and the status is 1.
  const dropped = await plugin(['exec', 'web', ...k, '--', 'drop']);
  assert.equal(dropped.code, 1);
  assert.equal(
    dropped.stderr,
    'error: krata-api ended the exec stream before the process ended (websocket closed with 1011: the node agent went away)\n',
  );
});

test('exec -i: stdin goes through and comes back whole; -e, -w, -u and the command reach the query', async (t) => {
  const { api, k } = await setup(t);
  const data = randomBytes(1024 * 1024);
  const p = startPlugin(['exec', '-i', 'web', ...k, '--', 'cat'], { stdin: Readable.from([data.subarray(0, 1000), data.subarray(1000)]) });
  assert.equal(await p.code, 0, p.stderr);
  assert.ok(p.stdoutBytes.equals(data), `got ${p.stdoutBytes.length} of ${data.length} bytes`);
  assert.equal(api.execs.at(-1)!.query.get('stdin'), 'true');
  const r = await plugin(['exec', 'web', '-e', 'A=1', '--env', 'B=x=y', '-w', '/srv', '-u', '1000:1000', ...k, '--', 'echo', '-e', '--']);
  assert.equal(r.code, 0, r.stderr);
  const q = api.execs.at(-1)!.query;
  assert.deepEqual(q.getAll('command'), ['echo', '-e', '--']);
  assert.deepEqual(q.getAll('env'), ['A=1', 'B=x=y']);
  assert.deepEqual([q.get('workingDir'), q.get('user'), q.get('stdin'), q.get('tty')], ['/srv', '1000:1000', null, null]);
  assert.equal(r.stdout, '-e --\n');
});

test('exec -it on a terminal: raw mode (put back), the size in the query, resize frames on SIGWINCH', async (t) => {
  const { api, k } = await setup(t);
  const { stdin, stdout } = terminal(30, 100);
  const p = startPlugin(['exec', '-it', 'web', ...k, '--', 'cat'], { stdin, stdout });
  await eventually(() => api.execs.length === 1 && stdin.raw.length === 1, 'the session runs, the terminal raw');
  const session = api.execs[0]!;
  assert.deepEqual([session.query.get('tty'), session.query.get('rows'), session.query.get('cols')], ['true', '30', '100']);
  stdout.rows = 50;
  stdout.columns = 132;
  stdout.emit('resize');
  await eventually(() => session.resizes.length === 1, 'the resize frame is sent');
  assert.deepEqual(session.resizes, [{ rows: 50, cols: 132 }]);
  stdin.write('ls\r');
  await p.until(() => p.stdout === 'ls\r', 'typed input is echoed by cat');
  stdin.end();
  assert.equal(await p.code, 0, p.stderr);
  assert.deepEqual(stdin.raw, [true, false], 'raw mode on, then off');
  // -t without a terminal: kubectl's warning, and no terminal.
  const r = await plugin(['exec', '-it', 'web', ...k, '--', 'echo', 'x']);
  assert.equal(r.stderr, 'Unable to use a TTY - input is not a terminal or the right kind of file\n');
  assert.equal(api.execs.at(-1)!.query.get('tty'), null);
});

test('exec passes SIGINT to the remote process group; its death by the signal is 130', async (t) => {
  const { api, k } = await setup(t);
  const p = startPlugin(['exec', 'web', ...k, '--', 'sleep']);
  await eventually(() => api.execs.length === 1, 'the session runs');
  await new Promise((r) => setTimeout(r, 50));
  process.emit('SIGINT', 'SIGINT');
  assert.equal(await p.code, 130, p.stderr);
  assert.deepEqual(api.execs[0]!.signals, [2]);
  assert.equal(p.stderr, 'command terminated with exit code 130\n');
  assert.equal(process.listenerCount('SIGINT'), 0, 'the handlers are removed');
});

test('attach: the console both ways, size as resize messages, a typed line, Ctrl+] detaches', async (t) => {
  const { api, k } = await setup(t);
  const { stdin, stdout } = terminal(24, 80);
  const p = startPlugin(['attach', 'web', ...k], { stdin, stdout });
  await p.until(() => p.stdout === '/ # ' && stdin.raw.length === 1, 'the prompt arrives, the terminal raw');
  const session = api.attaches[0]!;
  assert.equal(api.requests.at(-1)!.protocol, CONSOLE_PROTOCOL);
  assert.deepEqual([session.query.get('rows'), session.query.get('cols')], ['24', '80']);
  await eventually(() => session.resizes.length === 1, 'the size is sent at the start');
  stdout.rows = 40;
  stdout.columns = 120;
  stdout.emit('resize');
  await eventually(() => session.resizes.length === 2, 'and on a resize');
  assert.deepEqual(session.resizes, [
    { rows: 24, cols: 80 },
    { rows: 40, cols: 120 },
  ]);
  stdin.write('uname -a\r');
  await p.until(() => p.stdout === '/ # uname -a\r', 'the typed line is echoed by the console');
  stdin.write(Buffer.from([0x6c, 0x73, 0x1d, 0x78])); // "ls", Ctrl+], "x": what follows Ctrl+] stays here
  assert.equal(await p.code, 0, p.stderr);
  assert.match(p.stderr, /^attached to team-a\/web; press Ctrl\+\] to detach\n[\s\S]*\ndetached from team-a\/web\n$/);
  await eventually(() => session.closed, 'the websocket is closed');
  assert.equal(Buffer.concat(session.input).toString(), 'uname -a\rls');
  assert.deepEqual(stdin.raw, [true, false]);
});

test("a refused upgrade is kubectl's error (403), and nothing is left raw", async (t) => {
  const { api, k } = await setup(t);
  api.forbidden.add('alice guests/exec');
  api.forbidden.add('alice guests/attach');
  const r = await plugin(['exec', 'web', ...k, '--', 'echo']);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^Error from server \(Forbidden\): guests\.subresources\.krata\.dev "web" is forbidden: User "alice" cannot get resource "guests\/exec"/,
  );
  const { stdin, stdout } = terminal();
  const a = await plugin(['attach', 'web', ...k], { stdin, stdout });
  assert.equal(a.code, 1);
  assert.match(a.stderr, /^Error from server \(Forbidden\): .*guests\/attach/);
  assert.deepEqual(stdin.raw, []);
  api.forbidden.clear();
  const gone = await plugin(['attach', 'nope', ...k]);
  assert.equal(gone.stderr, 'Error from server (NotFound): guests.krata.dev "nope" not found\n');
});

test('port-forward: two concurrent connections, each its own websocket, data both ways; stops on SIGINT', async (t) => {
  const { api, k } = await setup(t);
  // The guest's service: a greeting, then what it receives in upper case.
  const guestSide = createServer((s) => {
    s.write(`hello from ${s.remotePort}\n`);
    s.on('data', (d: Buffer) => s.write(d.toString().toUpperCase()));
  });
  await new Promise<void>((r) => guestSide.listen(0, '127.0.0.1', r));
  t.after(() => guestSide.close());
  api.ports.set(8080, (guestSide.address() as { port: number }).port);
  const local = await freePort();
  const p = startPlugin(['port-forward', 'guest/web', `${local}:8080`, ...k]);
  await p.until(() => p.stdout.includes(`Forwarding from 127.0.0.1:${local} -> 8080\n`), 'listening');

  const open = (): Promise<{ s: Socket; got: () => string }> =>
    new Promise((resolve, reject) => {
      const s = connect(local, '127.0.0.1');
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('connect', () => resolve({ s, got: () => got }));
      s.on('error', reject);
    });
  const [a, b] = await Promise.all([open(), open()]);
  await eventually(() => /^hello from \d+\n$/.test(a.got()) && /^hello from \d+\n$/.test(b.got()), 'both greeted');
  assert.notEqual(a.got(), b.got(), 'two connections in the guest');
  a.s.write('first connection');
  b.s.write('second connection');
  const big = randomBytes(256 * 1024).toString('hex');
  a.s.write(big);
  await eventually(() => a.got().endsWith('FIRST CONNECTION' + big.toUpperCase()), 'the first one answered, big data too');
  await eventually(() => b.got().endsWith('SECOND CONNECTION'), 'the second one answered');
  assert.ok(!a.got().includes('SECOND'), 'no crossed streams');
  assert.equal(api.requests.filter((r) => r.path.endsWith('/portforward')).length, 2);
  assert.ok(
    api.requests
      .filter((r) => r.path.endsWith('/portforward'))
      .every((r) => r.protocol === PORTFORWARD_PROTOCOL && r.query.get('port') === '8080'),
  );
  assert.equal(p.stdout.split(`Handling connection for ${local}\n`).length - 1, 2);

  const closed = new Promise((r) => a.s.on('close', r));
  a.s.destroy();
  b.s.destroy();
  await closed;
  process.emit('SIGINT', 'SIGINT');
  assert.equal(await p.code, 0, p.stderr);
  await assert.rejects(open(), /ECONNREFUSED/, 'the listener is closed');
});

test('port-forward: backpressure holds the guest back while the local reader does not read', async (t) => {
  const { api, k } = await setup(t);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const TOTAL = 256 * 1024 * 1024;
  let written = 0;
  const guestSide = createServer((s) => {
    const pump = () => {
      while (written < TOTAL) {
        written += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
    };
    s.on('error', () => {});
    pump();
  });
  await new Promise<void>((r) => guestSide.listen(0, '127.0.0.1', r));
  t.after(() => guestSide.close());
  api.ports.set(9000, (guestSide.address() as { port: number }).port);
  const local = await freePort();
  const p = startPlugin(['port-forward', 'web', `${local}:9000`, ...k]);
  await p.until(() => p.stdout.includes('Forwarding from'), 'listening');
  const reader = connect(local, '127.0.0.1');
  reader.pause();
  await eventually(() => written > 0, 'the guest writes');
  // The guest stops when every buffer on the way is full: written stays put.
  let last = -1;
  for (let i = 0; i < 100 && written !== last; i++) {
    last = written;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(written, last, 'the guest is held back');
  assert.ok(written < TOTAL / 2, `the guest wrote ${written} bytes with nobody reading`);
  // Reading again lets it go on.
  let read = 0;
  reader.on('data', (d: Buffer) => (read += d.length));
  reader.resume();
  await eventually(() => read > written / 2 && written > last, 'data flows again');
  reader.destroy();
  process.emit('SIGINT', 'SIGINT');
  assert.equal(await p.code, 0);
});

test('port-forward: a Guest that does not run is refused before listening; --address and a picked port', async (t) => {
  const { api, k } = await setup(t);
  api.addGuest('team-a', 'idle', { phase: 'Pending' });
  const idle = await plugin(['port-forward', 'idle', '80', ...k]);
  assert.equal(idle.code, 1);
  assert.equal(idle.stderr, 'error: unable to forward port because guest is not running. Current status=Pending\n');
  const nope = await plugin(['port-forward', 'nope', '80', ...k]);
  assert.equal(nope.stderr, 'Error from server (NotFound): guests.krata.dev "nope" not found\n');
  const p = startPlugin(['port-forward', 'web', ':80', '--address', 'localhost', ...k]);
  await p.until(() => /^Forwarding from 127\.0\.0\.1:\d+ -> 80\n$/.test(p.stdout), 'a free port picked');
  assert.doesNotMatch(p.stdout, /127\.0\.0\.1:0 /);
  // A connection krata-api refuses is closed and said; the listener goes on.
  api.forbidden.add('alice guests/portforward');
  const picked = Number(/:(\d+) ->/.exec(p.stdout)![1]);
  const refused = connect(picked, '127.0.0.1');
  refused.resume();
  await new Promise((r) => refused.on('close', r));
  await p.until(
    () => /error: forwarding to port 80: Error from server \(Forbidden\): .*guests\/portforward/.test(p.stderr),
    'the refusal is said',
  );
  // Nothing listens on the guest's port: krata-api closes the websocket saying so, and so do we.
  api.forbidden.clear();
  const nothing = connect(picked, '127.0.0.1');
  nothing.resume();
  await new Promise((r) => nothing.on('close', r));
  await p.until(
    () => p.stderr.includes('error: forwarding to port 80: websocket closed with 1011: nothing listens on that port\n'),
    'the close is said',
  );
  process.emit('SIGINT', 'SIGINT');
  assert.equal(await p.code, 0);
});

test('attach on a real terminal (a pty from script(1)): raw input byte for byte, its size, Ctrl+] detaches', async (t) => {
  const { api, k } = await setup(t);
  const main = resolve(fileURLToPath(import.meta.url), '../../../kubectl-krata/main.js');
  const command = `stty rows 40 cols 100; exec ${JSON.stringify(process.execPath)} ${JSON.stringify(main)} attach web ${k.join(' ')}`;
  const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.kill());
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  await eventually(() => out.includes('/ # '), `the prompt arrives; got ${JSON.stringify(out)}`);
  const session = api.attaches[0]!;
  assert.deepEqual([session.query.get('rows'), session.query.get('cols')], ['40', '100']);
  // On a cooked terminal "\r" would become "\n" and nothing would be sent before it; raw, it goes as typed.
  child.stdin.write('uname -a\r');
  await eventually(() => Buffer.concat(session.input).toString() === 'uname -a\r', 'the line arrives as typed');
  child.stdin.write('\x1d');
  assert.equal(await exited, 0, out);
  assert.match(out, /detached from team-a\/web/);
  await eventually(() => session.closed, 'the websocket is closed');
});
