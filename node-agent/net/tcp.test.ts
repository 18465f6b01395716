// TcpFlow driven from both ends without root: a recording fake TcpWire stands in for the guest's link
// (segments built with wire.ts and parsed back into a Packet, as the backend would hand them over), and
// real TCP servers and sockets on 127.0.0.1 stand in for the world.
import assert from 'node:assert/strict';
import { afterEach, mock, test } from 'node:test';
import { connect, createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Budget, TcpFlow, type TcpState, type TcpWire } from './tcp.js';
import { NodeHostSocket } from './host-socket.js';
import { RawHostSocket } from './raw-host-socket.js';
import {
  ETH_HLEN,
  ETHERTYPE_IPV4,
  Packet,
  parse,
  parseIpv4,
  parseMac,
  PROTO_TCP,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  writeEth,
  writeIpv4,
  writeTcp,
} from './wire.js';

const GUEST_MAC = parseMac('02:4b:00:00:00:02');
const GW_MAC = parseMac('02:4b:00:00:00:01');
const GUEST_IP = parseIpv4('10.0.0.2');
const LOOPBACK = parseIpv4('127.0.0.1');
const GUEST_PORT = 40000;
const PATH_MSS = 1460;

const u32 = (n: number) => n >>> 0;
const seqDiff = (a: number, b: number) => (a - b) | 0;

// ---- a recording TcpWire ------------------------------------------------------------------------------

interface Seg {
  seq: number;
  ack: number;
  flags: number;
  window: number;
  options: Buffer | null;
  data: Buffer;
  /** The flow's state when the segment was sent. */
  state: TcpState;
}

class FakeWire implements TcpWire {
  readonly budget: Budget;
  constructor(hostBudget: Budget | null = null) {
    this.budget = new Budget(64 << 20, hostBudget);
  }
  readonly segs: Seg[] = [];
  closedCalls = 0;
  unreachableCalls = 0;
  readonly logs: string[] = [];
  private readonly acks = new Set<TcpFlow>();
  private readonly corks = new Set<TcpFlow>();

  segment(
    flow: TcpFlow,
    seq: number,
    ack: number,
    flags: number,
    window: number,
    options: Buffer | null,
    offset: number,
    len: number,
  ): void {
    const data = Buffer.alloc(len);
    if (len > 0) flow.copyOut(data, 0, offset, len);
    if (flags & TCP_ACK) flow.lastAckSent = ack;
    this.segs.push({
      seq: u32(seq),
      ack: u32(ack),
      flags,
      window,
      options: options ? Buffer.from(options) : null,
      data,
      state: flow.state,
    });
  }
  maxSegment(flow: TcpFlow): number {
    return flow.mss;
  }
  pathMss(): number {
    return PATH_MSS;
  }
  unreachable(): void {
    this.unreachableCalls++;
  }
  closed(flow: TcpFlow): void {
    this.closedCalls++;
    this.acks.delete(flow);
    this.delayed.delete(flow);
    this.corks.delete(flow);
  }
  wantAck(flow: TcpFlow): void {
    this.acks.add(flow);
  }
  /** Flows owing a delayed ACK: sent by sendDelayedAcks() (the backend's timer). */
  readonly delayed = new Set<TcpFlow>();
  delayAck(flow: TcpFlow): void {
    this.delayed.add(flow);
  }
  sendDelayedAcks(): void {
    for (const f of this.delayed) if (f.lastAckSent !== f.rcvNxt) f.sendAck();
    this.delayed.clear();
  }
  corked(flow: TcpFlow): void {
    this.corks.add(flow);
  }
  log(msg: string): void {
    this.logs.push(msg);
  }
  /** What the backend does at the end of a batch of guest frames: delayed ACKs, then uncork. */
  batchEnd(): void {
    for (const f of this.acks) if (f.lastAckSent !== f.rcvNxt) f.sendAck();
    this.acks.clear();
    for (const f of this.corks) f.host?.flush();
    this.corks.clear();
  }
  dataSegs(from = 0): Seg[] {
    return this.segs.slice(from).filter((s) => s.data.length > 0);
  }
}

// ---- guest segments --------------------------------------------------------------------------------------

interface GuestSeg {
  seq: number;
  ack?: number;
  flags: number;
  window?: number;
  options?: Buffer;
  data?: Buffer;
}

function frame(remotePort: number, s: GuestSeg): Packet {
  const opts = s.options;
  const thlen = 20 + (opts ? opts.length : 0);
  const data = s.data ?? Buffer.alloc(0);
  const buf = Buffer.alloc(ETH_HLEN + 20 + thlen + data.length);
  writeEth(buf, GW_MAC, GUEST_MAC, ETHERTYPE_IPV4);
  writeIpv4(buf, ETH_HLEN, GUEST_IP, LOOPBACK, PROTO_TCP, 20 + thlen + data.length);
  writeTcp(buf, ETH_HLEN + 20, GUEST_PORT, remotePort, s.seq, s.ack ?? 0, s.flags, s.window ?? 0xffff, opts);
  data.copy(buf, ETH_HLEN + 20 + thlen);
  const p = new Packet();
  assert.ok(parse(p, buf), 'the test built an unparsable frame');
  return p;
}

/** SYN options: MSS, then optionally window scale and SACK-permitted (padded to 4 bytes). */
function synOptions(mss: number, wscale: number | null, sack: boolean): Buffer {
  const o = [2, 4, mss >> 8, mss & 255];
  if (wscale !== null) o.push(1, 3, 3, wscale);
  if (sack) o.push(1, 1, 4, 2);
  return Buffer.from(o);
}

