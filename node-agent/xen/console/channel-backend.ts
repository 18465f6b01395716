// The backend of a guest's channel device (console 1, devices/channel.ts): wait for the frontend to
// offer its ring (ring-ref and port in its own xenstore directory, state 3), map it through gntdev,
// bind its event channel, and say Connected (backend state 4). Everything the frontend writes is the
// guest's and hostile: parsed strictly, refused when malformed, and waited for a bounded time through
// a xenstore watch (nothing blocks meanwhile).
import type { EventChannels } from '../evtchn.js';
import type { GrantMapper } from '../gntdev.js';
import type { XenstoreClient } from '../xenstore/client.js';
import { CHANNEL_TYPE, channelBackendPath, channelFrontendPath } from '../devices/channel.js';
import { ChannelRingTransport, type BulkRingOffer, type ChannelLimits } from './channel-transport.js';
import { bulkLayout, ByteRing, ConsoleRing } from './ring.js';

/** xenbus states (xen/io/xenbus.h) the handshake looks at. */
export const XenbusState = { initialising: 1, initWait: 2, initialised: 3, connected: 4, closing: 5, closed: 6 } as const;

/** Grant refs below this are the toolstack's (console, xenstore): a frontend offering one is lying. */
const GNTTAB_NR_RESERVED_ENTRIES = 8;
/** The most event channel ports any ABI has (FIFO). */
const EVTCHN_MAX_PORTS = 1 << 17;

export const DEFAULT_CHANNEL_CONNECT_MS = 60_000;

/** The domain has no channel device: an agent that predates the channel started it. Retrying is pointless. */
export class NoChannelDevice extends Error {
  constructor(readonly domid: number) {
    super(`domain ${domid} has no guest channel device (console 1): it was started by an agent without the channel`);
  }
}

/** What the frontend offered, refused: malformed, closed, gone, or not there in time. */
export class ChannelHandshakeError extends Error {}

export interface FrontendOffer {
  ringRef: number;
  port: number;
}

export interface FrontendValues {
  state?: string;
  ringRef?: string;
  port?: string;
}

/**
 * The frontend's ring, once it says Initialised (or Connected: an agent restarted); undefined while it
 * is still setting up. Throws ChannelHandshakeError on anything malformed, or a frontend closing or gone.
 */
export function parseFrontendOffer(v: FrontendValues, domid: number): FrontendOffer | undefined {
  const refuse = (why: string) => new ChannelHandshakeError(`domain ${domid}: guest channel frontend ${why}`);
  if (v.state === undefined) throw refuse('is gone');
  if (!/^[0-9]$/.test(v.state)) throw refuse(`has a malformed state ${JSON.stringify(v.state.slice(0, 32))}`);
  const state = Number(v.state);
  if (state === XenbusState.closing || state === XenbusState.closed) throw refuse(`is closing (state ${state})`);
  if (state !== XenbusState.initialised && state !== XenbusState.connected) return undefined;
  if (v.ringRef === undefined || v.port === undefined) throw refuse(`is in state ${state} without ring-ref and port`);
  return { ringRef: parseGrantRef(v.ringRef, domid), port: parsePort(v.port, domid) };
}

export function parseGrantRef(raw: string, domid: number): number {
  const n = /^[0-9]{1,10}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= GNTTAB_NR_RESERVED_ENTRIES && n <= 0xffffffff))
    throw new ChannelHandshakeError(`domain ${domid}: guest channel ring-ref ${JSON.stringify(raw.slice(0, 32))} is not a grant reference`);
  return n;
}

export function parsePort(raw: string, domid: number): number {
  const n = /^[0-9]{1,6}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n < EVTCHN_MAX_PORTS))
    throw new ChannelHandshakeError(`domain ${domid}: guest channel port ${JSON.stringify(raw.slice(0, 32))} is not an event channel`);
  return n;
}

type Xs = Pick<XenstoreClient, 'tryRead' | 'write' | 'watch'>;

export interface ChannelConnectOptions {
  /** How long to wait for the frontend's ring (default 60 s: a guest kernel under emulation boots slowly). */
  timeoutMs?: number;
  limits?: ChannelLimits;
}

export class ChannelBackend {
  constructor(
    private readonly xs: Xs,
    private readonly evtchn: Pick<EventChannels, 'bindInterdomain' | 'notify' | 'unbind'>,
    private readonly grants: Pick<GrantMapper, 'mapGrant' | 'mapGrants'> | undefined,
  ) {}

  /** Whether dom0 gave the domain a channel device (the backend directory is dom0's: the guest cannot fake it). */
  async hasDevice(domid: number): Promise<boolean> {
    return (await this.xs.tryRead(`${channelBackendPath(domid)}/type`)) === CHANNEL_TYPE;
  }

