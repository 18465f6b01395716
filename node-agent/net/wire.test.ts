// Parsing hostile frames and writing headers, without a network: every truncation and bogus length
// must be refused (never read past the frame), and what we write must checksum like the kernel's.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import {
  ETH_HLEN,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  finish,
  fold,
  formatIpv4,
  formatIpv6,
  get16,
  get32,
  ipv4InPrefix,
  ipv6InPrefix,
  Packet,
  parse,
  parseCidr,
  parseIpv4,
  parseIpv6,
  parseMac,
  PROTO_TCP,
  PROTO_UDP,
  pseudoSum4,
  pseudoSum6,
  put16,
  put32,
  sum16,
  TCP_SYN,
  writeEth,
  writeIpv4,
  writeIpv6,
  writeTcp,
  writeUdp,
} from './wire.js';

const A = parseMac('02:4b:00:00:00:02');
const B = parseMac('02:4b:00:00:00:01');

function tcp4(payload: Buffer, options?: Buffer): Buffer {
  const th = 20 + (options?.length ?? 0);
  const f = Buffer.alloc(ETH_HLEN + 20 + th + payload.length);
  writeEth(f, B, A, ETHERTYPE_IPV4);
  writeIpv4(f, ETH_HLEN, parseIpv4('10.75.0.2'), parseIpv4('93.184.216.34'), PROTO_TCP, 20 + th + payload.length);
  writeTcp(f, ETH_HLEN + 20, 40000, 443, 1000, 0, TCP_SYN, 65535, options);
  payload.copy(f, ETH_HLEN + 20 + th);
  return f;
}

test("byte loads and stores agree with Buffer's big-endian methods, sequence numbers past 2^31 included", () => {
  const b = Buffer.alloc(16);
  const values = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, ...Array.from({ length: 64 }, () => randomBytes(4).readUInt32BE())];
  for (const v of values) {
    put32(b, 3, v);
    assert.equal(b.readUInt32BE(3), v >>> 0);
    assert.equal(get32(b, 3), v >>> 0);
    // What a TCP flow passes: sums that wrapped past 2^32 or went negative with | 0.
    put32(b, 8, v | 0);
    assert.equal(b.readUInt32BE(8), v >>> 0);
    put16(b, 1, v & 0xffff);
    assert.equal(b.readUInt16BE(1), v & 0xffff);
    assert.equal(get16(b, 1), v & 0xffff);
  }
  // Neighbours are left alone.
  const c = Buffer.alloc(8, 0xaa);
  put32(c, 2, 0);
  assert.deepEqual([...c], [0xaa, 0xaa, 0, 0, 0, 0, 0xaa, 0xaa]);
});