/** TCP options as kind → value bytes (NOPs skipped). */
function options(b: Buffer | null): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  if (!b) return m;
  for (let i = 0; i < b.length;) {
    const kind = b[i]!;
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = b[i + 1]!;
    assert.ok(len >= 2 && i + len <= b.length, `malformed option ${kind} in ${b.toString('hex')}`);
    m.set(kind, b.subarray(i + 2, i + len));
    i += len;
  }
  return m;
}

// ---- helpers -------------------------------------------------------------------------------------------

async function until(cond: () => boolean, ms = 2000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const flows: TcpFlow[] = [];
const sockets: Socket[] = [];
const servers: Server[] = [];

afterEach(async () => {
  mock.timers.reset();
  for (const f of flows.splice(0)) f.close();
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

interface Peer {
  server: Server;
  port: number;
  conns: Socket[];
  /** Bytes received by the server, across connections. */
  received: () => Buffer;
  ended: boolean;
  closed: boolean;
  errors: string[];
}

/** A world-side server on 127.0.0.1 that records what it gets; `onConn` may write to each connection. */
async function server(onConn?: (s: Socket) => void): Promise<Peer> {
  const chunks: Buffer[] = [];
  const peer: Peer = {
    server: null as unknown as Server,
    port: 0,
    conns: [],
    received: () => Buffer.concat(chunks),
    ended: false,
    closed: false,
    errors: [],
  };
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    peer.conns.push(s);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => (peer.ended = true));
    s.on('error', (e: NodeJS.ErrnoException) => peer.errors.push(e.code ?? e.message));
    s.on('close', () => (peer.closed = true));
    onConn?.(s);
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  peer.server = srv;
  peer.port = (srv.address() as AddressInfo).port;
  return peer;
}

/** The guest's end of one flow: a wire, the flow, and the guest's sequence numbers. */
class Guest {
  readonly wire: FakeWire;
  flow!: TcpFlow;
  /** The guest's ISN and next sequence number to send. */
  isn = (Math.random() * 0x100000000) >>> 0;
  nxt = u32(this.isn + 1);
  /** Our ISN as seen in our SYN or SYN|ACK. */
  ourIsn = 0;
  constructor(
    public remotePort: number,
    hostBudget: Budget | null = null,
  ) {
    this.wire = new FakeWire(hostBudget);
  }

  make(inbound: boolean): TcpFlow {
    this.flow = new TcpFlow(this.wire, { remote4: LOOPBACK, remote6: null, remotePort: this.remotePort, guestPort: GUEST_PORT, inbound });
    flows.push(this.flow);
    return this.flow;
  }

  /** Feeds one guest segment as one batch. */
  send(s: GuestSeg): void {
    this.flow.input(frame(this.remotePort, s));
    this.wire.batchEnd();
  }

  /** Sends data at `nxt` (advancing it), acking `ack`. */
  data(data: Buffer, ack: number, window = 0xffff, flags = TCP_ACK | TCP_PSH): void {
    const seq = this.nxt;
    this.nxt = u32(this.nxt + data.length + (flags & TCP_FIN ? 1 : 0));
    this.send({ seq, ack, flags, window, data });
  }

  ack(ack: number, window = 0xffff, flags = TCP_ACK): void {
    this.send({ seq: this.nxt, ack, flags, window });
  }
}

/** An outbound flow to `peer` up to the guest's SYN (connect started, not yet complete). */
function outboundSyn(port: number, synOpts = synOptions(1460, 7, true), window = 0xffff, hostBudget: Budget | null = null): Guest {
  const g = new Guest(port, hostBudget);
  const flow = g.make(false);
  flow.startOutbound(frame(port, { seq: g.isn, flags: TCP_SYN, window, options: synOpts }), RawHostSocket.connect('127.0.0.1', port, flow));
  return g;
}

/** An established outbound flow; the guest's window field is `window` (scaled by 7). */
async function established(peer: Peer, window = 0xffff, hostBudget: Budget | null = null): Promise<Guest> {
  const g = outboundSyn(peer.port, undefined, undefined, hostBudget);
  await until(() => g.wire.segs.length > 0, 2000, 'SYN|ACK');
  const sa = g.wire.segs[0]!;
  assert.equal(sa.flags, TCP_SYN | TCP_ACK);
  g.ourIsn = sa.seq;
  g.ack(u32(g.ourIsn + 1), window);
  assert.equal(g.flow.state, 'Established');
  await until(() => peer.conns.length > 0, 2000, 'the server to accept');
  return g;
}

/** Reassembles the in-order bytes the guest got from `first` (our ISN + 1). */
function inOrder(segs: Seg[], first: number): Buffer {
  const out: Buffer[] = [];
  let at = first;
  for (const s of segs) {
    if (s.data.length === 0) continue;
    const off = seqDiff(at, s.seq);
    if (off < 0 || off >= s.data.length) continue;
    out.push(s.data.subarray(off));
    at = u32(s.seq + s.data.length);
  }
  return Buffer.concat(out);
}

// ---- 1. outbound ---------------------------------------------------------------------------------------

test('outbound: SYN|ACK waits for the connect and carries ack = isn+1 and our options', async () => {
  const peer = await server();
  const g = outboundSyn(peer.port);
  assert.equal(g.flow.state, 'Connecting');
  assert.equal(g.wire.segs.length, 0, 'nothing is sent before the dom0 connect completes');
  // A retransmitted SYN while connecting is ignored too.
  g.send({ seq: g.isn, flags: TCP_SYN, options: synOptions(1460, 7, true) });
  assert.equal(g.wire.segs.length, 0);

  await until(() => g.wire.segs.length > 0, 2000, 'SYN|ACK');
  assert.equal(g.wire.segs.length, 1);
  const sa = g.wire.segs[0]!;
  assert.equal(sa.flags, TCP_SYN | TCP_ACK);
  assert.equal(sa.ack, u32(g.isn + 1));
  assert.equal(g.flow.state, 'SynReceived');
  const o = options(sa.options);
  assert.equal(o.get(2)?.readUInt16BE(0), PATH_MSS, 'MSS');
  assert.deepEqual([...(o.get(3) ?? [])], [7], 'window scale 7');
  assert.ok(o.has(4), 'SACK-permitted, since the guest offered it');
  assert.equal(g.flow.mss, 1460);

  g.ourIsn = sa.seq;
  g.ack(u32(sa.seq + 1));
  assert.equal(g.flow.state, 'Established');
  assert.equal(g.wire.segs.length, 1, 'the handshake ACK is not answered');
});

test('outbound: no window scale or SACK-permitted unless the guest offers them; MSS is the smaller one', async () => {
  const peer = await server();
  const g = outboundSyn(peer.port, synOptions(1200, null, false), 29200);
  await until(() => g.wire.segs.length > 0, 2000, 'SYN|ACK');
  const sa = g.wire.segs[0]!;
  assert.equal(sa.flags, TCP_SYN | TCP_ACK);
  const o = options(sa.options);
  assert.deepEqual([...o.keys()], [2], 'only MSS');
  assert.ok(sa.window <= 0xffff);
  assert.equal(g.flow.mss, 1200);

  // Data from the server comes in segments of at most the guest's MSS, unscaled window 29200.
  g.ourIsn = sa.seq;
  g.ack(u32(sa.seq + 1), 29200);
  await until(() => peer.conns.length > 0);
  peer.conns[0]!.write(randomBytes(20000));
  await until(() => g.wire.dataSegs().reduce((n, s) => n + s.data.length, 0) >= 20000, 2000, 'server data');
  for (const s of g.wire.dataSegs()) assert.ok(s.data.length <= 1200, `segment of ${s.data.length} bytes > MSS`);
});

test('outbound: guest data reaches the server in order; server data comes back within the guest window', async () => {
  const peer = await server();
  const WSCALE_WINDOW = 16; // << 7 = 2048 bytes
  const g = await established(peer, WSCALE_WINDOW);
  const ourFirst = u32(g.ourIsn + 1);

  // Guest → server: several segments in order, in separate batches.
  const up = randomBytes(5000);
  const upStart = g.nxt;
  const acksBefore = g.wire.segs.length;
  for (let i = 0; i < up.length; i += 1000) g.data(up.subarray(i, i + 1000), ourFirst, WSCALE_WINDOW);
  await until(() => peer.received().length >= up.length, 2000, 'guest data at the server');
  assert.deepEqual(peer.received(), up);
  // Every second small segment is acknowledged at once, the fifth waits for the delayed ACK.
  assert.deepEqual(
    g.wire.segs.slice(acksBefore).map((s) => s.ack),
    [u32(upStart + 2000), u32(upStart + 4000)],
  );
  g.wire.sendDelayedAcks();
  const lastAck = g.wire.segs[g.wire.segs.length - 1]!;
  assert.equal(lastAck.ack, g.nxt, 'the delayed ACK covers everything');
  assert.equal(g.flow.rcvNxt, g.nxt);

  // Server → guest: 64 KiB through a 2 KiB window; the guest acks what it has in order.
  const down = randomBytes(64 * 1024);
  peer.conns[0]!.write(down);
  let una = ourFirst;
  let seen = g.wire.segs.length;
  const got: Buffer[] = [];
  let total = 0;
  while (total < down.length) {
    await until(() => g.wire.segs.length > seen, 2000, `server data beyond ${total}`);
    for (const s of g.wire.segs.slice(seen)) {
      if (s.data.length === 0) continue;
      assert.ok(
        seqDiff(u32(s.seq + s.data.length), u32(una + (WSCALE_WINDOW << 7))) <= 0,
        `segment [${s.seq}, +${s.data.length}) beyond una ${una} + window`,
      );
      assert.equal(s.ack, g.nxt, 'data carries our ACK of the guest bytes');
      assert.equal(s.flags & TCP_ACK, TCP_ACK);
      if (s.seq === una) {
        got.push(s.data);
        total += s.data.length;
        una = u32(una + s.data.length);
      }
    }
    seen = g.wire.segs.length;
    g.ack(una, WSCALE_WINDOW);
  }
  assert.deepEqual(Buffer.concat(got), down);
});

test('delayed ACK: a small request is acknowledged by its answer, in one segment, and nothing follows', async () => {
  const peer = await server((c) => c.on('data', (d: Buffer) => c.write(Buffer.concat([Buffer.from('answer to '), d]))));
  const g = await established(peer);
  const ourFirst = u32(g.ourIsn + 1);
  for (let i = 0; i < 3; i++) {
    const before = g.wire.segs.length;
    g.data(Buffer.from(`request ${i}`), u32(ourFirst + i * 19));
    assert.equal(g.wire.segs.length, before, 'no pure ACK at the end of the batch');
    await until(() => g.wire.segs.length > before, 2000, 'the answer');
    const answer = g.wire.segs.slice(before);
    assert.equal(answer.length, 1, 'one segment: the answer');
    assert.equal(answer[0]!.data.toString(), `answer to request ${i}`);
    assert.equal(answer[0]!.ack, g.nxt, 'the answer carries the ACK of the request');
    g.wire.sendDelayedAcks();
    assert.equal(g.wire.segs.length, before + 1, 'the delayed ACK is not sent: it left with the answer');
  }
});

test('delayed ACK: without an answer the timer sends it; a second small segment or a large one is acked at once', async () => {
  const peer = await server();
  const g = await established(peer);
  const ourFirst = u32(g.ourIsn + 1);
  const before = g.wire.segs.length;
  g.data(Buffer.from('one'), ourFirst);
  assert.equal(g.wire.segs.length, before);
  g.wire.sendDelayedAcks();
  assert.equal(g.wire.segs.length, before + 1);
  assert.equal(g.wire.segs[before]!.ack, g.nxt);
  assert.equal(g.wire.segs[before]!.data.length, 0);
  // Two small segments in one batch: the second finds an ACK owed and asks for one at the batch's end.
  g.flow.input(frame(g.remotePort, { seq: g.nxt, ack: ourFirst, flags: TCP_ACK | TCP_PSH, data: Buffer.from('two') }));
  g.nxt = u32(g.nxt + 3);
  g.flow.input(frame(g.remotePort, { seq: g.nxt, ack: ourFirst, flags: TCP_ACK | TCP_PSH, data: Buffer.from('three') }));
  g.nxt = u32(g.nxt + 5);
  g.wire.batchEnd();
  assert.equal(g.wire.segs.length, before + 2, 'one ACK for both');
  assert.equal(g.wire.segs[before + 1]!.ack, g.nxt);
  // A segment of two MSS or more (a GSO super-frame) is acked at the batch's end.
  g.data(randomBytes(2 * 1460), ourFirst);
  assert.equal(g.wire.segs.length, before + 3);
  assert.equal(g.wire.segs[before + 2]!.ack, g.nxt);
  await until(() => peer.received().length === 3 + 3 + 5 + 2 * 1460, 2000, 'everything at the server');
});

test('timer: request/answer/ACK exchanges arm no new timer each; an unacknowledged answer is still resent', async () => {
  const peer = await server((c) => c.on('data', (d: Buffer) => c.write(d)));
  const g = await established(peer);
  let una = u32(g.ourIsn + 1);
  const spy = mock.method(globalThis, 'setTimeout');
  try {
    for (let i = 0; i < 10; i++) {
      const before = g.wire.segs.length;
      g.data(Buffer.from(`ping ${i}`), una);
      await until(() => g.wire.dataSegs(before).length === 1, 2000, 'the answer');
      una = u32(una + `ping ${i}`.length);
      g.ack(una);
    }
    const rtoTimers = spy.mock.calls.filter((c) => Number(c.arguments[1]) >= 200).length;
    assert.ok(rtoTimers <= 2, `${rtoTimers} retransmission timers set for 10 exchanges`);
  } finally {
    spy.mock.restore();
  }
  // The timer still runs: an answer the guest does not acknowledge comes again after the RTO.
  const before = g.wire.segs.length;
  g.data(Buffer.from('lost'), una);
  await until(() => g.wire.dataSegs(before).length === 2, 3000, 'the retransmission');
  const [first, again] = g.wire.dataSegs(before);
  assert.equal(again!.seq, first!.seq);
  assert.equal(again!.data.toString(), 'lost');
});

// ---- budgets ----------------------------------------------------------------------------------------------

test('budget: a guest budget under a host budget has the smaller room; draining the host wakes every guest', () => {
  const host = new Budget(1000);
  const a = new Budget(800, host);
  const b = new Budget(800, host);
  a.take(600);
  assert.equal(a.free, 200);
  assert.equal(b.free, 400, "b has room of its own, but only the host's 400 left");
  b.take(400);
  assert.equal(host.used, 1000);
  assert.equal(a.free, 0, 'the host is full: a has no room although it is under its own limit');
  assert.equal(b.free, 0);
  const woken: string[] = [];
  const fa = { budgetFreed: () => woken.push('a') } as unknown as TcpFlow;
  const fb = { budgetFreed: () => woken.push('b') } as unknown as TcpFlow;
  a.hold(fa);
  b.hold(fb);
  // a drains below the host's 75%: b's flow, paused for the host's sake, wakes too.
  a.release(600);
  assert.ok(woken.includes('a'), "a's flow is woken");
  assert.ok(woken.includes('b'), "b's flow, paused for the host's sake, is woken when the host has room again");
  assert.equal(host.used, 400);
  assert.equal(b.free, 400);
});

test('budget: two guests streaming from the world hold no more than the host-wide budget in dom0', async () => {
  const LIMIT = 1 << 20;
  const STREAM = 8 << 20;
  const host = new Budget(LIMIT);
  const payload = randomBytes(STREAM);
  const peer = await server((s) => s.end(payload));
  // A window of 8 MiB (0xffff << 7): only the budgets stop dom0 from reading the streams at once.
  const guests = [await established(peer, 0xffff, host), await established(peer, 0xffff, host)];
  const held = () => guests.reduce((n, g) => n + g.wire.budget.used, 0);
  let peak = 0;
  let last = -1;
  for (let i = 0; i < 100 && held() !== last; i++) {
    last = held();
    await sleep(30);
    peak = Math.max(peak, held());
  }
  assert.ok(
    guests.every((g) => g.wire.budget.used > 0),
    'both guests got data',
  );
  // One socket read (64 KiB) per flow may land after the host budget is full.
  assert.ok(peak <= LIMIT + 2 * (64 << 10), `the guests hold ${peak} bytes, above the host budget of ${LIMIT}`);
  assert.equal(host.used, held());
  // The guests acknowledge what they got: both streams finish, in order.
  for (let round = 0; round < 2000 && guests.some((g) => inOrder(g.wire.segs, u32(g.ourIsn + 1)).length < STREAM); round++) {
    for (const g of guests) {
      const top = g.wire
        .dataSegs()
        .reduce((m, x) => (seqDiff(u32(x.seq + x.data.length), m) > 0 ? u32(x.seq + x.data.length) : m), u32(g.ourIsn + 1));
      g.ack(top, 0xffff);
    }
    peak = Math.max(peak, held());
    await sleep(5);
  }
  for (const g of guests) assert.ok(inOrder(g.wire.segs, u32(g.ourIsn + 1)).equals(payload), 'the stream arrived whole');
  assert.ok(peak <= LIMIT + 2 * (64 << 10), `the guests held ${peak} bytes while draining`);
});

test('budget: a keep-alive flow of small requests gives each one back once the socket has sent it', async () => {
  const peer = await server();
  const g = await established(peer);
  const ourFirst = u32(g.ourIsn + 1);
  const full = g.flow.window();
  // 300 requests of 1000 bytes, each in its own batch: the socket never buffers past its high-water
  // mark, so it never emits 'drain'.
  for (let i = 0; i < 300; i++) {
    g.data(randomBytes(1000), ourFirst, 0xffff);
    g.wire.sendDelayedAcks();
    if (i % 50 === 49) await sleep(1);
  }
  await until(() => peer.received().length === 300_000, 2000, 'every request at the server');
  await until(() => g.wire.budget.used === 0, 2000, `the budget given back (still ${g.wire.budget.used} bytes)`);
  assert.equal(g.flow.window(), full, 'the full window is offered again');
});

// ---- 2. refused and unreachable --------------------------------------------------------------------------

test('refused: a closed port gives exactly one RST|ACK (ack = isn+1), then closed()', async () => {
  const tmp = await server();
  const port = tmp.port;
  await new Promise((r) => tmp.server.close(r));
  servers.splice(servers.indexOf(tmp.server), 1);

  const g = outboundSyn(port);
  await until(() => g.wire.closedCalls > 0, 2000, 'closed()');
  await sleep(50);
  assert.equal(g.wire.segs.length, 1);
  const rst = g.wire.segs[0]!;
  assert.equal(rst.flags, TCP_RST | TCP_ACK);
  assert.equal(rst.ack, u32(g.isn + 1));
  assert.equal(g.wire.closedCalls, 1);
  assert.equal(g.wire.unreachableCalls, 0);
  assert.equal(g.flow.state, 'Closed');
});

test('unreachable: a connect failing with EHOSTUNREACH tells the guest unreachable(), sends nothing', async () => {
  const peer = await server();
  const g = new Guest(peer.port);
  const flow = g.make(false);
  const sock = connect({ host: '127.0.0.1', port: peer.port, allowHalfOpen: true });
  sockets.push(sock);
  flow.startOutbound(frame(peer.port, { seq: g.isn, flags: TCP_SYN, options: synOptions(1460, 7, true) }), new NodeHostSocket(sock, flow));
  sock.destroy(Object.assign(new Error('connect EHOSTUNREACH'), { code: 'EHOSTUNREACH' }));
  await until(() => g.wire.closedCalls > 0, 2000, 'closed()');
  await sleep(20);
  assert.equal(g.wire.unreachableCalls, 1);
  assert.equal(g.wire.closedCalls, 1);
  assert.equal(g.wire.segs.length, 0);
  assert.equal(flow.state, 'Closed');
});

test('unreachable: a connect that never completes times out into unreachable() (fake timers)', () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Date.now() });
  const g = new Guest(9);
  const flow = g.make(false);
  const sock = new Socket(); // never connects
  sockets.push(sock);
  flow.startOutbound(frame(9, { seq: g.isn, flags: TCP_SYN, options: synOptions(1460, 7, true) }), new NodeHostSocket(sock, flow));
  mock.timers.tick(29_000);
  assert.equal(g.wire.unreachableCalls, 0);
  assert.equal(flow.state, 'Connecting');
  mock.timers.tick(1_000);
  assert.equal(g.wire.unreachableCalls, 1);
  assert.equal(g.wire.closedCalls, 1);
  assert.equal(g.wire.segs.length, 0);
  assert.equal(flow.state, 'Closed');
});

