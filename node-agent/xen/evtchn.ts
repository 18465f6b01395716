// /dev/xen/evtchn: event channels for every guest on one file descriptor. One read loop (one thread of
// the pool, however many guests) takes pending ports from the device and hands each to its handler;
// the port is unmasked (written back) after its handler ran, so a slow handler is never re-entered.
import { writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { EvtchnIoctl } from './abi.js';
import { sysIoctl } from '../../lib/libc.js';

export const EVTCHN_PATH = '/dev/xen/evtchn';

export class EventChannels {
  private readonly handlers = new Map<number, () => void>();
  private closed = false;

  private readonly reading: Promise<void>;

  private constructor(private readonly handle: FileHandle) {
    this.reading = this.readLoop();
  }

  static async open(path = EVTCHN_PATH): Promise<EventChannels> {
    return new EventChannels(await open(path, 'r+'));
  }

  /** Bind our end to a port a domain allocated for us; returns our local port. */
  bindInterdomain(domid: number, remotePort: number, handler: () => void): number {
    const arg = Buffer.alloc(8);
    arg.writeUInt32LE(domid, 0);
    arg.writeUInt32LE(remotePort, 4);
    const local = sysIoctl(this.handle.fd, EvtchnIoctl.BIND_INTERDOMAIN, arg, `bind event channel ${domid}:${remotePort}`);
    this.handlers.set(local, handler);
    return local;
  }

  notify(localPort: number): void {
    sysIoctl(this.handle.fd, EvtchnIoctl.NOTIFY, u32(localPort), `notify event channel ${localPort}`);
  }

  unbind(localPort: number): void {
    this.handlers.delete(localPort);
    try {
      sysIoctl(this.handle.fd, EvtchnIoctl.UNBIND, u32(localPort), `unbind event channel ${localPort}`);
    } catch {
      // already gone with its domain
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const port of [...this.handlers.keys()]) this.unbind(port);
    // The read loop is blocked in read() on a thread-pool thread; neither close() nor process exit
    // interrupts it. Wake it with an event of our own: a channel from dom0 to itself, notified once.
    try {
      const arg = Buffer.alloc(4); // remote_domain 0: ourselves
      const unbound = sysIoctl(this.handle.fd, EvtchnIoctl.BIND_UNBOUND_PORT, arg, 'bind unbound event channel');
      const bind = Buffer.alloc(8);
      bind.writeUInt32LE(0, 0);
      bind.writeUInt32LE(unbound, 4);
      const local = sysIoctl(this.handle.fd, EvtchnIoctl.BIND_INTERDOMAIN, bind, 'bind loopback event channel');
      sysIoctl(this.handle.fd, EvtchnIoctl.NOTIFY, u32(local), 'notify loopback event channel');
      await this.reading;
      for (const port of [unbound, local]) sysIoctl(this.handle.fd, EvtchnIoctl.UNBIND, u32(port), 'unbind loopback');
    } catch {
      // If the wake-up cannot be arranged, closing still releases everything but the blocked thread.
    }
    await this.handle.close();
  }

  private async readLoop(): Promise<void> {
    const buf = Buffer.alloc(4 * 256);
    while (!this.closed) {
      let n: number;
      try {
        ({ bytesRead: n } = await this.handle.read(buf, 0, buf.length, null));
      } catch {
        return; // closed
      }
      const ready: number[] = [];
      for (let i = 0; i + 4 <= n; i += 4) ready.push(buf.readUInt32LE(i));
      const unmask: number[] = [];
      for (const port of ready) {
        try {
          this.handlers.get(port)?.();
        } catch {
          // One guest's failing handler must not end the loop that serves every other guest.
        } finally {
          if (this.handlers.has(port) && !this.closed) unmask.push(port);
        }
      }
      // One synchronous write unmasks them all: the device takes it at once, and a thread-pool round
      // trip per event was most of an event's cost (the port stays masked, its guest waiting, meanwhile).
      if (unmask.length) {
        const ports = Buffer.alloc(unmask.length * 4);
        unmask.forEach((p, i) => ports.writeUInt32LE(p, i * 4));
        try {
          writeSync(this.handle.fd, ports);
        } catch {
          // closed under us
        }
      }
    }
  }
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}
