// Dialing a guest's port from dom0 through kratanet's dial socket (what tcpSocket and httpGet probes
// do), on real kernel stacks: two guests in network namespaces behind veths, kratanet running from its
// CLI with a dial socket, the agent's KratanetDialer in this process. Needs root.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MAX_DIALS } from '../../node-agent/net/backend.js';
import { DialError } from '../../node-agent/net/guest-dialer.js';
import { KratanetDialer } from '../../node-agent/net/kratanet-dialer.js';
import { createVethGuest, type VethGuest } from './guest-ns.js';

const KRATANET = fileURLToPath(new URL('../../node-agent/net/main.js', import.meta.url));

// Servers inside a guest: 7100 greets with NAME:, echoes upper-cased, says :bye after the client's FIN;
// 7102 sends "closing" and its FIN at once, then reports what the client sent after that; 7103 echoes.
const SERVE = String.raw`
const net = require('node:net');
const [name] = process.argv.slice(1);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
let n = 0;
const up = () => { if (++n === 3) out({ listening: true }); };
net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => {});
  s.write(name + ':');
  s.on('data', (d) => s.write(d.toString().toUpperCase()));
  s.on('end', () => s.end(':bye'));
}).listen(7100, up);
net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => {});
  let got = '';
  s.end('closing');
  s.on('data', (d) => (got += d));
  s.on('end', () => out({ after: got }));
}).listen(7102, up);
net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(7103, up);
`;

function readAll(s: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'connected';
  } catch (e) {
    assert.ok(e instanceof DialError, String(e));
    return e.reason;
  }
}

