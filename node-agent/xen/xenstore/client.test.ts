// Client behaviour that a recorded session cannot show: concurrency, timeouts, retries, broken peers.
// The peer here answers by rules written in each test; the recorded real-xenstored session is replayed
// in test/xenstore/replay.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XenstoreClient, XenstoreError } from './client.js';
import { socketTransport, type XsTransport } from './transport.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { encodeMessage, joinStrings, XsDecoder, XsType, type XsMessage } from './wire.js';

type Rule = (m: XsMessage, path: string) => { type?: XsType; payload: Buffer; delayMs?: number } | 'silent' | undefined;

function peer(rule: Rule) {
  const decoder = new XsDecoder();
  let deliver: (c: Buffer) => void = () => {};
  let closeHandler: (e?: Error) => void = () => {};
  const seen: XsMessage[] = [];
  const transport: XsTransport = {
    send: (frame) => {
      for (const m of decoder.push(frame)) {
        seen.push(m);
        const reply = rule(m, m.payload.toString().split('\0')[0]!);
        if (reply === 'silent') continue;
        const r = reply ?? { payload: Buffer.from('OK\0') };
        setTimeout(
          () => deliver(encodeMessage({ type: r.type ?? m.type, reqId: m.reqId, txId: m.txId, payload: r.payload })),
          r.delayMs ?? 0,
        );
      }
    },
    onData: (h) => void (deliver = h),
    onClose: (h) => void (closeHandler = h),
    close: () => {},
  };
  return { transport, seen, push: (b: Buffer) => deliver(b), drop: () => closeHandler(new Error('peer went away')) };
}

const error = (name: string) => ({ type: XsType.Error, payload: joinStrings([name]) });

test('concurrent requests are matched to their replies by req_id, whatever the reply order', async () => {
  const p = peer((m, path) =>
    m.type === XsType.Read ? { payload: Buffer.from(`v:${path}`), delayMs: path === '/slow' ? 30 : 0 } : undefined,
  );
  const c = new XenstoreClient(p.transport);
  const [slow, fast] = await Promise.all([c.read('/slow'), c.read('/fast')]);
  assert.deepEqual([slow, fast], ['v:/slow', 'v:/fast']);
  assert.deepEqual(
    p.seen.map((m) => m.reqId),
    [1, 2],
  );
});

test('XS_ERROR replies become XenstoreErrors with errno; tryRead and rm treat ENOENT as absence', async () => {
  const p = peer(() => error('ENOENT'));
  const c = new XenstoreClient(p.transport);
  const e = await c.read('/x').catch((err: XenstoreError) => err);
  assert.ok(e instanceof XenstoreError);
  assert.equal(e.code, 'ENOENT');
  assert.equal(e.errno, 2);
  assert.equal(e.message, 'xenstore read /x: ENOENT');
  assert.equal(await c.tryRead('/x'), undefined);
  assert.deepEqual(await c.tryList('/x'), []);
  await c.rm('/x');
});

test('a request with no reply times out, and its late reply is ignored', async () => {
  let n = 0;
  const p = peer(() => (n++ === 0 ? { payload: Buffer.from('late'), delayMs: 80 } : { payload: Buffer.from('second') }));
  const c = new XenstoreClient(p.transport, { timeoutMs: 20 });
  await assert.rejects(c.read('/a'), { code: 'ETIMEDOUT', message: 'xenstore read /a: ETIMEDOUT' });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await c.read('/b'), 'second');
});

test('a reply that arrived while the event loop was blocked past the timeout is taken, not timed out', async (t) => {
  // xenstored in another thread answers at once, while this thread is busy longer than the timeout (as a
  // domain build's synchronous work is on a loaded host): the reply waits in the socket when the timer runs.
  const dir = mkdtempSync(join(tmpdir(), 'krata-xs-'));
  const path = join(dir, 'xs.sock');
  const worker = new Worker(
    `const net = require('node:net');
    const { workerData, parentPort } = require('node:worker_threads');
    net.createServer((c) => c.on('data', (d) => {
      const h = Buffer.alloc(16);
      for (let i = 0; i < 12; i += 4) h.writeUInt32LE(d.readUInt32LE(i), i);
      h.writeUInt32LE(2, 12);
      c.write(Buffer.concat([h, Buffer.from('ok')]));
    })).listen(workerData, () => parentPort.postMessage('ready'));`,
    { eval: true, workerData: path },
  );
  t.after(async () => {
    await worker.terminate();
    rmSync(dir, { recursive: true, force: true });
  });
  await new Promise((r) => worker.once('message', r));
  const c = new XenstoreClient(await socketTransport(path), { timeoutMs: 50 });
  t.after(() => c.close());
  const reply = c.read('/a');
  const until = Date.now() + 400;
  while (Date.now() < until); // blocked: the timer is due long before the loop runs again
  assert.equal(await reply, 'ok');
});

test('watch events go to the handler of their token; unwatch sends path then token', async () => {
  const p = peer(() => undefined);
  const c = new XenstoreClient(p.transport);
  const got: string[] = [];
  const w = await c.watch('/local/domain/5', (path) => got.push(path));
  assert.deepEqual(p.seen[0]!.payload.toString(), `/local/domain/5\0${w.token}\0`);
  p.push(encodeMessage({ type: XsType.WatchEvent, reqId: 0, txId: 0, payload: joinStrings(['/local/domain/5/x', w.token]) }));
  p.push(encodeMessage({ type: XsType.WatchEvent, reqId: 0, txId: 0, payload: joinStrings(['/elsewhere', 'unknown-token']) }));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(got, ['/local/domain/5/x']);
  await w.unwatch();
  assert.equal(p.seen[1]!.type, XsType.Unwatch);
  assert.equal(p.seen[1]!.payload.toString(), `/local/domain/5\0${w.token}\0`);
  p.push(encodeMessage({ type: XsType.WatchEvent, reqId: 0, txId: 0, payload: joinStrings(['/local/domain/5/y', w.token]) }));
  await new Promise((r) => setImmediate(r));
  assert.equal(got.length, 1);
});

