// Writing the boot-time structures a PV kernel expects: page tables for the plan's mappings (entries
// hold machine addresses; page-table pages are mapped read-only, as Xen requires of PV guests), the
// kernel's segments, the p2m array and start_info.
import { MAX_GUEST_CMDLINE, PAGE_SIZE, SIF_MOD_START_PFN, startInfo } from '../abi.js';
import { setField } from '../../../lib/c-layout.js';
import type { ElfKernel } from './elf.js';
import { copyToGuest, type GuestMemory } from './memory.js';
import { p2mWords } from './p2m.js';
import { LEVEL_SHIFT, type BootPlan, type TablePage } from './plan.js';

export const PTE_PRESENT = 0x001n;
export const PTE_RW = 0x002n;
export const PTE_USER = 0x004n;
export const PTE_ACCESSED = 0x020n;
export const PTE_DIRTY = 0x040n;
/** Leaf entries, and entries that point at the next level's table. */
export const L1_PROT = PTE_PRESENT | PTE_RW | PTE_ACCESSED;
const L1_PROT_WORD = Number(L1_PROT);
const L1_READONLY_WORD = Number(L1_PROT & ~PTE_RW);
export const UPPER_PROT = PTE_PRESENT | PTE_RW | PTE_ACCESSED | PTE_DIRTY | PTE_USER;

const PAGE = BigInt(PAGE_SIZE);

export function writePageTables(plan: BootPlan, mem: GuestMemory): void {
  const byLevelBase = new Map<string, TablePage>(plan.tables.map((t) => [`${t.level}:${t.base}`, t]));
  const isTable = new Uint8Array(plan.totalPages);
  for (const t of plan.tables) isTable[t.pfn] = 1;
  const p2m = p2mWords(mem.p2m);
  if (p2m.length < plan.totalPages * 2) throw new RangeError(`the p2m has ${p2m.length / 2} of the plan's ${plan.totalPages} pages`);
  const tableFor = (level: 1 | 2 | 3, va: bigint): TablePage => {
    const span = 1n << LEVEL_SHIFT[(level + 1) as 2 | 3 | 4];
    const t = byLevelBase.get(`${level}:${(va / span) * span}`);
    if (!t) throw new Error(`internal: no level-${level} table planned for 0x${va.toString(16)}`);
    return t;
  };
  const index = (va: bigint, level: 1 | 2 | 3 | 4) => Number((va >> LEVEL_SHIFT[level]) & 511n);
  const L1_SPAN = 1n << LEVEL_SHIFT[2];

  for (const m of plan.mappings) {
    // One L1 table (2 MiB of addresses) at a time: the upper levels change at most once per table.
    for (let chunk = (m.from / L1_SPAN) * L1_SPAN; chunk < m.to; chunk += L1_SPAN) {
      const l3 = tableFor(3, chunk);
      const l2 = tableFor(2, chunk);
      const l1 = tableFor(1, chunk);
      mem.page(plan.l4Pfn).writeBigUInt64LE((mem.mfn(l3.pfn) << 12n) | UPPER_PROT, index(chunk, 4) * 8);
      mem.page(l3.pfn).writeBigUInt64LE((mem.mfn(l2.pfn) << 12n) | UPPER_PROT, index(chunk, 3) * 8);
      mem.page(l2.pfn).writeBigUInt64LE((mem.mfn(l1.pfn) << 12n) | UPPER_PROT, index(chunk, 2) * 8);
      const table = mem.page(l1.pfn);
      // The table as 32-bit halves, filled from the p2m's halves with number arithmetic: no BigInt per
      // mapped page (entry = mfn << 12 | prot; the low half takes the mfn's low 20 bits).
      const words = new Uint32Array(table.buffer, table.byteOffset, PAGE_SIZE / 4);
      const start = chunk > m.from ? chunk : m.from;
      const end = chunk + L1_SPAN < m.to ? chunk + L1_SPAN : m.to;
      let w = index(start, 1) * 2;
      let pfn = m.firstPfn + Number((start - m.from) / PAGE);
      const count = Number((end - start) / PAGE);
      if (pfn < 0 || pfn + count > plan.totalPages) throw new RangeError(`mapping ${m.name} runs past the guest's memory`);
      for (let i = 0; i < count; i++, pfn++, w += 2) {
        const lo = p2m[pfn * 2]!;
        words[w] = (lo << 12) | (isTable[pfn] ? L1_READONLY_WORD : L1_PROT_WORD);
        words[w + 1] = (p2m[pfn * 2 + 1]! << 12) | (lo >>> 20);
      }
    }
  }
}

