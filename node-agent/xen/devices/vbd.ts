// Xen virtual block devices for PV guests: the xenstore handshake blkback and blkfront read (libxl's
// layout, test/e2e/fixtures/xl-pv-guest.xenstore.txt), for a read-only loop device in dom0. We write
// physical-device ourselves, so no hotplug script runs.
import type { Transaction } from '../xenstore/client.js';
import { backendRoot, writeDeviceHandshake } from './handshake.js';
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
  await writeDeviceHandshake(
    tx,
    'vbd',
    domid,
    devid,
    {
      removable: '0',
      bootable: '1',
      dev: vbd.vdev,
      type: 'phy',
      mode: 'r',
      'device-type': 'disk',
      params: vbd.loop.path,
      'physical-device': `${vbd.loop.major.toString(16)}:${vbd.loop.minor.toString(16)}`,
      'physical-device-path': vbd.loop.path,
    },
    { 'virtual-device': String(devid), 'device-type': 'disk' },
  );
}

/** Where a domain's vbd backends live: blkback lets go of the devices when the directory disappears. */
export function vbdBackendRoot(domid: number): string {
  return backendRoot('vbd', domid);
}
