// The dom0 end of a guest-opened flow on an fd of kratanet's own: a real TCP server on 127.0.0.1 is the
// world; a recording sink stands in for the flow.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { readdirSync, readlinkSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { HostSink } from './host-socket.js';
import { RawHostSocket, sockaddrFor } from './raw-host-socket.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

class Sink implements HostSink {
  connected = 0;
  chunks: Buffer[] = [];
  ended = 0;
  written = 0;
  drained = 0;
  errors: string[] = [];
  closed = 0;
  onData: ((s: Sink) => void) | null = null;
  hostConnected(): void {
    this.connected++;
  }
  fromHost(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.onData?.(this);
  }
  hostEnded(): void {
    this.ended++;
  }
  hostWritten(): void {
    this.written++;
  }
  hostDrained(): void {
    this.drained++;
  }
  hostError(code: string): void {
    this.errors.push(code);
  }
  hostClosed(): void {
    this.closed++;
  }
  got(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

interface Peer {
  port: number;
  conns: Socket[];
  received: () => Buffer;
  ended: () => boolean;
  errors: string[];
}

const servers: Server[] = [];
const raws: RawHostSocket[] = [];

afterEach(async () => {
  for (const r of raws.splice(0)) r.destroy();
  for (const s of servers.splice(0)) {
    s.close();
    for (const c of (s as Server & { conns?: Socket[] }).conns ?? []) c.destroy();
  }
});

async function server(onConn?: (s: Socket) => void): Promise<Peer> {
  const chunks: Buffer[] = [];
  let ended = false;
  const peer: Peer = { port: 0, conns: [], received: () => Buffer.concat(chunks), ended: () => ended, errors: [] };
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    peer.conns.push(s);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => (ended = true));
    s.on('error', (e: NodeJS.ErrnoException) => peer.errors.push(e.code ?? e.message));
    onConn?.(s);
  });
  (srv as Server & { conns?: Socket[] }).conns = peer.conns;
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  peer.port = (srv.address() as AddressInfo).port;
  return peer;
}

function open(port: number, sink: Sink, host = '127.0.0.1'): RawHostSocket {
  const r = RawHostSocket.connect(host, port, sink);
  raws.push(r);
  return r;
}

/** A raw socket connected to a fresh server; `conn` is the server's end (`onConn` sees it first). */
async function connected(onConn?: (s: Socket) => void): Promise<{ peer: Peer; conn: Socket; sink: Sink; r: RawHostSocket }> {
  let conn: Socket | undefined;
  const peer = await server((s) => {
    conn = s;
    onConn?.(s);
  });
  const sink = new Sink();
  const r = open(peer.port, sink);
  await until(() => sink.connected === 1 && conn !== undefined, 2000, 'the connect');
  return { peer, conn: conn!, sink, r };
}

function openFds(): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:');
    } catch {
      return false;
    }
  }).length;
}