  /**
   * Serve the domain's channel: wait (bounded) for the frontend's ring, map it, bind its port, write
   * backend state 4. Rejects with NoChannelDevice, ChannelHandshakeError, or the mapping's error.
   */
  async connect(domid: number, opts: ChannelConnectOptions = {}): Promise<ChannelRingTransport> {
    if (!(await this.hasDevice(domid))) throw new NoChannelDevice(domid);
    if (!this.grants) throw new Error(`domain ${domid}: the guest channel needs /dev/xen/gntdev to map its ring`);
    const front = channelFrontendPath(domid);
    const offer = await this.watchUntil(front, () => this.readOffer(domid), opts.timeoutMs ?? DEFAULT_CHANNEL_CONNECT_MS, domid);
    const mapping = this.grants.mapGrant(domid, offer.ringRef);
    let transport: ChannelRingTransport | undefined;
    let local: number | undefined;
    try {
      const ring = new ConsoleRing(mapping.bytes);
      local = this.evtchn.bindInterdomain(domid, offer.port, () => transport?.service());
      transport = new ChannelRingTransport(domid, ring, mapping, this.evtchn, local, opts.limits);
      transport.openBulk = (offer) => this.connectBulk(domid, offer, opts.limits);
      await this.xs.write(`${channelBackendPath(domid)}/state`, String(XenbusState.connected));
    } catch (e) {
      if (transport) transport.close();
      else {
        if (local !== undefined) this.evtchn.unbind(local);
        mapping.unmap();
      }
      throw e;
    }
    await this.followFrontend(transport, front, domid);
    return transport;
  }

  /**
   * The guest's bulk ring (PROTOCOL.md, version 2): its pages mapped as one range, its port bound. The
   * offer is the guest's and checked again here; throws ChannelHandshakeError when it is malformed.
   */
  connectBulk(domid: number, offer: BulkRingOffer, limits?: ChannelLimits): ChannelRingTransport {
    if (!this.grants) throw new Error(`domain ${domid}: the bulk ring needs /dev/xen/gntdev`);
    let layout;
    try {
      layout = bulkLayout(offer.inPages, offer.outPages);
    } catch (e) {
      throw new ChannelHandshakeError(`domain ${domid}: bulk ring: ${(e as Error).message}`);
    }
    if (offer.refs.length !== 1 + offer.inPages + offer.outPages)
      throw new ChannelHandshakeError(
        `domain ${domid}: bulk ring offers ${offer.refs.length} pages for ${offer.inPages} + ${offer.outPages}`,
      );
    const refs = offer.refs.map((r) => parseGrantRef(String(r), domid));
    const port = parsePort(String(offer.port), domid);
    const mapping = this.grants.mapGrants(domid, refs);
    let local: number | undefined;
    let transport: ChannelRingTransport | undefined;
    try {
      const ring = new ByteRing(mapping.bytes, layout);
      local = this.evtchn.bindInterdomain(domid, port, () => transport?.service());
      transport = new ChannelRingTransport(domid, ring, mapping, this.evtchn, local, limits);
      return transport;
    } catch (e) {
      if (local !== undefined) this.evtchn.unbind(local);
      mapping.unmap();
      throw e;
    }
  }

  private async readOffer(domid: number): Promise<FrontendOffer | undefined> {
    const front = channelFrontendPath(domid);
    const [state, ringRef, port] = await Promise.all(['state', 'ring-ref', 'port'].map((k) => this.xs.tryRead(`${front}/${k}`)));
    return parseFrontendOffer({ state, ringRef, port }, domid);
  }

  /**
   * The frontend closing or going away (the domain torn down) closes the transport. A closing frontend
   * is answered with backend state Closed: a guest shutting down waits for that (Linux's
   * xenbus_dev_shutdown, 5 s a device) before it powers off.
   */
  private async followFrontend(transport: ChannelRingTransport, front: string, domid: number): Promise<void> {
    const check = coalesced(async () => {
      const state = await this.xs.tryRead(`${front}/state`);
      if (state === undefined || state === String(XenbusState.closing) || state === String(XenbusState.closed)) {
        transport.close();
        if (state !== undefined)
          await this.xs.write(`${channelBackendPath(domid)}/state`, String(XenbusState.closed)).catch(() => undefined);
      }
    });
    try {
      const watch = await this.xs.watch(`${front}/state`, () => void check().catch(() => undefined));
      if (transport.isClosed) void watch.unwatch().catch(() => undefined);
      else transport.onRelease = () => void watch.unwatch().catch(() => undefined);
    } catch {
      // Without the watch the transport still works; XenHypervisor closes it when the domain goes.
    }
  }

  /** Resolves with `read()`'s first defined answer, re-read on every change under `path`; bounded by `timeoutMs`. */
  private watchUntil<T>(path: string, read: () => Promise<T | undefined>, timeoutMs: number, domid: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let done = false;
      let watch: { unwatch(): Promise<void> } | undefined;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        void watch?.unwatch().catch(() => undefined);
        fn();
      };
      const timer = setTimeout(
        () => finish(() => reject(new ChannelHandshakeError(`domain ${domid}: no guest channel ring offered within ${timeoutMs} ms`))),
        timeoutMs,
      );
      timer.unref?.();
      const check = coalesced(async () => {
        if (done) return;
        const value = await read();
        if (value !== undefined) finish(() => resolve(value));
      });
      const onEvent = () => void check().catch((e: unknown) => finish(() => reject(e instanceof Error ? e : new Error(String(e)))));
      this.xs.watch(path, onEvent).then(
        (w) => {
          if (done) void w.unwatch().catch(() => undefined);
          else watch = w;
        },
        (e: unknown) => finish(() => reject(e instanceof Error ? e : new Error(String(e)))),
      );
    });
  }
}

/**
 * `fn` run once at a time: calls while it runs make one more run after it (a burst of watch events
 * from a busy guest costs at most two reads in a row).
 */
function coalesced(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again = false;
  const run = async (): Promise<void> => {
    try {
      do {
        again = false;
        await fn();
      } while (again);
    } finally {
      running = undefined;
    }
  };
  return () => {
    if (running) {
      again = true;
      return running;
    }
    running = run();
    return running;
  };
}