describe('dialing guest ports through kratanet', { concurrency: false }, () => {
  let a: VethGuest;
  let b: VethGuest;
  let dir: string;
  let socketPath: string;
  let kratanet: ChildProcess;
  let log = '';
  const servers: ChildProcess[] = [];
  const reports: string[] = [];
  let dialer: KratanetDialer;

  async function serve(g: VethGuest, name: string): Promise<void> {
    const child = g.spawn([process.execPath, '-e', SERVE, name]);
    servers.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        for (const line of d.toString().split('\n').filter(Boolean)) {
          if (line.includes('listening')) resolve();
          else reports.push(line);
        }
      });
      child.once('exit', (code) => reject(new Error(`server in ${g.ns} exited (${code})`)));
    });
  }

  /** A raw request on the dial socket; resolves with the socket once it is open. */
  async function raw(line: string): Promise<Socket> {
    const s = connect(socketPath);
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    s.write(line);
    return s;
  }

  function answerOf(s: Socket): Promise<string> {
    return new Promise((resolve) => {
      let got = '';
      const onData = (d: Buffer) => {
        got += d.toString('latin1');
        if (got.includes('\n')) {
          s.off('data', onData);
          resolve(got.slice(0, got.indexOf('\n')));
        }
      };
      s.on('data', onData);
      s.once('close', () => resolve(got));
    });
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kratanet-dial-'));
    socketPath = join(dir, 'dial', 'kratanet.sock');
    a = await createVethGuest();
    b = await createVethGuest({ ipv4: '10.75.0.3/16', ipv6: 'fdd4:1476:6c7e::3/64' });
    await serve(a, 'a');
    await serve(b, 'b');
    const guest = (g: VethGuest, id: string) => ({
      id,
      interface: g.hostIf,
      mac: g.mac,
      ipv4: g.ipv4,
      ipv6: g.ipv6,
      gateway4: g.gateway4,
      gateway6: g.gateway6,
    });
    const cfg = { dialSocket: socketPath, guests: [guest(a, 'ns/a'), guest(b, 'ns/b')] };
    writeFileSync(join(dir, 'kratanet.json'), JSON.stringify(cfg));
    kratanet = spawn(process.execPath, [KRATANET, '--config', join(dir, 'kratanet.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
    kratanet.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await new Promise<void>((resolve, reject) => {
      kratanet.stdout!.on('data', (d: Buffer) => d.toString().includes('kratanet ready') && resolve());
      kratanet.once('exit', (code) => reject(new Error(`kratanet exited (${code}): ${log}`)));
    });
    dialer = new KratanetDialer(socketPath);
  });

  after(async () => {
    kratanet?.kill('SIGTERM');
    for (const s of servers) s.kill('SIGKILL');
    await a?.destroy();
    await b?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the dial socket is 0600 in a 0700 directory', () => {
    assert.ok(statSync(socketPath).isSocket());
    assert.equal(statSync(socketPath).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'dial')).mode & 0o777, 0o700);
  });

  test('bytes both ways; the client half-closes and still reads what the guest says after', async () => {
    const s = await dialer.dial('ns/a', 7100, { timeoutMs: 5000 });
    const all = readAll(s);
    s.write('hello ');
    s.end('guest');
    assert.equal((await all).toString(), 'a:HELLO GUEST:bye');
  });

  test('the guest half-closes first: its bytes and FIN arrive, and what we send after reaches it', async () => {
    const s = await dialer.dial('ns/b', 7102, { timeoutMs: 5000 });
    assert.equal((await readAll(s)).toString(), 'closing');
    s.end('after your FIN');
    for (let i = 0; i < 100 && !reports.some((r) => r.includes('after your FIN')); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(reports.includes(JSON.stringify({ after: 'after your FIN' })), reports.join('\n'));
  });

  test('16 MiB echoed with matching sha256 (flow control both ways)', async () => {
    const s = await dialer.dial('ns/a', 7103, { timeoutMs: 5000 });
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let received = 0;
    const done = new Promise<void>((resolve, reject) => {
      s.on('data', (d: Buffer) => {
        got.update(d);
        received += d.length;
      });
      s.on('end', resolve);
      s.on('error', reject);
    });
    const total = 16 << 20;
    for (let off = 0; off < total; off += 1 << 16) {
      const chunk = randomBytes(1 << 16);
      sent.update(chunk);
      if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
    }
    s.end();
    await done;
    assert.equal(received, total);
    assert.equal(got.digest('hex'), sent.digest('hex'));
  });

  test("each key reaches its own guest only: b's port is refused on a, and the other way round", async () => {
    const said = async (key: string) => {
      const s = await dialer.dial(key, 7100, { timeoutMs: 5000 });
      s.end();
      return (await readAll(s)).toString();
    };
    assert.equal(await said('ns/a'), 'a::bye');
    assert.equal(await said('ns/b'), 'b::bye');
    // Stop a's servers: its ports are closed now, however b's stay open.
    servers[0]!.kill('SIGKILL');
    await new Promise((r) => servers[0]!.once('exit', r));
    assert.equal(await reason(dialer.dial('ns/a', 7100, { timeoutMs: 5000 })), 'Refused');
    assert.equal(await said('ns/b'), 'b::bye');
    await serve(a, 'a');
  });

  test('a closed port is Refused; an unknown guest NoSuchGuest', async () => {
    assert.equal(await reason(dialer.dial('ns/a', 7999, { timeoutMs: 5000 })), 'Refused');
    assert.equal(await reason(dialer.dial('ns/zzz', 7100, { timeoutMs: 5000 })), 'NoSuchGuest');
  });

  describe('a guest whose SYN-ACKs are lost (a blackhole route to its gateway)', () => {
    before(() => execFileSync('ip', ['-n', a.ns, 'route', 'add', 'blackhole', `${a.gateway4}/32`]));
    after(() => execFileSync('ip', ['-n', a.ns, 'route', 'del', 'blackhole', `${a.gateway4}/32`]));

    test('the dial is Timeout, from the client and from kratanet', async () => {
      assert.equal(await reason(dialer.dial('ns/a', 7100, { timeoutMs: 300 })), 'Timeout');
      // kratanet's own timer, with a client that would wait longer.
      const s = await raw('dial ns/a 7100 300\n');
      assert.match(await answerOf(s), /^ERR Timeout ns\/a did not accept port 7100 within 300 ms/);
      s.destroy();
    });

    test(`at most ${MAX_DIALS} dials per guest; another guest is not affected; closing them frees the slots`, async () => {
      const waiting: Socket[] = [];
      for (let i = 0; i < MAX_DIALS; i++) waiting.push(await raw('dial ns/a 7100 30000\n'));
      const extra = await raw('dial ns/a 7100 30000\n');
      assert.match(await answerOf(extra), /^ERR Unavailable ns\/a has too many dials open/);
      assert.equal(await reason(dialer.dial('ns/a', 7100, { timeoutMs: 5000 })), 'Unavailable');
      const s = await dialer.dial('ns/b', 7100, { timeoutMs: 5000 });
      s.end();
      assert.equal((await readAll(s)).toString(), 'b::bye');
      for (const w of waiting) w.destroy();
      // Each abandoned dial resets its flow, freeing its slot: a's dials are Timeout again, not Unavailable.
      let r = '';
      for (let i = 0; i < 50 && r !== 'Timeout'; i++) r = await reason(dialer.dial('ns/a', 7100, { timeoutMs: 100 }));
      assert.equal(r, 'Timeout');
    });
  });

  test('after the blackhole is gone the guest answers again', async () => {
    const s = await dialer.dial('ns/a', 7100, { timeoutMs: 5000 });
    s.end('x');
    assert.equal((await readAll(s)).toString(), 'a:X:bye');
  });

  test('kratanet gone: Unavailable', async () => {
    kratanet.kill('SIGTERM');
    await new Promise((r) => kratanet.once('exit', r));
    assert.equal(await reason(dialer.dial('ns/a', 7100, { timeoutMs: 1000 })), 'Unavailable');
  });
});
