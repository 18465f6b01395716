// Frame I/O against real kernel objects (root required): a veth pair with a packet link on each end, a TAP
// device moved into a fresh network namespace, and the struct layouts/constants checked against the
// headers with a gcc probe (the approach of xen/abi.test.ts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as sys from './sys.js';
import { Poller } from './poller.js';
import { openPacketLink, openTapLink, RX_RING_FRAME, RX_RING_FRAMES, RX_SLICE_MS, RX_SLOTS, type Link, type RxMeta } from './link.js';
import type { Layout } from '../../lib/c-layout.js';
import { layoutKey, layoutLines, runCProbe, valueLines } from '../../test/c-probe.js';
import * as libcModule from '../../lib/libc.js';
import { check, EFD_CLOEXEC, EFD_NONBLOCK, libc, sysMmap, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../lib/libc.js';

// ---- ABI --------------------------------------------------------------------------------------------------

const layouts: Layout[] = [
  sys.iovec,
  sys.msghdr,
  sys.mmsghdr,
  sys.sockaddrLl,
  sys.sockaddrIn,
  sys.sockaddrIn6,
  sys.virtioNetHdr,
  sys.ifreq,
  sys.tpacketReq,
  sys.tpacket2Hdr,
  sys.tpacketStats,
];
/** Exported numbers of sys.ts that are ours (offsets, sizes), not header constants; lib/libc.ts exports only constants. */
const derived = new Set([
  'VNET_HDR_LEN',
  'MMSGHDR_SIZE',
  'IOVEC_SIZE',
  'MMSG_LEN',
  'MSG_NAME',
  'MSG_NAMELEN',
  'MSG_IOV',
  'MSG_IOVLEN',
  'MSG_FLAGS',
  'IOV_BASE',
  'IOV_LEN',
  'SLL_PKTTYPE',
  'SOCKADDR_IN_SIZE',
  'SOCKADDR_IN6_SIZE',
  'SIN_ADDR',
  'SIN6_ADDR',
]);
const constants = [...Object.entries(libcModule), ...Object.entries(sys)].filter(
  (e): e is [string, number] => typeof e[1] === 'number' && /^[A-Z][A-Z0-9_]*$/.test(e[0]) && !derived.has(e[0]),
);

const key = layoutKey;

function probe(): Map<string, number> {
  return runCProbe(
    [
      '#define _GNU_SOURCE',
      '#include <stdio.h>',
      '#include <stddef.h>',
      '#include <errno.h>',
      '#include <fcntl.h>',
      '#include <sys/socket.h>',
      '#include <sys/uio.h>',
      '#include <sys/mman.h>',
      '#include <sys/eventfd.h>',
      '#include <sys/epoll.h>',
      '#include <netinet/in.h>',
      '#include <netinet/tcp.h>',
      '#include <sys/ioctl.h>',
      '#include <net/if.h>',
      '#include <linux/if_packet.h>',
      '#include <linux/if_ether.h>',
      '#include <linux/virtio_net.h>',
      '#include <linux/if_tun.h>',
      '#include <linux/sockios.h>',
      // Added to the uapi header in Linux 6.2; Debian 12's linux-libc-dev (6.1) predates it.
      '#ifndef VIRTIO_NET_HDR_GSO_UDP_L4',
      '#define VIRTIO_NET_HDR_GSO_UDP_L4 5',
      '#endif',
    ],
    [...layoutLines(layouts), ...valueLines(constants.map(([name]) => [name, name]))],
  );
}

const widths: Record<string, number> = { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8, i64: 8 };

test('struct layouts and constants match the Linux/glibc headers', () => {
  const facts = probe();
  for (const l of layouts) {
    assert.equal(l.size, facts.get(`sizeof ${key(l)}`), `sizeof ${l.c}`);
    for (const [name, f] of Object.entries(l.fields)) {
      assert.equal(f.offset, facts.get(`offsetof ${key(l)}.${name}`), `offset of ${l.c}.${name}`);
      if (f.type === 'bytes') assert.equal(f.length, facts.get(`sizeof ${key(l)}.${name}`), `length of ${l.c}.${name}`);
      else assert.equal(widths[f.type], facts.get(`width ${key(l)}.${name}`), `width of ${l.c}.${name}`);
    }
  }
  assert.ok(constants.length > 40);
  for (const [name, value] of constants) assert.equal(value, facts.get(`const ${name}`), name);
});

// ---- helpers ----------------------------------------------------------------------------------------------

const tag = randomBytes(3).toString('hex');
const vethA = `klt${tag}a`;
const vethB = `klt${tag}b`;
const tapName = `klt${tag}t`;
const netns = `kltns${tag}`;
const ETHERTYPE_TEST = 0x88b5; // IEEE local experimental
const macA = Buffer.from('026b6c740a01', 'hex');
const macB = Buffer.from('026b6c740b01', 'hex');

function sh(...args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function quiet(...args: string[]): void {
  try {
    sh(...args);
  } catch {
    /* already gone */
  }
}
function noIpv6(ifname: string, ns?: string): void {
  const path = `/proc/sys/net/ipv6/conf/${ifname}/disable_ipv6`;
  if (ns) quiet('ip', 'netns', 'exec', ns, 'sh', '-c', `echo 1 > ${path}`);
  else if (existsSync(path)) writeFileSync(path, '1');
}
function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}
async function until(what: string, pred: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Got {
  frame: Buffer;
  meta: RxMeta;
}
/** Collects copies of the received frames accepted by `keep`. */
function collect(link: Link, keep: (f: Buffer) => boolean): Got[] {
  const got: Got[] = [];
  link.onFrame = (f, meta) => {
    if (keep(f)) got.push({ frame: Buffer.from(f), meta: { ...meta } });
  };
  return got;
}
const isTest = (f: Buffer) => f.readUInt16BE(12) === ETHERTYPE_TEST;

function testFrame(link: Link, src: Buffer, dst: Buffer, seq: number, len: number): Buffer {
  const f = link.alloc(len);
  dst.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(ETHERTYPE_TEST, 12);
  f.writeUInt32BE(seq, 14);
  for (let i = 18; i < len; i++) f[i] = (seq + i) & 0xff;
  link.commit(len);
  return Buffer.from(f);
}

function sum16(b: Buffer, start: number, end: number, init = 0): number {
  let s = init;
  for (let i = start; i + 1 < end; i += 2) s += b.readUInt16BE(i);
  if ((end - start) & 1) s += b[end - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
function pseudo4(f: Buffer, ipAt: number, l4Len: number, proto: number): number {
  return sum16(f, ipAt + 12, ipAt + 20, proto + l4Len);
}

const IP = 14;
const TCP = IP + 20;
const DATA = TCP + 20;

/** Ethernet + IPv4 + TCP (no options) carrying `payload`, checksum left partial (pseudo-header sum in place). */
function buildTcp4(f: Buffer, payload: Buffer, seq: number): void {
  f.fill(0, 0, DATA);
  macB.copy(f, 0);
  macA.copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[IP] = 0x45;
  f.writeUInt16BE(20 + 20 + payload.length, IP + 2);
  f.writeUInt16BE(0x4000, IP + 6); // DF
  f[IP + 8] = 64;
  f[IP + 9] = 6;
  Buffer.from([10, 213, 0, 1, 10, 213, 0, 2]).copy(f, IP + 12);
  f.writeUInt16BE(~sum16(f, IP, IP + 20) & 0xffff, IP + 10);
  f.writeUInt16BE(40000, TCP);
  f.writeUInt16BE(5001, TCP + 2);
  f.writeUInt32BE(seq, TCP + 4);
  f.writeUInt32BE(1, TCP + 8);
  f[TCP + 12] = 5 << 4;
  f[TCP + 13] = 0x18; // PSH|ACK
  f.writeUInt16BE(0xffff, TCP + 14);
  payload.copy(f, DATA);
  f.writeUInt16BE(pseudo4(f, IP, 20 + payload.length, 6), TCP + 16);
}

/** Checks one received TCPv4 frame (segment or super-frame), completing a partial checksum first; returns [seq, payload]. */
function checkTcp4(g: Got): [number, Buffer] {
  const f = Buffer.from(g.frame);
  const ipLen = f.readUInt16BE(IP + 2);
  assert.equal(f.length, IP + ipLen, 'frame length matches the IP total length');
  assert.equal(sum16(f, IP, IP + 20), 0xffff, 'IPv4 header checksum');
  const l4Len = ipLen - 20;
  if (g.meta.csumPartial) f.writeUInt16BE(~sum16(f, TCP, f.length) & 0xffff, TCP + 16);
  assert.equal(sum16(f, TCP, f.length, pseudo4(f, IP, l4Len, 6)), 0xffff, 'TCP checksum');
  return [f.readUInt32BE(TCP + 4), f.subarray(DATA)];
}

const ports = (f: Buffer) => f.readUInt16BE(12) === 0x0800 && f[IP + 9] === 6 && f.readUInt16BE(TCP) === 40000;

// ---- veth -------------------------------------------------------------------------------------------------

before(() => {
  sh('ip', 'link', 'add', vethA, 'type', 'veth', 'peer', 'name', vethB);
  noIpv6(vethA);
  noIpv6(vethB);
});

after(() => {
  quiet('ip', 'link', 'del', vethA);
  quiet('ip', 'link', 'del', tapName);
  quiet('ip', 'netns', 'del', netns);
});

test("little-endian table stores agree with Buffer's methods; native addresses above 2^32 split exactly", () => {
  const b = Buffer.alloc(16);
  for (const v of [0, 1, 0x1234, 0x7fffffff, 0x80000000, 0xffffffff, ...Array.from({ length: 32 }, () => randomBytes(4).readUInt32LE())]) {
    sys.put32le(b, 4, v);
    assert.equal(b.readUInt32LE(4), v);
    assert.equal(sys.get32le(b, 4), v);
    sys.put16le(b, 1, v & 0xffff);
    assert.equal(b.readUInt16LE(1), v & 0xffff);
  }
  const addr = 0x7f12_3456_789a; // a typical mmap address, above 2^32
  sys.writeAddr(b, 8, addr);
  assert.equal(b.readBigUInt64LE(8), BigInt(addr));
});

test('poller: readable handler, modify, remove; close releases its fds', async () => {
  const base = fdCount();
  const poller = new Poller();
  const lib = libc();
  const efd = check('eventfd', lib.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const page = sysMmap(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const addr = sys.addrNumber(page.address);
  page.bytes.writeUInt32LE(1, 8);
  const signal = () => assert.equal(lib.write(efd, addr + 8, 8), 8);
  let reads = 0;
  const readable = () => {
    reads++;
    assert.equal(lib.read(efd, addr, 8), 8);
  };
  try {
    poller.add(efd, { readable });
    assert.throws(() => poller.add(efd, { readable }), /already/);
    signal();
    await until('eventfd readable', () => reads === 1);
    signal();
    await until('eventfd readable again', () => reads === 2);
    // No interest: a write is not reported (the pending wait sees the change).
    poller.modify(efd, {});
    signal();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(reads, 2);
    poller.modify(efd, { readable });
    await until('readable after modify', () => reads === 3);
    // An eventfd is writable: writable() is called, readable() is not (nothing to read).
    let writes = 0;
    poller.modify(efd, { readable, writable: () => (writes++ === 0 ? poller.modify(efd, { readable }) : undefined) });
    await until('writable', () => writes === 1);
    assert.equal(reads, 3);
    poller.remove(efd);
    poller.remove(efd);
    assert.equal(poller.size, 0);
  } finally {
    lib.close(efd);
    page.unmap();
    poller.close();
    poller.close();
  }
  await until('the poller released its fds', () => fdCount() === base);
});

test('veth: frames cross both ways, bytes intact, own transmits not read back', async () => {
  const a = openPacketLink(vethA);
  const b = openPacketLink(vethB);
  try {
    assert.equal(a.name, vethA);
    assert.equal(a.mtu, 1500);
    assert.equal(a.offloads, true);
    assert.match(sh('ip', 'link', 'show', vethA), /[<,]UP[,>]/);
    const gotA = collect(a, isTest);
    const gotB = collect(b, isTest);
    let batchesB = 0;
    b.onBatchEnd = () => batchesB++;
    const sent: Buffer[] = [];
    let bytes = 0;
    // Sizes on both sides of what a ring slot holds: small frames are read from the ring, the others
    // from the socket's queue, and they must come out in the order they were sent. Sent in one call, they
    // all land before b reads: fewer than the ring's slots (and room for a stray frame or two).
    assert.ok(RX_RING_FRAME - 100 > 60 && RX_RING_FRAME < 1514);
    const count = RX_RING_FRAMES - 16;
    for (let i = 0; i < count; i++) {
      const len = 14 + 46 + ((i * 97) % (1500 - 46 + 1)); // 60..1514
      sent.push(testFrame(a, macA, macB, i, len));
      bytes += len;
    }
    a.flush(); // the rest is sent by the setImmediate of the first commit; both are fine
    await until(`${count} frames on b`, () => gotB.length >= count);
    assert.equal(gotB.length, count);
    for (let i = 0; i < count; i++) {
      assert.deepEqual(gotB[i]!.frame, sent[i], `frame ${i}`);
      assert.deepEqual(gotB[i]!.meta, { csumPartial: false, gso: 'none', gsoSize: 0 });
    }
    assert.ok(batchesB >= 1);
    assert.equal(a.stats.txFrames, count);
    assert.equal(a.stats.txBytes, bytes);
    assert.equal(a.stats.txDropped, 0);
    assert.ok(b.stats.rxFrames >= count && b.stats.rxBytes >= bytes);

    // And back, with commit() shortening the alloc()ed frame; the immediate flush sends it.
    const back = b.alloc(1514);
    macA.copy(back, 0);
    macB.copy(back, 6);
    back.writeUInt16BE(ETHERTYPE_TEST, 12);
    back.fill(0x5a, 14, 100);
    b.commit(100);
    await until('frame on a', () => gotA.length === 1);
    assert.equal(gotA[0]!.frame.length, 100);
    assert.deepEqual(gotA[0]!.frame.subarray(6, 12), macB);
    assert.equal(b.stats.txFrames, 1);
    await new Promise((r) => setTimeout(r, 50));
    // Neither end saw its own transmissions.
    assert.ok(gotA.every((g) => !g.frame.subarray(6, 12).equals(macA)));
    assert.ok(gotB.every((g) => !g.frame.subarray(6, 12).equals(macB)));
    assert.equal(gotA.length, 1);
  } finally {
    a.close();
    b.close();
  }
});

async function gsoAcross(segmentOnTx: boolean): Promise<Got[]> {
  if (segmentOnTx) sh('ethtool', '-K', vethA, 'tso', 'off', 'tx', 'off');
  const a = openPacketLink(vethA);
  const b = openPacketLink(vethB);
  try {
    const got = collect(b, ports);
    const payload = randomBytes(20000);
    const len = DATA + payload.length;
    buildTcp4(a.alloc(len), payload, 1000);
    a.commit(len, { csumStart: TCP, csumOffset: 16, gso: 'tcp4', gsoSize: 1448 });
    a.flush();
    assert.equal(a.stats.txFrames, 1, 'the kernel accepted the GSO frame');
    const bytes = () => got.reduce((n, g) => n + g.frame.length - DATA, 0);
    await until('the GSO payload on b', () => bytes() >= payload.length);
    const parts = got.map(checkTcp4).sort((x, y) => x[0] - y[0]);
    let expect = 1000;
    for (const [seq, data] of parts) {
      assert.equal(seq, expect, 'contiguous sequence numbers');
      expect += data.length;
    }
    assert.deepEqual(Buffer.concat(parts.map((p) => p[1])), payload);
    return got;
  } finally {
    a.close();
    b.close();
    if (segmentOnTx) sh('ethtool', '-K', vethA, 'tso', 'on', 'tx', 'on');
  }
}

test('veth: a burst beyond the ring is dropped and counted; the ring goes on in order', async () => {
  const a = openPacketLink(vethA);
  const b = openPacketLink(vethB);
  try {
    const got = collect(b, isTest);
    // Sent in one sendmmsg: the veth hands each frame to b's ring inside the call, before b can read.
    const burst = RX_RING_FRAMES + 200;
    for (let i = 0; i < burst; i++) testFrame(a, macA, macB, i, i % 3 === 0 ? 1000 : 80);
    a.flush();
    // Should the kernel have left some of them to ksoftirqd (a loaded machine), b must still not read
    // before they are all in: this thread, b's only reader, waits without yielding.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    assert.equal(a.stats.txFrames, burst);
    await until('the ring drained', () => got.length >= RX_RING_FRAMES);
    // Counted when the stats are read (the kernel's count, PACKET_STATISTICS)...
    assert.equal(b.stats.rxDropped, burst - RX_RING_FRAMES);
    // ...and not again when the next frame comes (TP_STATUS_LOSING, had nobody read them).
    testFrame(a, macA, macB, burst, 80);
    await until('the frame after the burst', () => got.length === RX_RING_FRAMES + 1);
    assert.equal(got.length + b.stats.rxDropped, burst + 1, `received ${got.length}, dropped ${b.stats.rxDropped}`);
    assert.equal(b.stats.rxDropped, burst - RX_RING_FRAMES);
    const seqs = got.map((g) => g.frame.readUInt32BE(14));
    assert.deepEqual(seqs.slice(0, -1), [...Array(RX_RING_FRAMES).keys()], 'the first ring-full, in order');
    assert.equal(seqs.at(-1), burst);
    for (const [i, g] of got.slice(0, -1).entries()) assert.equal(g.frame.length, i % 3 === 0 ? 1000 : 80, `frame ${i}`);
  } finally {
    a.close();
    b.close();
  }
});

test('veth: a wake spends at most its slice on dear frames, each read sized to fit, none lost', async () => {
  let clock = 0;
  const a = openPacketLink(vethA);
  const b = openPacketLink(vethB, { now: () => clock });
  try {
    const perWake: number[] = [];
    let n = 0;
    b.onFrame = (f) => {
      if (!isTest(f)) return;
      n++;
      clock += 1; // each frame costs 1 ms (a flood of new flows)
    };
    b.onBatchEnd = () => {
      perWake.push(n);
      n = 0;
    };
    for (let i = 0; i < 100; i++) testFrame(a, macA, macB, i, 60);
    a.flush();
    await until('100 frames on b', () => perWake.reduce((x, y) => x + y, 0) + n >= 100);
    assert.equal(perWake.reduce((x, y) => x + y, 0) + n, 100);
    // The first read, the cost unknown, is a full one; from then on a wake reads what fits in the slice.
    assert.ok(perWake[0]! <= RX_SLOTS);
    const later = perWake.slice(1);
    assert.ok(later.length >= (100 - RX_SLOTS) / RX_SLICE_MS, `wakes after the first: ${later.join(',')}`);
    for (const k of later) assert.ok(k <= RX_SLICE_MS, `a wake handled ${k} frames of 1 ms in a ${RX_SLICE_MS} ms slice`);
  } finally {
    a.close();
    b.close();
  }
});

test('veth: a GSO TCPv4 super-frame with NEEDS_CSUM crosses intact (super-frame with gso meta)', async () => {
  const got = await gsoAcross(false);
  // veth passes GSO skbs through: the peer's packet socket sees the super-frame and its virtio_net_hdr.
  assert.equal(got.length, 1);
  assert.deepEqual(got[0]!.meta, { csumPartial: true, gso: 'tcp4', gsoSize: 1448 });
});

test('veth: the same frame is segmented by the kernel when the sender cannot offload (checksums completed)', async () => {
  const got = await gsoAcross(true);
  assert.equal(got.length, Math.ceil(20000 / 1448));
  for (const g of got) {
    assert.equal(g.meta.gso, 'none');
    assert.ok(g.frame.length <= 1514);
  }
});

test('veth: offloads off sends plain bytes and reports no meta', async () => {
  const a = openPacketLink(vethA, { offloads: false });
  const b = openPacketLink(vethB, { offloads: false });
  try {
    assert.equal(a.offloads, false);
    const got = collect(b, isTest);
    const f = testFrame(a, macA, macB, 7, 200);
    await until('frame on b', () => got.length === 1);
    assert.deepEqual(got[0]!.frame, f);
    assert.deepEqual(got[0]!.meta, { csumPartial: false, gso: 'none', gsoSize: 0 });
  } finally {
    a.close();
    b.close();
  }
});

test('veth: back-pressure keeps frames pending until writable; alloc() with a full queue drops them', async () => {
  // A slow qdisc and the smallest send buffer make sendmmsg stop short with EAGAIN (or ENOBUFS).
  sh('tc', 'qdisc', 'add', 'dev', vethA, 'root', 'tbf', 'rate', '40mbit', 'burst', '3000', 'limit', '200000');
  const a = openPacketLink(vethA, { sndbuf: 1 });
  const b = openPacketLink(vethB);
  try {
    const got = collect(b, isTest);
    for (let i = 0; i < 100; i++) testFrame(a, macA, macB, i, 1000);
    a.flush();
    assert.ok(a.stats.txFrames < 100, `the kernel pushed back (sent ${a.stats.txFrames} at once)`);
    await until('all 100 frames', () => got.length === 100, 5000);
    assert.equal(a.stats.txFrames, 100);
    assert.equal(a.stats.txDropped, 0);
    assert.deepEqual(
      got.map((g) => g.frame.readUInt32BE(14)),
      [...Array(100).keys()],
    );

    // More than the table holds while blocked: alloc() drops what is still pending.
    got.length = 0;
    const before = a.stats.txFrames;
    for (let i = 0; i < 1100; i++) testFrame(a, macA, macB, i, 1000);
    await until('the queue to settle', () => a.stats.txFrames - before + a.stats.txDropped === 1100, 10000);
    assert.ok(a.stats.txDropped > 0);
    await until('b to receive what was sent', () => got.length === a.stats.txFrames - before, 5000);
    const seqs = got.map((g) => g.frame.readUInt32BE(14));
    assert.ok(
      seqs.every((s, i) => i === 0 || s > seqs[i - 1]!),
      'in order',
    );
    assert.equal(seqs.at(-1), 1099);
  } finally {
    a.close();
    b.close();
    quiet('tc', 'qdisc', 'del', 'dev', vethA, 'root');
  }
});

test('veth: the interface down and up again: its error taken (no busy loop), frames flow again', async () => {
  const a = openPacketLink(vethA);
  const b = openPacketLink(vethB);
  try {
    const got = collect(b, isTest);
    sh('ip', 'link', 'set', vethB, 'down');
    // ENETDOWN is pending on b's socket, its fd reported readable with the ring empty: b takes it.
    await until('the error taken', () => b.stats.rxDropped >= 1);
    const cpu = process.cpuUsage();
    await new Promise((r) => setTimeout(r, 300));
    const used = process.cpuUsage(cpu);
    assert.ok(used.user + used.system < 150_000, `${(used.user + used.system) / 1000} ms of CPU in 300 ms while down`);
    sh('ip', 'link', 'set', vethB, 'up');
    sh('ip', 'link', 'set', vethA, 'up');
    // The kernel re-attaches a bound packet socket when its interface comes up.
    let i = 0;
    await until('frames after up', () => {
      testFrame(a, macA, macB, i++, 200);
      return got.length >= 3;
    });
    assert.ok(got.every((g) => g.frame.length === 200));
  } finally {
    quiet('ip', 'link', 'set', vethB, 'up');
    a.close();
    b.close();
  }
});

test('veth: close() from onFrame ends the read there, frames still in the ring and queue', async () => {
  const a = openPacketLink(vethA);
  const b = openPacketLink(vethB);
  try {
    let seen = 0;
    let batches = 0;
    b.onFrame = (f) => {
      if (!isTest(f)) return;
      seen++;
      if (seen === 2) b.close();
    };
    b.onBatchEnd = () => batches++;
    // Small (ring) and big (queue) frames mixed.
    for (let i = 0; i < 20; i++) testFrame(a, macA, macB, i, i % 2 ? 1200 : 80);
    a.flush();
    await until('the second frame', () => seen >= 2);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(seen, 2);
    assert.equal(batches, 0, 'no batch end after close');
  } finally {
    a.close();
    b.close();
  }
});

test('close() is idempotent and leaks no fds; alloc() after close throws, flush() does not', async () => {
  Poller.shared(); // registers its libuv callbacks once, before the fds are counted
  const base = fdCount();
  const rings = () =>
    readFileSync('/proc/self/maps', 'utf8')
      .split('\n')
      .filter((l) => l.includes('socket:[')).length;
  const baseRings = rings();
  const poller = new Poller();
  for (let round = 0; round < 3; round++) {
    const links = [openPacketLink(vethA), openPacketLink(vethB, { offloads: false }), openPacketLink(vethA, { poller })];
    assert.equal(rings(), baseRings + 3, 'a ring mapped for each packet link');
    testFrame(links[0]!, macA, macB, round, 64);
    for (const l of links) l.close();
    for (const l of links) l.close();
    assert.throws(() => links[0]!.alloc(64), /closed/);
    links[0]!.flush();
  }
  poller.close();
  await until('the links and the poller released their fds', () => fdCount() === base);
  assert.equal(rings(), baseRings, 'every packet link unmapped its ring');
});

// ---- TAP --------------------------------------------------------------------------------------------------

function arpRequest(link: Link, mac: Buffer, ip: number[], target: number[]): void {
  const f = link.alloc(42);
  f.fill(0xff, 0, 6);
  mac.copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // Ethernet
  f.writeUInt16BE(0x0800, 16); // IPv4
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20); // request
  mac.copy(f, 22);
  Buffer.from(ip).copy(f, 28);
  f.fill(0, 32, 38);
  Buffer.from(target).copy(f, 38);
  link.commit(42);
}

test('tap: moved into a namespace, the fd keeps working: ARP reply and a UDP datagram with a partial checksum', async () => {
  const base = fdCount();
  const tap = openTapLink(tapName);
  try {
    assert.equal(tap.name, tapName);
    assert.equal(tap.offloads, true);
    assert.equal(tap.mtu, 1500);
    assert.match(sh('ip', 'link', 'show', tapName), /[<,]UP[,>]/);
    sh('ip', 'netns', 'add', netns);
    sh('ip', 'link', 'set', tapName, 'netns', netns);
    noIpv6(tapName, netns);
    sh('ip', '-n', netns, 'addr', 'add', '10.213.7.1/24', 'dev', tapName);
    sh('ip', '-n', netns, 'link', 'set', tapName, 'up');
    const mac = Buffer.from('026b6c74aa01', 'hex');
    const got = collect(tap, (f) => f.readUInt16BE(12) === 0x0806 || f.readUInt16BE(12) === 0x0800);
    const reply = () => got.find((g) => g.frame.readUInt16BE(12) === 0x0806 && g.frame.readUInt16BE(20) === 2);
    const deadline = Date.now() + 5000;
    while (!reply() && Date.now() < deadline) {
      arpRequest(tap, mac, [10, 213, 7, 2], [10, 213, 7, 1]);
      await until('ARP reply', () => reply() !== undefined, 200).catch(() => {});
    }
    const r = reply();
    assert.ok(r, 'ARP reply');
    assert.deepEqual(r.frame.subarray(0, 6), mac, 'to us');
    assert.deepEqual([...r.frame.subarray(28, 32)], [10, 213, 7, 1], 'sender IP');
    assert.deepEqual(r.frame.subarray(32, 38), mac, 'target MAC');
    assert.ok(tap.stats.txFrames >= 1 && tap.stats.rxFrames >= 1);

    // The namespace learnt our MAC from the request; a datagram it sends reaches us, its checksum left to
    // the "device" (us) since the tap advertises TUN_F_CSUM.
    sh('ip', 'netns', 'exec', netns, 'bash', '-c', 'echo kratanet > /dev/udp/10.213.7.2/9999');
    const udp = () => got.find((g) => g.frame.readUInt16BE(12) === 0x0800 && g.frame[IP + 9] === 17);
    await until('UDP datagram', () => udp() !== undefined);
    const u = udp()!;
    assert.equal(u.frame.subarray(IP + 28, IP + 37).toString(), 'kratanet\n');
    assert.equal(u.meta.csumPartial, true);
    assert.equal(u.meta.gso, 'none');
  } finally {
    tap.close();
    tap.close();
  }
  assert.equal(fdCount(), base);
});
