// Ethernet, ARP, IPv4, IPv6, ICMP, TCP and UDP on the wire: parsing into one reused record (no
// allocation per frame) and writing headers into a transmit slot. Everything a guest sends is hostile:
// every length is checked against the frame before it is used.

export const ETH_HLEN = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

// ---- addresses -------------------------------------------------------------------------------------

export function parseMac(text: string): Buffer {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(text);
  if (!m) throw new Error(`${JSON.stringify(text)} is not a MAC address (xx:xx:xx:xx:xx:xx)`);
  return Buffer.from(m.slice(1).map((h) => parseInt(h, 16)));
}

export function formatMac(b: Buffer, off = 0): string {
  return [...b.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** IPv4 as an unsigned 32-bit number. */
export function parseIpv4(text: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) throw new Error(`${JSON.stringify(text)} is not an IPv4 address`);
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** IPv6 as 16 bytes. */
export function parseIpv6(text: string): Buffer {
  const bad = () => new Error(`${JSON.stringify(text)} is not an IPv6 address`);
  let s = text;
  let tail4: number[] = [];
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = parseIpv4(v4[2]!);
    tail4 = [n >>> 16, n & 0xffff];
    s = v4[1]!.endsWith('::') ? v4[1]! : v4[1]!.slice(0, -1);
  }
  const halves = s.split('::');
  if (halves.length > 2) throw bad();
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => (/^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : NaN)));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  let groups: number[];
  if (halves.length === 2) {
    const fill = 8 - head.length - rest.length - tail4.length;
    if (fill < 1) throw bad();
    groups = [...head, ...Array<number>(fill).fill(0), ...rest, ...tail4];
  } else groups = [...head, ...tail4];
  if (groups.length !== 8 || groups.some((g) => Number.isNaN(g))) throw bad();
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(g, i * 2));
  return b;
}

/** RFC 5952 text. */
export function formatIpv6(b: Buffer, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(off + i * 2));
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [bestAt, bestLen] = [i, j - i];
    i = j > i ? j : i + 1;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

export function parseCidr(text: string): { address: string; prefix: number; v6: boolean } {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) throw new Error(`${JSON.stringify(text)} is not ADDRESS/PREFIX`);
  const v6 = m[1]!.includes(':');
  const prefix = Number(m[2]);
  if (prefix > (v6 ? 128 : 32)) throw new Error(`${JSON.stringify(text)}: prefix /${prefix} is too long`);
  if (v6) parseIpv6(m[1]!);
  else parseIpv4(m[1]!);
  return { address: m[1]!, prefix, v6 };
}

export function ipv4InPrefix(ip: number, net: number, prefix: number): boolean {
  if (prefix === 0) return true;
  const mask = prefix === 32 ? 0xffffffff : ~(0xffffffff >>> prefix) >>> 0;
  return (ip & mask) >>> 0 === (net & mask) >>> 0;
}

export function ipv6InPrefix(ip: Buffer, ipOff: number, net: Buffer, prefix: number): boolean {
  let i = 0;
  for (; i + 8 <= prefix; i += 8) if (ip[ipOff + (i >> 3)] !== net[i >> 3]) return false;
  if (i < prefix) {
    const mask = (0xff << (8 - (prefix - i))) & 0xff;
    if ((ip[ipOff + (i >> 3)]! & mask) !== (net[i >> 3]! & mask)) return false;
  }
  return true;
}