// ---- 3. out of order -----------------------------------------------------------------------------------

test('out of order: a segment beyond a hole is SACKed at once and held; filling the hole delivers all', async () => {
  const peer = await server();
  const g = await established(peer);
  const first = g.nxt;
  const bytes = randomBytes(2000);
  const n0 = g.wire.segs.length;

  g.send({ seq: u32(first + 1000), ack: u32(g.ourIsn + 1), flags: TCP_ACK | TCP_PSH, data: bytes.subarray(1000) });
  assert.equal(g.wire.segs.length, n0 + 1, 'an immediate duplicate ACK');
  const dup = g.wire.segs[n0]!;
  assert.equal(dup.flags, TCP_ACK);
  assert.equal(dup.ack, first);
  assert.equal(dup.data.length, 0);
  const sack = options(dup.options).get(5);
  assert.ok(sack, 'a SACK option (kind 5)');
  assert.equal(sack.length, 8, 'one block');
  assert.equal(sack.readUInt32BE(0), u32(first + 1000));
  assert.equal(sack.readUInt32BE(4), u32(first + 2000));
  assert.equal(g.flow.rcvNxt, first);
  await sleep(30);
  assert.equal(peer.received().length, 0, 'nothing reaches the server past a hole');

  g.send({ seq: first, ack: u32(g.ourIsn + 1), flags: TCP_ACK | TCP_PSH, data: bytes.subarray(0, 1000) });
  const ack = g.wire.segs[g.wire.segs.length - 1]!;
  assert.equal(ack.ack, u32(first + 2000), 'the ACK covers both segments');
  assert.equal(options(ack.options).has(5), false, 'no SACK once the hole is filled');
  await until(() => peer.received().length >= 2000, 2000, '2000 bytes at the server');
  assert.deepEqual(peer.received(), bytes);
});

