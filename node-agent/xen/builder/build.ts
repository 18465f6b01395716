// Building and starting an x86_64 PV domain with our own hypercalls: create the domain, give it memory
// (2 MiB superpages where Xen has them), write kernel, initrd, page tables, p2m and start_info into it,
// pin its page tables, set up shared_info, vCPU 0, the grant table and xenstore, then unpause.
// On any failure the half-built domain is destroyed and its xenstore entries removed (teardown.ts).
import { randomUUID } from 'node:crypto';
import {
  BuildConst,
  Domctl,
  Hypercall,
  PAGE_SIZE,
  VCPU_INFO_SIZE,
  XEN_LEGACY_MAX_VCPUS,
  domctlCreateDomain,
  domctlVcpuContext,
  evtchnAllocUnbound,
  grantEntryV1,
  memoryReservation,
  mmuextOp,
  vcpuGuestContext,
} from '../abi.js';
import type { XenControl } from '../control.js';
import type { DomainConfig } from '../domain-config.js';
import { writeDomainStore, type DomainRings } from '../domain-store.js';
import type { Privcmd } from '../privcmd.js';
import { setField } from '../../../lib/c-layout.js';
import { noPhases, startPhaseTimer, type PhaseTimer } from '../../../lib/phase-timer.js';
import type { XenstoreClient } from '../xenstore/client.js';
import { KernelCache } from './kernel-cache.js';
import type { GuestMemory } from './memory.js';
import { newP2m, p2mWords, setExtent } from './p2m.js';
import { initrdParts } from './initrd-parts.js';
import { loadInitrd, loadKernel, writeP2m, writePageTables, writeStartInfo } from './pagetables.js';
import { planBoot, type BootPlan } from './plan.js';
import { holdLoop, type HeldLoop } from '../devices/loop.js';
import { blkbackOpened } from '../devices/vbd.js';
import { destroyDomain } from '../teardown.js';
import { faultPoint } from '../../../lib/fault-points.js';

/** The kernel and initrd of a DomainConfig, read (or mapped) by the caller. */
export interface BootFiles {
  /** bzImage or ELF bytes. */
  kernel: Buffer;
  initrd?: Buffer;
}

export interface LaunchOptions {
  /** Domain handle; a new UUID when not given. */
  uuid?: string;
  /** Written to krata/created with the config's guest (ms since the epoch). */
  createdAt?: number;
  consoleBackend?: 'xenconsoled' | 'krata';
  /**
   * Give the guest console device 1, krata's control channel. Only for a caller that serves it: an
   * unserved frontend holds the guest's boot in the kernel's wait for its devices.
   */
  controlChannel?: boolean;
  /**
   * Runs when everything is in place but the guest has not run yet: attach the console there, so the
   * first bytes are read as they come (the ring holds only 2 KiB).
   */
  beforeUnpause?: (domid: number) => Promise<void>;
  /**
   * Where the build's phases are marked (decompress, populate memory, page tables, …, unpause): the
   * caller's timer, so one breakdown covers its own phases too. KRATA_TRACE prints them when not given.
   */
  phases?: PhaseTimer;
  /** Leave the domain paused, ready for the caller to unpause (XenControl.unpause). */
  startPaused?: boolean;
}

export interface BuiltDomain extends DomainRings {
  plan: BootPlan;
}

/**
 * Let the event loop run between CPU-bound build phases: the domain's xenstore transaction, sent
 * before them, needs a few round trips, and without a turn of the loop its replies wait until the
 * build is done (~300 ms under TCG).
 */
const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Kept above the guest's memory for Xen's own per-domain allocations (libxl keeps 1 MiB). */
const MAX_MEM_SLACK_KIB = 2048;
const SUPERPAGE_ORDER = 9;

export class DomainBuilder {
  constructor(
    private readonly privcmd: Privcmd,
    private readonly xen: XenControl,
    private readonly xs: XenstoreClient,
    /** Decompressed kernels, kept while this builder lives (bounded). */
    private readonly kernels = new KernelCache(),
  ) {}

