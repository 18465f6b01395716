// Process-wide counters of every guest's channel, read by the agent's Prometheus code (no prom-client here).

export const guestChannelStats = {
  /** Channels closed because their guest broke the protocol (PROTOCOL.md, "The guest is hostile"). */
  protocolErrors: 0,
  /** Handshakes that found no common version. */
  incompatible: 0,
  /** Guest HELLOs that reset a channel that was up (the guest's init restarted it). */
  resets: 0,
  /** Conversations moved onto a guest's bulk ring, and bulk rings offered but not used. */
  bulkSwitches: 0,
  bulkRefused: 0,
};
