// Reading an x86_64 ELF kernel: its loadable segments and the Xen ELF notes (xen/elfnote.h) that tell
// a PV domain builder where the kernel wants to live and what it supports. Every offset and size is
// bounds-checked: a kernel image is user input.
import { BootImageError } from './errors.js';

export const XenNote = {
  ENTRY: 1,
  HYPERCALL_PAGE: 2,
  VIRT_BASE: 3,
  PADDR_OFFSET: 4,
  XEN_VERSION: 5,
  GUEST_OS: 6,
  GUEST_VERSION: 7,
  LOADER: 8,
  PAE_MODE: 9,
  FEATURES: 10,
  HV_START_LOW: 12,
  L1_MFN_VALID: 13,
  SUSPEND_CANCEL: 14,
  INIT_P2M: 15,
  MOD_START_PFN: 16,
  SUPPORTED_FEATURES: 17,
  PHYS32_ENTRY: 18,
} as const;

export interface Segment {
  vaddr: bigint;
  paddr: bigint;
  fileOffset: number;
  fileSize: number;
  memSize: number;
}

export interface XenNotes {
  entry?: bigint;
  hypercallPage?: bigint;
  virtBase?: bigint;
  paddrOffset?: bigint;
  initP2m?: bigint;
  guestOs?: string;
  xenVersion?: string;
  loader?: string;
  features?: string;
  modStartPfn?: boolean;
  supportedFeatures?: number;
  phys32Entry?: number;
}

export interface ElfKernel {
  entry: bigint;
  segments: Segment[];
  notes: XenNotes;
  /**
   * Lowest and highest (exclusive) physical load addresses of the segments. A PV loader places segment
   * bytes at virtual address paddr + (VIRT_BASE - PADDR_OFFSET), as libelf does: p_vaddr is not used
   * (Linux's per-CPU segment has p_vaddr 0).
   */
  physStart: bigint;
  physEnd: bigint;
  bytes: Buffer;
}

const PT_LOAD = 1;
const PT_NOTE = 4;
const SHT_NOTE = 7;
const EM_X86_64 = 62;

export function parseElfKernel(bytes: Buffer): ElfKernel {
  const need = (cond: boolean, what: string) => {
    if (!cond) throw new BootImageError(`kernel ELF: ${what}`);
  };
  need(bytes.length >= 64 && bytes.readUInt32BE(0) === 0x7f454c46, 'not an ELF file');
  need(bytes[4] === 2, 'not a 64-bit ELF (only x86_64 PV kernels are supported)');
  need(bytes[5] === 1, 'not little-endian');
  need(bytes.readUInt16LE(18) === EM_X86_64, `machine ${bytes.readUInt16LE(18)} is not x86_64`);
  const entry = bytes.readBigUInt64LE(24);
  const phoff = toNumber(bytes.readBigUInt64LE(32), 'program header offset');
  const shoff = toNumber(bytes.readBigUInt64LE(40), 'section header offset');
  const phentsize = bytes.readUInt16LE(54);
  const phnum = bytes.readUInt16LE(56);
  const shentsize = bytes.readUInt16LE(58);
  const shnum = bytes.readUInt16LE(60);
  need(phentsize >= 56 && phoff + phnum * phentsize <= bytes.length, 'program headers lie outside the file');

  const segments: Segment[] = [];
  const noteRanges: [number, number][] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    const type = bytes.readUInt32LE(at);
    const fileOffset = toNumber(bytes.readBigUInt64LE(at + 8), 'segment offset');
    const fileSize = toNumber(bytes.readBigUInt64LE(at + 32), 'segment file size');
    const memSize = toNumber(bytes.readBigUInt64LE(at + 40), 'segment memory size');
    need(
      fileOffset + fileSize <= bytes.length,
      `segment ${i} (${fileSize} bytes at ${fileOffset}) lies outside the ${bytes.length}-byte file`,
    );
    if (type === PT_LOAD && memSize > 0) {
      need(fileSize <= memSize, `segment ${i} has more file bytes than memory bytes`);
      segments.push({ vaddr: bytes.readBigUInt64LE(at + 16), paddr: bytes.readBigUInt64LE(at + 24), fileOffset, fileSize, memSize });
    } else if (type === PT_NOTE) noteRanges.push([fileOffset, fileSize]);
  }
  need(segments.length > 0, 'no loadable segments');
  // Some kernels carry the Xen notes only in a SHT_NOTE section; read those too.
  if (shoff && shentsize >= 64 && shoff + shnum * shentsize <= bytes.length) {
    for (let i = 0; i < shnum; i++) {
      const at = shoff + i * shentsize;
      if (bytes.readUInt32LE(at + 4) !== SHT_NOTE) continue;
      const off = toNumber(bytes.readBigUInt64LE(at + 24), 'note section offset');
      const size = toNumber(bytes.readBigUInt64LE(at + 32), 'note section size');
      if (off + size <= bytes.length) noteRanges.push([off, size]);
    }
  }
  const notes: XenNotes = {};
  for (const [off, size] of noteRanges) readNotes(bytes, off, size, notes);

  const physStart = segments.reduce((m, s) => (s.paddr < m ? s.paddr : m), segments[0]!.paddr);
  const physEnd = segments.reduce((m, s) => (s.paddr + BigInt(s.memSize) > m ? s.paddr + BigInt(s.memSize) : m), 0n);
  return { entry, segments, notes, physStart, physEnd, bytes };
}

