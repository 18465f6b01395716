// The guest channel's entry: open the host's end of a guest's control channel over a transport.
import type { ChannelTransport, GuestChannel } from './types.js';

export * from './types.js';

export interface GuestChannelOptions {
  /** Sent in HELLO (e.g. "krata-node-agent 0.3.0"). */
  software: string;
  /** For tests: the clock timeouts use. */
  now?: () => number;
}

/** The host's end of a guest's control channel; it sends HELLO at once. */
export function openGuestChannel(transport: ChannelTransport, opts: GuestChannelOptions): GuestChannel {
  void transport;
  void opts;
  throw new Error('the guest channel is not implemented yet');
}