// ---- 4. retransmission ---------------------------------------------------------------------------------

test('retransmission: unacknowledged data is resent from snd.una after the RTO', async () => {
  const peer = await server();
  const g = await established(peer);
  const una = u32(g.ourIsn + 1);
  const down = randomBytes(3000);
  peer.conns[0]!.write(down);
  await until(() => inOrder(g.wire.segs, una).length >= 3000, 2000, 'the first transmission');
  const firstDone = Date.now();
  const n = g.wire.segs.length;
  await until(() => g.wire.dataSegs(n).some((s) => s.seq === una), 2000, 'a retransmission');
  const waited = Date.now() - firstDone;
  assert.ok(waited >= 150, `retransmitted after ${waited} ms, before the 200 ms RTO`);
  const again = g.wire.dataSegs(n);
  assert.equal(again[0]!.seq, una, 'go-back-N from snd.una');
  assert.deepEqual(inOrder(again, una), down);
});

test('retransmission: three duplicate ACKs resend from snd.una', async () => {
  const peer = await server();
  const g = await established(peer);
  const base = u32(g.ourIsn + 1);
  const down = randomBytes(5 * 1460);
  peer.conns[0]!.write(down);
  await until(() => inOrder(g.wire.segs, base).length >= down.length, 2000, 'the first transmission');
  const una = u32(base + 1460);
  g.ack(una); // the first segment arrived, the second was lost
  const n = g.wire.segs.length;
  g.ack(una);
  g.ack(una);
  assert.equal(g.wire.dataSegs(n).length, 0, 'two duplicate ACKs resend nothing');
  g.ack(una);
  const again = g.wire.dataSegs(n);
  assert.ok(again.length > 0, 'the third duplicate ACK resends');
  assert.equal(again[0]!.seq, una);
  assert.deepEqual(again[0]!.data, down.subarray(1460, 1460 + again[0]!.data.length));
});