  /** Build, start and register a domain; the domain is running when this resolves. */
  async launch(config: DomainConfig, boot: BootFiles, opts: LaunchOptions = {}): Promise<BuiltDomain> {
    const timer = opts.phases ?? (process.env.KRATA_TRACE ? startPhaseTimer(undefined, tracePhase) : noPhases);
    const trace = (phase: string) => timer.mark(phase);
    const kernel = this.kernels.kernel(boot.kernel);
    trace('decompress');
    const maxMiB = config.maxMemoryMiB;
    const maxVcpus = config.maxVcpus;
    const initrd = initrdParts(boot.initrd, config.initrdAppend);
    const initrdBytes = initrd.reduce((n, part) => n + part.length, 0);
    const plan = planBoot({ kernel, totalPages: maxMiB * 256, initrdBytes });
    trace('plan');
    const uuid = opts.uuid ?? randomUUID();
    // Held until blkback has them open (devices/loop.ts), then released whatever happens.
    const loops: HeldLoop[] = [];
    let domid: number | undefined;
    let stored: Promise<void> | undefined;
    try {
      for (const disk of config.disks) {
        loops.push(holdLoop(disk.file));
        faultPoint('create.loop-attached'); // a loop device (held, autoclear) no xenstore entry records yet
      }
      domid = this.createDomain(uuid, maxVcpus);
      this.xen.domctl(
        Domctl.max_vcpus,
        domid,
        (u) => u.writeUInt32LE(maxVcpus, 0),
        () => undefined,
        'max_vcpus',
      );
      this.xen.domctl(
        Domctl.max_mem,
        domid,
        (u) => u.writeBigUInt64LE(BigInt(maxMiB * 1024 + MAX_MEM_SLACK_KIB), 0),
        () => undefined,
        'max_mem',
      );
      this.xen.domctl(
        Domctl.set_address_size,
        domid,
        (u) => u.writeUInt32LE(64, 0),
        () => undefined,
        'set_address_size',
      );
      trace('create domain');
      faultPoint('create.domain-created'); // a paused domain without a xenstore home or krata keys
      const p2m = this.populate(domid, plan.totalPages);
      trace('populate memory');
      const storeEvtchn = this.allocUnbound(domid);
      const consoleEvtchn = this.allocUnbound(domid);
      trace('event channels');
      const info = this.xen.domain(domid);
      if (!info) throw new Error(`domain ${domid} vanished while being built`);
      const storeMfn = p2m[plan.xenstore.pfn]!;
      const consoleMfn = p2m[plan.console.pfn]!;
      // The xenstore entries depend only on frames and ports known now: send them while the CPU-bound
      // loading below runs (xenstored works on them meanwhile). The introduction waits for the ring
      // and the grant table; the domain is unpaused after both.
      stored = writeDomainStore(
        this.xs,
        config,
        { domid, uuid, storeMfn, storeEvtchn, consoleMfn, consoleEvtchn },
        { loops, createdAt: opts.createdAt, consoleBackend: opts.consoleBackend, controlChannel: opts.controlChannel },
      );
      stored.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile

      // Map only the frames boot writes (from the kernel up to the last boot structure), not all memory,
      // and shared_info after them: one mapping, one unmap (each costs a hypercall batch per frame run).
      const firstPfn = plan.kernel.pfn;
      const endPfn = bootEndPfn(plan);
      const frames = new BigUint64Array(endPfn - firstPfn + 1);
      frames.set(p2m.subarray(firstPfn, endPfn));
      frames[endPfn - firstPfn] = info.sharedInfoFrame;
      const memory = await this.privcmd.mapForeign(domid, frames);
      trace('map');
      await breathe();
      trace('event loop (xenstore replies)');
      try {
        const mem: GuestMemory = {
          page: (pfn) => {
            if (pfn < firstPfn || pfn >= endPfn) throw new RangeError(`pfn ${pfn} is outside the boot frames ${firstPfn}..${endPfn}`);
            return memory.bytes.subarray((pfn - firstPfn) * PAGE_SIZE, (pfn - firstPfn + 1) * PAGE_SIZE);
          },
          span: (pfn, pages) => {
            if (pfn < firstPfn || pfn + pages > endPfn)
              throw new RangeError(`pfns ${pfn}..${pfn + pages} are outside the boot frames ${firstPfn}..${endPfn}`);
            return memory.bytes.subarray((pfn - firstPfn) * PAGE_SIZE, (pfn - firstPfn + pages) * PAGE_SIZE);
          },
          mfn: (pfn) => {
            const m = p2m[pfn];
            if (m === undefined) throw new RangeError(`pfn ${pfn} beyond the guest's ${p2m.length} pages`);
            return m;
          },
          p2m,
        };
        // Xen hands out scrubbed frames, so only what the kernel reads as zero-initialised is cleared:
        // each segment's tail beyond its file bytes, and the boot structures.
        for (const r of [plan.startInfo, plan.xenstore, plan.console, plan.pageTables, plan.bootStack, plan.p2m]) {
          memory.bytes.fill(0, (r.pfn - firstPfn) * PAGE_SIZE, (r.pfn - firstPfn + r.pages) * PAGE_SIZE);
        }
        for (const seg of plan.segments) {
          const from = (seg.pfn - firstPfn) * PAGE_SIZE + seg.pageOffset;
          memory.bytes.fill(0, from + seg.fileSize, from + seg.memSize);
        }
        trace('clear');
        loadKernel(plan, kernel, mem);
        trace('copy kernel');
        await breathe();
        trace('event loop (xenstore replies)');
        loadInitrd(plan, initrd, mem);
        trace('copy initrd');
        writeP2m(plan, mem);
        trace('p2m');
        await breathe();
        trace('event loop (xenstore replies)');
        writePageTables(plan, mem);
        trace('page tables');
        writeStartInfo(plan, mem, {
          sharedInfoMfn: info.sharedInfoFrame,
          storeEvtchn,
          consoleEvtchn,
          cmdline: config.cmdline,
          initrdBytes,
        });
        if (kernel.notes.hypercallPage !== undefined) {
          const pfn = Number((kernel.notes.hypercallPage - plan.virtBase) / BigInt(PAGE_SIZE));
          this.xen.domctl(
            Domctl.hypercall_init,
            domid,
            (u) => u.writeBigUInt64LE(mem.mfn(pfn), 0),
            () => undefined,
            'hypercall_init',
          );
        }
        trace('start info');
        initSharedInfo(memory.bytes.subarray((endPfn - firstPfn) * PAGE_SIZE, (endPfn - firstPfn + 1) * PAGE_SIZE));
        trace('shared info');
      } finally {
        // Xen refuses to pin page tables that dom0 still maps writable.
        memory.unmap();
      }
      trace('unmap');
      this.pinL4(domid, p2m[plan.l4Pfn]!);
      trace('pin page tables');
      this.setVcpu0(domid, plan, p2m);
      trace('vcpu context');
      this.seedGrantTable(domid, storeMfn, consoleMfn);
      trace('grant table');
      await stored;
      trace('xenstore');
      // blkback opens the devices while the domain is introduced (it needs nothing from the guest).
      const opened = blkbackOpened(
        domid,
        config.disks.map((d) => d.vdev),
      );
      opened.catch(() => undefined); // awaited below
      faultPoint('create.devices-written'); // paused, with krata keys, vbd/vif entries, not introduced
      // Only now hand the ring to xenstored: it maps it through grant reference 1 and refuses (EINVAL)
      // a domain whose grant table is not seeded yet.
      await this.xs.introduceDomain(domid, storeMfn, storeEvtchn);
      trace('introduce');
      await opts.beforeUnpause?.(domid);
      trace('before unpause');
      faultPoint('create.before-unpause'); // introduced, console attached, still paused
      if (!opts.startPaused) {
        this.xen.unpause(domid);
        trace('unpause');
      }
      await opened;
      trace('disks opened');
      return { domid, uuid, storeEvtchn, consoleEvtchn, storeMfn, consoleMfn, plan };
    } catch (e) {
      // Let the xenstore writes in flight finish first, or their commit could outlive the cleanup.
      await stored?.catch(() => undefined);
      if (domid !== undefined) await destroyDomain(this.xen, this.xs, domid, uuid).catch(() => undefined);
      throw e;
    } finally {
      // Released (after the failure's teardown, too): the devices go by themselves unless another
      // guest's blkback holds them.
      for (const l of loops) l.release();
    }
  }

