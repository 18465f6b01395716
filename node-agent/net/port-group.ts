// A host port several guests share (a GuestSet's replicas on this host): bound once; each new TCP
// connection, and each new UDP client (address and port), goes to the next ready member in turn. With no
// ready member a connection is closed at once and a datagram dropped. Members change without a rebind:
// connections and UDP flows already open stay with their guest.
import { createSocket as createUdpSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import type { PortGroupConfig, PortGroupMember } from './config.js';

/** What a group needs of a member's backend (GuestBackend). */
export interface GroupTarget {
  acceptTcp(socket: Socket, guestPort: number): boolean;
  hasUdpClient(client: string): boolean;
  udpFromClient(client: string, guestPort: number, msg: Buffer, answer: (payload: Buffer) => void): boolean;
}

export class PortGroup {
  private members: PortGroupMember[] = [];
  private turn = 0;
  private server: Server | UdpSocket | null = null;
  private shut = false;
  readonly stats = { accepted: 0, refused: 0 };

  constructor(
    readonly cfg: Pick<PortGroupConfig, 'protocol' | 'hostPort' | 'hostAddress'>,
    private readonly lookup: (guest: string) => GroupTarget | undefined,
    private readonly log: (msg: string) => void = () => {},
  ) {}

  setMembers(members: PortGroupMember[]): void {
    this.members = members;
  }

  /** The next ready member whose backend runs, round-robin. */
  private pick(): { member: PortGroupMember; target: GroupTarget } | undefined {
    const ready = this.members.filter((m) => m.ready);
    for (let i = 0; i < ready.length; i++) {
      const member = ready[this.turn++ % ready.length]!;
      const target = this.lookup(member.guest);
      if (target) return { member, target };
    }
    return undefined;
  }

  private onConnection(socket: Socket): void {
    const to = this.shut ? undefined : this.pick();
    if (to && to.target.acceptTcp(socket, to.member.guestPort)) {
      this.stats.accepted++;
      return;
    }
    this.stats.refused++;
    socket.destroy();
  }

  private onDatagram(sock: UdpSocket, msg: Buffer, address: string, port: number): void {
    if (this.shut) return;
    const client = `g${this.cfg.hostPort}|${address}|${port}`;
    const answer = (payload: Buffer) => sock.send(payload, port, address);
    // A client's flow stays with the member that has it, ready or not (as a TCP connection does).
    for (const m of this.members) {
      const t = this.lookup(m.guest);
      if (t?.hasUdpClient(client)) {
        t.udpFromClient(client, m.guestPort, msg, answer);
        return;
      }
    }
    const to = this.pick();
    if (to && to.target.udpFromClient(client, to.member.guestPort, msg, answer)) this.stats.accepted++;
    else this.stats.refused++;
  }

  /** Binds the port; rejects when it cannot. */
  async bind(): Promise<void> {
    const { protocol, hostPort, hostAddress } = this.cfg;
    if (protocol === 'UDP') {
      const host = hostAddress ?? '::';
      const sock = createUdpSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: false });
      sock.on('message', (msg, rinfo) => this.onDatagram(sock, msg, rinfo.address, rinfo.port));
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(hostPort, host, () => {
          sock.off('error', reject);
          sock.on('error', (e) => this.log(`shared port ${hostPort}/UDP: ${e.message}`));
          resolve();
        });
      });
      this.server = sock;
    } else {
      const server = createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true }, (s) => this.onConnection(s));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port: hostPort, host: hostAddress ?? '::', ipv6Only: false }, () => {
          server.off('error', reject);
          server.on('error', (e) => this.log(`shared port ${hostPort}: ${e.message}`));
          resolve();
        });
      });
      this.server = server;
    }
    if (this.shut) this.close();
  }

  /** Stops listening; open connections and flows stay with their guests' backends. */
  close(): void {
    this.shut = true;
    this.server?.close();
    this.server = null;
  }
}
