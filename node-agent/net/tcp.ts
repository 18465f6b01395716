// One TCP connection between a guest and a dom0 socket, terminated here: towards the guest we are the
// remote peer (our own TCP state machine, RFC 793 states), towards the world a host socket carries the
// bytes (host-socket.ts). Outbound flows start with the guest's SYN and a non-blocking connect (the
// SYN-ACK waits for it, so a refusal becomes an RST and no flow waits on another); inbound flows
// (published ports) start with our SYN to the guest.
//
// Loss on a local virtual link is rare (a full queue), so recovery is simple: go-back-N from the first
// unacknowledged byte on three duplicate ACKs or a retransmission timeout, with a Reno-style window.
import type { HostSink, HostSocket } from './host-socket.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type Packet } from './wire.js';

export type TcpState =
  | 'Connecting'
  | 'SynSent'
  | 'SynReceived'
  | 'Established'
  | 'FinWait1'
  | 'FinWait2'
  | 'CloseWait'
  | 'Closing'
  | 'LastAck'
  | 'TimeWait'
  | 'Closed';

/** What a flow needs from its guest's backend. */
export interface TcpWire {
  /** Sends a segment to the guest; payload = `len` bytes starting `offset` bytes after snd.una. */
  segment(
    flow: TcpFlow,
    seq: number,
    ack: number,
    flags: number,
    window: number,
    options: Buffer | null,
    offset: number,
    len: number,
  ): void;
  /** Largest payload of one frame (a GSO super-frame when the link offloads, else the MSS). */
  maxSegment(flow: TcpFlow): number;
  /** The MSS the link's MTU allows. */
  pathMss(flow: TcpFlow): number;
  /** The guest is told the destination is unreachable (ICMP), for connects that fail that way. */
  unreachable(flow: TcpFlow): void;
  /** The flow is gone: forget it. */
  closed(flow: TcpFlow): void;
  /** Ask for an ACK at the end of this batch of frames. */
  wantAck(flow: TcpFlow): void;
  /**
   * Ask for an ACK within DELAYED_ACK_MS unless one leaves with data first (a delayed ACK, RFC 1122
   * 4.2.3.2): a request's ACK then rides on its answer.
   */
  delayAck(flow: TcpFlow): void;
  /** The flow's host socket holds writes: flush() it at the end of this batch of frames. */
  corked(flow: TcpFlow): void;
  /** The guest's byte budget for everything its flows buffer in dom0. */
  readonly budget: Budget;
  log(msg: string): void;
}

/**
 * Bytes a guest's flows hold in dom0 (data for the guest not yet acknowledged, data held beyond a
 * hole, data for the world not yet written): above the limit sockets pause, windows close and
 * out-of-order data is dropped, so 8192 flows cannot each take their per-flow maximum. A guest's
 * budget has the host's as its parent: what a guest takes counts in both, and the smaller room decides,
 * so many guests together cannot take more of dom0 than the host-wide limit either.
 */
export class Budget {
  used = 0;
  private readonly paused = new Set<TcpFlow>();
  constructor(
    readonly limit: number,
    readonly parent: Budget | null = null,
  ) {}
  get free(): number {
    const own = Math.max(0, this.limit - this.used);
    return this.parent ? Math.min(own, this.parent.free) : own;
  }
  take(n: number): void {
    this.used += n;
    this.parent?.take(n);
  }
  /** A flow paused for lack of room: woken (budgetFreed) when this budget or its parent drains. */
  hold(flow: TcpFlow): void {
    this.paused.add(flow);
    this.parent?.hold(flow);
  }
  forget(flow: TcpFlow): void {
    this.paused.delete(flow);
    this.parent?.forget(flow);
  }
  release(n: number): void {
    this.used -= n;
    this.parent?.release(n);
    if (this.paused.size && this.used < this.limit * 0.75) {
      const flows = [...this.paused];
      this.paused.clear();
      for (const f of flows) f.budgetFreed();
    }
  }
}