test('retransmission: after an RTO with more than cwnd in flight, an ACK of everything sent is accepted', async () => {
  const peer = await server();
  const g = await established(peer);
  const base = u32(g.ourIsn + 1);
  const N = 30 * 1460; // more than the 10 * MSS the RTO resends
  peer.conns[0]!.write(randomBytes(N));
  await until(() => inOrder(g.wire.segs, base).length >= N, 2000, 'the first transmission');
  const n = g.wire.segs.length;
  await until(() => g.wire.dataSegs(n).some((s) => s.seq === base), 2000, 'the RTO');
  // The guest had everything (only its ACKs were slow): it acks all N bytes.
  const m = g.wire.segs.length;
  g.ack(u32(base + N));
  assert.equal(g.wire.segs.slice(m).filter((s) => s.data.length === 0).length, 0, 'a valid ACK is not answered as "beyond snd.nxt"');
  // New data from the server must follow at base + N.
  peer.conns[0]!.write(Buffer.from('more'));
  await until(() => g.wire.dataSegs(m).some((s) => s.seq === u32(base + N)), 1500, 'new data at base + N');
});

test('retransmission: after fast retransmit, the cumulative ACK for the whole flight is accepted', async () => {
  const peer = await server();
  const g = await established(peer);
  const base = u32(g.ourIsn + 1);
  const N = 20 * 1460;
  peer.conns[0]!.write(randomBytes(N));
  await until(() => inOrder(g.wire.segs, base).length >= N, 2000, 'the first transmission');
  // The first segment was lost; the guest holds the other 19 and sends three duplicate ACKs.
  g.ack(base);
  g.ack(base);
  g.ack(base);
  const n = g.wire.segs.length;
  g.ack(base);
  assert.ok(g.wire.dataSegs(0).filter((s) => s.seq === base).length >= 2, 'fast retransmit of the first segment');
  // The retransmitted first segment fills the hole: the guest acks the whole flight.
  g.ack(u32(base + N));
  assert.equal(g.wire.segs.slice(n).filter((s) => s.data.length === 0).length, 0, 'a valid ACK is not answered as "beyond snd.nxt"');
  peer.conns[0]!.write(Buffer.from('more'));
  await until(() => g.wire.dataSegs(n).some((s) => s.seq === u32(base + N)), 1500, 'new data at base + N');
});