  private createDomain(uuid: string, maxVcpus: number): number {
    return this.xen.domctl(
      Domctl.createdomain,
      0, // 0: Xen picks the domid
      (u) => {
        setField(u, domctlCreateDomain, 'handle', Buffer.from(uuid.replace(/-/g, ''), 'hex'));
        setField(u, domctlCreateDomain, 'flags', 0); // PV; no IOMMU without passthrough (krata #146)
        setField(u, domctlCreateDomain, 'max_vcpus', maxVcpus);
        setField(u, domctlCreateDomain, 'max_evtchn_port', 1023);
        setField(u, domctlCreateDomain, 'max_grant_frames', 32);
        setField(u, domctlCreateDomain, 'max_maptrack_frames', 128);
        setField(u, domctlCreateDomain, 'grant_opts', 2); // XEN_DOMCTL_GRANT_version(2): v1 and v2 allowed
      },
      (_u, domain) => domain,
      'createdomain',
    );
  }

  /** Give the domain `pages` frames; returns the p2m (pfn → mfn). Superpages first, then single pages. */
  private populate(domid: number, pages: number): BigUint64Array {
    const p2m = newP2m(pages);
    const words = p2mWords(p2m);
    const perSuper = 1 << SUPERPAGE_ORDER;
    let pfn = 0;
    const batch = 512;
    const buf = this.privcmd.buffer(batch * 8);
    // In: the extents' first pfns; out: their first mfns. 32-bit halves, little-endian.
    const extents = new Uint32Array(buf.bytes.buffer, buf.bytes.byteOffset, batch * 2);
    const res = this.privcmd.buffer(memoryReservation.size);
    try {
      const call = (order: number, first: number, count: number): number => {
        const step = 1 << order;
        for (let i = 0; i < count; i++) {
          extents[i * 2] = first + i * step;
          extents[i * 2 + 1] = 0;
        }
        res.bytes.fill(0);
        setField(res.bytes, memoryReservation, 'extent_start', buf.address);
        setField(res.bytes, memoryReservation, 'nr_extents', BigInt(count));
        setField(res.bytes, memoryReservation, 'extent_order', order);
        setField(res.bytes, memoryReservation, 'domid', domid);
        const done = this.privcmd.hypercall(Hypercall.memory_op, [BuildConst.XENMEM_populate_physmap, res.address], 'populate_physmap');
        if (done > count) throw new Error(`populate_physmap claims ${done} of ${count} extents`);
        for (let i = 0; i < done; i++) setExtent(words, first + i * step, extents[i * 2]!, extents[i * 2 + 1]!, order);
        return done;
      };
      let superOk = true;
      while (superOk && pages - pfn >= perSuper) {
        const count = Math.min(batch, Math.floor((pages - pfn) / perSuper));
        const done = call(SUPERPAGE_ORDER, pfn, count);
        pfn += done * perSuper;
        superOk = done === count;
      }
      while (pfn < pages) {
        const count = Math.min(batch, pages - pfn);
        const done = call(0, pfn, count);
        if (done === 0) throw new Error(`Xen has no memory left for domain ${domid}: ${pfn} of ${pages} pages populated`);
        pfn += done;
      }
      return p2m;
    } finally {
      buf.release();
      res.release();
    }
  }