export function ipv6Equal(a: Buffer, aOff: number, b: Buffer, bOff = 0): boolean {
  for (let i = 0; i < 16; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

export function macEqual(a: Buffer, aOff: number, b: Buffer, bOff = 0): boolean {
  for (let i = 0; i < 6; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

// ---- bytes -----------------------------------------------------------------------------------------
// Big-endian loads and stores for the per-frame path. Buffer's readUInt32BE/writeUInt16BE family checks
// its arguments and finds its method through a generic inline cache (~10 ns a call, most of the cost
// of a small frame's headers); these compile to a few instructions. Callers check bounds first, as
// parse() does: a store past the end is dropped, a load past it reads 0.

export function get16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

export function get32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

export function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v;
}

export function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}

/** Copies `n` bytes byte by byte: for addresses (6 or 16 bytes), where Buffer.copy's call costs more than the bytes. */
export function copySmall(src: Uint8Array, from: number, dst: Uint8Array, at: number, n: number): void {
  for (let i = 0; i < n; i++) dst[at + i] = src[from + i]!;
}

// ---- checksums -------------------------------------------------------------------------------------

/** Unfolded one's-complement sum of buf[start, end) added to `sum`. */
export function sum16(buf: Buffer, start: number, end: number, sum = 0): number {
  let i = start;
  // Sum 16-bit words; fold every 64 Ki words so the number stays a small integer.
  while (i + 1 < end) {
    sum += (buf[i]! << 8) | buf[i + 1]!;
    i += 2;
    if ((i & 0x1ffff) === 0) sum = (sum & 0xffff) + (sum >>> 16);
  }
  if (i < end) sum += buf[i]! << 8;
  return sum;
}

export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return sum;
}

/** The checksum to store: ~fold(sum), with 0 sent as 0xffff for UDP (RFC 768) by the caller. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

export function pseudoSum4(src: number, dst: number, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

export function pseudoSum6(buf: Buffer, srcOff: number, dstOff: number, proto: number, len: number): number {
  return sum16(buf, dstOff, dstOff + 16, sum16(buf, srcOff, srcOff + 16)) + proto + (len >>> 16) + (len & 0xffff);
}

// ---- parsing ---------------------------------------------------------------------------------------

/** One parsed frame. Reused: valid until the next parse(). Offsets are into `buf`. */
export class Packet {
  buf: Buffer = Buffer.alloc(0);
  len = 0;
  ethertype = 0;
  /** IP version 4 or 6, 0 for other frames. */
  ip = 0;
  l3 = 0;
  l4 = 0;
  proto = 0;
  ttl = 0;
  src4 = 0;
  dst4 = 0;
  /** Offsets of the IPv6 source and destination in buf. */
  src6 = 0;
  dst6 = 0;
  /** End of the IP packet (it may be shorter than the frame: Ethernet padding). */
  end = 0;
  fragment = false;
  srcPort = 0;
  dstPort = 0;
  // TCP
  seq = 0;
  ack = 0;
  flags = 0;
  window = 0;
  payload = 0;
  mss = 0;
  wscale = -1;
  sackOk = false;
  // ICMP
  icmpType = 0;
  icmpCode = 0;
}

/**
 * Parses an Ethernet frame. Returns false for anything malformed (truncated headers, bad lengths); ARP
 * frames are returned with ip = 0 and l3 at the ARP header. IPv6 extension headers are not followed
 * (the next header must be TCP, UDP or ICMPv6 directly): a guest has no reason to send them to a NAT.
 */
export function parse(p: Packet, buf: Buffer, len = buf.length): boolean {
  p.buf = buf;
  p.len = len;
  p.ip = 0;
  p.proto = 0;
  p.fragment = false;
  if (len < ETH_HLEN) return false;
  p.ethertype = get16(buf, 12);
  p.l3 = ETH_HLEN;
  if (p.ethertype === ETHERTYPE_IPV4) {
    if (len < ETH_HLEN + 20) return false;
    const vihl = buf[ETH_HLEN]!;
    const ihl = (vihl & 15) * 4;
    if (vihl >> 4 !== 4 || ihl < 20 || ETH_HLEN + ihl > len) return false;
    let total = get16(buf, ETH_HLEN + 2);
    // A GSO super-frame may carry 0 or a stale total length; the frame's own length is the bound.
    if (total === 0 || ETH_HLEN + total > len) total = len - ETH_HLEN;
    if (total < ihl) return false;
    p.ip = 4;
    p.end = ETH_HLEN + total;
    const frag = get16(buf, ETH_HLEN + 6) & 0x3fff;
    p.fragment = frag !== 0;
    p.ttl = buf[ETH_HLEN + 8]!;
    p.proto = buf[ETH_HLEN + 9]!;
    p.src4 = get32(buf, ETH_HLEN + 12);
    p.dst4 = get32(buf, ETH_HLEN + 16);
    p.l4 = ETH_HLEN + ihl;
  } else if (p.ethertype === ETHERTYPE_IPV6) {
    if (len < ETH_HLEN + 40 || buf[ETH_HLEN]! >> 4 !== 6) return false;
    let plen = get16(buf, ETH_HLEN + 4);
    if (plen === 0 || ETH_HLEN + 40 + plen > len) plen = len - ETH_HLEN - 40;
    p.ip = 6;
    p.end = ETH_HLEN + 40 + plen;
    p.proto = buf[ETH_HLEN + 6]!;
    p.ttl = buf[ETH_HLEN + 7]!;
    p.src6 = ETH_HLEN + 8;
    p.dst6 = ETH_HLEN + 24;
    p.l4 = ETH_HLEN + 40;
    if (p.proto === 44) p.fragment = true;
  } else {
    return p.ethertype === ETHERTYPE_ARP;
  }
  if (p.fragment) return true;
  const l4 = p.l4;
  const end = p.end;
  if (p.proto === PROTO_TCP) {
    if (l4 + 20 > end) return false;
    p.srcPort = get16(buf, l4);
    p.dstPort = get16(buf, l4 + 2);
    p.seq = get32(buf, l4 + 4);
    p.ack = get32(buf, l4 + 8);
    const doff = (buf[l4 + 12]! >> 4) * 4;
    if (doff < 20 || l4 + doff > end) return false;
    p.flags = buf[l4 + 13]!;
    p.window = get16(buf, l4 + 14);
    p.payload = l4 + doff;
    p.mss = 0;
    p.wscale = -1;
    p.sackOk = false;
    if (doff > 20 && p.flags & TCP_SYN) parseTcpOptions(p, l4 + 20, l4 + doff);
  } else if (p.proto === PROTO_UDP) {
    if (l4 + 8 > end) return false;
    p.srcPort = get16(buf, l4);
    p.dstPort = get16(buf, l4 + 2);
    const ulen = get16(buf, l4 + 4);
    if (ulen < 8 || l4 + ulen > end) return false;
    p.end = l4 + ulen;
    p.payload = l4 + 8;
  } else if (p.proto === PROTO_ICMP || p.proto === PROTO_ICMPV6) {
    if (l4 + 8 > end) return false;
    p.icmpType = buf[l4]!;
    p.icmpCode = buf[l4 + 1]!;
    p.payload = l4 + 8;
  }
  return true;
}

function parseTcpOptions(p: Packet, at: number, end: number): void {
  const b = p.buf;
  while (at < end) {
    const kind = b[at]!;
    if (kind === 0) return;
    if (kind === 1) {
      at++;
      continue;
    }
    if (at + 1 >= end) return;
    const olen = b[at + 1]!;
    if (olen < 2 || at + olen > end) return;
    if (kind === 2 && olen === 4) p.mss = get16(b, at + 2);
    else if (kind === 3 && olen === 3) p.wscale = Math.min(b[at + 2]!, 14);
    else if (kind === 4 && olen === 2) p.sackOk = true;
    at += olen;
  }
}

// ---- writing ---------------------------------------------------------------------------------------

export function writeEth(buf: Buffer, dst: Buffer, src: Buffer, ethertype: number): void {
  copySmall(dst, 0, buf, 0, 6);
  copySmall(src, 0, buf, 6, 6);
  buf[12] = ethertype >> 8;
  buf[13] = ethertype & 255;
}

let ipId = (Math.random() * 65536) | 0;

/** An IPv4 header (20 bytes, DF set) at `off`, its checksum included. */
export function writeIpv4(buf: Buffer, off: number, src: number, dst: number, proto: number, totalLen: number, ttl = 64): void {
  buf[off] = 0x45;
  buf[off + 1] = 0;
  put16(buf, off + 2, totalLen > 0xffff ? 0 : totalLen);
  ipId = (ipId + 1) & 0xffff;
  put16(buf, off + 4, ipId);
  buf[off + 6] = 0x40; // DF
  buf[off + 7] = 0;
  buf[off + 8] = ttl;
  buf[off + 9] = proto;
  buf[off + 10] = 0;
  buf[off + 11] = 0;
  put32(buf, off + 12, src);
  put32(buf, off + 16, dst);
  put16(buf, off + 10, finish(sum16(buf, off, off + 20)));
}

/** An IPv6 header (40 bytes) at `off`; addresses are 16-byte buffers. */
export function writeIpv6(buf: Buffer, off: number, src: Buffer, dst: Buffer, nextHeader: number, payloadLen: number, hopLimit = 64): void {
  put32(buf, off, 0x60000000);
  put16(buf, off + 4, payloadLen);
  buf[off + 6] = nextHeader;
  buf[off + 7] = hopLimit;
  copySmall(src, 0, buf, off + 8, 16);
  copySmall(dst, 0, buf, off + 24, 16);
}

/** A TCP header without options (20 bytes) or with the given option bytes; the checksum field is left 0. */
export function writeTcp(
  buf: Buffer,
  off: number,
  sport: number,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
  window: number,
  options?: Buffer,
): number {
  const hlen = 20 + (options ? options.length : 0);
  put16(buf, off, sport);
  put16(buf, off + 2, dport);
  put32(buf, off + 4, seq);
  put32(buf, off + 8, ack);
  buf[off + 12] = (hlen / 4) << 4;
  buf[off + 13] = flags;
  put16(buf, off + 14, window);
  buf[off + 16] = 0;
  buf[off + 17] = 0;
  buf[off + 18] = 0;
  buf[off + 19] = 0;
  if (options) options.copy(buf, off + 20);
  return hlen;
}

export function writeUdp(buf: Buffer, off: number, sport: number, dport: number, len: number): void {
  put16(buf, off, sport);
  put16(buf, off + 2, dport);
  put16(buf, off + 4, len);
  put16(buf, off + 6, 0);
}
