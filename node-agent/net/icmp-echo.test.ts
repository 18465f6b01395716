// ICMP echo NAT against the real kernel (root or CAP_NET_RAW required): pings to the loopback addresses
// through the proxy's raw sockets, forged replies, expiry, and the fds it leaves behind. The constants and
// struct sizes icmp-echo.ts writes from the headers are checked with a gcc probe.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import * as icmp from './icmp-echo.js';
import { runCProbe, valueLines } from '../../test/c-probe.js';
import { IcmpEchoProxy, MAX_PENDING } from './icmp-echo.js';
import { Poller } from './poller.js';
import { SIN_ADDR, SOCKADDR_IN_SIZE } from './sys.js';
import { AF_INET, libc, SOCK_CLOEXEC, SOCK_RAW, sysSendto } from '../../lib/libc.js';
import { finish, sum16 } from './wire.js';

const proxy = IcmpEchoProxy.shared();
after(() => proxy.close());

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

async function until(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One ping through `p`; resolves with the reply's data (rejects after `ms`). */
function ping(p: IcmpEchoProxy, dst: string, data: Buffer, ms = 3000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply from ${dst}`)), ms);
    const ok = p.request(
      dst,
      data,
      (d) => {
        clearTimeout(timer);
        resolve(d);
      },
      ms,
    );
    if (!ok) {
      clearTimeout(timer);
      reject(new Error(`request to ${dst} failed: ${p.stats.lastError}`));
    }
  });
}

// ---- ABI --------------------------------------------------------------------------------------------------

test('constants and sizes match the Linux/glibc headers', () => {
  const facts: Record<string, string> = {
    IPPROTO_ICMP: 'IPPROTO_ICMP',
    IPPROTO_ICMPV6: 'IPPROTO_ICMPV6',
    SOL_RAW: 'SOL_RAW',
    ICMP_FILTER: 'ICMP_FILTER',
    ICMP6_FILTER: 'ICMP6_FILTER',
    ICMP_ECHOREPLY: 'ICMP_ECHOREPLY',
    ICMP_ECHO: 'ICMP_ECHO',
    ICMP6_ECHO_REQUEST: 'ICMP6_ECHO_REQUEST',
    ICMP6_ECHO_REPLY: 'ICMP6_ECHO_REPLY',
    ICMP_FILTER_SIZE: 'sizeof(struct icmp_filter)',
    ICMP6_FILTER_SIZE: 'sizeof(struct icmp6_filter)',
  };
  // linux/icmp.h and netinet/ip_icmp.h clash; SOL_RAW/ICMP_FILTER/struct icmp_filter come from the former.
  const got = runCProbe(
    [
      '#define _GNU_SOURCE',
      '#include <stdio.h>',
      '#include <stddef.h>',
      '#include <sys/socket.h>',
      '#include <netinet/in.h>',
      '#include <netinet/icmp6.h>',
      '#include <linux/icmp.h>',
    ],
    valueLines(Object.entries(facts), ''),
  );
  for (const name of Object.keys(facts)) assert.equal((icmp as unknown as Record<string, number>)[name], got.get(name), name);
});

// ---- echo -------------------------------------------------------------------------------------------------

test('pings 127.0.0.1 and ::1; the data comes back byte-exact', async () => {
  for (const dst of ['127.0.0.1', '::1']) {
    for (const len of [0, 1, 56, 1473, 9000, 60000]) {
      const data = randomBytes(len);
      const got = await ping(proxy, dst, data);
      assert.ok(got.equals(data), `${dst}, ${len} bytes`);
    }
  }
  assert.equal(proxy.pending, 0);
  assert.ok(proxy.stats.replies >= 12);
  // ICMP_FILTER/ICMP6_FILTER keep our own (looped back) echo requests away from the sockets.
  assert.equal(proxy.stats.malformed, 0);
});

test('concurrent requests to the same destination each get their own reply', async () => {
  for (const dst of ['127.0.0.1', '::1']) {
    const datas = Array.from({ length: 200 }, (_, i) => Buffer.concat([Buffer.from([i]), randomBytes(i % 64)]));
    const calls = datas.map(() => 0);
    const got = await Promise.all(
      datas.map((d, i) =>
        ping(proxy, dst, d).then((r) => {
          calls[i]!++;
          return r;
        }),
      ),
    );
    got.forEach((r, i) => assert.ok(r.equals(datas[i]!), `${dst} request ${i}`));
    await sleep(50); // a second call (say, for a duplicated reply) would land here
    assert.deepEqual(
      calls,
      datas.map(() => 1),
    );
  }
  assert.equal(proxy.pending, 0);
});

test('a pending request expires after its timeout without a callback', async () => {
  // Linux sends to 0.0.0.0 as to 127.0.0.1 (and to :: as to ::1), so the reply comes from another source
  // and never matches: a destination that does not answer, whatever the machine's routes.
  for (const dst of ['0.0.0.0', '::']) {
    const unmatched = proxy.stats.unmatched;
    const expired = proxy.stats.expired;
    let called = false;
    const sent = proxy.request(
      dst,
      Buffer.from('nobody home'),
      () => {
        called = true;
      },
      150,
    );
    if (!sent) {
      // A kernel that refuses the destination outright is also a destination that does not answer.
      assert.match(proxy.stats.lastError, /sendto/);
      continue;
    }
    assert.equal(proxy.pending, 1);
    await until(() => proxy.stats.unmatched > unmatched, 3000, `the reply to ${dst} from loopback`);
    assert.equal(proxy.pending, 1, 'a reply from another source does not match');
    await until(() => proxy.pending === 0, 3000, 'expiry');
    assert.equal(proxy.stats.expired, expired + 1);
    await sleep(50);
    assert.equal(called, false);
  }
});

test('destinations that do not answer do not disturb the others', async () => {
  // TEST-NET-3 and the IPv6 documentation prefix: with no route sendto fails (false), with one the request
  // goes out and (normally) nothing answers. 0.0.0.0 and :: are answered from loopback, so never matched.
  const silent = ['203.0.113.1', '198.51.100.77', '2001:db8::1', '0.0.0.0', '::'];
  const data = randomBytes(100);
  let silentCalls = 0;
  const outcomes = silent.map((dst) =>
    proxy.request(
      dst,
      data,
      (d) => {
        // Should something on this network answer after all, it must still be the right data.
        assert.ok(d.equals(data));
        silentCalls++;
      },
      300,
    ),
  );
  const live = await Promise.all(
    Array.from({ length: 40 }, (_, i) => {
      const d = randomBytes(32 + i);
      return ping(proxy, i % 2 ? '::1' : '127.0.0.1', d).then((r) => r.equals(d));
    }),
  );
  assert.deepEqual(
    live,
    live.map(() => true),
  );
  // A failed request leaves nothing pending; the sent ones expire.
  await until(() => proxy.pending === 0, 3000, 'expiry of the silent requests');
  assert.ok(silentCalls <= outcomes.filter(Boolean).length);
  // Still working afterwards.
  const d = randomBytes(8);
  assert.ok((await ping(proxy, '127.0.0.1', d)).equals(d));
});

test('at most MAX_PENDING requests are pending', async () => {
  const p = new IcmpEchoProxy();
  try {
    let ok = 0;
    for (let i = 0; i < MAX_PENDING; i++) if (p.request('0.0.0.0', Buffer.alloc(0), () => {}, 60_000)) ok++;
    if (ok === 0) return; // 0.0.0.0 refused by this kernel: nothing to fill the table with
    assert.equal(ok, MAX_PENDING);
    assert.equal(p.pending, MAX_PENDING);
    assert.equal(
      p.request('127.0.0.1', Buffer.alloc(0), () => {}),
      false,
    );
    assert.match(p.stats.lastError, /too many/);
  } finally {
    p.close();
  }
  assert.equal(p.pending, 0);
});

test('forged replies: bad checksum, wrong code or type, and truncated ones are dropped; a good one matches', async () => {
  const p = new IcmpEchoProxy();
  const raw = libc().socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, icmp.IPPROTO_ICMP);
  assert.ok(raw >= 0);
  try {
    // Open p's IPv4 socket, then plant a pending entry for 127.0.0.1 whose identifier/sequence we know.
    assert.ok((await ping(p, '127.0.0.1', Buffer.from('x'))).equals(Buffer.from('x')));
    const replies: Buffer[] = [];
    const key = 0x4b52_0001;
    const timer = setTimeout(() => {}, 10_000);
    timer.unref();
    (p as unknown as { pendingMap: Map<number, object> }).pendingMap.set(key, {
      v6: false,
      dst4: 0x7f000001,
      dst6: null,
      onReply: (d: Buffer) => replies.push(d),
      timer,
    });
    const to = Buffer.alloc(SOCKADDR_IN_SIZE);
    to.writeUInt16LE(AF_INET, 0);
    to.writeUInt32BE(0x7f000001, SIN_ADDR);
    const send = (m: Buffer) => assert.equal(sysSendto(raw, m, m.length, 0, to, to.length), m.length);
    const reply = (data: Buffer, opts: { type?: number; code?: number; csum?: number } = {}) => {
      const m = Buffer.alloc(8 + data.length);
      m[0] = opts.type ?? icmp.ICMP_ECHOREPLY;
      m[1] = opts.code ?? 0;
      m.writeUInt32BE(key, 4);
      data.copy(m, 8);
      m.writeUInt16BE(opts.csum ?? finish(sum16(m, 0, m.length)), 2);
      return m;
    };
    const malformed = p.stats.malformed;
    const good = reply(Buffer.from('forged but well formed'));
    send(reply(Buffer.from('bad checksum'), { csum: 0x1234 }));
    send(reply(Buffer.from('bad code'), { code: 1 }));
    send(reply(Buffer.from('type 40'), { type: 40 })); // beyond ICMP_FILTER's 32 types: reaches us, type checked
    send(good.subarray(0, 4)); // truncated ICMP header
    await until(() => p.stats.malformed >= malformed + 3, 3000, 'the malformed replies');
    assert.equal(replies.length, 0);
    send(good);
    await until(() => replies.length === 1, 3000, 'the good reply');
    assert.equal(replies[0]!.toString(), 'forged but well formed');
    send(good); // a duplicate matches nothing
    await sleep(50);
    assert.equal(replies.length, 1);
    assert.equal(p.pending, 0);
  } finally {
    libc().close(raw);
    p.close();
  }
});

test('close() removes the sockets from the poller and closes them; it is idempotent', async () => {
  const poller = Poller.shared();
  const watched = poller.size;
  const before = fdCount();
  const p = new IcmpEchoProxy();
  const d = randomBytes(16);
  assert.ok((await ping(p, '127.0.0.1', d)).equals(d));
  assert.ok((await ping(p, '::1', d)).equals(d));
  assert.equal(fdCount(), before + 2);
  assert.equal(poller.size, watched + 2);
  let called = false;
  assert.ok(p.request('0.0.0.0', d, () => (called = true), 60_000) || p.stats.lastError.includes('sendto'));
  p.close();
  p.close();
  assert.equal(fdCount(), before);
  assert.equal(poller.size, watched);
  assert.equal(p.pending, 0);
  assert.equal(
    p.request('127.0.0.1', d, () => (called = true)),
    false,
  );
  await sleep(50);
  assert.equal(called, false);
  assert.equal(IcmpEchoProxy.shared(), proxy, 'closing another proxy leaves the shared one');
});