  private allocUnbound(domid: number): number {
    const buf = this.privcmd.buffer(evtchnAllocUnbound.size);
    try {
      setField(buf.bytes, evtchnAllocUnbound, 'dom', domid);
      setField(buf.bytes, evtchnAllocUnbound, 'remote_dom', 0);
      this.privcmd.hypercall(Hypercall.event_channel_op, [BuildConst.EVTCHNOP_alloc_unbound, buf.address], 'evtchn alloc_unbound');
      return buf.bytes.readUInt32LE(evtchnAllocUnbound.fields.port.offset);
    } finally {
      buf.release();
    }
  }

  private pinL4(domid: number, l4Mfn: bigint): void {
    const buf = this.privcmd.buffer(mmuextOp.size);
    try {
      setField(buf.bytes, mmuextOp, 'cmd', BuildConst.MMUEXT_PIN_L4_TABLE);
      setField(buf.bytes, mmuextOp, 'mfn', l4Mfn);
      this.privcmd.hypercall(Hypercall.mmuext_op, [buf.address, 1, 0, domid], 'pin L4 table');
    } finally {
      buf.release();
    }
  }

  private setVcpu0(domid: number, plan: BootPlan, p2m: BigUint64Array): void {
    const ctx = this.privcmd.buffer(vcpuGuestContext.size);
    try {
      const c = ctx.bytes;
      const startInfoVa = plan.startInfo.va!;
      setField(c, vcpuGuestContext, 'flags', BigInt(BuildConst.VGCF_in_kernel | BuildConst.VGCF_online));
      setField(c, vcpuGuestContext, 'rip', plan.entry);
      setField(c, vcpuGuestContext, 'rsp', plan.stackTop);
      setField(c, vcpuGuestContext, 'rsi', startInfoVa);
      setField(c, vcpuGuestContext, 'rflags', 1n << 9n);
      setField(c, vcpuGuestContext, 'cs', BuildConst.FLAT_KERNEL_CS);
      setField(c, vcpuGuestContext, 'ss', BuildConst.FLAT_KERNEL_SS);
      for (const seg of ['ds', 'es', 'fs', 'gs'] as const) setField(c, vcpuGuestContext, seg, BuildConst.FLAT_KERNEL_DS);
      setField(c, vcpuGuestContext, 'kernel_ss', BigInt(BuildConst.FLAT_KERNEL_SS));
      setField(c, vcpuGuestContext, 'kernel_sp', plan.stackTop);
      setField(c, vcpuGuestContext, 'cr3', p2m[plan.l4Pfn]! << 12n);
      setField(c, vcpuGuestContext, 'dr6', 0xffff0ff0n);
      setField(c, vcpuGuestContext, 'dr7', 0x400n);
      this.xen.domctl(
        Domctl.setvcpucontext,
        domid,
        (u) => {
          setField(u, domctlVcpuContext, 'vcpu', 0);
          setField(u, domctlVcpuContext, 'ctxt', ctx.address);
        },
        () => undefined,
        'setvcpucontext',
      );
    } finally {
      ctx.release();
    }
  }

