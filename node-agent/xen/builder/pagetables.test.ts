// The typed p2m and page-table writers against the per-entry BigInt code they replaced: the same bytes
// in guest memory, for machine frames below and above 2^32.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { syntheticKernel } from '../../../test/kernels/synthetic.js';
import { parseElfKernel } from './elf.js';
import type { GuestMemory } from './memory.js';
import { L1_PROT, PTE_RW, UPPER_PROT, writeP2m, writePageTables } from './pagetables.js';
import { LEVEL_SHIFT, planBoot, type BootPlan, type TablePage } from './plan.js';

function memory(totalPages: number, mfnOf: (pfn: number) => bigint): GuestMemory & { all: Buffer } {
  const all = Buffer.alloc(totalPages * 4096);
  const p2m = BigUint64Array.from({ length: totalPages }, (_, pfn) => mfnOf(pfn));
  return {
    all,
    p2m,
    mfn: (pfn) => p2m[pfn]!,
    page: (pfn) => all.subarray(pfn * 4096, (pfn + 1) * 4096),
  };
}

/** The writers as they were before the typed p2m: one BigInt per entry. */
function referenceP2m(plan: BootPlan, mem: GuestMemory): void {
  for (let pfn = 0; pfn < plan.totalPages; pfn++) {
    mem.page(plan.p2m.pfn + Math.floor(pfn / 512)).writeBigUInt64LE(mem.mfn(pfn), (pfn % 512) * 8);
  }
}

function referencePageTables(plan: BootPlan, mem: GuestMemory): void {
  const byLevelBase = new Map<string, TablePage>(plan.tables.map((t) => [`${t.level}:${t.base}`, t]));
  const tablePfns = new Set(plan.tables.map((t) => t.pfn));
  const tableFor = (level: 1 | 2 | 3, va: bigint): TablePage => {
    const span = 1n << LEVEL_SHIFT[(level + 1) as 2 | 3 | 4];
    return byLevelBase.get(`${level}:${(va / span) * span}`)!;
  };
  const index = (va: bigint, level: 1 | 2 | 3 | 4) => Number((va >> LEVEL_SHIFT[level]) & 511n);
  for (const m of plan.mappings) {
    for (let va = m.from; va < m.to; va += 4096n) {
      const [l3, l2, l1] = [tableFor(3, va), tableFor(2, va), tableFor(1, va)];
      mem.page(plan.l4Pfn).writeBigUInt64LE((mem.mfn(l3.pfn) << 12n) | UPPER_PROT, index(va, 4) * 8);
      mem.page(l3.pfn).writeBigUInt64LE((mem.mfn(l2.pfn) << 12n) | UPPER_PROT, index(va, 3) * 8);
      mem.page(l2.pfn).writeBigUInt64LE((mem.mfn(l1.pfn) << 12n) | UPPER_PROT, index(va, 2) * 8);
      const pfn = m.firstPfn + Number((va - m.from) / 4096n);
      const prot = tablePfns.has(pfn) ? L1_PROT & ~PTE_RW : L1_PROT;
      mem.page(l1.pfn).writeBigUInt64LE((mem.mfn(pfn) << 12n) | prot, index(va, 1) * 8);
    }
  }
}

test('p2m and page tables: the same bytes as the per-entry BigInt writers, frames below and above 2^32', () => {
  const kernel = parseElfKernel(
    syntheticKernel({
      initP2m: 0x8000000000n, // the p2m in a mapping of its own, as Linux asks
      segments: [
        { paddr: 0x1000000n, fileSize: 4096 * 5, memSize: 4096 * 700 },
        { paddr: 0x1400000n, fileSize: 100, memSize: 4096 },
      ],
    }),
  );
  const totalPages = 16384;
  for (const [name, mfnOf] of [
    ['scrambled, low', (pfn: number) => BigInt(((pfn * 7919) % totalPages) + 0x40000)],
    ['superpages across 2^32', (pfn: number) => 0xffff_f000n + BigInt(pfn)],
    ['high frames', (pfn: number) => 0xab_0000_0000n + BigInt((pfn * 31) % totalPages) * 0x10001n],
  ] as const) {
    const plan = planBoot({ kernel, totalPages, initrdBytes: 3 * 4096 });
    const ours = memory(totalPages, mfnOf);
    const reference = memory(totalPages, mfnOf);
    writeP2m(plan, ours);
    writePageTables(plan, ours);
    referenceP2m(plan, reference);
    referencePageTables(plan, reference);
    assert.ok(reference.all.some((b) => b !== 0));
    assert.ok(ours.all.equals(reference.all), name);
  }
});

test('the writers refuse a p2m shorter than the plan', () => {
  const kernel = parseElfKernel(syntheticKernel());
  const plan = planBoot({ kernel, totalPages: 8192, initrdBytes: 0 });
  const short = memory(4096, (pfn) => BigInt(pfn));
  assert.throws(() => writeP2m(plan, short), RangeError);
  assert.throws(() => writePageTables(plan, short), RangeError);
});
