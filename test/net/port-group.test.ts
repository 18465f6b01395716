// A host port shared by a GuestSet's replicas (kratanet's port groups), on real kernel stacks: two
// guests in network namespaces behind veths, each serving TCP and UDP on port 80 and naming itself;
// kratanet in this process, reconfigured as readiness changes. Needs root.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { KratanetConfig } from '../../node-agent/net/config.js';
import { Kratanet, type GuestResult } from '../../node-agent/net/kratanet.js';
import { freePort } from '../free-port.js';
import { createVethGuest, type VethGuest } from './guest-ns.js';

// TCP: says NAME: then echoes; UDP: answers NAME:datagram.
const SERVE = String.raw`
const net = require('node:net'), dgram = require('node:dgram');
const [name] = process.argv.slice(1);
let n = 0;
const up = () => { if (++n === 2) process.stdout.write('listening\n'); };
net.createServer((s) => { s.on('error', () => {}); s.write(name + ':'); s.pipe(s); }).listen(80, up);
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => u.send(name + ':' + m, r.port, r.address));
u.bind(80, up);
`;

// Chosen in before(): free for TCP and UDP, picked again if another process takes it first.
let hostPort = 0;

/** Connects to the shared port; resolves with what arrives first ('' when the connection closes without a byte). */
async function open(): Promise<{ socket: Socket; first: string }> {
  const socket = connect(hostPort, '127.0.0.1');
  socket.on('error', () => {});
  const first = await new Promise<string>((resolve) => {
    socket.once('data', (d: Buffer) => resolve(d.toString()));
    socket.once('close', () => resolve(''));
  });
  return { socket, first };
}

function exchange(s: UdpSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      s.off('message', onMessage);
      resolve('(no answer)');
    }, 1500);
    const onMessage = (m: Buffer) => {
      clearTimeout(t);
      s.off('message', onMessage);
      resolve(m.toString());
    };
    s.on('message', onMessage);
    s.send(text, hostPort, '127.0.0.1');
  });
}

async function udpClient(): Promise<UdpSocket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return s;
}

describe('a published port shared by guests, balanced over the ready ones', { concurrency: false }, () => {
  let a: VethGuest;
  let b: VethGuest;
  const servers: ChildProcess[] = [];
  const logs: string[] = [];
  const net = new Kratanet((m) => logs.push(m));
  const clients: (Socket | UdpSocket)[] = [];

  function config(readyA: boolean, readyB: boolean): KratanetConfig {
    const guest = (g: VethGuest, id: string) => ({
      id,
      interface: g.hostIf,
      mac: g.mac,
      ipv4: g.ipv4,
      ipv6: g.ipv6,
      gateway4: g.gateway4,
      gateway6: g.gateway6,
    });
    const members = [
      { guest: 'shop/a', guestPort: 80, ready: readyA },
      { guest: 'shop/b', guestPort: 80, ready: readyB },
    ];
    return {
      guests: [guest(a, 'shop/a'), guest(b, 'shop/b')],
      portGroups: [
        { protocol: 'TCP', hostPort, members },
        { protocol: 'UDP', hostPort, members },
      ],
    };
  }

  async function serve(g: VethGuest, name: string): Promise<void> {
    const child = g.spawn([process.execPath, '-e', SERVE, name]);
    servers.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
      child.once('exit', (code) => reject(new Error(`server in ${g.ns} exited (${code})`)));
    });
  }

  function assertApplied(results: GuestResult[]): void {
    assert.deepEqual(
      results.map((r) => [r.id, r.ok, r.portErrors]),
      [
        ['shop/a', true, []],
        ['shop/b', true, []],
      ],
      logs.join('\n'),
    );
  }

  async function apply(readyA: boolean, readyB: boolean): Promise<void> {
    assertApplied(await net.apply(config(readyA, readyB)));
  }

  before(async () => {
    a = await createVethGuest();
    b = await createVethGuest({ ipv4: '10.75.0.3/16', ipv6: 'fdd4:1476:6c7e::3/64' });
    await serve(a, 'a');
    await serve(b, 'b');
    // The port is free when picked but not reserved: another process can bind it before kratanet does.
    let results: GuestResult[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      hostPort = await freePort({ udp: true });
      results = await net.apply(config(true, true));
      if (!results.some((r) => r.portErrors.some((e) => e.includes('EADDRINUSE')))) break;
    }
    assertApplied(results);
  });

  after(async () => {
    for (const c of clients)
      if ('destroy' in c) c.destroy();
      else c.close();
    net.close();
    for (const s of servers) s.kill('SIGKILL');
    await a?.destroy();
    await b?.destroy();
  });

  test('TCP: new connections alternate over the two ready guests', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const c = await open();
      clients.push(c.socket);
      seen.push(c.first);
    }
    assert.deepEqual(seen.filter((s) => s === 'a:').length, 3, seen.join(' '));
    assert.deepEqual(seen.filter((s) => s === 'b:').length, 3, seen.join(' '));
  });

  test('UDP: each new client goes to the next ready guest and stays with it', async () => {
    const names = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const s = await udpClient();
      clients.push(s);
      const first = await exchange(s, `hello${i}`);
      assert.match(first, /^[ab]:hello\d$/);
      names.add(first[0]!);
      assert.equal(await exchange(s, 'again'), `${first[0]}:again`, 'the flow stays with its guest');
    }
    assert.deepEqual([...names].sort(), ['a', 'b']);
  });

  test('a guest that turns not ready gets no new connections; the ones it has keep working', async () => {
    // An open connection to b, and a UDP client of b, from before.
    let toB: Socket | undefined;
    for (let i = 0; i < 2 && !toB; i++) {
      const c = await open();
      clients.push(c.socket);
      if (c.first === 'b:') toB = c.socket;
    }
    assert.ok(toB, 'a connection reached b');
    let udpB: UdpSocket | undefined;
    for (let i = 0; i < 2 && !udpB; i++) {
      const s = await udpClient();
      clients.push(s);
      if ((await exchange(s, 'x')).startsWith('b:')) udpB = s;
    }
    assert.ok(udpB, 'a UDP client reached b');

    await apply(true, false);
    for (let i = 0; i < 4; i++) {
      const c = await open();
      clients.push(c.socket);
      assert.equal(c.first, 'a:');
    }
    for (let i = 0; i < 2; i++) {
      const s = await udpClient();
      clients.push(s);
      assert.equal(await exchange(s, 'new'), 'a:new');
    }
    // Not rebound, not restarted: b's open connection and flow still answer.
    const echoed = new Promise<string>((resolve) => toB.once('data', (d: Buffer) => resolve(d.toString())));
    toB.write('still there');
    assert.equal(await echoed, 'still there');
    assert.equal(await exchange(udpB, 'old'), 'b:old');
  });

  test('no ready guest: a connection is closed at once, a datagram from a new client is dropped; ready again, served', async () => {
    await apply(false, false);
    const c = await open();
    clients.push(c.socket);
    assert.equal(c.first, '', 'closed without a byte');
    const s = await udpClient();
    clients.push(s);
    assert.equal(await exchange(s, 'anyone'), '(no answer)');

    await apply(false, true);
    const d = await open();
    clients.push(d.socket);
    assert.equal(d.first, 'b:');
    assert.equal(await exchange(s, 'now'), 'b:now');
  });
});
