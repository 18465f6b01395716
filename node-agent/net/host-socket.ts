// The dom0 end of a guest's TCP flow, as the flow (tcp.ts) sees it: bytes to write, bytes read, the
// ends. Two kinds: RawHostSocket (raw-host-socket.ts), the flows a guest opens, and NodeHostSocket
// here, around a net.Socket Node accepted or was handed (published ports, dials from dom0).
import type { Socket } from 'node:net';

/** What a host socket reports to its flow. */
export interface HostSink {
  /** The connect completed. */
  hostConnected(): void;
  /** Bytes read; the flow keeps `chunk`. */
  fromHost(chunk: Buffer): void;
  /** The peer sent FIN. */
  hostEnded(): void;
  /** Bytes queued by write() went to the kernel. */
  hostWritten(): void;
  /** The write queue emptied after write() had to queue past the socket's high-water mark. */
  hostDrained(): void;
  /** The connection failed (ECONNREFUSED, ECONNRESET, ...): the socket is closed, or closes next. */
  hostError(code: string): void;
  /** The socket closed without an error. */
  hostClosed(): void;
}

export interface HostSocket {
  /** Bytes accepted by write() and not yet passed to the kernel. */
  readonly queued: number;
  readonly destroyed: boolean;
  /**
   * Writes `data` (copied if it cannot go to the kernel at once: it may be a view of memory reused
   * after the call). True when the socket now holds writes for flush().
   */
  write(data: Buffer): boolean;
  /** The end of a batch: what write() held goes to the kernel. */
  flush(): void;
  pause(): void;
  resume(): void;
  /** FIN to the peer once everything queued is written. */
  end(): void;
  destroy(): void;
  /** Closes once everything queued is written. */
  destroySoon(): void;
  /** Closes with an RST to the peer. */
  reset(): void;
}

/** A net.Socket as a host socket: its writes corked until flush(), its events passed to the flow. */
export class NodeHostSocket implements HostSocket {
  constructor(
    readonly socket: Socket,
    private readonly sink: HostSink,
  ) {
    socket.on('connect', () => sink.hostConnected());
    socket.on('data', (chunk: Buffer) => sink.fromHost(chunk));
    socket.on('end', () => sink.hostEnded());
    socket.on('drain', () => sink.hostDrained());
    socket.on('error', (e: NodeJS.ErrnoException) => sink.hostError(e.code ?? e.message));
    socket.on('close', (hadError: boolean) => {
      if (!hadError) sink.hostClosed();
    });
  }

  get queued(): number {
    return this.socket.writableLength;
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  private readonly written = (): void => this.sink.hostWritten();

  write(data: Buffer): boolean {
    const s = this.socket;
    if (s.destroyed) return false;
    const cork = !s.writableCorked;
    if (cork) s.cork();
    s.write(Buffer.from(data), this.written);
    return cork;
  }

  flush(): void {
    if (this.socket.writableCorked) this.socket.uncork();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  destroySoon(): void {
    this.socket.destroySoon();
  }

  reset(): void {
    this.socket.resetAndDestroy();
  }
}