/** Copy each loadable segment into its frames; the rest of memSize stays zero (frames start zeroed). */
export function loadKernel(plan: BootPlan, kernel: ElfKernel, mem: GuestMemory): void {
  for (const s of plan.segments) copyToGuest(mem, s.pfn, s.pageOffset, kernel.bytes.subarray(s.fileOffset, s.fileOffset + s.fileSize));
}

/** The p2m array the kernel starts with: one u64 machine frame per guest frame. */
export function writeP2m(plan: BootPlan, mem: GuestMemory): void {
  // The guest's p2m is the builder's table byte for byte: one copy, no work per entry.
  const table = mem.p2m.subarray(0, plan.totalPages);
  if (table.length !== plan.totalPages) throw new RangeError(`the p2m has ${table.length} of the plan's ${plan.totalPages} pages`);
  copyToGuest(mem, plan.p2m.pfn, 0, Buffer.from(table.buffer, table.byteOffset, table.byteLength));
}

export interface StartInfoParams {
  sharedInfoMfn: bigint;
  storeEvtchn: number;
  consoleEvtchn: number;
  cmdline: string;
  initrdBytes: number;
}

export function writeStartInfo(plan: BootPlan, mem: GuestMemory, p: StartInfoParams): void {
  const page = mem.page(plan.startInfo.pfn);
  page.fill(0);
  setField(page, startInfo, 'magic', Buffer.from('xen-3.0-x86_64'));
  setField(page, startInfo, 'nr_pages', BigInt(plan.totalPages));
  setField(page, startInfo, 'shared_info', p.sharedInfoMfn << 12n);
  setField(page, startInfo, 'flags', plan.initrdByPfn ? SIF_MOD_START_PFN : 0);
  setField(page, startInfo, 'store_mfn', mem.mfn(plan.xenstore.pfn));
  setField(page, startInfo, 'store_evtchn', p.storeEvtchn);
  setField(page, startInfo, 'console_mfn', mem.mfn(plan.console.pfn));
  setField(page, startInfo, 'console_evtchn', p.consoleEvtchn);
  setField(page, startInfo, 'pt_base', plan.pageTables.va!);
  setField(page, startInfo, 'nr_pt_frames', BigInt(plan.pageTables.pages));
  setField(page, startInfo, 'mfn_list', plan.p2m.va!);
  if (plan.initrd) {
    setField(page, startInfo, 'mod_start', plan.initrdByPfn ? BigInt(plan.initrd.pfn) : plan.initrd.va!);
    setField(page, startInfo, 'mod_len', BigInt(p.initrdBytes));
  }
  // Truncated to fit with its NUL; the kernel reads a C string.
  const cmdline = Buffer.from(p.cmdline, 'utf8').subarray(0, MAX_GUEST_CMDLINE - 1);
  setField(page, startInfo, 'cmd_line', cmdline);
  setField(page, startInfo, 'first_p2m_pfn', BigInt(plan.p2m.pfn));
  setField(page, startInfo, 'nr_p2m_frames', BigInt(plan.p2m.pages));
}

/** Copies the initrd's parts one after another (initrd-parts.ts). */
export function loadInitrd(plan: BootPlan, parts: readonly Buffer[], mem: GuestMemory): void {
  if (!plan.initrd) return;
  let offset = 0;
  for (const part of parts) {
    copyToGuest(mem, plan.initrd.pfn, offset, part);
    offset += part.length;
  }
}
