// The builder's output checked the way the CPU will read it: walk the produced page tables from the L4
// through machine addresses, for Debian's kernel and a custom one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { debianKernelPath } from '../../../test/kernels/debian.js';
import { syntheticKernel } from '../../../test/kernels/synthetic.js';
import { SIF_MOD_START_PFN, startInfo } from '../abi.js';
import { getField, getNumber } from '../../../lib/c-layout.js';
import { findKernelPayload } from './bzimage.js';
import { decompressKernel } from './decompress.js';
import { parseElfKernel, type ElfKernel } from './elf.js';
import type { GuestMemory } from './memory.js';
import { loadInitrd, loadKernel, writeP2m, writePageTables, writeStartInfo } from './pagetables.js';
import { planBoot, type BootPlan } from './plan.js';

/** Guest memory with a scrambled pfn → mfn map, so that a pfn used where an mfn belongs shows. */
class FakeMemory implements GuestMemory {
  readonly pages = new Map<number, Buffer>();
  readonly p2m: BigUint64Array;
  constructor(
    readonly totalPages: number,
    mfnOf: (pfn: number) => bigint = (pfn) => BigInt(((pfn * 7919) % totalPages) + 0x40000),
  ) {
    this.p2m = BigUint64Array.from({ length: totalPages }, (_, pfn) => mfnOf(pfn));
  }
  mfn(pfn: number): bigint {
    if (pfn < 0 || pfn >= this.totalPages) throw new Error(`pfn ${pfn} outside the guest`);
    return this.p2m[pfn]!;
  }
  page(pfn: number): Buffer {
    this.mfn(pfn);
    let p = this.pages.get(pfn);
    if (!p) this.pages.set(pfn, (p = Buffer.alloc(4096)));
    return p;
  }
}

interface Walked {
  pfn: number;
  writable: boolean;
}

/** Translate a virtual address as the MMU would, through machine addresses. */
function walk(mem: FakeMemory, l4Mfn: bigint, va: bigint, reverse: Map<bigint, number>): Walked | undefined {
  let mfn = l4Mfn;
  let writable = true;
  for (const shift of [39n, 30n, 21n, 12n]) {
    const pfn = reverse.get(mfn);
    assert.ok(pfn !== undefined, `table mfn 0x${mfn.toString(16)} is not guest memory`);
    const entry = mem.page(pfn).readBigUInt64LE(Number((va >> shift) & 511n) * 8);
    if ((entry & 1n) === 0n) return undefined;
    writable &&= (entry & 2n) !== 0n;
    mfn = (entry & 0x000ffffffffff000n) >> 12n;
  }
  return { pfn: reverse.get(mfn)!, writable };
}

function build(kernel: ElfKernel, totalPages: number, initrd = Buffer.alloc(0)) {
  const plan = planBoot({ kernel, totalPages, initrdBytes: initrd.length });
  const mem = new FakeMemory(totalPages);
  loadKernel(plan, kernel, mem);
  loadInitrd(plan, [initrd], mem);
  writeP2m(plan, mem);
  writePageTables(plan, mem);
  writeStartInfo(plan, mem, {
    sharedInfoMfn: 0x1234n,
    storeEvtchn: 3,
    consoleEvtchn: 4,
    cmdline: 'console=hvc0 quiet',
    initrdBytes: initrd.length,
  });
  const reverse = new Map<bigint, number>();
  for (let pfn = 0; pfn < totalPages; pfn++) reverse.set(mem.mfn(pfn), pfn);
  return { plan, mem, reverse, l4Mfn: mem.mfn(plan.l4Pfn) };
}