function readNotes(bytes: Buffer, start: number, size: number, notes: XenNotes): void {
  let at = start;
  const end = start + size;
  while (at + 12 <= end) {
    const nameSize = bytes.readUInt32LE(at);
    const descSize = bytes.readUInt32LE(at + 4);
    const type = bytes.readUInt32LE(at + 8);
    const nameAt = at + 12;
    const descAt = nameAt + align4(nameSize);
    const next = descAt + align4(descSize);
    if (next > end || nameSize > 64) throw new BootImageError(`kernel ELF: a note at offset ${at} runs past its section`);
    const name = bytes.toString('latin1', nameAt, nameAt + Math.max(0, nameSize - 1));
    if (name === 'Xen') applyNote(type, bytes.subarray(descAt, descAt + descSize), notes);
    at = next;
  }
}

function applyNote(type: number, desc: Buffer, notes: XenNotes): void {
  const num = () => (desc.length >= 8 ? desc.readBigUInt64LE(0) : desc.length >= 4 ? BigInt(desc.readUInt32LE(0)) : 0n);
  const str = () => desc.toString('latin1').replace(/\0.*$/s, '');
  switch (type) {
    case XenNote.ENTRY:
      notes.entry = num();
      break;
    case XenNote.HYPERCALL_PAGE:
      notes.hypercallPage = num();
      break;
    case XenNote.VIRT_BASE:
      notes.virtBase = num();
      break;
    case XenNote.PADDR_OFFSET:
      notes.paddrOffset = num();
      break;
    case XenNote.INIT_P2M:
      notes.initP2m = num();
      break;
    case XenNote.GUEST_OS:
      notes.guestOs = str();
      break;
    case XenNote.XEN_VERSION:
      notes.xenVersion = str();
      break;
    case XenNote.LOADER:
      notes.loader = str();
      break;
    case XenNote.FEATURES:
      notes.features = str();
      break;
    case XenNote.MOD_START_PFN:
      notes.modStartPfn = num() !== 0n;
      break;
    case XenNote.SUPPORTED_FEATURES:
      notes.supportedFeatures = Number(num());
      break;
    case XenNote.PHYS32_ENTRY:
      notes.phys32Entry = Number(num());
      break;
  }
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

function toNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BootImageError(`kernel ELF: ${what} ${v} is absurd`);
  return Number(v);
}