export const RCV_BUF = 4 << 20; // what the guest may send ahead of the dom0 socket
const SND_HIGH = 2 << 20; // host bytes buffered for the guest before the socket is paused
const SND_LOW = 512 << 10;
const RTO_MIN_MS = 200;
const RTO_MAX_MS = 30_000;
const MAX_RETRIES = 12;
const SYN_RETRIES = 5;
const TIME_WAIT_MS = 2_000;
const CONNECT_TIMEOUT_MS = 30_000;
const OUR_WSCALE = 7;
const OOO_MAX = 4 << 20; // bytes held beyond a hole, waiting for it to be filled
const OOO_SEGMENTS = 512;

const seqLt = (a: number, b: number) => ((a - b) | 0) < 0;
const seqLe = (a: number, b: number) => ((a - b) | 0) <= 0;
const seqGt = (a: number, b: number) => ((a - b) | 0) > 0;

/** How a dial from dom0 ended (backend.dial): accepted, reset by the guest, no SYN-ACK in time, or the flow went away. */
export type DialOutcome = 'OK' | 'Refused' | 'Timeout' | 'Gone';

export class TcpFlow implements HostSink {
  state: TcpState;
  /** A connection to a published port (counted apart from the guest's own). */
  inbound = false;
  /** The last ACK number sent to the guest (so a delayed ACK is skipped when data carried it). */
  lastAckSent = 0;
  /** The guest's address is the backend's; these are the remote end as the guest sees it. */
  readonly remote4: number;
  readonly remote6: Buffer | null;
  readonly remotePort: number;
  readonly guestPort: number;
  host: HostSocket | null = null;
  /**
   * Asked once the connect completed, for an outbound flow: false refuses the flow after the fact
   * (the destination turned out to be one of dom0's own addresses).
   */
  connectCheck: (() => boolean) | null = null;
  /**
   * A dial from dom0: told once whether the guest accepted ('OK', before any of its bytes reach the
   * socket) or why not; on a failure the flow lets go of the socket first, so the answer can go on it.
   */
  onDialed: ((outcome: DialOutcome) => void) | null = null;
  private dialFailure: DialOutcome = 'Gone';

  // Send side (towards the guest).
  private iss = (Math.random() * 0x100000000) >>> 0;
  private sndUna = this.iss;
  private sndNxt = this.iss;
  /** The highest sequence number sent (snd.nxt goes back to snd.una on a retransmission). */
  private sndMax = this.iss;
  private sndWnd = 0;
  private sndWscale = 0;
  mss = 536;
  private cwnd = 0;
  private ssthresh = 0x7fffffff;
  private dupAcks = 0;
  private recover = this.iss;
  private readonly sndBuf: Buffer[] = [];
  private sndHead = 0; // offset of snd.una in sndBuf[0]
  private sndBytes = 0; // bytes from snd.una to the end of sndBuf
  private finQueued = false;
  private finSent = false;
  private paused = false;

  // Receive side (from the guest).
  private irs = 0;
  rcvNxt = 0;
  private rcvWscale = 0;
  private lastWindow = 0;
  private guestFin = false;
  private sackOk = false;
  /** Segments received beyond a hole, in sequence order (SACKed to the guest). */
  private readonly ooo: { seq: number; data: Buffer; fin: boolean }[] = [];
  /** Bytes written to the socket and counted in the budget, released once the socket has sent them. */
  private pendingWrite = 0;
  private oooBytes = 0;
  private lastOooSeq = 0;

  /**
   * The flow's one timer: `timerAt` is its deadline (0: none), `timerDue` when the Node timer fires.
   * Clearing only zeroes the deadline and moving it later only moves `timerAt`: the Node timer fires,
   * finds nothing due or re-arms for the rest, so a request and its ACK cost no setTimeout/clearTimeout.
   */
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;
  private timerDue = 0;
  private rto = RTO_MIN_MS;
  private retries = 0;

  constructor(
    private readonly wire: TcpWire,
    opts: { remote4: number; remote6: Buffer | null; remotePort: number; guestPort: number; inbound: boolean },
  ) {
    this.remote4 = opts.remote4;
    this.remote6 = opts.remote6;
    this.remotePort = opts.remotePort;
    this.guestPort = opts.guestPort;
    this.state = opts.inbound ? 'SynSent' : 'Connecting';
  }

