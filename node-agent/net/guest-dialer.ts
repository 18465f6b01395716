// Reaching a guest's TCP port from dom0 the way the kubelet reaches a Pod IP: kratanet opens the flow
// to the guest from its gateway address (as for a published port), so no dom0 route to guest
// addresses is needed and the isolation policy is untouched. Probes (tcpSocket, httpGet) use it.
import type { Duplex } from 'node:stream';

export interface DialOptions {
  /** The connect (the guest's SYN-ACK) must arrive within this; the stream is then the caller's. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Why a dial failed, in words a probe result can show. */
export class DialError extends Error {
  constructor(
    readonly reason: 'NoSuchGuest' | 'Refused' | 'Timeout' | 'Unavailable',
    message: string,
  ) {
    super(message);
  }
}

export interface GuestDialer {
  /**
   * A TCP stream to `port` of the Guest `key` ("namespace/name") through kratanet; rejects with a
   * DialError (no such guest on kratanet, connection refused or reset by the guest, timeout, kratanet
   * not running).
   */
  dial(key: string, port: number, opts: DialOptions): Promise<Duplex>;
}