  /** Grant dom0 the console and xenstore rings through the reserved entries, as the guest expects. */
  private seedGrantTable(domid: number, storeMfn: bigint, consoleMfn: bigint): void {
    const table = this.privcmd.mapResource(domid, BuildConst.XENMEM_resource_grant_table, 0, 0, 1);
    try {
      const entry = (ref: number, frame: bigint) => {
        const at = ref * grantEntryV1.size;
        setField(table.bytes, grantEntryV1, 'domid', 0, at);
        setField(table.bytes, grantEntryV1, 'frame', Number(frame), at);
        setField(table.bytes, grantEntryV1, 'flags', BuildConst.GTF_permit_access, at);
      };
      entry(BuildConst.GNTTAB_RESERVED_CONSOLE, consoleMfn);
      entry(BuildConst.GNTTAB_RESERVED_XENSTORE, storeMfn);
    } finally {
      table.unmap();
    }
  }
}

/** Zero shared_info and mask event upcalls on every vCPU until the guest sets itself up. */
export function initSharedInfo(page: Buffer): void {
  page.fill(0);
  for (let v = 0; v < XEN_LEGACY_MAX_VCPUS; v++) page[v * VCPU_INFO_SIZE + 1] = 1; // evtchn_upcall_mask
}

/** KRATA_TRACE: each phase on stderr as it closes. */
function tracePhase(p: { name: string; ms: number }): void {
  process.stderr.write(`${p.name} ${p.ms}ms\n`);
}

/** One past the last pfn any boot structure uses. */
function bootEndPfn(plan: BootPlan): number {
  const regions = [plan.kernel, plan.initrd, plan.startInfo, plan.xenstore, plan.console, plan.pageTables, plan.bootStack, plan.p2m];
  return Math.max(
    Number((plan.virtPgtabEnd - plan.virtBase) / BigInt(PAGE_SIZE)),
    ...regions.filter((r) => r).map((r) => r!.pfn + r!.pages),
  );
}