  /** The guest's initial sequence number (quoted in ICMP errors). */
  get guestIsn(): number {
    return this.irs;
  }

  // ---- outbound: the guest's SYN and the dom0 connect --------------------------------------------

  /** The guest's SYN for a new outbound flow; `host` is connecting (and reports to this flow). */
  startOutbound(p: Packet, host: HostSocket): void {
    this.irs = p.seq;
    this.rcvNxt = (p.seq + 1) >>> 0;
    this.synOptions(p);
    this.host = host;
    this.armTimer(CONNECT_TIMEOUT_MS);
  }

  hostConnected(): void {
    if (this.state !== 'Connecting') return;
    if (this.connectCheck && !this.connectCheck()) {
      this.refuse();
      return;
    }
    this.state = 'SynReceived';
    this.rto = RTO_MIN_MS;
    this.retries = 0;
    this.sendSyn();
  }

  /**
   * Our SYN to the guest for an accepted connection on a published port; `host` is paused until
   * established, or with `readEarly` (a dial) read at once, so a client that hangs up is seen: what
   * it sends is held within the usual bounds until then.
   */
  startInbound(host: HostSocket, readEarly = false): void {
    this.host = host;
    if (!readEarly) {
      host.pause();
      this.paused = true;
    } else host.resume();
    this.rto = 1000;
    this.sendSyn();
  }

  private synOptions(p: Packet): void {
    this.mss = Math.max(64, Math.min(p.mss || 536, this.wire.pathMss(this)));
    if (p.wscale >= 0) {
      this.sndWscale = p.wscale;
      this.rcvWscale = OUR_WSCALE;
    }
    this.sackOk = p.sackOk;
    this.sndWnd = p.window; // never scaled in a SYN
  }

  private sendSyn(): void {
    const ourMss = this.wire.pathMss(this);
    const mss = [2, 4, ourMss >> 8, ourMss & 255];
    const ws = [1, 3, 3, OUR_WSCALE];
    const sack = [1, 1, 4, 2];
    if (this.state === 'SynSent') this.wire.segment(this, this.iss, 0, TCP_SYN, 0xffff, Buffer.from([...mss, ...ws, ...sack]), 0, 0);
    else {
      // Offer scaling and SACK only when the guest did.
      const o = Buffer.from([...mss, ...(this.rcvWscale ? ws : []), ...(this.sackOk ? sack : [])]);
      // The window in a SYN is never scaled (RFC 7323).
      this.wire.segment(this, this.iss, this.rcvNxt, TCP_SYN | TCP_ACK, 0xffff, o, 0, 0);
    }
    this.sndNxt = (this.iss + 1) >>> 0;
    this.sndMax = this.sndNxt;
    this.armTimer(this.rto);
  }

  hostEnded(): void {
    this.finQueued = true;
    this.output();
  }

  hostWritten(): void {
    this.written();
  }

  hostDrained(): void {
    this.written();
    this.maybeWindowUpdate();
  }

  hostClosed(): void {
    // A socket that closes without an error after both FINs is the normal end; anything else resets.
    if (this.state !== 'Closed' && this.state !== 'TimeWait' && !(this.finQueued && this.guestFin)) this.reset();
  }

  hostError(code: string): void {
    if (this.state === 'Connecting') {
      this.wire.log(`connect to port ${this.remotePort} failed: ${code}`);
      if (code === 'ECONNREFUSED' || code === 'ECONNRESET') {
        this.wire.segment(this, 0, this.rcvNxt, TCP_RST | TCP_ACK, 0, null, 0, 0);
      } else this.wire.unreachable(this);
      this.close();
      return;
    }
    this.reset();
  }

  // ---- segments from the guest ---------------------------------------------------------------------

