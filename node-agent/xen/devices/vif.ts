// Xen virtual network interfaces for PV guests: the xenstore handshake xen-netback and xen-netfront
// read. netback creates vif<domid>.<handle> in dom0; kratanet (or a bridge) takes it from there. We
// write hotplug-status ourselves, since no hotplug script runs (netback waits for it to connect).
import type { Permission } from '../xenstore/permissions.js';
import type { Transaction } from '../xenstore/client.js';

export interface VifSpec {
  handle: number;
  /** Guest MAC, aa:bb:cc:dd:ee:ff. */
  mac: string;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export async function writeVif(tx: Transaction, domid: number, vif: VifSpec): Promise<void> {
  if (!MAC.test(vif.mac)) throw new Error(`bad MAC address "${vif.mac}"`);
  const backend = `/local/domain/0/backend/vif/${domid}/${vif.handle}`;
  const frontend = `/local/domain/${domid}/device/vif/${vif.handle}`;
  const backendPerms: Permission[] = [{ domid: 0, access: 'none' }, { domid, access: 'read' }];
  const frontendPerms: Permission[] = [{ domid, access: 'none' }, { domid: 0, access: 'read' }];
  const back: Record<string, string> = {
    frontend,
    'frontend-id': String(domid),
    online: '1',
    state: '1',
    handle: String(vif.handle),
    mac: vif.mac,
    type: 'vif',
    // netback's probe fails without a script key; empty, because krata configures the vif itself.
    script: '',
    'hotplug-status': 'connected',
  };
  const front: Record<string, string> = { backend, 'backend-id': '0', state: '1', handle: String(vif.handle), mac: vif.mac };
  await tx.write(backend, '');
  await tx.setPerms(backend, backendPerms);
  await tx.write(frontend, '');
  await tx.setPerms(frontend, frontendPerms);
  await Promise.all([
    ...Object.entries(back).map(([k, v]) => tx.write(`${backend}/${k}`, v)),
    ...Object.entries(front).map(([k, v]) => tx.write(`${frontend}/${k}`, v)),
  ]);
}

export function vifBackendRoot(domid: number): string {
  return `/local/domain/0/backend/vif/${domid}`;
}

/** A locally administered, unicast MAC derived from a name (stable across restarts of the same guest). */
export function macFor(seed: Buffer): string {
  const b = Buffer.from(seed.subarray(0, 6));
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
