// Keeps each running domain's control channel, in the background: a domain with the channel device gets
// its GuestChannel at once (over a PendingTransport, so that exec sees "connecting" while the guest
// boots), and its ring is connected behind it; a failed connect is logged and retried a bounded number of
// times, after which the channel closes. A domain without the device (started by an older agent) has no
// channel. Nothing here delays create or list. The byte stream comes from xen/ (console device 1);
// openGuestChannel (node-agent/channel/) speaks the protocol over it.
import type { ChannelTransport, GuestChannel } from '../channel/types.js';
import type { GuestChannelOptions } from '../channel/index.js';
import { PendingTransport } from './pending-transport.js';

export type ChannelFactory = (transport: ChannelTransport, opts: GuestChannelOptions) => GuestChannel;

export interface GuestChannelsOptions {
  /** Whether dom0 gave the domain a channel device. */
  hasDevice: (domid: number) => Promise<boolean>;
  /** Connects the domain's channel ring (bounded wait for the guest). */
  connect: (domid: number) => Promise<ChannelTransport>;
  /** Failures not worth retrying (the device went away). */
  isPermanent: (e: unknown) => boolean;
  open: ChannelFactory;
  /** Sent in HELLO: "krata-node-agent VERSION". */
  software: string;
  /** Between attempts (default 10 s), and how many connect attempts in all (default 6). */
  retryMs?: number;
  attempts?: number;
  log?: (message: string) => void;
  /** For tests. */
  setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}

interface Entry {
  domid: number;
  channel?: GuestChannel;
  pending?: PendingTransport;
  /** No channel device, or given up on: nothing more is tried. */
  settled: boolean;
  attempts: number;
  busy: boolean;
  retry?: { cancel(): void };
  dropped: boolean;
}

const realTimer = (fn: () => void, ms: number) => {
  const t = setTimeout(fn, ms);
  t.unref?.();
  return { cancel: () => clearTimeout(t) };
};

export class GuestChannels {
  private readonly entries = new Map<number, Entry>();
  private readonly retryMs: number;
  private readonly attempts: number;
  private readonly setTimer: NonNullable<GuestChannelsOptions['setTimer']>;
  private readonly log: (message: string) => void;

  constructor(private readonly opts: GuestChannelsOptions) {
    this.retryMs = opts.retryMs ?? 10_000;
    this.attempts = opts.attempts ?? 6;
    this.setTimer = opts.setTimer ?? realTimer;
    this.log = opts.log ?? ((m) => console.warn(`krata-node-agent: ${m}`));
  }

  /**
   * Starts serving the domain's channel unless it is served, being set up, absent or given up on. Never
   * waits. `hasDevice`: the caller wrote the device itself (create), so the channel opens before this returns.
   */
  ensure(domid: number, hasDevice = false): void {
    let e = this.entries.get(domid);
    if (!e) {
      e = { domid, settled: false, attempts: 0, busy: false, dropped: false };
      this.entries.set(domid, e);
    }
    if (e.settled || e.busy || e.retry || e.pending?.attached) return;
    if (e.channel) this.attempt(e);
    else if (hasDevice) this.openChannel(e);
    else this.probe(e);
  }

  get(domid: number): GuestChannel | undefined {
    return this.entries.get(domid)?.channel;
  }

  /** The domain is gone or no longer served: its channel closes; a connect in flight is closed when it lands. */
  drop(domid: number, reason: string): void {
    const e = this.entries.get(domid);
    if (!e) return;
    this.entries.delete(domid);
    e.dropped = true;
    e.retry?.cancel();
    e.retry = undefined;
    try {
      e.channel?.close(reason);
    } catch {
      // best effort: the transport below goes regardless
    }
    e.pending?.close();
    e.channel = undefined;
  }

  dropAll(reason: string): void {
    for (const domid of [...this.entries.keys()]) this.drop(domid, reason);
  }

  /** Does the domain have the device? If so, its channel opens now and the ring is connected behind it. */
  private probe(e: Entry): void {
    e.busy = true;
    this.opts.hasDevice(e.domid).then(
      (has) => {
        e.busy = false;
        if (e.dropped) return;
        if (has) this.openChannel(e);
        else e.settled = true;
      },
      (err: unknown) => {
        e.busy = false;
        if (!e.dropped) this.failed(e, err, true);
      },
    );
  }

  private openChannel(e: Entry): void {
    const pending = new PendingTransport();
    try {
      e.channel = this.opts.open(pending, { software: this.opts.software });
    } catch (err) {
      e.settled = true;
      this.log(`guest channel of domain ${e.domid}: ${message(err)}`);
      return;
    }
    e.pending = pending;
    this.attempt(e);
  }

  private attempt(e: Entry): void {
    e.attempts++;
    e.busy = true;
    this.opts.connect(e.domid).then(
      (transport) => {
        e.busy = false;
        if (e.dropped || !e.pending) transport.close();
        else e.pending.attach(transport);
      },
      (err: unknown) => {
        e.busy = false;
        if (!e.dropped) this.failed(e, err, false);
      },
    );
  }

  private failed(e: Entry, err: unknown, probing: boolean): void {
    if (this.opts.isPermanent(err)) return this.giveUp(e);
    if (probing) e.attempts++;
    const more = e.attempts < this.attempts;
    this.log(`guest channel of domain ${e.domid}: ${message(err)}${more ? `; retrying in ${this.retryMs / 1000} s` : '; giving up'}`);
    if (!more) return this.giveUp(e);
    e.retry = this.setTimer(() => {
      e.retry = undefined;
      if (!e.dropped) this.ensure(e.domid);
    }, this.retryMs);
  }

  /** No more attempts: a channel opened for the domain closes (exec then says why it is not up). */
  private giveUp(e: Entry): void {
    e.settled = true;
    e.pending?.close();
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