test('a transaction whose commit meets EAGAIN runs its body again', async () => {
  let commits = 0;
  let txIds = 0;
  const p = peer((m) => {
    if (m.type === XsType.TransactionStart) return { payload: Buffer.from(`${++txIds}\0`) };
    if (m.type === XsType.TransactionEnd) return ++commits < 3 ? error('EAGAIN') : undefined;
    if (m.type === XsType.Read) return { payload: Buffer.from('41') };
    return undefined;
  });
  const c = new XenstoreClient(p.transport);
  let runs = 0;
  const v = await c.transaction(async (tx) => {
    runs++;
    const n = Number(await tx.read('/n'));
    await tx.write('/n', String(n + 1));
    return n + 1;
  });
  assert.equal(v, 42);
  assert.equal(runs, 3);
  const writes = p.seen.filter((m) => m.type === XsType.Write);
  assert.deepEqual(
    writes.map((m) => m.txId),
    [1, 2, 3],
    'each attempt writes inside its own transaction',
  );
  assert.deepEqual(
    p.seen.filter((m) => m.type === XsType.TransactionEnd).map((m) => m.payload.toString()),
    ['T\0', 'T\0', 'T\0'],
  );
});

test('an exception in the body aborts the transaction and propagates; EAGAIN gives up after the attempts', async () => {
  const p = peer((m) =>
    m.type === XsType.TransactionStart
      ? { payload: Buffer.from('9\0') }
      : m.type === XsType.TransactionEnd && m.payload.toString() === 'T\0'
        ? error('EAGAIN')
        : undefined,
  );
  const c = new XenstoreClient(p.transport);
  await assert.rejects(
    c.transaction(async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(p.seen.at(-1)!.payload.toString(), 'F\0');
  await assert.rejects(
    c.transaction(async () => 1, 3),
    { code: 'EAGAIN' },
  );
  assert.equal(p.seen.filter((m) => m.type === XsType.TransactionStart).length, 4);
});

test('E2BIG on a directory falls back to XS_DIRECTORY_PART', async () => {
  const names = Array.from({ length: 10 }, (_, i) => `n${i}`);
  const p = peer((m) => {
    if (m.type === XsType.Directory) return error('E2BIG');
    if (m.type === XsType.DirectoryPart) {
      const offset = Number(m.payload.toString().split('\0')[1]);
      const bytes = Buffer.from(names.map((n) => n + '\0').join(''));
      const part = bytes.subarray(offset, Math.min(bytes.length, offset + 12));
      const cut = part.lastIndexOf(0) + 1;
      const last = offset + cut >= bytes.length;
      return { payload: Buffer.concat([Buffer.from('7\0'), part.subarray(0, cut), last ? Buffer.from([0]) : Buffer.alloc(0)]) };
    }
    return undefined;
  });
  const c = new XenstoreClient(p.transport);
  assert.deepEqual(await c.list('/big'), names);
});

test('when the connection drops, pending and later requests fail with ECONNRESET', async () => {
  const p = peer(() => 'silent');
  const c = new XenstoreClient(p.transport);
  let closed: Error | undefined;
  c.onClose((e) => (closed = e));
  const pending = c.read('/x');
  p.drop();
  await assert.rejects(pending, { code: 'ECONNRESET' });
  await assert.rejects(c.read('/y'), { code: 'ECONNRESET' });
  assert.ok(closed);
});

test('a peer that violates the protocol is disconnected, not trusted', async () => {
  const p = peer(() => 'silent');
  const c = new XenstoreClient(p.transport);
  const pending = c.read('/x');
  const bad = Buffer.alloc(16);
  bad.writeUInt32LE(1 << 20, 12);
  p.push(bad);
  await assert.rejects(pending, { code: 'EPROTO' });
});

test('permissions are sent as letter+domid, owner first', async () => {
  const p = peer((m) => (m.type === XsType.GetPerms ? { payload: joinStrings(['n0', 'r5', 'b7']) } : undefined));
  const c = new XenstoreClient(p.transport);
  await c.setPerms('/p', [
    { domid: 3, access: 'none' },
    { domid: 0, access: 'both' },
  ]);
  assert.equal(p.seen[0]!.payload.toString(), '/p\0n3\0b0\0');
  assert.deepEqual(await c.getPerms('/p'), [
    { access: 'none', domid: 0 },
    { access: 'read', domid: 5 },
    { access: 'both', domid: 7 },
  ]);
  await assert.rejects(c.setPerms('/p', []), RangeError);
});

test('domain introduction messages', async () => {
  const p = peer((m) =>
    m.type === XsType.GetDomainPath
      ? { payload: Buffer.from('/local/domain/5\0') }
      : m.type === XsType.IsDomainIntroduced
        ? { payload: Buffer.from('F\0') }
        : undefined,
  );
  const c = new XenstoreClient(p.transport);
  await c.introduceDomain(5, 0x12345n, 3);
  assert.deepEqual(p.seen[0]!.payload.toString().split('\0'), ['5', '74565', '3', '']);
  assert.equal(await c.getDomainPath(5), '/local/domain/5');
  assert.equal(await c.isDomainIntroduced(5), false);
});
