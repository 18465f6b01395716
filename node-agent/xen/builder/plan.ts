// Where everything goes in a new x86_64 PV guest's memory, computed before any hypercall (libxc's
// xc_dom_* layout for 64-bit PV, redone): a bump allocator hands out guest frames (pfns) in order,
// and for the kernel area virtual address and pfn advance together (va = VIRT_BASE + pfn * 4096).
// Pure arithmetic: the same plan drives the real build and the tests that walk the page tables.
import { PAGE_SIZE } from '../abi.js';
import type { ElfKernel } from './elf.js';
import { BootImageError } from './errors.js';

const PAGE = BigInt(PAGE_SIZE);
const MiB = 1n << 20n;
/** Levels of x86_64 paging: bits of virtual address each entry at that level covers. */
export const LEVEL_SHIFT = { 1: 12n, 2: 21n, 3: 30n, 4: 39n } as const;

export interface Region {
  name: string;
  /** First guest frame. */
  pfn: number;
  pages: number;
  /** Where the guest sees it at boot; undefined for frames the boot page tables do not map. */
  va?: bigint;
}

/** One page-table page: which level, and which virtual range its entries cover. */
export interface TablePage {
  level: 1 | 2 | 3 | 4;
  /** First virtual address this table's entries describe. */
  base: bigint;
  pfn: number;
}

/** A virtual range the boot page tables map, and how to find the pfn behind each address. */
export interface Mapping {
  name: string;
  from: bigint;
  to: bigint;
  /** pfn mapped at `from`; consecutive after that. */
  firstPfn: number;
}

export interface BootPlan {
  virtBase: bigint;
  totalPages: number;
  entry: bigint;
  kernel: Region;
  /** Where each loadable segment's bytes go. */
  segments: { pfn: number; fileOffset: number; fileSize: number; memSize: number; pageOffset: number }[];
  initrd?: Region;
  /** An initrd outside the boot mappings is passed by pfn (SIF_MOD_START_PFN). */
  initrdByPfn: boolean;
  startInfo: Region;
  xenstore: Region;
  console: Region;
  /** The kernel mapping's page tables (start_info.pt_base / nr_pt_frames). */
  pageTables: Region;
  bootStack: Region;
  /** The p2m array (pfn → mfn, u64 each) followed by the page tables of its own mapping when it has one. */
  p2m: Region;
  p2mArrayPages: number;
  mappings: Mapping[];
  tables: TablePage[];
  l4Pfn: number;
  /** End of the kernel mapping: everything the kernel needs at boot lies below. */
  virtPgtabEnd: bigint;
  stackTop: bigint;
}

export interface PlanInput {
  kernel: ElfKernel;
  /** The domain's memory, in pages (its maximum: the balloon takes it down to the target later). */
  totalPages: number;
  initrdBytes: number;
}

/** 512 KiB of slack above the boot structures, as libxc keeps for the kernel's early allocations. */
const BOOT_SLACK = 512n * 1024n;

