// Stopping a domain, in one place for every caller (XenHypervisor, the builder when a build fails,
// launch-main): ask the guest to power off, then destroy the domain and remove what it leaves behind
// (device backends, its xenstore home and /vm entry, its loop devices).
import type { DomainInfo, XenControl } from './control.js';
import { detachLoop, isAutoclear } from './devices/loop.js';
import { removeDomainStore } from './domain-store.js';
import { readLoops } from './krata-keys.js';
import type { XenstoreClient } from './xenstore/client.js';
import { faultPoint } from '../../lib/fault-points.js';

/** What teardown needs of XenControl.domain(). */
interface DomainLookup {
  domain(domid: number): Pick<DomainInfo, 'shutdown' | 'dying' | 'uuid'> | undefined;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The domain's handle: from Xen, or from its xenstore vm path once Xen has forgotten the domain. */
export async function domainUuid(xen: DomainLookup, xs: Pick<XenstoreClient, 'tryRead'>, domid: number): Promise<string | undefined> {
  const uuid = xen.domain(domid)?.uuid ?? (await xs.tryRead(`/local/domain/${domid}/vm`).catch(() => undefined))?.replace(/^\/vm\//, '');
  return uuid !== undefined && UUID.test(uuid) ? uuid : undefined;
}

export interface PoweroffOptions {
  /** How often the domain's state is looked at (default 500 ms). */
  pollMs?: number;
  /** Lets a caller that follows domain events check sooner: called with the check, returns its undo. */
  wake?: (check: () => void) => () => void;
}

/**
 * Ask the guest to power off (control/shutdown) and wait up to `graceMs` for it to stop: shut down,
 * dying or gone. Returns whether it stopped; a domain that is already stopped or gone is not asked.
 */
export async function requestPoweroff(
  xen: DomainLookup,
  xs: Pick<XenstoreClient, 'write'>,
  domid: number,
  graceMs: number,
  opts: PoweroffOptions = {},
): Promise<boolean> {
  const stopped = () => {
    const info = xen.domain(domid);
    return !info || info.shutdown || info.dying;
  };
  if (stopped()) return true;
  await xs.write(`/local/domain/${domid}/control/shutdown`, 'poweroff').catch(() => undefined);
  faultPoint('teardown.shutdown-requested'); // the guest powers off with nobody waiting for it
  return new Promise<boolean>((resolve) => {
    let done = false;
    const finish = (ok: boolean) => {
      done = true;
      clearTimeout(deadline);
      clearInterval(poll);
      unwake();
      resolve(ok);
    };
    const check = () => {
      if (!done && stopped()) finish(true);
    };
    const deadline = setTimeout(() => done || finish(stopped()), Math.max(0, graceMs));
    const poll = setInterval(check, opts.pollMs ?? 500);
    const unwake = opts.wake?.(check) ?? (() => undefined);
    check();
  });
}

/**
 * Forced teardown: destroydomain (a domain already gone is fine), the backends' and the domain's
 * xenstore trees, the loop devices. `uuid` names the /vm entry; found when not given.
 */
export async function destroyDomain(
  xen: DomainLookup & Pick<XenControl, 'destroy'>,
  xs: XenstoreClient,
  domid: number,
  uuid?: string,
): Promise<void> {
  const loops = await readLoops(xs, domid);
  uuid ??= await domainUuid(xen, xs, domid);
  try {
    xen.destroy(domid);
  } catch (e) {
    if ((e as { code?: string }).code !== 'ESRCH') throw e;
  }
  faultPoint('teardown.domain-destroyed'); // the xenstore trees and loop devices of a domain that is gone
  await removeDomainStore(xs, domid, uuid);
  faultPoint('teardown.store-removed'); // loop devices nothing in xenstore records any more
  // blkback closes the device once its backend directory is gone. The agent's devices are autoclear
  // (shared by the guests of an image) and go with their last user; an older agent's are detached,
  // lazily (LOOP_CLR_FD on a device still open waits for the last user).
  for (const path of loops) if (!isAutoclear(path)) detachLoopQuietly(path);
}

export function detachLoopQuietly(path: string): void {
  try {
    detachLoop(path);
  } catch {
    // already detached, or gone with the device
  }
}