// ---- 5. close ------------------------------------------------------------------------------------------

test('close: guest FIN first → server sees end; server ends → our FIN after the data; the last ACK closes', async () => {
  const peer = await server();
  const g = await established(peer);
  const base = u32(g.ourIsn + 1);
  g.data(Buffer.from('abc'), base, 0xffff, TCP_ACK | TCP_PSH | TCP_FIN);
  assert.equal(g.flow.state, 'CloseWait');
  const finAck = g.wire.segs[g.wire.segs.length - 1]!;
  assert.equal(finAck.ack, g.nxt, 'the FIN is acked (data + 1)');
  await until(() => peer.ended, 2000, 'the server to see end');
  assert.equal(peer.received().toString(), 'abc');

  const n = g.wire.segs.length;
  peer.conns[0]!.end('xyz');
  await until(() => g.wire.segs.slice(n).some((s) => s.flags & TCP_FIN), 2000, 'our FIN');
  const after = g.wire.segs.slice(n);
  const fin = after.find((s) => s.flags & TCP_FIN)!;
  assert.equal(inOrder(after, base).toString(), 'xyz');
  assert.equal(fin.seq, u32(base + 3), 'our FIN follows all data');
  assert.equal(after.indexOf(fin), after.length - 1, 'nothing after our FIN');
  assert.equal(g.flow.state, 'LastAck');
  assert.equal(g.wire.closedCalls, 0);

  g.ack(u32(base + 4));
  assert.equal(g.flow.state, 'Closed');
  assert.equal(g.wire.closedCalls, 1);
});