export function planBoot({ kernel, totalPages, initrdBytes }: PlanInput): BootPlan {
  const notes = kernel.notes;
  if (notes.virtBase === undefined) throw new BootImageError('kernel has no XEN_ELFNOTE_VIRT_BASE note: not a Xen PV kernel');
  if (notes.entry === undefined) throw new BootImageError('kernel has no XEN_ELFNOTE_ENTRY note: not a Xen PV kernel');
  const virtBase = notes.virtBase;
  const virtOffset = virtBase - (notes.paddrOffset ?? 0n);
  const kernelStart = kernel.physStart + virtOffset;
  const kernelEnd = kernel.physEnd + virtOffset;
  if (kernelStart < virtBase || kernelStart % PAGE !== 0n) {
    throw new BootImageError(`kernel would load at 0x${kernelStart.toString(16)}, below VIRT_BASE or not page-aligned`);
  }
  if (notes.entry < kernelStart || notes.entry >= kernelEnd) throw new BootImageError('kernel entry point lies outside the kernel image');

  let next = virtBase; // the bump allocator's next virtual address (mapped regions)
  const pfnOf = (va: bigint) => Number((va - virtBase) / PAGE);
  const allocMapped = (name: string, bytes: bigint, at?: bigint): Region => {
    const va = at ?? next;
    const pages = Number((bytes + PAGE - 1n) / PAGE);
    next = va + BigInt(pages) * PAGE;
    return { name, pfn: pfnOf(va), pages, va };
  };

  // Frames below the kernel (Linux loads at 16 MiB) are guest memory the kernel reclaims.
  const kernelRegion = allocMapped('kernel', kernelEnd - kernelStart, kernelStart);
  const segments = kernel.segments.map((s) => {
    const offset = s.paddr + virtOffset - kernelStart;
    return {
      pfn: kernelRegion.pfn + Number(offset / PAGE),
      pageOffset: Number(offset % PAGE),
      fileOffset: s.fileOffset,
      fileSize: s.fileSize,
      memSize: s.memSize,
    };
  });

  const initrdByPfn = initrdBytes > 0 && notes.modStartPfn === true;
  let initrd = initrdBytes > 0 && !initrdByPfn ? allocMapped('initrd', BigInt(initrdBytes)) : undefined;
  const p2mArrayPages = Math.ceil((totalPages * 8) / PAGE_SIZE);
  // A kernel that names a p2m address below VIRT_BASE gets the p2m in a mapping of its own, at that address.
  const separateP2m = notes.initP2m !== undefined && notes.initP2m < virtBase;
  let p2m = separateP2m ? undefined : allocMapped('p2m', BigInt(p2mArrayPages) * PAGE);
  const startInfo = allocMapped('start_info', PAGE);
  const xenstore = allocMapped('xenstore', PAGE);
  const console = allocMapped('console', PAGE);

  // Page tables for [virtBase, end) must fit below `end` together with the boot stack and slack;
  // more memory mapped needs more tables, so iterate to a fixed point (end is 4 MiB aligned).
  let tablePages = 0;
  let end: bigint;
  for (;;) {
    end = alignUp(next + BigInt(tablePages + 1) * PAGE + BOOT_SLACK, 4n * MiB);
    const needed = countTables(virtBase, end, true);
    if (needed <= tablePages) break;
    tablePages = needed;
  }
  const pageTables = allocMapped('page tables', BigInt(tablePages) * PAGE);
  const bootStack = allocMapped('boot stack', PAGE);
  next = end; // the padding up to `end` is guest memory mapped at boot
  const mappings: Mapping[] = [{ name: 'kernel', from: virtBase, to: end, firstPfn: 0 }];
  let pfnNext = pfnOf(end); // frames from here on are outside the kernel mapping

  if (separateP2m) {
    const from = notes.initP2m!;
    const to = from + BigInt(p2mArrayPages) * PAGE;
    const p2mTables = countTables(from, alignUp(to, 1n << LEVEL_SHIFT[2]), false);
    p2m = { name: 'p2m', pfn: pfnNext, pages: p2mArrayPages + p2mTables, va: from };
    pfnNext += p2m.pages;
    mappings.push({ name: 'p2m', from, to, firstPfn: p2m.pfn });
  }
  if (initrdByPfn) {
    initrd = { name: 'initrd', pfn: pfnNext, pages: Math.ceil(initrdBytes / PAGE_SIZE) };
    pfnNext += initrd.pages;
  }
  const used = Math.max(pfnNext, pfnOf(next));
  if (used > totalPages) {
    throw new BootImageError(
      `${totalPages * 4} KiB of guest memory is too small for this kernel${initrdBytes ? ' and initrd' : ''}: boot needs ${used * 4} KiB`,
    );
  }

  // Table pages: the L4 and the kernel mapping's tables first (in the page-table region), then the
  // p2m mapping's tables after the p2m array.
  const tables: TablePage[] = [];
  let tablePfn = pageTables.pfn;
  tables.push({ level: 4, base: 0n, pfn: tablePfn++ });
  for (const t of tablesFor(virtBase, end)) tables.push({ ...t, pfn: tablePfn++ });
  if (separateP2m) {
    let p = p2m!.pfn + p2mArrayPages;
    for (const t of tablesFor(mappings[1]!.from, alignUp(mappings[1]!.to, 1n << LEVEL_SHIFT[2]))) tables.push({ ...t, pfn: p++ });
  }
  return {
    virtBase,
    totalPages,
    entry: notes.entry,
    kernel: kernelRegion,
    segments,
    initrd,
    initrdByPfn,
    startInfo,
    xenstore,
    console,
    pageTables,
    bootStack,
    p2m: p2m!,
    p2mArrayPages,
    mappings,
    tables,
    l4Pfn: pageTables.pfn,
    virtPgtabEnd: end,
    stackTop: bootStack.va! + PAGE,
  };
}

/** Table pages (levels 3, 2, 1) needed to map [from, to), plus the L4 when asked. */
function countTables(from: bigint, to: bigint, withL4: boolean): number {
  return tablesFor(from, to).length + (withL4 ? 1 : 0);
}

function tablesFor(from: bigint, to: bigint): Omit<TablePage, 'pfn'>[] {
  const out: Omit<TablePage, 'pfn'>[] = [];
  for (const level of [3, 2, 1] as const) {
    // A table at `level` covers what one entry of the level above covers.
    const span = 1n << LEVEL_SHIFT[(level + 1) as 2 | 3 | 4];
    for (let base = alignDown(from, span); base < to; base += span) out.push({ level, base });
  }
  return out;
}

export function alignUp(v: bigint, a: bigint): bigint {
  return ((v + a - 1n) / a) * a;
}

function alignDown(v: bigint, a: bigint): bigint {
  return (v / a) * a;
}
