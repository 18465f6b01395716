// kratanet end to end on real kernel stacks: the "guest" is a network namespace configured as
// guest-init configures a Xen guest, behind a veth whose host end kratanet serves (as it serves a
// netback vif), with kratanet running as its own process from its CLI.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, connect, type Server, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/free-port.js';
import { createBareGuest, createVethGuest, type GuestNs, type VethGuest } from '../../test/net/guest-ns.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

// Runs inside the guest namespace with the host's node: small clients and servers.
const GUEST_TOOL = String.raw`
const net = require('node:net'), dgram = require('node:dgram'), crypto = require('node:crypto');
const [cmd, ...a] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
if (cmd === 'udp') {
  const s = dgram.createSocket(a[0].includes(':') ? 'udp6' : 'udp4');
  const t = setTimeout(() => { out({ error: 'timeout' }); process.exit(0); }, 3000);
  s.on('message', (m) => { clearTimeout(t); out({ reply: m.toString() }); s.close(); });
  s.send(a[2], Number(a[1]), a[0]);
} else if (cmd === 'send') {
  const total = Number(a[2]); const h = crypto.createHash('sha256'); let sent = 0;
  const c = net.connect(Number(a[1]), a[0], () => {
    const more = () => {
      while (sent < total) {
        const n = Math.min(1 << 16, total - sent); const b = crypto.randomBytes(n); h.update(b); sent += n;
        if (!c.write(b)) return c.once('drain', more);
      }
      c.end();
    };
    more();
  });
  c.on('data', () => {});
  c.on('close', () => out({ sha256: h.digest('hex'), bytes: sent }));
  c.on('error', (e) => out({ error: e.code }));
} else if (cmd === 'recv') {
  const h = crypto.createHash('sha256'); let n = 0;
  const c = net.connect(Number(a[1]), a[0]);
  c.on('data', (d) => { h.update(d); n += d.length; });
  c.on('end', () => out({ sha256: h.digest('hex'), bytes: n }));
  c.on('error', (e) => out({ error: e.code }));
} else if (cmd === 'many') {
  const N = Number(a[2]); let ok = 0, done = 0, errors = {};
  for (let i = 0; i < N; i++) {
    const c = net.connect(Number(a[1]), a[0]); let got = '';
    c.on('connect', () => c.write('ping ' + i + '\n'));
    c.on('data', (d) => { got += d; if (got === 'ping ' + i + '\n') { ok++; c.end(); } });
    c.on('close', () => { if (++done === N) out({ ok }); });
    c.on('error', (e) => { errors[e.code] = (errors[e.code] || 0) + 1; });
  }
  setTimeout(() => { out({ ok, done, errors }); process.exit(0); }, 60000).unref();
} else if (cmd === 'connect') {
  const t0 = process.hrtime.bigint();
  const c = net.connect({ port: Number(a[1]), host: a[0], localAddress: a[2] || undefined });
  const timer = setTimeout(() => { out({ error: 'timeout' }); process.exit(0); }, Number(a[3] || 5000));
  c.on('connect', () => { clearTimeout(timer); out({ connected: true, ms: Number(process.hrtime.bigint() - t0) / 1e6 }); c.destroy(); });
  c.on('error', (e) => { clearTimeout(timer); out({ error: e.code, ms: Number(process.hrtime.bigint() - t0) / 1e6 }); });
} else if (cmd === 'udpflows') {
  // N new UDP flows at once (a socket each, one datagram): how many went out, and were answered, within 2 s.
  let answered = 0, sent = 0;
  for (let i = 0; i < Number(a[2]); i++) {
    const s = dgram.createSocket('udp4');
    s.on('message', () => { answered++; s.close(); });
    s.send('flow ' + i, Number(a[1]), a[0], (e) => { if (!e) sent++; });
  }
  setTimeout(() => { out({ sent, answered }); process.exit(0); }, 2000);
} else if (cmd === 'serve') {
  net.createServer((c) => c.on('data', (d) => c.write('guest:' + d))).listen(Number(a[0]), () => {
    dgram.createSocket('udp4').on('message', function (m, r) { this.send('guest:' + m, r.port, r.address); })
      .bind(Number(a[0]), () => out({ listening: true }));
  });
}
`;

/** A temporary directory holding the guest tool (GUEST_TOOL), for one describe block. */
function toolDir(prefix: string): { dir: string; tool: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const tool = join(dir, 'guest-tool.cjs');
  writeFileSync(tool, GUEST_TOOL);
  return { dir, tool };
}