test('close: server ends first → our FIN; guest ACK → FinWait2; guest FIN → TimeWait → closed()', async () => {
  const peer = await server();
  const g = await established(peer);
  const base = u32(g.ourIsn + 1);
  peer.conns[0]!.end('hello');
  await until(() => g.wire.segs.some((s) => s.flags & TCP_FIN), 2000, 'our FIN');
  const fin = g.wire.segs.find((s) => s.flags & TCP_FIN)!;
  assert.equal(inOrder(g.wire.segs, base).toString(), 'hello');
  assert.equal(fin.seq, u32(base + 5));
  assert.equal(g.flow.state, 'FinWait1');

  g.ack(u32(base + 6));
  assert.equal(g.flow.state, 'FinWait2');
  assert.equal(peer.ended, false);
  g.data(Buffer.from('bye'), u32(base + 6), 0xffff, TCP_ACK | TCP_FIN);
  assert.equal(g.flow.state, 'TimeWait');
  assert.equal(g.wire.segs[g.wire.segs.length - 1]!.ack, g.nxt, 'the guest FIN is acked');
  await until(() => peer.ended, 2000, 'the server to see end');
  assert.equal(peer.received().toString(), 'bye');
  assert.equal(g.wire.closedCalls, 0, 'not before TIME_WAIT');
  await until(() => g.wire.closedCalls > 0, 3000, 'closed() after TIME_WAIT');
  assert.equal(g.flow.state, 'Closed');
  assert.equal(g.wire.closedCalls, 1);
});

test('close: a retransmitted guest FIN (our ACK lost) is acked again', async () => {
  const peer = await server();
  const g = await established(peer);
  const base = u32(g.ourIsn + 1);
  const finSeq = g.nxt;
  g.data(Buffer.alloc(0), base, 0xffff, TCP_ACK | TCP_FIN);
  assert.equal(g.flow.state, 'CloseWait');
  const n = g.wire.segs.length;
  g.send({ seq: finSeq, ack: base, flags: TCP_ACK | TCP_FIN, window: 0xffff });
  const re = g.wire.segs.slice(n);
  assert.equal(re.length, 1, 'one ACK for the duplicate FIN');
  assert.equal(re[0]!.ack, u32(finSeq + 1));
});

test('close: a guest RST resets the server-side connection and calls closed()', async () => {
  const peer = await server();
  const g = await established(peer);
  g.data(Buffer.from('x'), u32(g.ourIsn + 1));
  await until(() => peer.received().length === 1, 2000, 'data at the server');
  const n = g.wire.segs.length;
  g.send({ seq: g.nxt, ack: u32(g.ourIsn + 1), flags: TCP_RST | TCP_ACK, window: 0 });
  assert.equal(g.flow.state, 'Closed');
  assert.equal(g.wire.closedCalls, 1);
  assert.equal(g.wire.segs.length, n, 'no answer to an RST');
  await until(() => peer.closed, 2000, 'the server connection to close');
  assert.ok(
    peer.errors.includes('ECONNRESET') || !peer.ended,
    `the server saw a reset (errors ${peer.errors.join()}, ended ${peer.ended})`,
  );
});

test('close: an RST outside the window is ignored', async () => {
  const peer = await server();
  const g = await established(peer);
  g.send({ seq: u32(g.nxt - 10), ack: u32(g.ourIsn + 1), flags: TCP_RST, window: 0 });
  assert.equal(g.flow.state, 'Established');
  assert.equal(g.wire.closedCalls, 0);
});

// ---- 6. inbound ----------------------------------------------------------------------------------------

interface Inbound {
  g: Guest;
  client: Socket;
  clientGot: () => Buffer;
  clientClosed: () => boolean;
  clientErrors: string[];
}

/** A published port: the accepted connection becomes an inbound flow; a client connects and writes `hello`. */
async function inbound(hello: string): Promise<Inbound> {
  const g = new Guest(8080);
  let flowStarted = false;
  const srv = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    sockets.push(s);
    const flow = new TcpFlow(g.wire, { remote4: LOOPBACK, remote6: null, remotePort: 8080, guestPort: 80, inbound: true });
    flows.push(flow);
    g.flow = flow;
    flow.startInbound(new NodeHostSocket(s, flow));
    flowStarted = true;
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const client = connect({ host: '127.0.0.1', port: (srv.address() as AddressInfo).port, allowHalfOpen: true });
  sockets.push(client);
  const chunks: Buffer[] = [];
  const errors: string[] = [];
  let closed = false;
  client.on('data', (c: Buffer) => chunks.push(c));
  client.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message));
  client.on('close', () => (closed = true));
  client.write(hello);
  await until(() => flowStarted, 2000, 'the accept');
  return { g, client, clientGot: () => Buffer.concat(chunks), clientClosed: () => closed, clientErrors: errors };
}

test('inbound: our SYN with options; guest SYN|ACK → ACK, Established, the socket resumes, data flows', async () => {
  const { g, clientGot } = await inbound('ping');
  assert.equal(g.wire.segs.length, 1);
  const syn = g.wire.segs[0]!;
  assert.equal(syn.flags, TCP_SYN);
  assert.equal(g.flow.state, 'SynSent');
  const o = options(syn.options);
  assert.equal(o.get(2)?.readUInt16BE(0), PATH_MSS);
  assert.deepEqual([...(o.get(3) ?? [])], [7]);
  assert.ok(o.has(4));
  g.ourIsn = syn.seq;
  await sleep(50);
  assert.equal(g.wire.dataSegs().length, 0, 'the accepted socket stays paused before the handshake');

  g.send({ seq: g.isn, ack: u32(syn.seq + 1), flags: TCP_SYN | TCP_ACK, window: 0xffff, options: synOptions(1400, 7, true) });
  assert.equal(g.flow.state, 'Established');
  assert.equal(g.flow.mss, 1400);
  const ack = g.wire.segs[1]!;
  assert.equal(ack.flags, TCP_ACK);
  assert.equal(ack.seq, u32(syn.seq + 1));
  assert.equal(ack.ack, u32(g.isn + 1));

  await until(() => inOrder(g.wire.segs, u32(syn.seq + 1)).toString() === 'ping', 2000, 'client data at the guest');
  g.data(Buffer.from('pong'), u32(syn.seq + 5));
  await until(() => clientGot().toString() === 'pong', 2000, 'guest data at the client');
});