  input(p: Packet): void {
    const flags = p.flags;
    const len = p.end - p.payload;
    if (flags & TCP_RST) {
      // Accept a reset in the window (RFC 5961 would challenge the rest; the guest is the only sender here).
      if (this.state === 'SynSent' ? p.ack === this.sndNxt : seqLe(this.rcvNxt, p.seq) || p.seq === this.rcvNxt) this.abort();
      return;
    }
    switch (this.state) {
      case 'Connecting':
        return; // retransmitted SYNs wait for the connect
      case 'SynSent':
        if (flags & TCP_SYN && flags & TCP_ACK && p.ack === this.sndNxt) {
          this.irs = p.seq;
          this.rcvNxt = (p.seq + 1) >>> 0;
          this.synOptions(p);
          this.sndUna = this.sndNxt;
          this.established();
          if (this.onDialed) {
            const dialed = this.onDialed;
            this.onDialed = null;
            dialed('OK');
          }
          this.sendAck();
          if (this.paused) {
            this.paused = false;
            this.host?.resume();
          }
          this.output();
        } else if (flags & TCP_ACK) this.wire.segment(this, p.ack, 0, TCP_RST, 0, null, 0, 0);
        return;
      case 'SynReceived':
        if (flags & TCP_SYN) {
          if (p.seq === this.irs) this.sendSyn();
          return;
        }
        if (!(flags & TCP_ACK) || p.ack !== this.sndNxt) return;
        this.sndUna = this.sndNxt;
        this.established();
        break;
      case 'Closed':
        return;
      default:
        if (flags & TCP_SYN) {
          this.sendAck(); // a SYN in a synchronized state gets a challenge ACK
          return;
        }
    }
    if (flags & TCP_ACK && seqGt(p.ack, this.sndMax)) {
      this.sendAck(); // acknowledges what we never sent: dropped, data and FIN included (RFC 793)
      return;
    }
    if (flags & TCP_ACK) this.onAck(p.ack, p.window << this.sndWscale, len === 0 && !(flags & TCP_FIN));
    if ((this.state as TcpState) === 'Closed') return;
    if (len > 0) this.onData(p, len);
    if (flags & TCP_FIN) {
      const finSeq = (p.seq + len) >>> 0;
      if (!this.guestFin && finSeq === this.rcvNxt) this.onFin();
      else if (!this.guestFin && seqGt(finSeq, this.rcvNxt)) {
        if (len === 0) this.holdOoo(p.seq, p.buf, p.payload, p.payload, true);
      } else if (this.guestFin && (finSeq + 1) >>> 0 === this.rcvNxt) {
        // Our ACK of its FIN was lost: ACK again (and stay in TIME-WAIT for the full time).
        this.sendAck();
        if (this.state === 'TimeWait') this.armTimer(TIME_WAIT_MS);
      }
    }
    this.output();
  }

  private established(): void {
    this.state = 'Established';
    this.cwnd = 64 * this.mss;
    this.rto = RTO_MIN_MS;
    this.retries = 0;
    this.clearTimer();
  }

  private onAck(ack: number, wnd: number, pureAck: boolean): void {
    if (seqGt(ack, this.sndMax)) {
      this.sendAck();
      return;
    }
    // After a go-back, the guest may acknowledge what it had before the rewind.
    if (seqGt(ack, this.sndNxt)) this.sndNxt = ack;
    const acked = (ack - this.sndUna) | 0;
    if (acked > 0) {
      const finAcked = this.finSent && acked > this.sndBytes;
      this.consume(Math.min(acked, this.sndBytes));
      this.sndUna = ack;
      this.dupAcks = 0;
      if (this.cwnd < this.ssthresh) this.cwnd += acked;
      else this.cwnd += Math.max(1, ((this.mss * this.mss) / this.cwnd) | 0);
      if (this.cwnd > 16 << 20) this.cwnd = 16 << 20;
      this.rto = RTO_MIN_MS;
      this.retries = 0;
      if (this.sndUna === this.sndMax) this.clearTimer();
      else this.armTimer(this.rto);
      if (this.paused && this.sndBytes < SND_LOW && this.state !== 'SynSent' && this.wire.budget.free > 0) {
        this.paused = false;
        this.host?.resume();
      }
      if (finAcked) {
        if (this.state === 'FinWait1') this.state = 'FinWait2';
        else if (this.state === 'Closing') this.timeWait();
        else if (this.state === 'LastAck') {
          this.close();
          return;
        }
      }
    } else if (acked === 0 && pureAck && wnd === this.sndWnd && this.sndMax !== this.sndUna) {
      if (++this.dupAcks === 3 && seqGe(this.sndUna, this.recover)) {
        this.recover = this.sndMax;
        this.ssthresh = Math.max(((this.sndMax - this.sndUna) >>> 0) >> 1, 2 * this.mss);
        this.cwnd = this.ssthresh;
        this.goBack();
      }
    }
    this.sndWnd = wnd;
  }