interface Kn {
  proc: ChildProcess;
  stderr: string;
}

async function startKratanet(configFile: string): Promise<Kn> {
  const proc = spawn(process.execPath, [MAIN, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const kn: Kn = { proc, stderr: '' };
  proc.stderr!.on('data', (d: Buffer) => (kn.stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('kratanet ready')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`kratanet exited (${code}): ${kn.stderr}`)));
  });
  return kn;
}

function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve) => server.listen(0, host, () => resolve((server.address() as AddressInfo).port)));
}

describe('kratanet with a namespace guest', { concurrency: false }, () => {
  let guest: VethGuest;
  let other: VethGuest;
  let kn: Kn;
  let dir: string;
  let tool: string;
  const servers: { close(): unknown }[] = [];
  let httpPort = 0;
  let http6Port = 0;
  let echoPort = 0;
  let udpPort = 0;
  let sinkPort = 0;
  let sourcePort = 0;
  let inTcp = 0;
  let inUdp = 0;
  const sinkHashes: string[] = [];
  const SOURCE_BYTES = 200 << 20;
  let sourceHash = '';

  const run = async (g: VethGuest, args: string[], timeoutMs = 60_000): Promise<Record<string, unknown>> => {
    const r = await g.exec([process.execPath, tool, ...args], { timeoutMs });
    const line = r.stdout.toString().trim().split('\n').pop() ?? '';
    assert.ok(line, `no output from guest ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(line) as Record<string, unknown>;
  };

  before(async () => {
    ({ dir, tool } = toolDir('kratanet-test-'));
    guest = await createVethGuest();
    other = await createVethGuest({ ipv4: '10.75.0.3/16', ipv6: 'fdd4:1476:6c7e::3/64' });
    // Servers on the host's loopback, which guests reach at their gateway address.
    const http = createHttpServer((req, res) => res.end(`hello ${req.url}`));
    httpPort = await listen(http, '127.0.0.1');
    const http6 = createHttpServer((req, res) => res.end(`hello6 ${req.url}`));
    http6Port = await listen(http6, '::1');
    const echo = createServer((c) => c.pipe(c));
    echoPort = await listen(echo, '127.0.0.1');
    const sink = createServer((c) => {
      const h = createHash('sha256');
      c.on('data', (d) => h.update(d));
      c.on('end', () => {
        sinkHashes.push(h.digest('hex'));
        c.end();
      });
    });
    sinkPort = await listen(sink, '127.0.0.1');
    const data = randomBytes(SOURCE_BYTES);
    sourceHash = createHash('sha256').update(data).digest('hex');
    const source = createServer((c) => c.end(data));
    sourcePort = await listen(source, '127.0.0.1');
    const udp = createSocket('udp4');
    udp.on('message', (m, r) => udp.send(`echo:${m.toString()}`, r.port, r.address));
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    udpPort = udp.address().port;
    servers.push(http, http6, echo, sink, source, { close: () => udp.close() });
    // Published ports: free host ports from below the ephemeral range (one from listen(0) can be taken
    // by any outbound connection before kratanet binds it).
    inTcp = await freePort();
    inUdp = await freePort({ udp: true });
    const entry = (g: VethGuest, id: string, ports: unknown[]) => ({
      id,
      interface: g.hostIf,
      mac: g.mac,
      ipv4: g.ipv4,
      ipv6: g.ipv6,
      gateway4: g.gateway4,
      gateway6: g.gateway6,
      ports,
    });
    const cfg = {
      hostLoopback: true,
      // The "outside" hosts below sit on subnets attached to this host, which guests may not reach
      // unless allowed (isolation.test.ts tests that): these three are.
      allowCidrs: ['198.51.100.7/32', '203.0.113.9/32', '2001:db8:71::9/128'],
      guests: [
        entry(guest, 'one', [
          { protocol: 'TCP', hostPort: inTcp, guestPort: 7000 },
          { protocol: 'UDP', hostPort: inUdp, guestPort: 7000 },
        ]),
        entry(other, 'two', []),
      ],
    };
    writeFileSync(join(dir, 'kratanet.json'), JSON.stringify(cfg));
    kn = await startKratanet(join(dir, 'kratanet.json'));
  });

  after(async () => {
    kn?.proc.kill('SIGTERM');
    for (const s of servers) s.close();
    await guest?.destroy();
    await other?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the guest pings its gateway over IPv4 and IPv6', async () => {
    for (const [flag, addr] of [
      ['-4', guest.gateway4],
      ['-6', guest.gateway6],
    ] as const) {
      const r = await guest.exec(['ping', flag, '-c', '2', '-W', '2', addr]);
      assert.equal(r.code, 0, `ping ${addr}: ${r.stdout.toString()}${r.stderr}`);
    }
  });

  test("HTTP to a server on the host's loopback through the NAT (IPv4 and IPv6)", async () => {
    const r = await guest.exec(['curl', '-sS', '-m', '5', `http://${guest.gateway4}:${httpPort}/v4`]);
    assert.equal(r.stdout.toString(), 'hello /v4', r.stderr);
    const r6 = await guest.exec(['curl', '-sS', '-m', '5', `http://[${guest.gateway6}]:${http6Port}/v6`]);
    assert.equal(r6.stdout.toString(), 'hello6 /v6', r6.stderr);
  });

  test('UDP request and response', async () => {
    assert.deepEqual(await run(guest, ['udp', guest.gateway4, String(udpPort), 'hi there']), { reply: 'echo:hi there' });
  });

  test('200 MB each way with matching sha256', async () => {
    const up = await run(guest, ['send', guest.gateway4, String(sinkPort), String(SOURCE_BYTES)], 180_000);
    assert.equal(up.bytes, SOURCE_BYTES);
    assert.equal(sinkHashes.at(-1), up.sha256, 'guest → host');
    const down = await run(guest, ['recv', guest.gateway4, String(sourcePort)], 180_000);
    assert.deepEqual(down, { sha256: sourceHash, bytes: SOURCE_BYTES }, 'host → guest');
  });

  test('1,000 concurrent connections', async () => {
    const r = await run(guest, ['many', guest.gateway4, String(echoPort), '1000'], 90_000);
    assert.deepEqual(r, { ok: 1000 });
  });

  test('a refused port answers at once (RST), within 100 ms', async () => {
    const closed = createServer();
    const port = await listen(closed, '127.0.0.1');
    closed.close();
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await run(guest, ['connect', guest.gateway4, String(port)]);
      assert.equal(r.error, 'ECONNREFUSED');
      times.push(r.ms as number);
    }
    times.sort((a, b) => a - b);
    assert.ok(times[2]! < 100, `median ${times[2]} ms`);
  });

  test('a destination that never answers does not stall other flows', async () => {
    // A veth whose far end drops everything (frames for a MAC nobody has): the connect hangs.
    const dummy = `kd${process.pid % 100000}`;
    const { execFileSync } = await import('node:child_process');
    execFileSync('ip', ['link', 'add', dummy, 'type', 'veth', 'peer', 'name', `${dummy}p`]);
    try {
      execFileSync('ip', ['addr', 'add', '198.51.100.1/24', 'dev', dummy]);
      execFileSync('ip', ['link', 'set', dummy, 'up']);
      execFileSync('ip', ['link', 'set', `${dummy}p`, 'up']);
      execFileSync('ip', ['neigh', 'replace', '198.51.100.7', 'lladdr', '02:00:00:00:00:07', 'dev', dummy, 'nud', 'permanent']);
      const hanging = run(guest, ['connect', '198.51.100.7', '80', '', '8000']);
      await new Promise((r) => setTimeout(r, 300));
      for (let i = 0; i < 10; i++) {
        const r = await guest.exec(['curl', '-sS', '-m', '5', `http://${guest.gateway4}:${httpPort}/${i}`]);
        assert.equal(r.stdout.toString(), `hello /${i}`, r.stderr);
      }
      const r = await hanging;
      assert.equal(r.error, 'timeout', 'the blackholed connect is still pending after the others finished');
      // dom0's own address (here the dummy's) is not a guest's business.
      const own = createServer((c) => c.end('dom0'));
      const port = await listen(own, '0.0.0.0');
      const d = await run(guest, ['connect', '198.51.100.1', String(port)]);
      own.close();
      assert.equal(d.error, 'ECONNREFUSED');
    } finally {
      execFileSync('ip', ['link', 'del', dummy]);
    }
  });

  test('pings to an outside host go through the NAT (IPv4 and IPv6)', async () => {
    // "Outside": a namespace behind a veth from the root namespace, with addresses of its own.
    const { execFileSync } = await import('node:child_process');
    const ns = `kw${process.pid % 100000}`;
    const ip = (...a: string[]) => execFileSync('ip', a);
    ip('netns', 'add', ns);
    try {
      ip('link', 'add', `${ns}a`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ip('addr', 'add', '203.0.113.1/24', 'dev', `${ns}a`);
      ip('-6', 'addr', 'add', '2001:db8:71::1/64', 'dev', `${ns}a`, 'nodad');
      ip('link', 'set', `${ns}a`, 'up');
      ip('-n', ns, 'addr', 'add', '203.0.113.9/24', 'dev', 'eth0');
      ip('-n', ns, '-6', 'addr', 'add', '2001:db8:71::9/64', 'dev', 'eth0', 'nodad');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      for (const [flag, addr] of [
        ['-4', '203.0.113.9'],
        ['-6', '2001:db8:71::9'],
      ] as const) {
        const r = await guest.exec(['ping', flag, '-c', '2', '-W', '2', addr]);
        assert.equal(r.code, 0, `ping ${addr}: ${r.stdout.toString()}${r.stderr}`);
      }
      // dom0's own address is not reachable from the guest (hostAccess is off).
      const own = await guest.exec(['ping', '-c', '1', '-W', '1', '203.0.113.1']);
      assert.notEqual(own.code, 0);
    } finally {
      ip('netns', 'del', ns);
    }
  });

  test('published ports reach the guest (TCP and UDP)', async () => {
    const server = guest.spawn([process.execPath, tool, 'serve', '7000']);
    try {
      await new Promise<void>((resolve) => server.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve()));
      const reply = await new Promise<string>((resolve, reject) => {
        const c = connect(inTcp, '127.0.0.1', () => c.write('knock'));
        c.on('data', (d) => {
          resolve(d.toString());
          c.end();
        });
        c.on('error', reject);
      });
      assert.equal(reply, 'guest:knock');
      const u = createSocket('udp4');
      const ureply = await new Promise<string>((resolve, reject) => {
        u.on('message', (m) => resolve(m.toString()));
        u.send('knock-udp', inUdp, '127.0.0.1');
        setTimeout(() => reject(new Error('no UDP reply')), 3000).unref();
      });
      u.close();
      assert.equal(ureply, 'guest:knock-udp');
    } finally {
      server.kill('SIGKILL');
    }
  });

  test("spoofed frames are dropped: another address, another MAC, another guest's address", async () => {
    // A second address on eth0: its connections go nowhere.
    await guest.exec(['ip', 'addr', 'add', '10.75.0.99/16', 'dev', 'eth0']);
    // (Not answered at all; or, once the guest's ARP entry for the gateway needs refreshing, its ARP
    // request from the spoofed address is not answered either: EHOSTUNREACH.)
    const spoofed = await run(guest, ['connect', guest.gateway4, String(httpPort), '10.75.0.99', '1500']);
    assert.ok(!spoofed.connected && ['timeout', 'EHOSTUNREACH'].includes(spoofed.error as string), JSON.stringify(spoofed));
    await guest.exec(['ip', 'addr', 'del', '10.75.0.99/16', 'dev', 'eth0']);
    // Claiming the other guest's address does not work either.
    await guest.exec(['ip', 'addr', 'add', '10.75.0.3/32', 'dev', 'eth0']);
    const stolen = await run(guest, ['connect', guest.gateway4, String(httpPort), '10.75.0.3', '1500']);
    assert.ok(!stolen.connected && ['timeout', 'EHOSTUNREACH'].includes(stolen.error as string), JSON.stringify(stolen));
    await guest.exec(['ip', 'addr', 'del', '10.75.0.3/32', 'dev', 'eth0']);
    // Another MAC: not even ARP is answered.
    await guest.exec(['ip', 'link', 'set', 'eth0', 'address', '02:4b:de:ad:be:ef']);
    await guest.exec(['ip', 'neigh', 'flush', 'dev', 'eth0']);
    const ping = await guest.exec(['ping', '-c', '1', '-W', '1', guest.gateway4]);
    assert.notEqual(ping.code, 0);
    await guest.exec(['ip', 'link', 'set', 'eth0', 'address', guest.mac]);
    await guest.exec(['ip', 'neigh', 'flush', 'dev', 'eth0']);
    // Port 0 (UDP and TCP) is dropped, and takes nothing down.
    // (The guest's kernel refuses port 0 to a UDP socket; a raw socket writes the header itself.)
    const zero = await guest.exec([
      'python3',
      '-c',
      `import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
for dst in ('203.0.113.5', '${guest.gateway4}'): s.sendto(struct.pack('!HHHH', 40000, 0, 9, 0) + b'x', (dst, 0))`,
    ]);
    assert.equal(zero.code, 0, zero.stderr);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(kn.proc.exitCode, null, `kratanet exited: ${kn.stderr}`);
    // And the real guest still works.
    const ok = await guest.exec(['curl', '-sS', '-m', '5', `http://${guest.gateway4}:${httpPort}/still`]);
    assert.equal(ok.stdout.toString(), 'hello /still', ok.stderr);
  });

  test('guests do not reach each other', async () => {
    const server = other.spawn([process.execPath, tool, 'serve', '7001']);
    try {
      await new Promise<void>((resolve) => server.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve()));
      const r = await run(guest, ['connect', '10.75.0.3', '7001', '', '3000']);
      assert.ok(r.error, `guest one reached guest two: ${JSON.stringify(r)}`);
      const ping = await guest.exec(['ping', '-c', '1', '-W', '1', '10.75.0.3']);
      assert.notEqual(ping.code, 0);
      // UDP to a denied destination (link-local: cloud metadata) is answered with ICMP administratively
      // prohibited. (Another guest's address is on-link for the guest, so its ARP simply goes unanswered.)
      const udp = await guest.exec([
        'python3',
        '-c',
        `import socket, sys
socket.setdefaulttimeout(3)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_IP, 11, 1)  # IP_RECVERR: the ICMP error ends recv
s.connect(('169.254.169.254', 80)); s.send(b'x')
try:
    s.recv(10); print('answered')
except OSError as e:
    print(e.errno)`,
      ]);
      assert.equal(udp.stdout.toString().trim(), '113', `errno (EHOSTUNREACH expected): ${udp.stdout.toString()}${udp.stderr.toString()}`);
      // The other guest itself is served.
      const mine = await other.exec(['curl', '-sS', '-m', '5', `http://${other.gateway4}:${httpPort}/two`]);
      assert.equal(mine.stdout.toString(), 'hello /two', mine.stderr);
    } finally {
      server.kill('SIGKILL');
    }
  });
});