function checkBoot(kernel: ElfKernel, plan: BootPlan, mem: FakeMemory, reverse: Map<bigint, number>, l4Mfn: bigint) {
  const tablePfns = new Set(plan.tables.map((t) => t.pfn));
  // Every address of every boot mapping resolves to the planned frame; page-table frames read-only.
  for (const m of plan.mappings) {
    for (let va = m.from; va < m.to; va += 4096n) {
      const got = walk(mem, l4Mfn, va, reverse);
      const want = m.firstPfn + Number((va - m.from) / 4096n);
      assert.ok(got, `0x${va.toString(16)} (${m.name}) is not mapped`);
      assert.equal(got.pfn, want, `0x${va.toString(16)} maps pfn ${got.pfn}, not ${want}`);
      assert.equal(got.writable, !tablePfns.has(want), `0x${va.toString(16)}: pfn ${want} writability`);
    }
  }
  // The kernel mapping's tables are mapped (read-only, checked above): Linux reads them through the
  // kernel mapping (start_info.pt_base, nr_pt_frames). The p2m mapping's own tables need not be
  // mapped, but then they lie inside the first_p2m_pfn/nr_p2m_frames range Linux reserves.
  for (const t of plan.tables) {
    const inKernelRegion = t.pfn >= plan.pageTables.pfn && t.pfn < plan.pageTables.pfn + plan.pageTables.pages;
    const inP2m = t.pfn >= plan.p2m.pfn && t.pfn < plan.p2m.pfn + plan.p2m.pages;
    assert.ok(inKernelRegion || inP2m, `page table pfn ${t.pfn} is neither in the page-table region nor the p2m region`);
    if (inKernelRegion) assert.ok(t.pfn < Number((plan.virtPgtabEnd - plan.virtBase) / 4096n), `kernel table pfn ${t.pfn} is unmapped`);
  }
  // Tables come in the order Linux expects of a toolstack-built guest: L4, then L3s, L2s, L1s.
  const kernelTables = plan.tables.filter((t) => t.pfn >= plan.pageTables.pfn && t.pfn < plan.pageTables.pfn + plan.pageTables.pages);
  assert.deepEqual(
    kernelTables.map((t) => t.level),
    [...kernelTables.map((t) => t.level)].sort((a, b) => b - a),
  );
  assert.equal(kernelTables[0]!.pfn, plan.pageTables.pfn);
  // Nothing is mapped just past the kernel mapping or below VIRT_BASE.
  assert.equal(walk(mem, l4Mfn, plan.virtPgtabEnd, reverse), undefined);
  assert.equal(walk(mem, l4Mfn, plan.virtBase - 4096n, reverse), undefined);
  // Kernel bytes are where the CPU will fetch them.
  for (const s of kernel.segments) {
    const va = s.paddr + plan.virtBase - (kernel.notes.paddrOffset ?? 0n);
    for (const off of [0, 1, s.fileSize >> 1, s.fileSize - 1].filter((o) => o >= 0 && o < s.fileSize)) {
      const a = va + BigInt(off);
      const w = walk(mem, l4Mfn, a & ~4095n, reverse)!;
      assert.equal(mem.page(w.pfn)[Number(a & 4095n)], kernel.bytes[s.fileOffset + off], `kernel byte at 0x${a.toString(16)}`);
    }
    if (s.memSize > s.fileSize) {
      const a = va + BigInt(s.memSize - 1);
      const w = walk(mem, l4Mfn, a & ~4095n, reverse)!;
      assert.equal(mem.page(w.pfn)[Number(a & 4095n)], 0, 'bss is zero');
    }
  }
  // The entry point, stack and start_info are mapped and writable where they must be.
  assert.ok(walk(mem, l4Mfn, plan.entry & ~4095n, reverse));
  assert.equal(walk(mem, l4Mfn, plan.stackTop - 4096n, reverse)!.writable, true);
  // The p2m, read through its virtual address, says pfn → mfn for every frame.
  for (const pfn of [0, 1, plan.totalPages >> 1, plan.totalPages - 1]) {
    const va = plan.p2m.va! + BigInt(pfn * 8);
    const w = walk(mem, l4Mfn, va & ~4095n, reverse)!;
    assert.equal(mem.page(w.pfn).readBigUInt64LE(Number(va & 4095n)), mem.mfn(pfn), `p2m[${pfn}]`);
  }
  // start_info is consistent with the plan and the memory.
  const si = mem.page(plan.startInfo.pfn);
  assert.equal(si.toString('latin1', 0, 14), 'xen-3.0-x86_64');
  assert.equal(getNumber(si, startInfo, 'nr_pages'), plan.totalPages);
  assert.equal(getField(si, startInfo, 'shared_info'), 0x1234n << 12n);
  assert.equal(getField(si, startInfo, 'store_mfn'), mem.mfn(plan.xenstore.pfn));
  assert.equal(getField(si, startInfo, 'console_mfn'), mem.mfn(plan.console.pfn));
  assert.equal(getNumber(si, startInfo, 'store_evtchn'), 3);
  assert.equal(getNumber(si, startInfo, 'console_evtchn'), 4);
  assert.equal(walk(mem, l4Mfn, getField(si, startInfo, 'pt_base') as bigint, reverse)!.pfn, plan.l4Pfn, 'pt_base is the L4');
  assert.equal(getNumber(si, startInfo, 'nr_pt_frames'), plan.pageTables.pages);
  assert.equal(getField(si, startInfo, 'mfn_list'), plan.p2m.va);
  assert.equal(getNumber(si, startInfo, 'first_p2m_pfn'), plan.p2m.pfn);
  assert.equal(getNumber(si, startInfo, 'nr_p2m_frames'), plan.p2m.pages);
  assert.equal((getField(si, startInfo, 'cmd_line') as Buffer).toString('latin1').replace(/\0.*$/s, ''), 'console=hvc0 quiet');
  // No two regions share a frame, and all lie inside the guest.
  const regions = [plan.kernel, plan.initrd, plan.startInfo, plan.xenstore, plan.console, plan.pageTables, plan.bootStack, plan.p2m].filter(
    (r) => r !== undefined,
  );
  const owner = new Map<number, string>();
  for (const r of regions) {
    for (let p = r.pfn; p < r.pfn + r.pages; p++) {
      assert.ok(p < plan.totalPages, `${r.name} pfn ${p} beyond memory`);
      assert.ok(!owner.has(p), `pfn ${p} is in both ${owner.get(p)} and ${r.name}`);
      owner.set(p, r.name);
    }
  }
}

