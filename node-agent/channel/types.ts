// What the rest of the agent sees of a guest's control channel (contracts/guest-channel/PROTOCOL.md):
// its state, exec sessions with flow control, the guest's own usage figures, the console's size.
import type { ExecResult } from '../../contracts/agent-api/exec.js';

/** Where a guest's channel is: waiting for the handshake, up, or closed for good (incompatible or broken). */
export type ChannelState =
  | { phase: 'connecting' }
  | {
      phase: 'up';
      version: number;
      guestSoftware: string;
      /** What the conversation runs over: the console device, or the guest's bulk ring (version 2). */
      transport: 'console' | 'bulk';
      /** Why a guest's bulk ring was not used (mapping it failed, or the transport has none). */
      bulkRefused?: string;
    }
  | { phase: 'incompatible'; reason: string }
  | { phase: 'closed'; reason: string };

/** Why an exec or a metrics request could not be served: the message says what to do. */
export class ChannelUnavailable extends Error {
  constructor(
    message: string,
    readonly state: ChannelState['phase'],
  ) {
    super(message);
  }
}

export interface ExecRequest {
  argv: string[];
  /** K=V entries over the main process's environment. */
  env?: string[];
  cwd?: string;
  /** NAME, UID, NAME:GROUP or UID:GID; default the main process's identity. */
  user?: string;
  tty: boolean;
  stdin: boolean;
  rows?: number;
  cols?: number;
}

export type { ExecResult } from '../../contracts/agent-api/exec.js';

/** Where a session's output goes. */
export interface ExecSink {
  /** Output; false when the consumer is backed up: no credit goes back to the guest until `resumeOutput()`. */
  stdout(data: Buffer): boolean;
  stderr(data: Buffer): boolean;
  /** The process runs in the guest. */
  started?(pid: number): void;
  /**
   * Exactly once: the process ended (or could not start, or the channel went away, or the session was
   * closed: then exitCode 255 with an error saying why).
   */
  exit(result: ExecResult): void;
}

export interface ExecSession {
  readonly id: number;
  /** Queues stdin (within the guest's window); false: wait for `onStdinDrain` before writing more. */
  writeStdin(data: Buffer): boolean;
  onStdinDrain(cb: () => void): () => void;
  endStdin(): void;
  resize(rows: number, cols: number): void;
  signal(signo: number): void;
  /** The consumer caught up after a sink call returned false: credit flows again. */
  resumeOutput(): void;
  /** Abandons the session: the guest kills its process group. */
  close(): void;
}

/** What the guest says of itself (GuestMetrics in PROTOCOL.md). */
export interface GuestReportedMetrics {
  memoryTotalBytes: number;
  memoryAvailableBytes: number;
  memoryFreeBytes: number;
  load1: number;
  load5: number;
  load15: number;
  processes: number;
  runningProcesses: number;
  uptimeSeconds: number;
}

export interface ChannelStats {
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  protocolErrors: number;
}

export interface GuestChannel {
  state(): ChannelState;
  /** Resolves when up; rejects with ChannelUnavailable when closed, incompatible, or not up within `timeoutMs`. */
  ready(timeoutMs: number): Promise<void>;
  /** A new session; throws ChannelUnavailable when not up or at MAX_SESSIONS. */
  exec(req: ExecRequest, sink: ExecSink): ExecSession;
  /** Rejects with ChannelUnavailable when not up, or when no answer came within `timeoutMs`. */
  metrics(timeoutMs: number): Promise<GuestReportedMetrics>;
  /** The console's (hvc0's) window size; dropped when the channel is not up. */
  resizeConsole(rows: number, cols: number): void;
  readonly stats: Readonly<ChannelStats>;
  /** Ends every session and stops serving the channel. */
  close(reason: string): void;
}

/** A guest's bulk ring (BULK_OFFER, PROTOCOL.md): its pages' grant refs (header, in, out) and port. */
export interface BulkOffer {
  refs: readonly number[];
  port: number;
  inPages: number;
  outPages: number;
}

/**
 * The byte stream a channel runs over: the guest's console device 1 (xen/console/), or a pipe in
 * tests. Structurally typed, so xen/ implements it without importing this folder.
 */
export interface ChannelTransport {
  /** Bytes from the guest (one subscriber: the channel). */
  onData(cb: (data: Buffer) => void): void;
  /** Queues bytes for the guest; false when the queue is over its bound: wait for `onDrain`. */
  write(data: Buffer): boolean;
  onDrain(cb: () => void): () => void;
  /** The transport went away (the domain is gone); called once. */
  onClose(cb: () => void): void;
  close(): void;
  /**
   * The channel is over, but keep draining (and throwing away) what the guest writes until close(),
   * within a small budget: a console ring left full wedges a Linux guest's hvc consoles. Absent where
   * there is no ring (tests' pipes): the owner closes instead.
   */
  discard?(): void;
  /**
   * Maps the guest's bulk ring: a second transport to the same guest, closed by its owner. Absent where
   * there is none (tests' pipes); throws when the offer cannot be mapped.
   */
  openBulk?(offer: BulkOffer): ChannelTransport;
}