  private onData(p: Packet, len: number): void {
    if (this.state !== 'Established' && this.state !== 'FinWait1' && this.state !== 'FinWait2') {
      // After the guest's FIN: a retransmission of what we have, whose ACK was lost.
      if (((this.rcvNxt - p.seq) | 0) >= len) this.sendAck();
      return;
    }
    let start = p.payload;
    const off = (this.rcvNxt - p.seq) | 0;
    if (off > 0) {
      // A retransmission, maybe overlapping new bytes.
      if (off >= len) {
        this.sendAck();
        return;
      }
      start += off;
    } else if (off < 0) {
      // Beyond a hole: kept until the hole is filled; the duplicate ACK (with SACK blocks) asks for it.
      this.holdOoo(p.seq, p.buf, p.payload, p.end, (p.flags & TCP_FIN) !== 0);
      this.sendAck();
      return;
    }
    // A guest that ignores the window we offered cannot make dom0 buffer without bound.
    if (this.host && this.host.queued > 2 * RCV_BUF) {
      this.sendAck();
      return;
    }
    // An ACK already owed (a segment not yet acknowledged) or a large segment: acknowledged at the end
    // of the batch, so a sender never waits on us for more than one small segment.
    const owed = this.lastAckSent !== this.rcvNxt;
    this.deliver(p.buf.subarray(start, p.end));
    if (this.ooo.length) {
      this.drainOoo();
      this.sendAck(); // at once: the guest is recovering
    } else if (owed || p.end - start >= 2 * this.mss) this.wire.wantAck(this);
    else this.wire.delayAck(this);
  }

  /** Bytes for the dom0 socket: `data` may be a view of a received frame (the host socket copies what it keeps). */
  private deliver(data: Buffer): void {
    this.rcvNxt = (this.rcvNxt + data.length) >>> 0;
    const h = this.host;
    if (h && !h.destroyed) {
      this.pendingWrite += data.length;
      this.wire.budget.take(data.length);
      if (h.write(data)) this.wire.corked(this);
      this.written();
    }
  }

  /**
   * Gives back the budget of what the socket has passed to the kernel: after each write, not only on
   * drain, which comes only after the socket's queue went past its high-water mark (a keep-alive
   * connection of small requests never gets one, and would hold every byte it ever sent). No window
   * update here: a window the budget shrank reopens through budgetFreed, one the socket's queue shrank
   * on drain; an ACK per write would undo the delayed ACK.
   */
  private written(): void {
    const queued = this.host ? this.host.queued : 0;
    const sent = this.pendingWrite - queued;
    if (sent <= 0) return;
    this.pendingWrite = queued;
    this.wire.budget.release(sent);
  }

  private holdOoo(seq: number, buf: Buffer, start: number, end: number, fin: boolean): void {
    const len = end - start;
    // Only inside the window we offered, within the flow's and the guest's budgets.
    if (((seq + len - this.rcvNxt) | 0) > RCV_BUF || ((seq - this.rcvNxt) | 0) <= 0) return;
    if (this.oooBytes + len > OOO_MAX || this.ooo.length >= OOO_SEGMENTS || len > this.wire.budget.free) return;
    const q = this.ooo;
    let i = q.length;
    while (i > 0 && seqGt(q[i - 1]!.seq, seq)) i--;
    if (i > 0 && q[i - 1]!.seq === seq && q[i - 1]!.data.length >= len && (q[i - 1]!.fin || !fin)) return; // a duplicate
    q.splice(i, 0, { seq, data: Buffer.from(buf.subarray(start, end)), fin });
    this.oooBytes += len;
    this.wire.budget.take(len);
    this.lastOooSeq = seq;
  }

