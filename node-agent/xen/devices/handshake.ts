// The xenstore half of a split device (xen/io/xenbus.h): a backend directory under dom0 that the guest
// may read, a frontend directory in the guest that dom0 may read, both starting in state 1
// (Initialising). Shared by vbd, vif and the guest channel's console device.
import type { Transaction } from '../xenstore/client.js';
import type { Permission } from '../xenstore/permissions.js';

export type DeviceKind = 'vbd' | 'vif' | 'console';

export function backendRoot(kind: DeviceKind, domid: number): string {
  return `/local/domain/0/backend/${kind}/${domid}`;
}

export async function writeDeviceHandshake(
  tx: Transaction,
  kind: DeviceKind,
  domid: number,
  devid: number,
  back: Record<string, string>,
  front: Record<string, string>,
): Promise<void> {
  const backend = `${backendRoot(kind, domid)}/${devid}`;
  const frontend = `/local/domain/${domid}/device/${kind}/${devid}`;
  const backendPerms: Permission[] = [
    { domid: 0, access: 'none' },
    { domid, access: 'read' },
  ];
  const frontendPerms: Permission[] = [
    { domid, access: 'none' },
    { domid: 0, access: 'read' },
  ];
  const backEntries = { frontend, 'frontend-id': String(domid), online: '1', state: '1', ...back };
  const frontEntries = { backend, 'backend-id': '0', state: '1', ...front };
  await tx.write(backend, '');
  await tx.setPerms(backend, backendPerms);
  await tx.write(frontend, '');
  await tx.setPerms(frontend, frontendPerms);
  await Promise.all([
    ...Object.entries(backEntries).map(([k, v]) => tx.write(`${backend}/${k}`, v)),
    ...Object.entries(frontEntries).map(([k, v]) => tx.write(`${frontend}/${k}`, v)),
  ]);
}
