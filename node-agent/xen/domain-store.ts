// The xenstore entries a new PV domain needs before it runs (the layout libxl writes, see
// test/e2e/fixtures/xl-pv-guest.xenstore.txt), our own krata/ keys (krata-keys.ts), and their removal
// (with the domain's release from xenstored). The guest may write only where a guest must (control/,
// data/, krata/guest/, ...).
import type { Permission } from './xenstore/permissions.js';
import type { XenstoreClient } from './xenstore/client.js';
import type { DomainConfig } from './domain-config.js';
import type { LoopDevice } from './devices/loop.js';
import { KrataKey, krataEntries } from './krata-keys.js';
import { vbdBackendRoot, writeVbd } from './devices/vbd.js';
import { vifBackendRoot, writeVif } from './devices/vif.js';
import { consoleBackendRoot, writeChannelDevice } from './devices/channel.js';

/** What the builder knows once the domain exists: its ids and where its xenstore and console rings are. */
export interface DomainRings {
  domid: number;
  uuid: string;
  storeMfn: bigint;
  storeEvtchn: number;
  consoleMfn: bigint;
  consoleEvtchn: number;
}

export interface StoreOptions {
  /** The loop device serving each of the config's disks, in order. */
  loops: LoopDevice[];
  /** Recorded under krata/ with the config's guest (ms since the epoch). */
  createdAt?: number;
  /** console/type: "xenconsoled" lets the stock daemon serve the console; krata's backend claims its own. */
  consoleBackend?: 'xenconsoled' | 'krata';
  /** Console device 1, the control channel (only when the caller serves it). */
  controlChannel?: boolean;
}

export async function writeDomainStore(xs: XenstoreClient, config: DomainConfig, d: DomainRings, opts: StoreOptions): Promise<void> {
  const home = `/local/domain/${d.domid}`;
  const vm = `/vm/${d.uuid}`;
  const readable: Permission[] = [
    { domid: 0, access: 'none' },
    { domid: d.domid, access: 'read' },
  ];
  const guestOwned: Permission[] = [{ domid: d.domid, access: 'none' }];
  const entries: [string, string, Permission[]][] = [
    [home, '', readable],
    [`${home}/vm`, vm, readable],
    [`${home}/name`, config.name, readable],
    [`${home}/domid`, String(d.domid), readable],
    [`${home}/memory/static-max`, String(config.maxMemoryMiB * 1024), readable],
    [`${home}/memory/target`, String(config.memoryMiB * 1024), readable],
    [`${home}/memory/videoram`, '0', readable],
    [`${home}/store/port`, String(d.storeEvtchn), readable],
    [`${home}/store/ring-ref`, d.storeMfn.toString(), readable],
    [`${home}/console/port`, String(d.consoleEvtchn), readable],
    [`${home}/console/ring-ref`, d.consoleMfn.toString(), readable],
    [`${home}/console/limit`, String(1024 * 1024), readable],
    [`${home}/console/type`, opts.consoleBackend ?? 'krata', readable],
    [`${home}/console/output`, 'pty', readable],
    [`${home}/control/shutdown`, '', guestOwned],
    // The only place under krata/ the guest writes: how its process ended (guest-init).
    [`${home}/${KrataKey.guestDir}`, '', guestOwned],
    [`${home}/control/feature-poweroff`, '', guestOwned],
    [`${home}/control/feature-reboot`, '', guestOwned],
    [`${home}/control/feature-suspend`, '', guestOwned],
    [`${home}/device/suspend/event-channel`, '', guestOwned],
    [`${home}/control/sysrq`, '', guestOwned],
    [`${home}/control/platform-feature-xs_reset_watches`, '1', readable],
    [`${home}/data`, '', guestOwned],
    [`${home}/drivers`, '', guestOwned],
    [`${home}/feature`, '', guestOwned],
    [`${home}/attr`, '', guestOwned],
    [`${home}/error`, '', guestOwned],

    [vm, '', readable],
    [`${vm}/name`, config.name, readable],
    [`${vm}/uuid`, d.uuid, readable],
    [`${vm}/image/ostype`, 'linux', readable],
    [`${vm}/image/cmdline`, config.cmdline, readable],
    [`${vm}/start_time`, (Date.now() / 1000).toFixed(2), readable],
  ];
  for (let cpu = 0; cpu < config.maxVcpus; cpu++)
    entries.push([`${home}/cpu/${cpu}/availability`, cpu < config.vcpus ? 'online' : 'offline', readable]);
  const krata = krataEntries({ guest: config.guest, createdAt: opts.createdAt, loops: opts.loops.map((l) => l.path) });
  for (const [key, value] of krata) entries.push([`${home}/${key}`, value, readable]);
  // A node created implicitly takes its parent's permissions, so only the home and the guest-owned
  // nodes need SET_PERMS. Requests are pipelined: xenstored answers them in order on one connection.
  await xs.transaction(async (tx) => {
    // All sent at once, without waiting for each answer: xenstored handles one connection's requests
    // in order, so the home's permissions are in place before the nodes under it are created, and
    // each node exists before its own permissions are set. One round trip instead of four matters
    // while the builder keeps the event loop busy.
    await Promise.all([
      tx.write(home, ''),
      tx.setPerms(home, readable),
      ...entries.slice(1).map(([path, value]) => tx.write(path, value)),
      ...entries
        .filter(([path, , perms]) => perms !== readable || path.startsWith('/vm/'))
        .map(([path, , perms]) => tx.setPerms(path, perms)),
    ]);
    for (const [i, disk] of config.disks.entries()) await writeVbd(tx, d.domid, { vdev: disk.vdev, loop: opts.loops[i]! });
    for (const [handle, nic] of config.nics.entries()) await writeVif(tx, d.domid, { handle, mac: nic.mac });
    if (opts.controlChannel) await writeChannelDevice(tx, d.domid);
  });
}

/** Remove what writeDomainStore wrote and tell xenstored the domain is gone. Missing pieces are fine. */
export async function removeDomainStore(xs: XenstoreClient, domid: number, uuid?: string): Promise<void> {
  await xs.rm(vbdBackendRoot(domid));
  await xs.rm(vifBackendRoot(domid));
  await xs.rm(consoleBackendRoot(domid));
  await xs.releaseDomain(domid).catch(() => undefined);
  await xs.rm(`/local/domain/${domid}`);
  if (uuid) await xs.rm(`/vm/${uuid}`);
}
