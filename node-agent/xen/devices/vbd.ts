// Xen virtual block devices for PV guests: the xenstore handshake blkback and blkfront read (libxl's
// layout, test/e2e/fixtures/xl-pv-guest.xenstore.txt), for a read-only loop device in dom0. We write
// physical-device ourselves, so no hotplug script runs; blkbackOpened says when blkback holds it.
import { existsSync } from 'node:fs';
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

const XEN_BACKEND_DEVICES = '/sys/bus/xen-backend/devices';

/**
 * Resolves once blkback holds each of the domain's vbds' devices open: it adds the vbd's
 * physical_device attribute to sysfs only after opening the device named by physical-device, which
 * it does as soon as the backend's xenstore entries appear (before the guest connects).
 */
export async function blkbackOpened(
  domid: number,
  vdevs: readonly string[],
  opts: { timeoutMs?: number; devices?: string } = {},
): Promise<void> {
  const devices = opts.devices ?? XEN_BACKEND_DEVICES;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const t0 = Date.now();
  let pending = vdevs.map((v) => ({ vdev: v, attr: `${devices}/vbd-${domid}-${xvdDeviceNumber(v)}/physical_device` }));
  for (let wait = 2; ; wait = Math.min(wait * 2, 100)) {
    pending = pending.filter((p) => !existsSync(p.attr));
    if (pending.length === 0) return;
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`blkback did not open the device of ${pending.map((p) => p.vdev).join(', ')} within ${timeoutMs / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, wait));
  }
}
