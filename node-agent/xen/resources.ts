// A running domain's resource targets in xenstore, the keys a Linux PV guest acts on: memory/target
// (KiB; its balloon driver gives pages back to Xen or takes them again, never above what the domain was
// built with) and cpu/N/availability ("online"/"offline"; its Xen CPU hotplug driver adds or removes
// vCPU N). dom0 owns these nodes and the guest may only read them (domain-store.ts), so what reads back
// is what dom0 wrote; it is still parsed strictly and bounded.
import type { Transaction, XenstoreClient } from './xenstore/client.js';
import { parseStrictInt } from './krata-keys.js';

/** What a domain is asked to run with: vCPUs online and the balloon target. */
export interface ResourceTargets {
  vcpus: number;
  memoryMiB: number;
}

export interface ResizeResult {
  /** The targets xenstore held before (undefined where a key was missing or did not parse). */
  before: Partial<ResourceTargets>;
  /** Whether any key was written. */
  changed: boolean;
}

/** How many vCPU keys are read at most (Xen's limit for a PV guest is far lower than the CRD's 128). */
const MAX_VCPUS = 128;
/** The largest memory value read (KiB): 1 TiB, the CRD's maximum. */
const MAX_KIB = 1 << 30;

const home = (domid: number) => `/local/domain/${domid}`;
export const memoryTargetPath = (domid: number) => `${home(domid)}/memory/target`;
export const memoryMaxPath = (domid: number) => `${home(domid)}/memory/static-max`;
export const vcpuPath = (domid: number, n: number) => `${home(domid)}/cpu/${n}/availability`;

type Reader = Pick<Transaction, 'tryRead'>;

async function readKiB(xs: Reader, path: string): Promise<number | undefined> {
  return parseStrictInt(await xs.tryRead(path), 0, MAX_KIB);
}

/** The vCPU keys 0..maxVcpus-1: true online, false offline, undefined missing or malformed. */
async function readAvailability(xs: Reader, domid: number, maxVcpus: number): Promise<(boolean | undefined)[]> {
  const n = Math.min(maxVcpus, MAX_VCPUS);
  const values = await Promise.all(Array.from({ length: n }, (_, i) => xs.tryRead(vcpuPath(domid, i))));
  return values.map((v) => (v === 'online' ? true : v === 'offline' ? false : undefined));
}

/** The targets a domain holds now; `maxVcpus` is Xen's count of the domain's vCPUs. */
export async function readResourceTargets(xs: Reader, domid: number, maxVcpus: number): Promise<Partial<ResourceTargets>> {
  const [kib, avail] = await Promise.all([readKiB(xs, memoryTargetPath(domid)), readAvailability(xs, domid, maxVcpus)]);
  const out: Partial<ResourceTargets> = {};
  if (kib !== undefined) out.memoryMiB = kib / 1024;
  if (avail.every((a) => a !== undefined)) out.vcpus = avail.filter(Boolean).length;
  return out;
}

/**
 * Sets a domain's targets in one transaction: vCPUs 0..vcpus-1 online and the rest (up to `maxVcpus`,
 * Xen's count) offline, memory/target in KiB. Only keys that differ are written, so applying the same
 * targets again changes nothing. Refused (RangeError, nothing written) beyond the domain's maximums:
 * `maxVcpus` and memory/static-max, which dom0 wrote when it built the domain.
 */
export async function writeResourceTargets(
  xs: Pick<XenstoreClient, 'transaction'>,
  domid: number,
  want: ResourceTargets,
  maxVcpus: number,
): Promise<ResizeResult> {
  if (!Number.isInteger(want.vcpus) || want.vcpus < 1 || want.vcpus > Math.min(maxVcpus, MAX_VCPUS))
    throw new RangeError(`domain ${domid}: ${want.vcpus} vCPUs asked, it has ${maxVcpus}`);
  if (!Number.isInteger(want.memoryMiB) || want.memoryMiB < 1) throw new RangeError(`domain ${domid}: memory ${want.memoryMiB} MiB`);
  const targetKiB = want.memoryMiB * 1024;
  return xs.transaction(async (tx) => {
    const [maxKiB, kib, avail] = await Promise.all([
      readKiB(tx, memoryMaxPath(domid)),
      readKiB(tx, memoryTargetPath(domid)),
      readAvailability(tx, domid, maxVcpus),
    ]);
    if (maxKiB === undefined) throw new Error(`domain ${domid}: no readable memory/static-max (not a domain krata built?)`);
    if (targetKiB > maxKiB)
      throw new RangeError(`domain ${domid}: memory ${want.memoryMiB} MiB asked, its maximum is ${maxKiB / 1024} MiB`);
    const writes: Promise<void>[] = [];
    if (kib !== targetKiB) writes.push(tx.write(memoryTargetPath(domid), String(targetKiB)));
    avail.forEach((online, i) => {
      const should = i < want.vcpus;
      if (online !== should) writes.push(tx.write(vcpuPath(domid, i), should ? 'online' : 'offline'));
    });
    await Promise.all(writes);
    const before: Partial<ResourceTargets> = {};
    if (kib !== undefined) before.memoryMiB = kib / 1024;
    if (avail.every((a) => a !== undefined)) before.vcpus = avail.filter(Boolean).length;
    return { before, changed: writes.length > 0 };
  });
}
