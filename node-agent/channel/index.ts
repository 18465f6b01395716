// The guest channel's entry: open the host's end of a guest's control channel over a transport.
import { systemClock, type Clock } from '../../lib/clock.js';
import { HostGuestChannel } from './host-channel.js';
import type { ChannelTransport, GuestChannel } from './types.js';

export * from './types.js';
export { CHANNEL_LOST_EXIT_CODE, HostGuestChannel, MAX_PENDING_METRICS, type ChannelMemory } from './host-channel.js';
export { guestChannelStats } from './stats.js';

export interface GuestChannelOptions {
  /** Sent in HELLO (e.g. "krata-node-agent 0.3.0"). */
  software: string;
  /** For tests: the clock that ready() and metrics() time out with. */
  clock?: Clock;
}

/** The host's end of a guest's control channel; it sends HELLO at once. */
export function openGuestChannel(transport: ChannelTransport, opts: GuestChannelOptions): GuestChannel {
  return new HostGuestChannel(transport, opts.software, opts.clock ?? systemClock);
}
