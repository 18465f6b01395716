// One UDP flow (guest address and port, remote address and port): outbound flows own a connected dom0
// socket, so only the remote the guest wrote to can answer; inbound flows (published ports) answer
// through the listening socket to the client that wrote first. Flows end after IDLE_MS without traffic.
import { createSocket, type Socket } from 'node:dgram';

export const UDP_IDLE_MS = 60_000;
const MAX_QUEUED = 64; // datagrams held while the socket connects

export interface UdpWire {
  /** A datagram from the remote end to the guest. */
  toGuest(flow: UdpFlow, payload: Buffer): void;
  closed(flow: UdpFlow): void;
  log(msg: string): void;
}

export class UdpFlow {
  key = '';
  private socket: Socket | null = null;
  private queue: Buffer[] | null = [];
  private last = Date.now();
  private timer: NodeJS.Timeout;
  private closedFlag = false;
  /** For inbound flows: sends to the client. */
  private reply: ((payload: Buffer) => void) | null = null;

  constructor(
    private readonly wire: UdpWire,
    readonly remote4: number,
    readonly remote6: Buffer | null,
    readonly remotePort: number,
    readonly guestPort: number,
  ) {
    this.timer = setTimeout(() => this.idle(), UDP_IDLE_MS);
    this.timer.unref();
  }

  /**
   * Outbound: a dom0 socket connected to host:port. `refuseLocal`: a destination the kernel routes
   * locally (one of dom0's own addresses) is dropped.
   */
  connect(host: string, port: number, refuseLocal = false): void {
    const s = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
    this.socket = s;
    s.on('message', (msg) => {
      this.last = Date.now();
      this.wire.toGuest(this, msg);
    });
    s.on('error', (e) => {
      // ECONNREFUSED from an ICMP port unreachable: the next datagram may still get through.
      if ((e as NodeJS.ErrnoException).code !== 'ECONNREFUSED') {
        this.wire.log(`udp flow to port ${port}: ${e.message}`);
        this.close();
      }
    });
    try {
      s.connect(port, host, () => {
        if (refuseLocal && s.address().address === s.remoteAddress().address) {
          this.close();
          return;
        }
        const q = this.queue ?? [];
        this.queue = null;
        for (const d of q) s.send(d);
      });
    } catch (e) {
      this.wire.log(`udp flow to port ${port}: ${(e as Error).message}`);
      queueMicrotask(() => this.close());
    }
  }

  /** Inbound: replies go back through the published port's socket. */
  answerThrough(reply: (payload: Buffer) => void): void {
    this.reply = reply;
    this.queue = null;
  }

  /** A datagram from the guest (copied: the frame is reused). */
  fromGuest(payload: Buffer): void {
    this.last = Date.now();
    if (this.reply) {
      this.reply(Buffer.from(payload));
      return;
    }
    if (this.queue) {
      if (this.queue.length < MAX_QUEUED) this.queue.push(Buffer.from(payload));
      return;
    }
    this.socket?.send(Buffer.from(payload));
  }

  /** A datagram from the client of a published port. */
  touch(): void {
    this.last = Date.now();
  }

  private idle(): void {
    const left = this.last + UDP_IDLE_MS - Date.now();
    if (left > 0) {
      this.timer = setTimeout(() => this.idle(), left);
      this.timer.unref();
      return;
    }
    this.close();
  }

  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    clearTimeout(this.timer);
    try {
      this.socket?.close();
    } catch {
      // already closed
    }
    this.wire.closed(this);
  }
}