describe('kratanet: a guest over its rate of new flows', { concurrency: false }, () => {
  let guest: VethGuest;
  let kn: Kn;
  let dir: string;
  const udp = createSocket('udp4');

  after(async () => {
    kn?.proc.kill('SIGTERM');
    udp.close();
    await guest?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('new flows over flowRate are dropped and counted; the budget refills', async () => {
    let tool: string;
    ({ dir, tool } = toolDir('kratanet-rate-'));
    udp.on('message', (m, r) => udp.send(m, r.port, r.address));
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    guest = await createVethGuest({ ipv4: '10.75.0.5/16', ipv6: 'fdd4:1476:6c7e::5/64' });
    const g = guest;
    const cfg = {
      hostLoopback: true,
      flowRate: 20,
      guests: [{ id: 'rate', interface: g.hostIf, mac: g.mac, ipv4: g.ipv4, ipv6: g.ipv6, gateway4: g.gateway4, gateway6: g.gateway6 }],
    };
    writeFileSync(join(dir, 'kratanet.json'), JSON.stringify(cfg));
    kn = await startKratanet(join(dir, 'kratanet.json'));
    const flows = async (n: number) => {
      const r = await g.exec([process.execPath, tool, 'udpflows', g.gateway4, String(udp.address().port), String(n)]);
      return JSON.parse(r.stdout.toString().trim().split('\n').pop()!) as { sent: number; answered: number };
    };
    // 300 at once against a burst of 40 and 20 a second: the burst and what refilled in the meantime.
    // One flow first, so the guest knows its gateway's MAC: datagrams sent while ARP is pending are
    // dropped by the guest's own stack beyond a few, and would never reach kratanet.
    assert.equal((await flows(1)).answered, 1);
    const t0 = Date.now();
    const { sent, answered } = await flows(300);
    const secs = (Date.now() - t0) / 1000;
    assert.ok(sent >= 150, `only ${sent} of 300 datagrams went out in 2 s`);
    assert.ok(answered >= 1 && answered <= 40 + 20 * secs, `${answered} of ${sent} new flows answered in ${secs} s`);
    kn.proc.kill('SIGUSR2');
    const line = async () => {
      for (let i = 0; i < 100 && !/throttled [1-9]/.test(kn.stderr); i++) await new Promise((r) => setTimeout(r, 20));
      return kn.stderr.split('\n').find((l) => l.startsWith('kratanet: rate on ')) ?? '';
    };
    // Every datagram either opened one of the few flows, was throttled, or found the link's receive
    // ring full (counted as dropped by the link).
    const report = await line();
    const [udpFlows, throttled, lost] = [/udp (\d+) flows/, /throttled (\d+)/, /frames \((\d+) dropped\), tx/].map((re) =>
      Number(re.exec(report)?.[1]),
    );
    assert.ok(udpFlows <= 1 + 40 + 20 * secs && throttled + lost >= sent + 1 - udpFlows - 5, `${sent} sent; report: ${report}`);
    assert.match(kn.stderr, /rate: over 20 new flows a second: new flows dropped/);
    // Two seconds later the bucket has refilled: a few new flows all pass.
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal((await flows(10)).answered, 10);
  });
});

describe('kratanet on a TAP device', { concurrency: false }, () => {
  let ns: GuestNs;
  let kn: Kn;
  let dir: string;
  const servers: Server[] = [];

  after(async () => {
    kn?.proc.kill('SIGTERM');
    for (const s of servers) s.close();
    await ns?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the same backend serves a TAP: ping, HTTP and 20 MB each way', async () => {
    let tool: string;
    ({ dir, tool } = toolDir('kratanet-tap-'));
    ns = await createBareGuest();
    const tap = `kp${randomBytes(4).toString('hex')}`;
    const mac = '02:4b:00:00:00:09';
    const cfg = {
      hostLoopback: true,
      guests: [
        {
          id: 'tap',
          interface: tap,
          tap: true,
          mac,
          ipv4: '10.75.0.9/16',
          ipv6: 'fdd4:1476:6c7e::9/64',
          gateway4: '10.75.0.1',
          gateway6: 'fdd4:1476:6c7e::1',
        },
      ],
    };
    writeFileSync(join(dir, 'kratanet.json'), JSON.stringify(cfg));
    kn = await startKratanet(join(dir, 'kratanet.json'));
    // The TAP kratanet created becomes the guest's eth0 (its fd keeps working across namespaces).
    const { execFileSync } = await import('node:child_process');
    execFileSync('ip', ['link', 'set', tap, 'netns', ns.ns]);
    for (const cmd of [
      ['ip', 'link', 'set', tap, 'name', 'eth0'],
      ['ip', 'link', 'set', 'eth0', 'address', mac, 'mtu', '1500', 'up'],
      ['ip', 'addr', 'add', '10.75.0.9/16', 'dev', 'eth0'],
      ['ip', 'route', 'add', 'default', 'via', '10.75.0.1'],
    ]) {
      const r = await ns.exec(cmd);
      assert.equal(r.code, 0, `${cmd.join(' ')}: ${r.stderr}`);
    }
    const ping = await ns.exec(['ping', '-c', '2', '-W', '2', '10.75.0.1']);
    assert.equal(ping.code, 0, ping.stdout.toString());
    const http = createHttpServer((req, res) => res.end(`tap ${req.url}`));
    servers.push(http);
    const port = await listen(http, '127.0.0.1');
    const r = await ns.exec(['curl', '-sS', '-m', '5', `http://10.75.0.1:${port}/x`]);
    assert.equal(r.stdout.toString(), 'tap /x', r.stderr);
    const BYTES = 20 << 20;
    const data = randomBytes(BYTES);
    const source = createServer((c) => c.end(data));
    servers.push(source);
    const sourcePort = await listen(source, '127.0.0.1');
    const down = await ns.exec([process.execPath, tool, 'recv', '10.75.0.1', String(sourcePort)], { timeoutMs: 60_000 });
    assert.deepEqual(JSON.parse(down.stdout.toString()), { sha256: createHash('sha256').update(data).digest('hex'), bytes: BYTES });
    let got = '';
    const sink = createServer((c) => {
      const h = createHash('sha256');
      c.on('data', (d) => h.update(d));
      c.on('end', () => {
        got = h.digest('hex');
        c.end();
      });
    });
    servers.push(sink);
    const sinkPort = await listen(sink, '127.0.0.1');
    const up = await ns.exec([process.execPath, tool, 'send', '10.75.0.1', String(sinkPort), String(BYTES)], { timeoutMs: 60_000 });
    const upr = JSON.parse(up.stdout.toString()) as { sha256: string; bytes: number };
    assert.equal(upr.bytes, BYTES);
    assert.equal(got, upr.sha256);
  });
});
