// Xen virtual block devices for PV guests: the xenstore handshake blkback and blkfront read (libxl's
// layout, test/e2e/fixtures/xl-pv-guest.xenstore.txt), for a read-only loop device in dom0. We write
// physical-device ourselves, so no hotplug script runs.
import type { Permission } from '../xenstore/permissions.js';
import type { Transaction } from '../xenstore/client.js';
import type { LoopDevice } from './loop.js';

/** xvda → 51712 (major 202, 16 minors per disk), as Linux's xen-blkfront numbers them. */
export function xvdDeviceNumber(name: string): number {
  const m = /^xvd([a-z])$/.exec(name);
  if (!m) throw new Error(`unsupported virtual disk name "${name}" (xvda..xvdz)`);
  return (202 << 8) | ((m[1]!.charCodeAt(0) - 97) << 4);
}

export interface VbdSpec {
  vdev: string;
  loop: LoopDevice;
}

export async function writeVbd(tx: Transaction, domid: number, vbd: VbdSpec): Promise<void> {
  const devid = xvdDeviceNumber(vbd.vdev);
  const backend = `/local/domain/0/backend/vbd/${domid}/${devid}`;
  const frontend = `/local/domain/${domid}/device/vbd/${devid}`;
  const backendPerms: Permission[] = [{ domid: 0, access: 'none' }, { domid, access: 'read' }];
  const frontendPerms: Permission[] = [{ domid, access: 'none' }, { domid: 0, access: 'read' }];
  const back: Record<string, string> = {
    frontend,
    'frontend-id': String(domid),
    online: '1',
    removable: '0',
    bootable: '1',
    state: '1',
    dev: vbd.vdev,
    type: 'phy',
    mode: 'r',
    'device-type': 'disk',
    params: vbd.loop.path,
    'physical-device': `${vbd.loop.major.toString(16)}:${vbd.loop.minor.toString(16)}`,
    'physical-device-path': vbd.loop.path,
  };
  const front: Record<string, string> = {
    backend,
    'backend-id': '0',
    state: '1',
    'virtual-device': String(devid),
    'device-type': 'disk',
  };
  await tx.write(backend, '');
  await tx.setPerms(backend, backendPerms);
  await tx.write(frontend, '');
  await tx.setPerms(frontend, frontendPerms);
  await Promise.all([
    ...Object.entries(back).map(([k, v]) => tx.write(`${backend}/${k}`, v)),
    ...Object.entries(front).map(([k, v]) => tx.write(`${frontend}/${k}`, v)),
  ]);
}

/** Remove a domain's vbd backends: blkback lets go of the devices when its directories disappear. */
export function vbdBackendRoot(domid: number): string {
  return `/local/domain/0/backend/vbd/${domid}`;
}
