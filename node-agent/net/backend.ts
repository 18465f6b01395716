// One guest's network: its link (netback vif, veth or TAP), the checks on what it sends (its own MAC and
// addresses only), the gateway virtual host, the NAT tables (TCP, UDP, ICMP echo) and its published
// ports. Frames to the guest are built here.
import { createSocket as createUdpSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { answerArp, answerEcho4, answerIcmp6, type GatewayAddrs } from './gateway.js';
import { IcmpEchoProxy } from './icmp-echo.js';
import type { Link, TxOffload } from './link.js';
import type { Policy, Verdict } from './policy.js';
import { TokenBucket } from '../../lib/token-bucket.js';
import { TcpFlowTable } from './flow-table.js';
import { NodeHostSocket } from './host-socket.js';
import { RawHostSocket } from './raw-host-socket.js';
import { Budget, TcpFlow, type DialOutcome, type TcpWire } from './tcp.js';
import { UdpFlow, type UdpWire } from './udp.js';
import {
  ETH_HLEN,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  finish,
  fold,
  formatIpv4,
  formatIpv6,
  ipv6Equal,
  macEqual,
  Packet,
  parse,
  parseCidr,
  parseIpv4,
  parseIpv6,
  parseMac,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
  pseudoSum4,
  pseudoSum6,
  put16,
  sum16,
  TCP_ACK,
  TCP_RST,
  TCP_SYN,
  writeEth,
  writeIpv4,
  writeIpv6,
  writeTcp,
  writeUdp,
} from './wire.js';

export interface PublishedPort {
  protocol: 'TCP' | 'UDP';
  hostPort: number;
  guestPort: number;
  /** Host address to listen on (default all). */
  hostAddress?: string;
}

export interface GuestNetConfig {
  id: string;
  /** dom0 interface: vif<domid>.<n>, or the host end of a veth; a TAP when `tap` is set. */
  interface: string;
  tap?: boolean;
  mac: string;
  ipv4: string;
  ipv6: string;
  gateway4: string;
  gateway6: string;
  ports?: PublishedPort[];
}

export interface BackendStats {
  spoofed: number;
  dropped: number;
  tcpFlows: number;
  udpFlows: number;
  tcpOpened: number;
  refused: number;
  /** New flows dropped for being over the guest's rate (flowRate). */
  throttled: number;
}

export const MAX_TCP_FLOWS = 4096;
export const MAX_UDP_FLOWS = 1024;
/** Flows that clients of published ports may hold, apart from the guest's own. */
export const MAX_INBOUND_TCP = 1024;
export const MAX_INBOUND_UDP = 256;
/** Connections dom0 dialed to one guest (probes), from the SYN to the end of TIME-WAIT. */
export const MAX_DIALS = 64;
/** Pings of one guest waiting for a reply. */
const MAX_PINGS = 64;
/**
 * New flows a guest may open a second (TCP connections, UDP flows, pings), with a burst of twice that.
 * Each costs dom0 a socket, a local port and far more work than a frame of an open flow; over the rate a
 * SYN or a new flow's datagram is dropped, and the guest's own stack retries as for any loss.
 */
export const DEFAULT_FLOW_RATE = 1000;
/** What all of a guest's flows may buffer in dom0 (see Budget). */
export const GUEST_BUDGET = 256 << 20;
const MAX_GSO_PAYLOAD = 65536 - 128;
/**
 * How long a small segment's ACK waits for data to ride on (the answer to a request, usually within a
 * millisecond): one frame to the guest per request instead of two. Short, so a guest whose Nagle
 * algorithm waits for the ACK stalls for little (Linux peers delay theirs by 40 ms).
 */
export const DELAYED_ACK_MS = 5;

const ICMP_UNREACH_HOST = 1;
const ICMP_UNREACH_PORT = 3;
const ICMP_UNREACH_ADMIN = 13;

export type LinkOpener = (cfg: GuestNetConfig) => Link;

export class GuestBackend implements TcpWire, UdpWire {
  readonly g: GatewayAddrs;
  private readonly link: Link;
  private readonly pkt = new Packet();
  private readonly tcp = new TcpFlowTable();
  private readonly udp = new Map<string, UdpFlow>();
  private readonly acks = new Set<TcpFlow>();
  private readonly tcpOffload: TxOffload = { csumStart: 0, csumOffset: 16, gso: undefined, gsoSize: 0, hdrLen: 0 };
  /** Flows owing a delayed ACK, sent by one timer for them all. */
  private readonly delayedAcks = new Set<TcpFlow>();
  private delayedAckTimer: NodeJS.Timeout | null = null;
  private readonly corks = new Set<TcpFlow>();
  private readonly servers: (Server | UdpSocket)[] = [];
  private nextPort = 32768;
  readonly budget: Budget;
  private inboundTcp = 0;
  private inboundUdp = 0;
  private readonly dials = new Set<TcpFlow>();
  /** Flows of published ports' UDP clients, by port and client address (see udpFromClient). */
  private readonly udpClients = new Map<string, UdpFlow>();
  private pings = 0;
  // Messages a guest can repeat as fast as it sends frames: each said at most once a second.
  private readonly refusalLog = new TokenBucket(1, 1);
  private readonly throttleLog = new TokenBucket(1, 1);
  private readonly socketErrorLog = new TokenBucket(1, 1);
  private readonly newFlows: TokenBucket;
  private shut = false;
  readonly stats: BackendStats = { spoofed: 0, dropped: 0, tcpFlows: 0, udpFlows: 0, tcpOpened: 0, refused: 0, throttled: 0 };
  /** Published ports that could not be bound, with the reason. */
  readonly portErrors: string[] = [];

  constructor(
    readonly cfg: GuestNetConfig,
    gatewayMac: Buffer,
    private readonly policy: Policy,
    openLink: LinkOpener,
    private readonly logger: (msg: string) => void = () => {},
    /** The host-wide budget this guest's counts in too (kratanet's, across its guests). */
    hostBudget: Budget | null = null,
    flowRate = DEFAULT_FLOW_RATE,
  ) {
    this.budget = new Budget(GUEST_BUDGET, hostBudget);
    this.newFlows = new TokenBucket(flowRate, 2 * flowRate);
    const v4 = parseCidr(cfg.ipv4);
    const v6 = parseCidr(cfg.ipv6);
    this.link = openLink(cfg);
    this.g = {
      link: this.link,
      guestMac: parseMac(cfg.mac),
      gwMac: gatewayMac,
      guest4: parseIpv4(v4.address),
      gw4: parseIpv4(cfg.gateway4),
      guest6: parseIpv6(v6.address),
      gw6: parseIpv6(cfg.gateway6),
    };
    this.link.onFrame = (frame) => {
      try {
        this.onFrame(frame);
      } catch (e) {
        // Nothing a guest sends may take kratanet down for every guest: count it, say it once in a while.
        this.stats.dropped++;
        if (this.stats.dropped % 1000 === 1) this.log(`frame dropped: ${(e as Error).message}`);
      }
    };
    this.link.onBatchEnd = () => this.batchEnd();
  }

  log(msg: string): void {
    this.logger(`${this.cfg.id}: ${msg}`);
  }

  /** One line of counters: the backend's, its link's and its budget's (kratanet logs it on SIGUSR2). */
  report(): string {
    const s = this.stats;
    const l = this.link.stats;
    return (
      `${this.cfg.id} on ${this.cfg.interface}: rx ${l.rxFrames} frames (${l.rxDropped} dropped), tx ${l.txFrames} frames ` +
      `(${l.txDropped} dropped); tcp ${s.tcpFlows} flows (${s.tcpOpened} opened), udp ${s.udpFlows} flows; ` +
      `refused ${s.refused}, throttled ${s.throttled}, spoofed ${s.spoofed}, dropped ${s.dropped}; buffered ${this.budget.used} bytes`
    );
  }

  /** Binds the published ports; a port that cannot be bound is reported in portErrors. */
  async publish(): Promise<void> {
    for (const port of this.cfg.ports ?? []) {
      try {
        if (port.protocol === 'UDP') this.servers.push(await this.publishUdp(port));
        else this.servers.push(await this.publishTcp(port));
      } catch (e) {
        const msg = `${port.protocol} ${port.hostPort}: ${(e as Error).message}`;
        this.portErrors.push(msg);
        this.log(`cannot publish ${msg}`);
      }
    }
  }

  // ---- frames from the guest -----------------------------------------------------------------------

  private onFrame(frame: Buffer): void {
    const p = this.pkt;
    const g = this.g;
    if (!parse(p, frame) || !macEqual(frame, 6, g.guestMac)) {
      // Malformed, or a MAC that is not the guest's.
      if (frame.length >= 12 && !macEqual(frame, 6, g.guestMac)) this.stats.spoofed++;
      else this.stats.dropped++;
      return;
    }
    const toGateway = macEqual(frame, 0, g.gwMac);
    if (p.ip === 4) {
      if (p.src4 !== g.guest4) {
        this.stats.spoofed++;
        return;
      }
      if (!toGateway || p.fragment) {
        this.stats.dropped++;
        return;
      }
      if (p.proto === PROTO_TCP) this.tcpIn(p);
      else if (p.proto === PROTO_UDP) this.udpIn(p);
      else if (p.proto === PROTO_ICMP && p.icmpType === 8 && p.icmpCode === 0) {
        if (p.dst4 === g.gw4) answerEcho4(g, p);
        else this.echoOut(p);
      } else this.stats.dropped++;
      return;
    }
    if (p.ip === 6) {
      const own = ipv6Equal(frame, p.src6, g.guest6);
      if (p.proto === PROTO_ICMPV6 && (p.icmpType === 135 || p.icmpType === 128)) {
        // Neighbour discovery may come from the link-local or unspecified address; echo only from ours.
        const b0 = frame[p.src6]!;
        const linkLocal = b0 === 0xfe && (frame[p.src6 + 1]! & 0xc0) === 0x80;
        const unspecified = frame.subarray(p.src6, p.src6 + 16).every((x) => x === 0);
        if (own && p.icmpType === 128 && toGateway && !ipv6Equal(frame, p.dst6, g.gw6)) this.echoOut(p);
        else if (own || (p.icmpType === 135 && (linkLocal || unspecified))) answerIcmp6(g, p);
        else this.stats.spoofed++;
        return;
      }
      if (!own) {
        if (p.proto !== PROTO_ICMPV6) this.stats.spoofed++;
        return; // router solicitations, MLD and the like from link-local addresses: ignored
      }
      if (!toGateway || p.fragment) {
        this.stats.dropped++;
        return;
      }
      if (p.proto === PROTO_TCP) this.tcpIn(p);
      else if (p.proto === PROTO_UDP) this.udpIn(p);
      else this.stats.dropped++;
      return;
    }
    if (p.ethertype === ETHERTYPE_ARP) {
      // The sender must claim the guest's own MAC and address (or none, for a probe).
      if (frame.length >= ETH_HLEN + 28 && macEqual(frame, ETH_HLEN + 8, g.guestMac)) {
        const spa = frame.readUInt32BE(ETH_HLEN + 14);
        if (spa === g.guest4 || spa === 0) answerArp(g, p);
        else this.stats.spoofed++;
      } else this.stats.spoofed++;
    }
  }

  private batchEnd(): void {
    for (const f of this.acks) if (f.lastAckSent !== f.rcvNxt) f.sendAck();
    this.acks.clear();
    for (const f of this.corks) f.host?.flush();
    this.corks.clear();
    this.link.flush();
  }

  private remoteKey(p: Packet, remotePort: number, guestPort: number): string {
    return p.ip === 4
      ? `${p.dst4}|${remotePort}|${guestPort}`
      : `${p.buf.toString('latin1', p.dst6, p.dst6 + 16)}|${remotePort}|${guestPort}`;
  }

  private verdict(p: Packet, port = p.dstPort): Verdict {
    const v = p.ip === 4 ? this.policy.v4(p.dst4, port, this.g.gw4) : this.policy.v6(p.buf, p.dst6, port, this.g.gw6);
    if (!v.allow) {
      // Which rule refused it, for the operator; at most once a second per guest (a guest could flood the log).
      if (this.refusalLog.tryTake()) {
        const proto = p.proto === PROTO_TCP ? 'TCP' : p.proto === PROTO_UDP ? 'UDP' : 'ping';
        this.log(
          `refused ${proto} to ${p.ip === 4 ? formatIpv4(p.dst4) : `[${formatIpv6(p.buf, p.dst6)}]`}${port ? `:${port}` : ''}: ${v.reason}`,
        );
      }
    }
    return v;
  }

  /** Takes one of the guest's new-flow tokens; false (counted, logged at most once a second) when over its rate. */
  private flowAllowed(): boolean {
    if (this.newFlows.tryTake()) return true;
    this.stats.throttled++;
    if (this.throttleLog.tryTake()) {
      this.log(`over ${this.newFlows.ratePerSecond} new flows a second: new flows dropped (${this.stats.throttled} so far)`);
    }
    return false;
  }

  // ---- TCP -----------------------------------------------------------------------------------------

  private tcpIn(p: Packet): void {
    if (p.dstPort === 0 || p.srcPort === 0) {
      this.stats.dropped++;
      return;
    }
    const flow = this.tcp.forSegment(p);
    if (flow) {
      flow.input(p);
      return;
    }
    if ((p.flags & (TCP_SYN | TCP_ACK | TCP_RST)) !== TCP_SYN) {
      if (!(p.flags & TCP_RST)) this.rstFor(p);
      return;
    }
    const v = this.verdict(p);
    if (!v.allow || this.tcp.size >= MAX_TCP_FLOWS) {
      this.stats.refused++;
      this.rstFor(p);
      return;
    }
    if (!this.flowAllowed()) return; // no RST: the guest retransmits its SYN, as after a loss
    const f = new TcpFlow(this, {
      remote4: p.ip === 4 ? p.dst4 : 0,
      remote6: p.ip === 6 ? Buffer.from(p.buf.subarray(p.dst6, p.dst6 + 16)) : null,
      remotePort: p.dstPort,
      guestPort: p.srcPort,
      inbound: false,
    });
    this.tcp.add(f);
    this.stats.tcpOpened++;
    this.stats.tcpFlows = this.tcp.size;
    let socket: RawHostSocket;
    try {
      socket = RawHostSocket.connect(v.host, p.dstPort, f);
    } catch (e) {
      // No socket to be had (EMFILE...): the guest retransmits its SYN, as after a loss. Said at most
      // once a second: every retransmitted SYN would say it again.
      if (this.socketErrorLog.tryTake()) {
        this.log(`connect to port ${p.dstPort}: ${(e as Error).message}`);
      }
      f.close();
      return;
    }
    if (!v.loopback && !this.policy.opts.hostAccess) {
      // A destination the kernel routes locally is one of dom0's own addresses, whatever the interface
      // list said (an interface without carrier is not in it): refused, before the guest hears of it.
      f.connectCheck = () => {
        if (!socket.loopsBack()) return true;
        this.stats.refused++;
        return false;
      };
    }
    f.startOutbound(p, socket);
  }

  /** An RST answering a segment that belongs to no flow (RFC 793 "reset generation"). */
  private rstFor(p: Packet): void {
    const len = p.end - p.payload;
    const remote4 = p.ip === 4 ? p.dst4 : 0;
    const remote6 = p.ip === 6 ? Buffer.from(p.buf.subarray(p.dst6, p.dst6 + 16)) : null;
    const fake = { remote4, remote6, remotePort: p.dstPort, guestPort: p.srcPort } as TcpFlow;
    if (p.flags & TCP_ACK) this.segment(fake, p.ack, 0, TCP_RST, 0, null, 0, 0);
    else this.segment(fake, 0, (p.seq + len + (p.flags & TCP_SYN ? 1 : 0)) >>> 0, TCP_RST | TCP_ACK, 0, null, 0, 0);
  }

  /**
   * A frame to the guest from `remote` (IPv6 when remote6 is set) carrying `l4Len` bytes of protocol
   * `proto`: Ethernet and IP headers written; returns the frame, where L4 starts, and the pseudo-header sum.
   */
  private ipFrame(remote4: number, remote6: Buffer | null, proto: number, l4Len: number): { f: Buffer; l4: number; ps: number } {
    const g = this.g;
    const l4 = ETH_HLEN + (remote6 ? 40 : 20);
    const f = this.link.alloc(l4 + l4Len);
    if (remote6) {
      writeEth(f, g.guestMac, g.gwMac, ETHERTYPE_IPV6);
      writeIpv6(f, ETH_HLEN, remote6, g.guest6, proto, l4Len);
      return { f, l4, ps: pseudoSum6(f, ETH_HLEN + 8, ETH_HLEN + 24, proto, l4Len) };
    }
    writeEth(f, g.guestMac, g.gwMac, ETHERTYPE_IPV4);
    writeIpv4(f, ETH_HLEN, remote4, g.guest4, proto, 20 + l4Len);
    return { f, l4, ps: pseudoSum4(remote4, g.guest4, proto, l4Len) };
  }

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
    if (this.shut) return;
    const v6 = flow.remote6 !== null;
    const tcpHlen = 20 + (options ? options.length : 0);
    const { f, l4, ps } = this.ipFrame(flow.remote4, flow.remote6, PROTO_TCP, tcpHlen + len);
    const total = l4 + tcpHlen + len;
    writeTcp(f, l4, flow.remotePort, flow.guestPort, seq, ack, flags, window, options ?? undefined);
    if (len > 0) flow.copyOut(f, l4 + tcpHlen, offset, len);
    if (flags & TCP_ACK) flow.lastAckSent = ack;
    if (this.link.offloads) {
      put16(f, l4 + 16, fold(ps));
      const o = this.tcpOffload; // one object, reused for every segment (commit() reads it at once)
      o.csumStart = l4;
      if (len > flow.mss) {
        o.gso = v6 ? 'tcp6' : 'tcp4';
        o.gsoSize = flow.mss;
        o.hdrLen = l4 + tcpHlen;
      } else o.gso = undefined;
      this.link.commit(total, o);
    } else {
      put16(f, l4 + 16, finish(sum16(f, l4, total, ps)));
      this.link.commit(total);
    }
  }

  maxSegment(flow: TcpFlow): number {
    return this.link.offloads ? MAX_GSO_PAYLOAD : flow.mss;
  }

  pathMss(flow: TcpFlow): number {
    return this.link.mtu - (flow.remote6 ? 60 : 40);
  }

  unreachable(flow: TcpFlow): void {
    // Quote what the guest's SYN looked like: its IP header and the first 8 bytes of TCP.
    const q = Buffer.alloc(flow.remote6 ? 48 : 28);
    if (flow.remote6) {
      writeIpv6(q, 0, this.g.guest6, flow.remote6, PROTO_TCP, 20);
    } else writeIpv4(q, 0, this.g.guest4, flow.remote4, PROTO_TCP, 40);
    const t = flow.remote6 ? 40 : 20;
    q.writeUInt16BE(flow.guestPort, t);
    q.writeUInt16BE(flow.remotePort, t + 2);
    q.writeUInt32BE(flow.guestIsn, t + 4);
    this.icmpError(flow.remote6 === null, flow.remote4, flow.remote6, ICMP_UNREACH_HOST, q);
  }

  closed(flow: TcpFlow | UdpFlow): void {
    if (flow instanceof TcpFlow) {
      if (flow.inbound && !this.dials.delete(flow)) this.inboundTcp--;
      this.tcp.delete(flow);
      this.acks.delete(flow);
      this.delayedAcks.delete(flow);
      this.corks.delete(flow);
      this.stats.tcpFlows = this.tcp.size;
    } else {
      if (this.udp.get(flow.key) === flow) this.udp.delete(flow.key);
      this.stats.udpFlows = this.udp.size;
    }
  }

  wantAck(flow: TcpFlow): void {
    this.acks.add(flow);
  }

  delayAck(flow: TcpFlow): void {
    this.delayedAcks.add(flow);
    if (!this.delayedAckTimer) {
      this.delayedAckTimer = setTimeout(this.sendDelayedAcks, DELAYED_ACK_MS);
      this.delayedAckTimer.unref();
    }
  }

  private readonly sendDelayedAcks = (): void => {
    this.delayedAckTimer = null;
    for (const f of this.delayedAcks) if (f.lastAckSent !== f.rcvNxt) f.sendAck();
    this.delayedAcks.clear();
    this.link.flush();
  };

  corked(flow: TcpFlow): void {
    this.corks.add(flow);
  }

  // ---- UDP -----------------------------------------------------------------------------------------

  private udpIn(p: Packet): void {
    if (p.dstPort === 0 || p.srcPort === 0) {
      this.stats.dropped++;
      return;
    }
    const key = this.remoteKey(p, p.dstPort, p.srcPort);
    let flow = this.udp.get(key);
    if (!flow) {
      const v = this.verdict(p);
      if (!v.allow || this.udp.size >= MAX_UDP_FLOWS) {
        this.stats.refused++;
        this.icmpError(
          p.ip === 4,
          p.dst4,
          p.ip === 6 ? Buffer.from(p.buf.subarray(p.dst6, p.dst6 + 16)) : null,
          v.allow ? ICMP_UNREACH_PORT : ICMP_UNREACH_ADMIN,
          p.buf.subarray(p.l3, Math.min(p.end, p.l4 + 8)),
        );
        return;
      }
      if (!this.flowAllowed()) return;
      flow = new UdpFlow(
        this,
        p.ip === 4 ? p.dst4 : 0,
        p.ip === 6 ? Buffer.from(p.buf.subarray(p.dst6, p.dst6 + 16)) : null,
        p.dstPort,
        p.srcPort,
      );
      flow.key = key;
      this.udp.set(key, flow);
      this.stats.udpFlows = this.udp.size;
      flow.connect(v.host, p.dstPort, !v.loopback && !this.policy.opts.hostAccess);
    }
    flow.fromGuest(p.buf.subarray(p.payload, p.end));
  }

  toGuest(flow: UdpFlow, payload: Buffer): void {
    if (this.shut) return;
    const udpLen = 8 + payload.length;
    if ((flow.remote6 ? 40 : 20) + udpLen > this.link.mtu) {
      this.stats.dropped++; // no fragmentation towards the guest
      return;
    }
    const { f, l4, ps } = this.ipFrame(flow.remote4, flow.remote6, PROTO_UDP, udpLen);
    const total = l4 + udpLen;
    writeUdp(f, l4, flow.remotePort, flow.guestPort, udpLen);
    payload.copy(f, l4 + 8);
    if (this.link.offloads) {
      put16(f, l4 + 6, fold(ps));
      this.link.commit(total, { csumStart: l4, csumOffset: 6 });
    } else {
      put16(f, l4 + 6, finish(sum16(f, l4, total, ps)) || 0xffff);
      this.link.commit(total);
    }
  }

  // ---- ICMP echo --------------------------------------------------------------------------------

  /** A ping to the world, sent from dom0 (with the proxy's own identifier); the reply is rebuilt for the guest. */
  private echoOut(p: Packet): void {
    const v = this.verdict(p, 0);
    if (!v.allow) {
      this.stats.refused++;
      return;
    }
    const id = p.buf.readUInt16BE(p.l4 + 4);
    const seq = p.buf.readUInt16BE(p.l4 + 6);
    const remote4 = p.dst4;
    const remote6 = p.ip === 6 ? Buffer.from(p.buf.subarray(p.dst6, p.dst6 + 16)) : null;
    const data = Buffer.from(p.buf.subarray(p.payload, p.end));
    if (this.pings >= MAX_PINGS || !this.flowAllowed()) return;
    this.pings++;
    const done = setTimeout(() => this.pings--, 10_000);
    done.unref();
    const sent = IcmpEchoProxy.shared().request(v.host, data, (reply) => {
      clearTimeout(done);
      this.pings--;
      this.echoReply(remote4, remote6, id, seq, reply);
    });
    if (!sent) {
      clearTimeout(done);
      this.pings--;
    }
  }

  private echoReply(remote4: number, remote6: Buffer | null, id: number, seq: number, data: Buffer): void {
    if (this.shut) return;
    const n = 8 + data.length;
    if (n + (remote6 ? 40 : 20) > this.link.mtu) return;
    const { f, l4, ps: ps6 } = this.ipFrame(remote4, remote6, remote6 ? PROTO_ICMPV6 : PROTO_ICMP, n);
    f[l4] = remote6 ? 129 : 0;
    f[l4 + 1] = 0;
    f.writeUInt16BE(0, l4 + 2);
    f.writeUInt16BE(id, l4 + 4);
    f.writeUInt16BE(seq, l4 + 6);
    data.copy(f, l4 + 8);
    // ICMPv6 sums the pseudo-header, ICMP does not.
    f.writeUInt16BE(finish(sum16(f, l4, l4 + n, remote6 ? ps6 : 0)), l4 + 2);
    this.link.commit(l4 + n);
    this.link.flush();
  }

  // ---- ICMP errors to the guest --------------------------------------------------------------------

  /** Destination unreachable from `remote` with `quote` (the offending packet's start). */
  private icmpError(v4: boolean, remote4: number, remote6: Buffer | null, code: number, quote: Buffer): void {
    if (!v4 && !remote6) return;
    // Quotes are kept within the minimum MTU (576 for IPv4, 1280 for IPv6).
    const n = 8 + Math.min(quote.length, v4 ? 548 : 1232 - 48);
    const { f, l4, ps } = this.ipFrame(remote4, v4 ? null : remote6, v4 ? PROTO_ICMP : PROTO_ICMPV6, n);
    f.fill(0, l4, l4 + 8);
    // ICMPv6 destination unreachable: no route 0, administratively prohibited 1, address 3, port 4.
    f[l4] = v4 ? 3 : 1;
    f[l4 + 1] = v4 ? code : code === ICMP_UNREACH_PORT ? 4 : code === ICMP_UNREACH_ADMIN ? 1 : 3;
    quote.copy(f, l4 + 8, 0, n - 8);
    // ICMPv6 sums the pseudo-header, ICMP does not.
    f.writeUInt16BE(finish(sum16(f, l4, l4 + n, v4 ? 0 : ps)), l4 + 2);
    this.link.commit(l4 + n);
  }

  // ---- published ports -----------------------------------------------------------------------------

  /** A port of the gateway that `taken` says is free, for a connection from outside; 0 if none is. */
  private allocPort(taken: (port: number) => boolean): number {
    for (let i = 0; i < 28232; i++) {
      const port = this.nextPort;
      this.nextPort = this.nextPort >= 60999 ? 32768 : this.nextPort + 1;
      if (!taken(port)) return port;
    }
    return 0;
  }

  private tcpPortTaken(guestPort: number): (port: number) => boolean {
    return (port) => this.tcp.find(this.g.gw4, null, 0, port, guestPort) !== undefined;
  }

  /** A client's connection to a published port (this guest's or a port group's): false when refused. */
  acceptTcp(socket: Socket, guestPort: number): boolean {
    if (this.shut || this.inboundTcp >= MAX_INBOUND_TCP) return false;
    const remotePort = this.allocPort(this.tcpPortTaken(guestPort));
    if (!remotePort) return false;
    // The guest sees connections from its gateway (its own address space), whoever the client is.
    const f = new TcpFlow(this, { remote4: this.g.gw4, remote6: null, remotePort, guestPort, inbound: true });
    f.inbound = true;
    this.inboundTcp++;
    this.tcp.add(f);
    this.stats.tcpFlows = this.tcp.size;
    f.startInbound(new NodeHostSocket(socket, f));
    return true;
  }

  /** Whether a published port's client (`client`: the port's and the client's address) has a flow here. */
  hasUdpClient(client: string): boolean {
    return this.udpClients.has(client);
  }

  /**
   * A datagram from a published port's client to `guestPort`; `answer` sends the guest's replies back.
   * False when dropped (no room for another flow).
   */
  udpFromClient(client: string, guestPort: number, msg: Buffer, answer: (payload: Buffer) => void): boolean {
    if (this.shut) return false;
    let flow = this.udpClients.get(client);
    if (!flow) {
      if (this.inboundUdp >= MAX_INBOUND_UDP) return false;
      const remotePort = this.allocPort((port) => this.udp.has(`${this.g.gw4}|${port}|${guestPort}`));
      if (!remotePort) return false;
      const f = new UdpFlow(
        {
          toGuest: (fl, payload) => this.toGuest(fl, payload),
          closed: (fl) => {
            this.udpClients.delete(client);
            this.inboundUdp--;
            this.closed(fl);
          },
          log: (m) => this.log(m),
        },
        this.g.gw4,
        null,
        remotePort,
        guestPort,
      );
      f.key = `${this.g.gw4}|${remotePort}|${guestPort}`;
      f.answerThrough(answer);
      this.inboundUdp++;
      this.udp.set(f.key, f);
      this.udpClients.set(client, f);
      flow = f;
    }
    flow.touch();
    this.toGuest(flow, msg);
    this.link.flush();
    return true;
  }

  private publishTcp(port: PublishedPort): Promise<Server> {
    const server = createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true }, (socket: Socket) => {
      if (!this.acceptTcp(socket, port.guestPort)) socket.destroy();
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: port.hostPort, host: port.hostAddress ?? '::', ipv6Only: false }, () => {
        server.off('error', reject);
        server.on('error', (e) => this.log(`published port ${port.hostPort}: ${e.message}`));
        if (this.shut) server.close(); // the backend went away while binding
        resolve(server);
      });
    });
  }

  private publishUdp(port: PublishedPort): Promise<UdpSocket> {
    const host = port.hostAddress ?? '::';
    const sock = createUdpSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: false });
    sock.on('message', (msg, rinfo) => {
      this.udpFromClient(`${port.hostPort}|${rinfo.address}|${rinfo.port}`, port.guestPort, msg, (payload) =>
        sock.send(payload, rinfo.port, rinfo.address),
      );
    });
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port.hostPort, host, () => {
        sock.off('error', reject);
        sock.on('error', (e) => this.log(`published port ${port.hostPort}/UDP: ${e.message}`));
        if (this.shut) sock.close(); // the backend went away while binding
        resolve(sock);
      });
    });
  }

  // ---- dials from dom0 (dial-service.ts) -----------------------------------------------------------

  /**
   * Connects `socket` to the guest's `guestPort` from the gateway address, as for a published port.
   * `answer` hears once, before any byte from the guest reaches the socket, whether the guest accepted;
   * the returned flow (to time the dial out), or 'Busy' when the guest has MAX_DIALS already.
   */
  dial(socket: Socket, guestPort: number, answer: (outcome: DialOutcome) => void): TcpFlow | 'Busy' | 'Gone' {
    if (this.shut) return 'Gone';
    if (this.dials.size >= MAX_DIALS) return 'Busy';
    const remotePort = this.allocPort(this.tcpPortTaken(guestPort));
    if (!remotePort) return 'Busy';
    const f = new TcpFlow(this, { remote4: this.g.gw4, remote6: null, remotePort, guestPort, inbound: true });
    f.inbound = true;
    f.onDialed = answer;
    this.dials.add(f);
    this.tcp.add(f);
    this.stats.tcpFlows = this.tcp.size;
    f.startInbound(new NodeHostSocket(socket, f), true);
    return f;
  }

  /** Tears everything down: flows reset, ports closed, link closed. */
  close(): void {
    if (this.shut) return;
    for (const f of this.tcp.values()) f.reset();
    for (const f of [...this.udp.values()]) f.close();
    this.link.flush();
    this.shut = true;
    if (this.delayedAckTimer) clearTimeout(this.delayedAckTimer);
    this.delayedAckTimer = null;
    this.delayedAcks.clear();
    for (const s of this.servers) {
      if ('listen' in s) s.close();
      else s.close();
    }
    this.link.close();
  }
}
