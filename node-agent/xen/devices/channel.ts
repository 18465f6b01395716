// The guest channel's device (contracts/guest-channel/PROTOCOL.md, Transport): PV console device 1,
// type krata-channel on both ends, served by the agent (console/channel-backend.ts), /dev/hvc1 in the
// guest. Linux's hvc_xen frontend probes a device/console/N directory in state 1 with backend and
// backend-id, grants its own ring page and allocates a port, writes ring-ref and port, and goes to 3.
import type { Transaction } from '../xenstore/client.js';
import { backendRoot, writeDeviceHandshake } from './handshake.js';

export const CHANNEL_DEVID = 1;
export const CHANNEL_TYPE = 'krata-channel';

export async function writeChannelDevice(tx: Transaction, domid: number): Promise<void> {
  // No ring-ref or port from us: the frontend allocates both (unlike console 0, which the builder sets up).
  const common = { type: CHANNEL_TYPE, protocol: 'vt100' };
  await writeDeviceHandshake(tx, 'console', domid, CHANNEL_DEVID, common, {
    ...common,
    limit: String(1024 * 1024),
    output: 'pty',
    tty: '',
  });
}

/** The guest's end: the guest owns it, so every value read from it is hostile. */
export function channelFrontendPath(domid: number): string {
  return `/local/domain/${domid}/device/console/${CHANNEL_DEVID}`;
}

/** dom0's end (the guest reads it): its type says a domain has a channel at all. */
export function channelBackendPath(domid: number): string {
  return `${backendRoot('console', domid)}/${CHANNEL_DEVID}`;
}

/** Every console backend of a domain: removed with the domain. */
export function consoleBackendRoot(domid: number): string {
  return backendRoot('console', domid);
}