  private drainOoo(): void {
    const q = this.ooo;
    while (q.length && seqLe(q[0]!.seq, this.rcvNxt)) {
      const e = q.shift()!;
      this.oooBytes -= e.data.length;
      this.wire.budget.release(e.data.length);
      const skip = (this.rcvNxt - e.seq) | 0;
      if (skip < e.data.length) this.deliver(e.data.subarray(skip));
      if (e.fin && !this.guestFin && (e.seq + e.data.length) >>> 0 === this.rcvNxt) {
        this.onFin();
        q.length = 0;
      }
    }
  }

  /** SACK option for what we hold beyond the hole: the block with the latest segment first (RFC 2018). */
  private sackOption(): Buffer | null {
    if (!this.sackOk || this.ooo.length === 0) return null;
    const blocks: [number, number][] = [];
    for (const e of this.ooo) {
      const end = (e.seq + e.data.length) >>> 0;
      const last = blocks[blocks.length - 1];
      if (last && seqLe(e.seq, last[1])) {
        if (seqGt(end, last[1])) last[1] = end;
      } else blocks.push([e.seq, end]);
    }
    const first = blocks.findIndex(([l, r]) => seqLe(l, this.lastOooSeq) && seqLt(this.lastOooSeq, r));
    if (first > 0) blocks.unshift(...blocks.splice(first, 1));
    const n = Math.min(blocks.length, 3);
    const o = Buffer.alloc(4 + 8 * n);
    o[0] = 1;
    o[1] = 1;
    o[2] = 5;
    o[3] = 2 + 8 * n;
    for (let i = 0; i < n; i++) {
      o.writeUInt32BE(blocks[i]![0] >>> 0, 4 + 8 * i);
      o.writeUInt32BE(blocks[i]![1] >>> 0, 8 + 8 * i);
    }
    return o;
  }

  private onFin(): void {
    this.rcvNxt = (this.rcvNxt + 1) >>> 0;
    this.guestFin = true;
    this.host?.end();
    if (this.state === 'Established' || this.state === 'SynReceived') this.state = 'CloseWait';
    else if (this.state === 'FinWait1') this.state = 'Closing';
    else if (this.state === 'FinWait2') this.timeWait();
    this.sendAck();
  }

  // ---- bytes from the dom0 socket ------------------------------------------------------------------

  /** Bytes read from the dom0 socket; the flow keeps `chunk`. */
  fromHost(chunk: Buffer): void {
    if (this.state === 'Closed') return;
    this.sndBuf.push(chunk);
    this.sndBytes += chunk.length;
    this.wire.budget.take(chunk.length);
    if (!this.paused && (this.sndBytes > SND_HIGH || this.wire.budget.free === 0)) {
      this.paused = true;
      this.host?.pause();
      if (this.wire.budget.free === 0) this.wire.budget.hold(this);
    }
    this.output();
  }

