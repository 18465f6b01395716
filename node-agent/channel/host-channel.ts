// The host's end of one guest's control channel: the handshake and its states, dispatch of the guest's
// frames to sessions and metrics requests, and the hostile-guest rules (any violation closes the channel
// for good and is counted). Nothing the guest sends throws out of the transport's data callback.
import type { Clock } from '../../lib/clock.js';
import {
  BULK_VERSION,
  encodeFrame,
  FrameDecoder,
  frameTypeName,
  FrameType,
  MAX_PAYLOAD,
  MAX_SESSIONS,
  parseWindow,
  PROTOCOL_VERSION,
  resizePayload,
  type Frame,
} from '../../contracts/guest-channel/frames.js';
import { checkSize, HostExecSession, type SessionOwner } from './exec-session.js';
import { parseBulkOffer, parseExit, parseHello, parseHelloAck, parseMetrics, parseStarted } from './guest-messages.js';
import { helloAck, helloRefusal, hostHello, negotiate, rangeText } from './handshake.js';
import { Outbox } from './outbox.js';
import { guestChannelStats } from './stats.js';
import { SwitchingTransport } from './switching-transport.js';
import type {
  ChannelState,
  ChannelStats,
  ChannelTransport,
  ExecRequest,
  ExecResult,
  ExecSession,
  ExecSink,
  GuestChannel,
  GuestReportedMetrics,
} from './types.js';
import { lostWith, metricsTimeout, notUp, readyTimeout, tooManyMetricsRequests, tooManySessions } from './unavailable.js';

/** The exit code of a session the channel lost (ssh's convention for "the connection, not the command"). */
export const CHANNEL_LOST_EXIT_CODE = 255;
/** Metrics requests unanswered at once; more are refused, so a silent guest costs bounded memory. */
export const MAX_PENDING_METRICS = 4;
const MAX_STREAM_ID = 0xffffffff;

interface PendingMetrics {
  resolve(m: GuestReportedMetrics): void;
  reject(e: Error): void;
  timer: { cancel(): void };
}

interface ReadyWaiter {
  resolve(): void;
  reject(e: Error): void;
  timer: { cancel(): void };
}

/** What the channel holds now, for tests and debugging: every figure is bounded. */
export interface ChannelMemory {
  /** The frame being parsed and unread input. */
  decoderBytes: number;
  /** Control frames not yet given to the transport. */
  outboxBytes: number;
  outboxFrames: number;
  /** Stdin waiting for the guest's credit, over all sessions. */
  stdinQueued: number;
  sessions: number;
  pendingMetrics: number;
}

