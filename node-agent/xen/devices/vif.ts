// Xen virtual network interfaces for PV guests: the xenstore handshake xen-netback and xen-netfront
// read. netback creates vif<domid>.<handle> in dom0; kratanet (or a bridge) takes it from there. We
// write hotplug-status ourselves, since no hotplug script runs (netback waits for it to connect).
import type { Transaction } from '../xenstore/client.js';
import { backendRoot, writeDeviceHandshake } from './handshake.js';

export interface VifSpec {
  handle: number;
  /** Guest MAC, aa:bb:cc:dd:ee:ff. */
  mac: string;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export async function writeVif(tx: Transaction, domid: number, vif: VifSpec): Promise<void> {
  if (!MAC.test(vif.mac)) throw new Error(`bad MAC address "${vif.mac}"`);
  const handle = String(vif.handle);
  await writeDeviceHandshake(
    tx,
    'vif',
    domid,
    vif.handle,
    // netback's probe fails without a script key; empty, because krata configures the vif itself.
    { handle, mac: vif.mac, type: 'vif', script: '', 'hotplug-status': 'connected' },
    { handle, mac: vif.mac },
  );
}

export function vifBackendRoot(domid: number): string {
  return backendRoot('vif', domid);
}