  /** Sends what the guest's window and ours allow: data, then our FIN once the socket has ended. */
  output(): void {
    const st = this.state;
    if (st !== 'Established' && st !== 'CloseWait' && st !== 'FinWait1' && st !== 'Closing' && st !== 'LastAck') return;
    const max = this.wire.maxSegment(this);
    const limit = Math.min(this.sndWnd, this.cwnd);
    const dataEnd = (this.sndUna + this.sndBytes) >>> 0;
    for (;;) {
      const inFlight = (this.sndNxt - this.sndUna) >>> 0;
      const unsent = (dataEnd - this.sndNxt) | 0;
      if (unsent > 0) {
        const room = limit - inFlight;
        if (room <= 0) {
          if (this.sndWnd === 0 && !this.timerAt) this.armTimer(this.rto); // persist: probe a zero window
          break;
        }
        // Whole segments only, unless this is the tail of what we have.
        let n = Math.min(unsent, room, max);
        if (n < unsent && n > this.mss) n -= n % this.mss;
        const last = n === unsent;
        this.wire.segment(this, this.sndNxt, this.rcvNxt, TCP_ACK | (last ? TCP_PSH : 0), this.window(), null, inFlight, n);
        this.advance(n);
        continue;
      }
      if (this.finQueued && this.sndNxt === dataEnd) {
        this.wire.segment(this, this.sndNxt, this.rcvNxt, TCP_FIN | TCP_ACK, this.window(), null, 0, 0);
        this.advance(1);
        if (!this.finSent) {
          this.finSent = true;
          if (this.state === 'Established') this.state = 'FinWait1';
          else if (this.state === 'CloseWait') this.state = 'LastAck';
        }
      }
      break;
    }
  }

  private advance(n: number): void {
    this.sndNxt = (this.sndNxt + n) >>> 0;
    if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
    if (!this.timerAt) this.armTimer(this.rto);
  }

  /** Copies `len` bytes starting `offset` bytes after snd.una into `dst` at `at`. */
  copyOut(dst: Buffer, at: number, offset: number, len: number): void {
    let i = 0;
    let skip = this.sndHead + offset;
    while (i < this.sndBuf.length && skip >= this.sndBuf[i]!.length) skip -= this.sndBuf[i++]!.length;
    while (len > 0 && i < this.sndBuf.length) {
      const c = this.sndBuf[i++]!;
      const n = Math.min(len, c.length - skip);
      c.copy(dst, at, skip, skip + n);
      at += n;
      len -= n;
      skip = 0;
    }
  }

  private consume(n: number): void {
    this.sndBytes -= n;
    this.wire.budget.release(n);
    n += this.sndHead;
    let i = 0;
    while (i < this.sndBuf.length && n >= this.sndBuf[i]!.length) n -= this.sndBuf[i++]!.length;
    // One chunk (a small answer, acknowledged whole) is the common case: shift is cheaper than splice.
    if (i === 1) this.sndBuf.shift();
    else if (i > 0) this.sndBuf.splice(0, i);
    this.sndHead = n;
  }

  private goBack(): void {
    this.sndNxt = this.sndUna;
    this.output();
  }

  // ---- windows and ACKs ----------------------------------------------------------------------------

  /** The window we advertise (already shifted): what the dom0 socket can still take. */
  window(): number {
    const buffered = this.host ? this.host.queued : 0;
    const w = Math.max(0, Math.min(RCV_BUF - buffered, this.wire.budget.free)) >> this.rcvWscale;
    this.lastWindow = w > 0xffff ? 0xffff : w;
    return this.lastWindow;
  }

  sendAck(): void {
    if (this.state === 'Closed' || this.state === 'Connecting' || this.state === 'SynSent') return;
    this.wire.segment(this, this.sndNxt, this.rcvNxt, TCP_ACK, this.window(), this.sackOption(), 0, 0);
  }

  private maybeWindowUpdate(): void {
    if (this.lastWindow << this.rcvWscale < RCV_BUF / 4) this.sendAck();
  }

  // ---- timers and endings --------------------------------------------------------------------------

  /** Sets the flow's one timer to fire `ms` from now (earlier or later than it was set). */
  private armTimer(ms: number): void {
    const at = Date.now() + ms;
    this.timerAt = at;
    if (this.timer && this.timerDue <= at) return; // it fires first and re-arms for the rest
    if (this.timer) clearTimeout(this.timer);
    this.timerDue = at;
    this.timer = setTimeout(this.onTimer, ms);
  }

  private clearTimer(): void {
    this.timerAt = 0;
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    if (this.timerAt === 0) return;
    const now = Date.now();
    if (now < this.timerAt) {
      this.timerDue = this.timerAt;
      this.timer = setTimeout(this.onTimer, this.timerAt - now);
      return;
    }
    this.timerAt = 0;
    this.expired();
  };