test('addresses: parse and format round trips, RFC 5952 text, prefixes', () => {
  assert.equal(formatIpv4(parseIpv4('10.75.0.1')), '10.75.0.1');
  assert.throws(() => parseIpv4('10.75.0.256'), /not an IPv4/);
  assert.throws(() => parseIpv4('10.75.0'), /not an IPv4/);
  for (const [text, canon] of [
    ['fdd4:1476:6c7e::1', 'fdd4:1476:6c7e::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['::', '::'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
    ['1:0:0:1:0:0:0:1', '1:0:0:1::1'],
  ])
    assert.equal(formatIpv6(parseIpv6(text)), canon, text);
  for (const bad of ['1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7:8:9', ':::']) assert.throws(() => parseIpv6(bad), /not an IPv6/, bad);
  assert.ok(ipv4InPrefix(parseIpv4('10.75.3.4'), parseIpv4('10.75.0.0'), 16));
  assert.ok(!ipv4InPrefix(parseIpv4('10.76.0.1'), parseIpv4('10.75.0.0'), 16));
  assert.ok(ipv4InPrefix(parseIpv4('1.2.3.4'), 0, 0));
  assert.ok(ipv6InPrefix(parseIpv6('fdd4:1476:6c7e:5::9'), 0, parseIpv6('fdd4:1476:6c7e::'), 48));
  assert.ok(ipv6InPrefix(parseIpv6('fdd4:1476:6c7f::9'), 0, parseIpv6('fdd4:1476:6c7e::'), 47), 'a prefix that ends mid-byte');
  assert.ok(!ipv6InPrefix(parseIpv6('fdd4:1476:6c7f::9'), 0, parseIpv6('fdd4:1476:6c7e::'), 48));
  assert.ok(!ipv6InPrefix(parseIpv6('fdd4:1476:6d7e::9'), 0, parseIpv6('fdd4:1476:6c7e::'), 48));
  assert.deepEqual(parseCidr('10.75.0.2/16'), { address: '10.75.0.2', prefix: 16, v6: false });
  assert.throws(() => parseCidr('10.75.0.2/33'), /too long/);
  assert.throws(() => parseMac('02:4b:00:00:00'), /not a MAC/);
});

test('checksums: the IPv4 header and a TCP segment verify to zero like the receiving kernel checks them', () => {
  const f = tcp4(Buffer.from('hello'));
  assert.equal(finish(sum16(f, ETH_HLEN, ETH_HLEN + 20)), 0, 'IPv4 header');
  const l4 = ETH_HLEN + 20;
  const len = f.length - l4;
  const ps = pseudoSum4(parseIpv4('10.75.0.2'), parseIpv4('93.184.216.34'), PROTO_TCP, len);
  f.writeUInt16BE(finish(sum16(f, l4, f.length, ps)), l4 + 16);
  assert.equal(finish(sum16(f, l4, f.length, ps)), 0, 'TCP');
  // Odd lengths and sums large enough to need folding.
  const big = randomBytes(70001);
  let ref = 0;
  for (let i = 0; i + 1 < big.length; i += 2) ref += big.readUInt16BE(i);
  ref += big[big.length - 1]! << 8;
  assert.equal(fold(sum16(big, 0, big.length)), fold(ref));
  // IPv6 pseudo-header.
  const g = Buffer.alloc(ETH_HLEN + 40 + 8 + 3);
  writeEth(g, B, A, ETHERTYPE_IPV6);
  writeIpv6(g, ETH_HLEN, parseIpv6('fdd4:1476:6c7e::2'), parseIpv6('2001:db8::1'), PROTO_UDP, 11);
  writeUdp(g, ETH_HLEN + 40, 5353, 53, 11);
  g.write('abc', ETH_HLEN + 48);
  const ps6 = pseudoSum6(g, ETH_HLEN + 8, ETH_HLEN + 24, PROTO_UDP, 11);
  g.writeUInt16BE(finish(sum16(g, ETH_HLEN + 40, g.length, ps6)), ETH_HLEN + 46);
  assert.equal(finish(sum16(g, ETH_HLEN + 40, g.length, ps6)), 0);
});

test('parse: a TCP SYN with options, and the payload bounded by the IP length, not the padding', () => {
  const p = new Packet();
  const opts = Buffer.from([2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1]);
  const f = Buffer.concat([tcp4(Buffer.from('data'), opts), Buffer.alloc(10)]); // Ethernet padding after it
  assert.ok(parse(p, f));
  assert.equal(p.ip, 4);
  assert.equal(p.proto, PROTO_TCP);
  assert.equal(formatIpv4(p.dst4), '93.184.216.34');
  assert.equal(p.srcPort, 40000);
  assert.equal(p.dstPort, 443);
  assert.equal(p.mss, 1460);
  assert.equal(p.wscale, 7);
  assert.equal(p.sackOk, true);
  assert.equal(f.toString('latin1', p.payload, p.end), 'data');
});

test('parse: truncated and lying frames are refused, never read past the frame', () => {
  const p = new Packet();
  const good = tcp4(Buffer.from('payload'));
  // Every prefix of a valid frame: parse must not throw; short IP/TCP headers are refused.
  for (let n = 0; n < good.length; n++) {
    const f = good.subarray(0, n);
    const ok = parse(p, f);
    if (ok && p.ip === 4 && p.proto === PROTO_TCP) assert.ok(p.end <= n && p.payload <= p.end, `prefix ${n}`);
    if (n < ETH_HLEN + 40) assert.ok(!ok || p.ip === 0 || p.proto !== PROTO_TCP || p.end <= n, `prefix ${n}`);
  }
  // IHL larger than the frame; TCP data offset beyond the end; UDP length beyond the end.
  const ihl = Buffer.from(good);
  ihl[ETH_HLEN] = 0x4f;
  assert.equal(parse(p, ihl.subarray(0, ETH_HLEN + 40)), false);
  const doff = Buffer.from(good);
  doff[ETH_HLEN + 20 + 12] = 0xf0;
  assert.equal(parse(p, doff.subarray(0, ETH_HLEN + 44)), false);
  const u = Buffer.alloc(ETH_HLEN + 28);
  writeEth(u, B, A, ETHERTYPE_IPV4);
  writeIpv4(u, ETH_HLEN, 1, 2, PROTO_UDP, 28);
  writeUdp(u, ETH_HLEN + 20, 1, 2, 500);
  assert.equal(parse(p, u), false);
  // A TCP option whose length runs past the header is ignored, not followed.
  const opt = tcp4(Buffer.alloc(0), Buffer.from([2, 40, 0, 0]));
  assert.ok(parse(p, opt));
  assert.equal(p.mss, 0);
  // Random garbage: no throw, whatever the verdict.
  for (let i = 0; i < 20000; i++) {
    const r = randomBytes(1 + (i % 120));
    if (i % 2) r.writeUInt16BE(i % 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6, 12 % r.length);
    if (r.length > ETH_HLEN) r[ETH_HLEN] = i % 3 ? 0x45 : 0x60;
    if (parse(p, r) && p.ip) assert.ok(p.end <= r.length && p.l4 <= p.end, `garbage ${r.toString('hex')}`);
  }
});

test('parse: IPv4 fragments and IPv6 fragment headers are flagged, not parsed as transport', () => {
  const p = new Packet();
  const f = tcp4(Buffer.from('x'));
  f.writeUInt16BE(0x2000, ETH_HLEN + 6); // more fragments
  f.writeUInt16BE(0, ETH_HLEN + 10);
  assert.ok(parse(p, f));
  assert.equal(p.fragment, true);
  const g = Buffer.alloc(ETH_HLEN + 48);
  writeEth(g, B, A, ETHERTYPE_IPV6);
  writeIpv6(g, ETH_HLEN, parseIpv6('::1'), parseIpv6('::2'), 44, 8);
  assert.ok(parse(p, g));
  assert.equal(p.fragment, true);
});