test('inbound: a guest RST to our SYN closes the accepted socket', async () => {
  const { g, clientClosed } = await inbound('ping');
  const syn = g.wire.segs[0]!;
  assert.equal(syn.flags, TCP_SYN);
  g.send({ seq: 0, ack: u32(syn.seq + 1), flags: TCP_RST | TCP_ACK, window: 0 });
  assert.equal(g.flow.state, 'Closed');
  assert.equal(g.wire.closedCalls, 1);
  await until(clientClosed, 2000, 'the client socket to close');
});

// ---- 7. robustness -------------------------------------------------------------------------------------

test('robustness: a pure ACK beyond snd.nxt gets an ACK and changes nothing', async () => {
  const peer = await server();
  const g = await established(peer);
  const base = u32(g.ourIsn + 1);
  const n = g.wire.segs.length;
  g.ack(u32(base + 5000), 0xffff);
  assert.equal(g.wire.segs.length, n + 1);
  const a = g.wire.segs[n]!;
  assert.equal(a.flags, TCP_ACK);
  assert.equal(a.seq, base);
  assert.equal(a.ack, g.nxt);
  assert.equal(g.flow.state, 'Established');
  // snd.una did not move: server data still starts at base and a valid ACK is accepted.
  peer.conns[0]!.write(Buffer.from('data'));
  await until(() => g.wire.dataSegs(n).length > 0, 2000, 'server data');
  assert.equal(g.wire.dataSegs(n)[0]!.seq, base);
  const m = g.wire.segs.length;
  g.ack(u32(base + 4));
  assert.equal(g.wire.segs.length, m, 'a valid ACK is not answered');
});

test('robustness: data or FIN in a segment with an ACK beyond snd.nxt is dropped (ACK sent, nothing changes)', async () => {
  const peer = await server();
  const g = await established(peer);
  const base = u32(g.ourIsn + 1);
  const rcv = g.flow.rcvNxt;
  const n = g.wire.segs.length;
  g.send({ seq: g.nxt, ack: u32(base + 5000), flags: TCP_ACK | TCP_PSH | TCP_FIN, window: 0xffff, data: Buffer.from('BAD') });
  assert.equal(g.flow.state, 'Established', 'the FIN of a segment with a bad ACK is not processed');
  assert.equal(g.flow.rcvNxt, rcv, 'the data of a segment with a bad ACK is not accepted');
  assert.equal(g.wire.segs.length, n + 1, 'exactly one ACK');
  assert.equal(g.wire.segs[n]!.ack, rcv, 'the ACK does not cover the dropped bytes');
  await sleep(50);
  assert.equal(peer.received().length, 0);
  assert.equal(peer.ended, false);
});

test('robustness: a zero window stops data; a zero-window probe follows after the RTO; a window update resumes', async () => {
  const peer = await server();
  const g = await established(peer, 0);
  const base = u32(g.ourIsn + 1);
  const n = g.wire.segs.length;
  const t0 = Date.now();
  peer.conns[0]!.write(Buffer.from('held back'));
  await until(() => g.wire.segs.length > n, 2000, 'a zero-window probe');
  const waited = Date.now() - t0;
  const probe = g.wire.segs[n]!;
  assert.equal(probe.data.length, 0, 'no data into a zero window');
  assert.equal(probe.flags, TCP_ACK);
  assert.equal(probe.seq, u32(base - 1), 'the probe uses snd.una - 1');
  assert.ok(waited >= 150, `probe after ${waited} ms`);

  g.ack(base, 0); // the guest answers the probe, still closed
  assert.equal(g.wire.dataSegs().length, 0);
  g.ack(base, 16); // window opens
  assert.equal(inOrder(g.wire.segs, base).toString(), 'held back');
});

test('robustness: a lost SYN|ACK is retransmitted after the RTO', async () => {
  const peer = await server();
  const g = outboundSyn(peer.port);
  await until(() => g.wire.segs.length > 0, 2000, 'SYN|ACK');
  const t0 = Date.now();
  await until(() => g.wire.segs.length > 1, 1500, 'a retransmitted SYN|ACK (RTO 200 ms)').catch((e: Error) => {
    throw new Error(`${e.message}; state ${g.flow.state} after ${Date.now() - t0} ms`);
  });
  const re = g.wire.segs[1]!;
  assert.equal(re.flags, TCP_SYN | TCP_ACK);
  assert.equal(re.seq, g.wire.segs[0]!.seq);
  assert.equal(re.ack, u32(g.isn + 1));
});

test('robustness: a retransmitted guest SYN in SynReceived gets the SYN|ACK again', async () => {
  const peer = await server();
  const g = outboundSyn(peer.port);
  await until(() => g.wire.segs.length > 0, 2000, 'SYN|ACK');
  g.send({ seq: g.isn, flags: TCP_SYN, options: synOptions(1460, 7, true) });
  assert.equal(g.wire.segs.length, 2);
  assert.equal(g.wire.segs[1]!.flags, TCP_SYN | TCP_ACK);
  assert.equal(g.wire.segs[1]!.seq, g.wire.segs[0]!.seq);
});