  private expired(): void {
    switch (this.state) {
      case 'Connecting':
        this.wire.unreachable(this);
        this.close();
        return;
      case 'TimeWait':
        this.close();
        return;
      case 'SynSent':
      case 'SynReceived':
        if (++this.retries > SYN_RETRIES) {
          this.dialFailure = 'Timeout';
          this.reset();
          return;
        }
        this.rto = Math.min(this.rto * 2, RTO_MAX_MS);
        this.sendSyn();
        return;
      case 'Closed':
        return;
    }
    if (this.sndMax === this.sndUna) {
      if (this.sndWnd === 0 && this.sndBytes > 0) {
        // Zero-window probe: an old sequence number makes the guest answer with its window.
        this.wire.segment(this, (this.sndUna - 1) >>> 0, this.rcvNxt, TCP_ACK, this.window(), null, 0, 0);
        this.rto = Math.min(this.rto * 2, RTO_MAX_MS);
        this.armTimer(this.rto);
      }
      return;
    }
    if (++this.retries > MAX_RETRIES) {
      this.reset();
      return;
    }
    this.ssthresh = Math.max(((this.sndMax - this.sndUna) >>> 0) >> 1, 2 * this.mss);
    this.cwnd = 10 * this.mss;
    this.rto = Math.min(this.rto * 2, RTO_MAX_MS);
    this.recover = this.sndMax;
    this.goBack();
    this.armTimer(this.rto);
  }

  private timeWait(): void {
    this.state = 'TimeWait';
    this.clearTimer();
    this.armTimer(TIME_WAIT_MS);
  }

  /** The guest's budget has room again: a socket paused for it reads again. */
  budgetFreed(): void {
    if (this.state === 'Closed') return;
    // Woken by one budget while the other (the guest's or the host's) is still full: wait for it.
    if (this.paused && this.wire.budget.free === 0) {
      this.wire.budget.hold(this);
      return;
    }
    if (this.paused && this.state !== 'SynSent' && this.sndBytes < SND_HIGH) {
      this.paused = false;
      this.host?.resume();
    }
  }

  /** A connect the policy refuses after the fact (it turned out to be local): an RST, like a refusal. */
  refuse(): void {
    if (this.state !== 'Connecting') return;
    this.wire.segment(this, 0, this.rcvNxt, TCP_RST | TCP_ACK, 0, null, 0, 0);
    this.close();
  }

  /** A dial whose caller stopped waiting for the SYN-ACK: the guest gets an RST, the caller 'Timeout'. */
  dialTimedOut(): void {
    if (!this.onDialed) return;
    this.dialFailure = 'Timeout';
    this.reset();
  }

  /** The dom0 side failed: the guest gets an RST. */
  reset(): void {
    if (this.state === 'Closed') return;
    if (this.state !== 'Connecting') this.wire.segment(this, this.sndMax, this.rcvNxt, TCP_RST | TCP_ACK, 0, null, 0, 0);
    this.close();
  }

  /** The guest reset the flow: the dom0 side is reset too. */
  abort(): void {
    if (this.onDialed) this.dialFailure = 'Refused';
    else this.host?.reset();
    this.close();
  }

  close(): void {
    if (this.state === 'Closed') return;
    this.state = 'Closed';
    this.timerAt = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const dialed = this.onDialed;
    if (dialed) {
      // The dialer answers on the socket; the listeners its host socket left on it see a closed flow and do nothing.
      this.onDialed = null;
      this.host = null;
    }
    const h = this.host;
    if (h && !h.destroyed) {
      if (this.finQueued && this.guestFin) h.destroySoon();
      else h.destroy();
    }
    this.sndBuf.length = 0;
    this.wire.budget.forget(this);
    this.wire.budget.release(this.sndBytes + this.oooBytes + this.pendingWrite);
    this.sndBytes = 0;
    this.ooo.length = 0;
    this.oooBytes = 0;
    this.pendingWrite = 0;
    this.wire.closed(this);
    dialed?.(this.dialFailure);
  }
}

function seqGe(a: number, b: number): boolean {
  return !seqLt(a, b);
}