export class HostGuestChannel implements GuestChannel, SessionOwner {
  readonly stats: ChannelStats = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, protocolErrors: 0 };
  readonly outbox: Outbox;
  private st: ChannelState = { phase: 'connecting' };
  /** Replaced when input moves to the bulk ring: what the console held after the guest's BULK_SWITCH is dropped. */
  private decoder = new FrameDecoder({ seekHandshake: true });
  private readonly link: SwitchingTransport;
  /** The bulk ring in this conversation: none yet, offered and answered (our BULK_SWITCH sent), refused, or in use both ways. */
  private bulk: 'none' | 'asked' | 'refused' | 'on' = 'none';
  private readonly sessions = new Map<number, HostExecSession>();
  private readonly metricsWaiting = new Map<number, PendingMetrics>();
  private readonly readyWaiters = new Set<ReadyWaiter>();
  private nextStream = 1;
  private readonly stopDrain: () => void;

  constructor(
    transport: ChannelTransport,
    private readonly software: string,
    private readonly clock: Clock,
  ) {
    this.link = new SwitchingTransport(transport);
    this.outbox = new Outbox(
      this.link,
      () => this.sessions.values(),
      (f) => {
        this.stats.framesOut++;
        this.stats.bytesOut += f.length;
      },
    );
    this.link.onData((d) => this.onData(d));
    this.link.onStray = (d) => this.violation(`the guest wrote ${d.length} bytes to the console after moving to the bulk ring`);
    this.stopDrain = this.link.onDrain(() => this.outbox.drained());
    this.link.onClose(() => this.transportClosed());
    this.outbox.send(0, hostHello(software));
    this.outbox.pump();
  }

  state(): ChannelState {
    return this.st;
  }

  memory(): ChannelMemory {
    let stdinQueued = 0;
    for (const s of this.sessions.values()) stdinQueued += s.queuedStdin;
    return {
      decoderBytes: this.decoder.buffered,
      outboxBytes: this.outbox.queuedBytes,
      outboxFrames: this.outbox.queuedFrames,
      stdinQueued,
      sessions: this.sessions.size,
      pendingMetrics: this.metricsWaiting.size,
    };
  }

  ready(timeoutMs: number): Promise<void> {
    if (this.st.phase === 'up') return Promise.resolve();
    if (this.st.phase !== 'connecting') return Promise.reject(notUp(this.st)!);
    return new Promise((resolve, reject) => {
      const w: ReadyWaiter = {
        resolve,
        reject,
        timer: this.clock.setTimeout(() => {
          this.readyWaiters.delete(w);
          reject(readyTimeout(timeoutMs));
        }, timeoutMs),
      };
      this.readyWaiters.add(w);
    });
  }

  exec(req: ExecRequest, sink: ExecSink): ExecSession {
    const down = notUp(this.st);
    if (down) throw down;
    if (this.sessions.size >= MAX_SESSIONS) throw tooManySessions();
    if (!Array.isArray(req.argv) || req.argv.length === 0 || !req.argv.every((a) => typeof a === 'string')) {
      throw new RangeError('exec needs a command: argv has at least one string');
    }
    if (req.rows !== undefined || req.cols !== undefined) checkSize(req.rows ?? 0, req.cols ?? 0);
    const payload = Buffer.from(
      JSON.stringify({
        argv: req.argv,
        env: req.env,
        cwd: req.cwd,
        user: req.user,
        tty: req.tty,
        stdin: req.stdin,
        rows: req.rows,
        cols: req.cols,
      }),
    );
    if (payload.length > MAX_PAYLOAD) {
      throw new RangeError(`the command, its environment and options take ${payload.length} bytes, over the channel's ${MAX_PAYLOAD}`);
    }
    const id = this.newStream();
    const session = new HostExecSession(id, sink, req.stdin, this);
    this.sessions.set(id, session);
    this.outbox.send(id, encodeFrame(FrameType.EXEC, id, payload), { opens: true });
    this.outbox.pump();
    return session;
  }

  metrics(timeoutMs: number): Promise<GuestReportedMetrics> {
    const down = notUp(this.st);
    if (down) return Promise.reject(down);
    if (this.metricsWaiting.size >= MAX_PENDING_METRICS) return Promise.reject(tooManyMetricsRequests(MAX_PENDING_METRICS));
    const id = this.newStream();
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.metricsWaiting.delete(id);
        this.outbox.forget(id);
        reject(metricsTimeout(timeoutMs));
      }, timeoutMs);
      this.metricsWaiting.set(id, { resolve, reject, timer });
      this.outbox.send(id, encodeFrame(FrameType.METRICS_REQUEST, id), { opens: true });
      this.outbox.pump();
    });
  }

  resizeConsole(rows: number, cols: number): void {
    checkSize(rows, cols);
    if (this.st.phase !== 'up') return;
    this.outbox.send(0, encodeFrame(FrameType.RESIZE, 0, resizePayload(rows, cols)), { key: 'resize:0' });
    this.outbox.pump();
  }

  close(reason: string): void {
    this.shutdown(reason, 'close');
  }

  /** From a session: it ended for the host. */
  ended(session: HostExecSession): void {
    this.sessions.delete(session.id);
  }

  /** Read through a method: a sink may close the channel during a call TypeScript's narrowing cannot see. */
  private isClosed(): boolean {
    return this.st.phase === 'closed';
  }

  private newStream(): number {
    if (this.nextStream > MAX_STREAM_ID) {
      this.close('the channel used up its stream ids');
      throw notUp(this.st)!;
    }
    return this.nextStream++;
  }

  // --- input ---

  private onData(data: Buffer): void {
    if (this.st.phase === 'closed') return;
    this.stats.bytesIn += data.length;
    try {
      const decoder = this.decoder;
      decoder.push(data);
      for (let r = decoder.next(); r; r = decoder.next()) {
        if (!r.ok) return this.violation(r.reason);
        this.stats.framesIn++;
        const bad = this.handle(r.frame);
        if (bad !== undefined) return this.violation(bad);
        if (this.isClosed()) return;
        // Input moved to the bulk ring: the guest's BULK_SWITCH was its last byte on the console.
        if (this.decoder !== decoder) {
          if (decoder.buffered > 0) return this.violation(`the guest wrote ${decoder.buffered} bytes to the console after its BULK_SWITCH`);
          break;
        }
      }
      this.outbox.pump();
    } catch (e) {
      this.violation(`handling the guest's input failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Acts on one frame; returns a violation's reason, or undefined. */
  private handle(f: Frame): string | undefined {
    if (f.type === FrameType.HELLO) return this.onHello(f);
    if (f.type === FrameType.HELLO_ACK) return this.onHelloAck(f);
    // Before the handshake the decoder passes nothing else.
    if (this.st.phase !== 'up') return undefined;
    switch (f.type) {
      case FrameType.BULK_OFFER:
        return this.onBulkOffer(f);
      case FrameType.BULK_SWITCH:
        return this.onBulkSwitch(f);
      case FrameType.STARTED:
      case FrameType.EXIT:
      case FrameType.STDOUT:
      case FrameType.STDERR:
      case FrameType.WINDOW:
        return this.onSessionFrame(f);
      case FrameType.METRICS:
        return this.onMetrics(f);
      default:
        return `the guest sent ${frameTypeName(f.type)}, which only the host sends`;
    }
  }

  private onHello(f: Frame): string | undefined {
    const up = this.st.phase === 'up';
    if (f.stream !== 0 || f.flags !== 0) return up ? 'a HELLO off stream 0 or with flags' : undefined;
    const hello = parseHello(f.json!);
    if (!hello) return up ? 'a HELLO without a role and a valid min..max' : undefined;
    // Our own HELLO echoed by the guest's line discipline before guest-init set it raw.
    if (hello.role !== 'guest') return undefined;
    // HELLO travels on the console; once the conversation is on the bulk ring, it cannot start over there.
    if (this.bulk === 'asked' || this.bulk === 'on') return 'a HELLO after the conversation moved to the bulk ring';
    if (up) guestChannelStats.resets++;
    this.endConversation("the guest's init restarted the control channel");
    this.outbox.clear();
    const version = negotiate(PROTOCOL_VERSION, hello);
    if (version === undefined) {
      const reason =
        `the guest (${hello.software || 'unnamed'}) speaks channel versions ${rangeText(hello)}, ` +
        `this agent (${this.software}) ${rangeText(PROTOCOL_VERSION)}`;
      this.outbox.send(0, helloRefusal(reason));
      this.becomeIncompatible(reason);
    } else {
      this.outbox.send(0, helloAck(version, this.software));
      this.becomeUp(version, hello.software);
    }
    return undefined;
  }

  private onHelloAck(f: Frame): string | undefined {
    const up = this.st.phase === 'up';
    if (f.stream !== 0 || f.flags !== 0) return up ? 'a HELLO_ACK off stream 0 or with flags' : undefined;
    const ack = parseHelloAck(f.json!);
    if (!ack) return up ? 'a HELLO_ACK without a valid version' : undefined;
    if ('error' in ack) {
      this.becomeIncompatible(`the guest refused this agent's channel versions ${rangeText(PROTOCOL_VERSION)}: ${ack.error}`);
      return undefined;
    }
    if (ack.version < PROTOCOL_VERSION.min || ack.version > PROTOCOL_VERSION.max) {
      if (up) return `the guest acknowledged version ${ack.version}, which this agent does not speak`;
      this.becomeIncompatible(`the guest chose channel version ${ack.version}; this agent speaks ${rangeText(PROTOCOL_VERSION)}`);
      return undefined;
    }
    if (this.st.phase === 'up') {
      // The answer to our HELLO crossing the guest's: the same conversation.
      return ack.version === this.st.version ? undefined : `the guest acknowledged version ${ack.version} while ${this.st.version} is up`;
    }
    this.becomeUp(ack.version, ack.software);
    return undefined;
  }

  /** The guest offers its bulk ring: map it and move our output there, or stay on the console and say why. */
  private onBulkOffer(f: Frame): string | undefined {
    if (this.st.phase !== 'up') return undefined;
    if (f.stream !== 0 || f.flags !== 0) return 'a BULK_OFFER off stream 0 or with flags';
    if (this.st.version < BULK_VERSION) return `a BULK_OFFER at channel version ${this.st.version}`;
    if (this.bulk !== 'none') return 'a second BULK_OFFER in one conversation';
    const offer = parseBulkOffer(f.json!);
    if (!offer) return 'a BULK_OFFER without valid refs, port, inPages and outPages';
    if (!this.link.canOpenBulk) return this.refuseBulk('this transport has no bulk ring');
    try {
      this.link.switchOutput(offer, encodeFrame(FrameType.BULK_SWITCH, 0));
    } catch (e) {
      return this.refuseBulk(e instanceof Error ? e.message : String(e));
    }
    this.bulk = 'asked';
    this.stats.framesOut++;
    return undefined;
  }

  private refuseBulk(why: string): undefined {
    guestChannelStats.bulkRefused++;
    this.bulk = 'refused';
    if (this.st.phase === 'up') this.st = { ...this.st, bulkRefused: why };
    return undefined;
  }

  /** The guest's last frame on the console: its input and ours are on the bulk ring from here. */
  private onBulkSwitch(f: Frame): string | undefined {
    if (f.stream !== 0 || f.flags !== 0 || f.payload.length !== 0) return 'a BULK_SWITCH off stream 0, with flags or a payload';
    if (this.bulk !== 'asked') return 'a BULK_SWITCH the host did not ask for';
    this.link.switchInput();
    this.decoder = new FrameDecoder();
    this.bulk = 'on';
    guestChannelStats.bulkSwitches++;
    if (this.st.phase === 'up') this.st = { ...this.st, transport: 'bulk' };
    return undefined;
  }

  private onSessionFrame(f: Frame): string | undefined {
    const s = this.sessions.get(f.stream);
    if (!s) {
      if (this.metricsWaiting.has(f.stream)) return `a ${frameTypeName(f.type)} frame on metrics stream ${f.stream}`;
      return this.unknownStream(f);
    }
    switch (f.type) {
      case FrameType.STARTED: {
        const pid = parseStarted(f.json!);
        return pid === undefined ? `a STARTED on stream ${f.stream} without a pid` : s.onStarted(pid);
      }
      case FrameType.EXIT: {
        const result = parseExit(f.json!);
        if (!result) return `an EXIT on stream ${f.stream} without a valid exitCode, signal or error`;
        s.onExit(result);
        return undefined;
      }
      case FrameType.STDOUT:
      case FrameType.STDERR:
        return s.onOutput(f.type, f.payload, (f.flags & 1) !== 0);
      default: {
        const w = parseWindow(f.payload);
        return w ? s.onCredit(w.dataType, w.increment) : `a malformed WINDOW on stream ${f.stream}`;
      }
    }
  }

  private onMetrics(f: Frame): string | undefined {
    const m = this.metricsWaiting.get(f.stream);
    if (!m) return this.sessions.has(f.stream) ? `a METRICS frame on exec stream ${f.stream}` : this.unknownStream(f);
    const metrics = parseMetrics(f.json!);
    if (!metrics) return `METRICS on stream ${f.stream} with a missing, negative, non-finite or out-of-range figure`;
    this.metricsWaiting.delete(f.stream);
    m.timer.cancel();
    m.resolve(metrics);
    return undefined;
  }

  /** A frame for no live stream: dropped when the host ended that stream, a violation when it never opened it. */
  private unknownStream(f: Frame): string | undefined {
    if (f.stream !== 0 && f.stream < this.nextStream) return undefined;
    return `a ${frameTypeName(f.type)} frame for stream ${f.stream}, which the host never opened`;
  }

  // --- states ---

  private becomeUp(version: number, guestSoftware: string): void {
    this.st = { phase: 'up', version, guestSoftware, transport: 'console' };
    this.bulk = 'none';
    this.decoder.seekHandshake = false;
    for (const w of this.takeReadyWaiters()) w.resolve();
  }

  private becomeIncompatible(reason: string): void {
    guestChannelStats.incompatible++;
    this.st = { phase: 'incompatible', reason };
    this.endConversation(`the guest's control channel is incompatible: ${reason}`);
    // A later HELLO (a guest-init that restarted) may still find a common version.
    this.decoder.seekHandshake = true;
    for (const w of this.takeReadyWaiters()) w.reject(notUp(this.st)!);
  }

  /** Ends every session and metrics request of the current conversation. */
  private endConversation(why: string): void {
    const result: ExecResult = { exitCode: CHANNEL_LOST_EXIT_CODE, error: why };
    for (const s of [...this.sessions.values()]) s.abort(result);
    this.sessions.clear();
    for (const [id, m] of [...this.metricsWaiting]) {
      this.metricsWaiting.delete(id);
      m.timer.cancel();
      m.reject(lostWith(this.st, why));
    }
  }

  private violation(reason: string): void {
    this.stats.protocolErrors++;
    guestChannelStats.protocolErrors++;
    // The guest may go on writing: its console device is drained and discarded until the domain goes.
    this.shutdown(`protocol error: ${reason}`, 'discard');
  }

  private transportClosed(): void {
    const why = this.decoder.midFrame
      ? "the guest's channel device went away in the middle of a frame (the domain is gone)"
      : "the guest's channel device went away (the domain is gone)";
    this.shutdown(why, 'none');
  }

  private shutdown(reason: string, transport: 'close' | 'discard' | 'none'): void {
    if (this.st.phase === 'closed') return;
    this.st = { phase: 'closed', reason };
    this.endConversation(`the guest's control channel closed: ${reason}`);
    for (const w of this.takeReadyWaiters()) w.reject(notUp(this.st)!);
    this.decoder.discard();
    this.outbox.clear();
    this.stopDrain();
    if (transport === 'close') this.link.close();
    else if (transport === 'discard') this.link.discard();
  }

  private takeReadyWaiters(): ReadyWaiter[] {
    const all = [...this.readyWaiters];
    this.readyWaiters.clear();
    for (const w of all) w.timer.cancel();
    return all;
  }
}