test('sockaddrFor: IPv4 and IPv6 literals with the port in network order', () => {
  assert.deepEqual([...sockaddrFor('10.1.2.3', 0x1234)], [2, 0, 0x12, 0x34, 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
  const six = sockaddrFor('::1', 80);
  assert.equal(six.length, 28);
  assert.equal(six.readUInt16LE(0), 10);
  assert.equal(six.readUInt16BE(2), 80);
  assert.equal(six[23], 1);
});

test('connect, then bytes both ways; the connect is reported after connect() returns', async () => {
  const peer = await server((s) => s.on('data', (c: Buffer) => s.write(Buffer.concat([Buffer.from('re:'), c]))));
  const sink = new Sink();
  const r = open(peer.port, sink);
  assert.equal(sink.connected, 0, 'not before connect() returned');
  await until(() => sink.connected === 1, 2000, 'the connect');
  assert.equal(r.loopsBack(), true, '127.0.0.1 to 127.0.0.1 is dom0 talking to itself');
  assert.equal(r.write(Buffer.from('hello')), false, 'written at once: nothing to flush');
  assert.equal(r.queued, 0);
  await until(() => sink.got().toString() === 're:hello', 2000, 'the answer');
  assert.equal(peer.received().toString(), 'hello');
  assert.deepEqual(sink.errors, []);
});

test('a refused connect is ECONNREFUSED, and the fd is closed', async () => {
  const peer = await server();
  const port = peer.port;
  servers.splice(0).forEach((s) => s.close());
  await sleep(20);
  const before = openFds();
  const sink = new Sink();
  const r = open(port, sink);
  await until(() => sink.errors.length > 0, 2000, 'the refusal');
  assert.deepEqual(sink.errors, ['ECONNREFUSED']);
  assert.equal(sink.connected, 0);
  assert.equal(r.destroyed, true);
  assert.equal(openFds(), before);
});

test('a connect that fails at once is reported on the next tick, not from inside connect()', async () => {
  const sink = new Sink();
  // TCP to a multicast address: connect() itself fails with ENETUNREACH.
  const r = open(80, sink, '224.0.0.1');
  assert.deepEqual(sink.errors, []);
  assert.equal(r.destroyed, true);
  await until(() => sink.errors.length > 0, 2000, 'the error');
  assert.deepEqual(sink.errors, ['ENETUNREACH']);
});

test('the peer FIN is hostEnded once; end() sends ours after the queue; the fd stays until destroy()', async () => {
  const { peer, conn, sink, r } = await connected();
  conn.end('bye');
  await until(() => sink.ended === 1, 2000, 'the FIN');
  assert.equal(sink.got().toString(), 'bye');
  r.write(Buffer.from('last words'));
  r.end();
  await until(() => peer.ended(), 2000, 'our FIN at the peer');
  assert.equal(peer.received().toString(), 'last words');
  await sleep(30);
  assert.equal(sink.ended, 1, 'no second end, no spinning on the hang-up');
  assert.equal(r.destroyed, false);
});

test('what the kernel does not take is queued (a copy), written when there is room, then hostDrained', async () => {
  // The peer reads nothing until told: the socket buffers fill.
  const { peer, conn, sink, r } = await connected((s) => s.pause());
  const block = Buffer.alloc(256 << 10, 0x61);
  let sent = 0;
  // Until the kernel pushes back, then past the queue's high-water mark.
  for (let i = 0; i < 64 && r.queued < 64 << 10; i++) {
    r.write(block);
    sent += block.length;
  }
  assert.ok(r.queued >= 64 << 10, 'the kernel pushed back');
  block.fill(0x62); // the caller's memory is reused: what was queued is a copy
  assert.equal(sink.drained, 0);
  conn.resume();
  await until(() => sink.drained === 1, 10_000, 'the drain');
  assert.equal(r.queued, 0);
  assert.ok(sink.written >= 1);
  await until(() => peer.received().length === sent, 10_000, 'every byte at the peer');
  assert.equal(peer.received().indexOf(0x62), -1, 'the queued bytes are the ones written');
});

test('destroySoon() writes what is queued, then closes', async () => {
  // The peer reads nothing until told: the socket buffers fill.
  const { peer, conn, r } = await connected((s) => s.pause());
  const block = Buffer.alloc(256 << 10, 0x63);
  let sent = 0;
  for (let i = 0; i < 64 && r.queued === 0; i++) {
    r.write(block);
    sent += block.length;
  }
  assert.ok(r.queued > 0);
  r.destroySoon();
  assert.equal(r.destroyed, false, 'not while bytes are queued');
  conn.resume();
  await until(() => r.destroyed, 10_000, 'the close');
  await until(() => peer.ended(), 10_000, 'the FIN');
  assert.equal(peer.received().length, sent);
});

test('reset() closes with an RST: the peer sees ECONNRESET', async () => {
  const { peer, r } = await connected();
  r.reset();
  assert.equal(r.destroyed, true);
  await until(() => peer.errors.length > 0, 2000, 'the reset at the peer');
  assert.deepEqual(peer.errors, ['ECONNRESET']);
});

test('a peer RST is hostError(ECONNRESET); while paused, once reading resumes (as a paused net.Socket)', async () => {
  for (const paused of [false, true]) {
    const { conn, sink, r } = await connected();
    if (paused) r.pause();
    conn.resetAndDestroy();
    if (paused) {
      await sleep(50);
      assert.deepEqual(sink.errors, [], 'a paused socket is out of the epoll set: no wake-ups');
      r.resume();
    }
    await until(() => sink.errors.length > 0, 2000, `the reset (paused: ${paused})`);
    assert.deepEqual(sink.errors, ['ECONNRESET']);
    assert.equal(r.destroyed, true);
  }
});

test('pause() stops reads until resume(); nothing is lost', async () => {
  const { conn, sink, r } = await connected();
  r.pause();
  conn.write('one');
  conn.end('two');
  await sleep(50);
  assert.equal(sink.chunks.length, 0);
  assert.equal(sink.ended, 0);
  r.resume();
  await until(() => sink.ended === 1, 2000, 'the data and FIN');
  assert.equal(sink.got().toString(), 'onetwo');
});

test('a large read is handed over whole; small ones are copies that later reads do not overwrite', async () => {
  const { conn, sink } = await connected();
  conn.write('first');
  await until(() => sink.chunks.length === 1, 2000, 'the first read');
  const big = Buffer.alloc(1 << 20, 0x7a);
  conn.write(big);
  await until(() => sink.got().length === 5 + big.length, 5000, 'the large write');
  assert.equal(sink.chunks[0]!.toString(), 'first');
  assert.ok(
    sink.chunks.some((c) => c.length > 32 << 10),
    'some reads are large',
  );
});

test('a process exits once its last raw socket is closed: the epoll set holds the loop only while it watches', async () => {
  // In a child: connect to its own server, exchange a byte, close everything; it must then exit by itself.
  const script = `
    import { createServer } from 'node:net';
    import { RawHostSocket } from ${JSON.stringify(new URL('./raw-host-socket.js', import.meta.url).href)};
    const srv = createServer((s) => s.end('x'));
    srv.listen(0, '127.0.0.1', () => {
      const sink = {
        hostConnected() {}, hostWritten() {}, hostDrained() {}, hostClosed() {},
        hostError(c) { console.log('error', c); },
        fromHost(c) { console.log('read', c.toString()); },
        hostEnded() { r.destroy(); srv.close(); console.log('closed'); },
      };
      const r = RawHostSocket.connect('127.0.0.1', srv.address().port, sink);
    });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  assert.equal(signal, null, `the child did not exit by itself (output: ${out})`);
  assert.equal(code, 0);
  assert.equal(out, 'read x\nclosed\n');
});
