// The gateway as a virtual host on the guest's link: it answers ARP and IPv6 neighbour solicitations for
// its own addresses, and ICMP/ICMPv6 echo requests sent to them. It answers nothing else (no services
// on the gateway; flows to it go through the NAT and its policy).
import type { Link } from './link.js';
import {
  ETH_HLEN,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  finish,
  ipv6Equal,
  PROTO_ICMP,
  PROTO_ICMPV6,
  pseudoSum6,
  sum16,
  writeEth,
  writeIpv4,
  writeIpv6,
  type Packet,
} from './wire.js';

export interface GatewayAddrs {
  link: Link;
  guestMac: Buffer;
  gwMac: Buffer;
  guest4: number;
  gw4: number;
  guest6: Buffer;
  gw6: Buffer;
}

const ALL_NODES = Buffer.from('ff020000000000000000000000000001', 'hex');

/** Answers an ARP request for the gateway's IPv4 address. Returns true when the frame was ARP. */
export function answerArp(g: GatewayAddrs, p: Packet): void {
  const b = p.buf;
  const a = ETH_HLEN;
  if (p.len < a + 28) return;
  if (b.readUInt16BE(a) !== 1 || b.readUInt16BE(a + 2) !== ETHERTYPE_IPV4 || b[a + 4] !== 6 || b[a + 5] !== 4) return;
  if (b.readUInt16BE(a + 6) !== 1 || b.readUInt32BE(a + 24) !== g.gw4) return;
  const f = g.link.alloc(ETH_HLEN + 28);
  writeEth(f, g.guestMac, g.gwMac, ETHERTYPE_ARP);
  f.writeUInt16BE(1, a);
  f.writeUInt16BE(ETHERTYPE_IPV4, a + 2);
  f[a + 4] = 6;
  f[a + 5] = 4;
  f.writeUInt16BE(2, a + 6);
  g.gwMac.copy(f, a + 8);
  f.writeUInt32BE(g.gw4, a + 14);
  g.guestMac.copy(f, a + 18);
  b.copy(f, a + 24, a + 14, a + 18); // the asker's own address (0.0.0.0 for a probe)
  g.link.commit(ETH_HLEN + 28);
}

/** An ICMP echo request to the gateway's IPv4 address gets its reply. */
export function answerEcho4(g: GatewayAddrs, p: Packet): void {
  const n = p.end - p.l4;
  if (n > g.link.mtu - 20 || p.icmpCode !== 0) return;
  const f = g.link.alloc(ETH_HLEN + 20 + n);
  writeEth(f, g.guestMac, g.gwMac, ETHERTYPE_IPV4);
  writeIpv4(f, ETH_HLEN, g.gw4, g.guest4, PROTO_ICMP, 20 + n);
  const l4 = ETH_HLEN + 20;
  p.buf.copy(f, l4, p.l4, p.end);
  f[l4] = 0; // echo reply
  f.writeUInt16BE(0, l4 + 2);
  f.writeUInt16BE(finish(sum16(f, l4, l4 + n)), l4 + 2);
  g.link.commit(ETH_HLEN + 20 + n);
}

/** ICMPv6 for the gateway: neighbour solicitations for its address and echo requests to it. */
export function answerIcmp6(g: GatewayAddrs, p: Packet): void {
  const b = p.buf;
  if (p.icmpType === 135) {
    // Neighbour solicitation: hop limit 255 (RFC 4861 7.1.1), target = the gateway.
    if (p.ttl !== 255 || p.end - p.l4 < 24 || !ipv6Equal(b, p.l4 + 8, g.gw6)) return;
    const unspecified = b.subarray(p.src6, p.src6 + 16).every((x) => x === 0);
    const dst = unspecified ? ALL_NODES : b.subarray(p.src6, p.src6 + 16);
    const n = 32; // header 8 (flags) + target 16 + target link-layer option 8
    const f = g.link.alloc(ETH_HLEN + 40 + n);
    writeEth(f, g.guestMac, g.gwMac, ETHERTYPE_IPV6);
    writeIpv6(f, ETH_HLEN, g.gw6, dst, PROTO_ICMPV6, n, 255);
    const l4 = ETH_HLEN + 40;
    f[l4] = 136;
    f[l4 + 1] = 0;
    f.writeUInt16BE(0, l4 + 2);
    f.writeUInt32BE(unspecified ? 0xa0000000 : 0xe0000000, l4 + 4); // Router, Solicited (unless for DAD), Override
    g.gw6.copy(f, l4 + 8);
    f[l4 + 24] = 2; // target link-layer address
    f[l4 + 25] = 1;
    g.gwMac.copy(f, l4 + 26);
    f.writeUInt16BE(finish(sum16(f, l4, l4 + n, pseudoSum6(f, ETH_HLEN + 8, ETH_HLEN + 24, PROTO_ICMPV6, n))), l4 + 2);
    g.link.commit(ETH_HLEN + 40 + n);
    return;
  }
  if (p.icmpType === 128 && p.icmpCode === 0 && ipv6Equal(b, p.dst6, g.gw6)) {
    const n = p.end - p.l4;
    if (n > g.link.mtu - 40) return;
    const f = g.link.alloc(ETH_HLEN + 40 + n);
    writeEth(f, g.guestMac, g.gwMac, ETHERTYPE_IPV6);
    writeIpv6(f, ETH_HLEN, g.gw6, g.guest6, PROTO_ICMPV6, n);
    const l4 = ETH_HLEN + 40;
    b.copy(f, l4, p.l4, p.end);
    f[l4] = 129;
    f.writeUInt16BE(0, l4 + 2);
    f.writeUInt16BE(finish(sum16(f, l4, l4 + n, pseudoSum6(f, ETH_HLEN + 8, ETH_HLEN + 24, PROTO_ICMPV6, n))), l4 + 2);
    g.link.commit(ETH_HLEN + 40 + n);
  }
}