test("Debian's 6.1 kernel: page tables, p2m and start_info for a 256 MiB guest with an initrd passed by pfn", () => {
  const kernel = parseElfKernel(decompressKernel(findKernelPayload(readFileSync(debianKernelPath())).payload));
  const initrd = Buffer.alloc(3 * 1024 * 1024 + 17, 0xab);
  const totalPages = 256 * 256;
  const { plan, mem, reverse, l4Mfn } = build(kernel, totalPages, initrd);
  checkBoot(kernel, plan, mem, reverse, l4Mfn);
  assert.equal(plan.kernel.va, 0xffffffff81000000n, 'Linux loads at 16 MiB above VIRT_BASE');
  assert.equal(plan.mappings[1]!.from, 0x8000000000n, 'the p2m sits where INIT_P2M says');
  assert.equal(plan.initrdByPfn, true);
  const si = mem.page(plan.startInfo.pfn);
  assert.equal(getNumber(si, startInfo, 'flags') & SIF_MOD_START_PFN, SIF_MOD_START_PFN);
  assert.equal(getNumber(si, startInfo, 'mod_start'), plan.initrd!.pfn);
  assert.equal(getNumber(si, startInfo, 'mod_len'), initrd.length);
  assert.equal(mem.page(plan.initrd!.pfn + 768)[16], 0xab, 'initrd bytes are in its frames');
  assert.ok(plan.virtPgtabEnd % (4n << 20n) === 0n);
});

test('a custom kernel with the p2m inside the kernel mapping and a mapped initrd', () => {
  const kernel = parseElfKernel(
    syntheticKernel({
      initP2m: 0xffffffff90000000n, // above VIRT_BASE: no separate mapping
      modStartPfn: false,
      segments: [
        { paddr: 0x200000n, fileSize: 10_000, memSize: 20_000 },
        { paddr: 0x400000n, fileSize: 4096 * 3, memSize: 4096 * 600 },
      ],
    }),
  );
  const initrd = Buffer.alloc(9000, 1);
  const { plan, mem, reverse, l4Mfn } = build(kernel, 8192, initrd);
  checkBoot(kernel, plan, mem, reverse, l4Mfn);
  assert.equal(plan.mappings.length, 1);
  assert.equal(plan.initrdByPfn, false);
  const si = mem.page(plan.startInfo.pfn);
  assert.equal(getField(si, startInfo, 'mod_start'), plan.initrd!.va, 'a mapped initrd is passed by virtual address');
  assert.equal(getNumber(si, startInfo, 'flags'), 0);
});

test('too little memory is a clear error naming what boot needs', () => {
  const kernel = parseElfKernel(syntheticKernel());
  assert.throws(
    () => planBoot({ kernel, totalPages: 1024, initrdBytes: 8 << 20 }),
    /4096 KiB of guest memory is too small for this kernel and initrd: boot needs \d+ KiB/,
  );
});

test('a very long command line is truncated and NUL-terminated', () => {
  const kernel = parseElfKernel(syntheticKernel());
  const plan = planBoot({ kernel, totalPages: 8192, initrdBytes: 0 });
  const mem = new FakeMemory(8192);
  writeStartInfo(plan, mem, { sharedInfoMfn: 1n, storeEvtchn: 1, consoleEvtchn: 2, cmdline: 'x'.repeat(5000), initrdBytes: 0 });
  const cmd = getField(mem.page(plan.startInfo.pfn), startInfo, 'cmd_line') as Buffer;
  assert.equal(cmd.indexOf(0), 1023);
});
