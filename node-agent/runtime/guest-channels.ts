// Keeps each running domain's control channel connected, in the background: a connect never delays
// create or list, a failed one is logged and retried a bounded number of times, and a domain without the
// channel device (started by an older agent) is left alone. The byte stream comes from xen/ (console
// device 1); openGuestChannel (node-agent/channel/) speaks the protocol over it.
import type { ChannelTransport, GuestChannel } from '../channel/types.js';
import type { GuestChannelOptions } from '../channel/index.js';

export type ChannelFactory = (transport: ChannelTransport, opts: GuestChannelOptions) => GuestChannel;

export interface GuestChannelsOptions {
  /** Connects the domain's channel device; rejects with an error for which `isPermanent` says whether to retry. */
  connect: (domid: number) => Promise<ChannelTransport>;
  /** Failures not worth retrying (the domain has no channel device). */
  isPermanent: (e: unknown) => boolean;
  open: ChannelFactory;
  /** Sent in HELLO: "krata-node-agent VERSION". */
  software: string;
  /** Between attempts (default 10 s), and how many attempts in all (default 6). */
  retryMs?: number;
  attempts?: number;
  log?: (message: string) => void;
  /** For tests. */
  setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}

interface Entry {
  domid: number;
  channel?: GuestChannel;
  transport?: ChannelTransport;
  /** No channel device: channel() says undefined for good. */
  absent: boolean;
  attempts: number;
  connecting: boolean;
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
    this.log = opts.log ?? ((m) => console.warn(m));
  }

  /** Starts connecting the domain's channel unless it is connected, connecting, absent or out of attempts. */
  ensure(domid: number): void {
    let e = this.entries.get(domid);
    if (!e) {
      e = { domid, absent: false, attempts: 0, connecting: false, dropped: false };
      this.entries.set(domid, e);
    }
    if (e.channel || e.connecting || e.retry || e.absent || e.attempts >= this.attempts) return;
    this.attempt(e);
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
    closeQuietly(e, reason);
  }

  dropAll(reason: string): void {
    for (const domid of [...this.entries.keys()]) this.drop(domid, reason);
  }

  private attempt(e: Entry): void {
    e.attempts++;
    e.connecting = true;
    this.opts.connect(e.domid).then(
      (transport) => {
        e.connecting = false;
        if (e.dropped) {
          transport.close();
          return;
        }
        e.transport = transport;
        try {
          e.channel = this.opts.open(transport, { software: this.opts.software });
        } catch (err) {
          e.transport = undefined;
          transport.close();
          this.failed(e, err);
        }
      },
      (err: unknown) => {
        e.connecting = false;
        if (!e.dropped) this.failed(e, err);
      },
    );
  }

  private failed(e: Entry, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (this.opts.isPermanent(err)) {
      e.absent = true;
      return;
    }
    const more = e.attempts < this.attempts;
    this.log(`guest channel of domain ${e.domid}: ${message}${more ? `; retrying in ${this.retryMs / 1000} s` : '; giving up'}`);
    if (!more) return;
    e.retry = this.setTimer(() => {
      e.retry = undefined;
      if (!e.dropped) this.attempt(e);
    }, this.retryMs);
  }
}

function closeQuietly(e: Entry, reason: string): void {
  try {
    if (e.channel) e.channel.close(reason);
  } catch {
    // closing is best effort: the transport below goes regardless
  }
  try {
    e.transport?.close();
  } catch {
    // the domain took its ring with it
  }
  e.channel = undefined;
  e.transport = undefined;
}
