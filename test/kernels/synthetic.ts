// Small x86_64 ELF "kernels" with Xen notes, written byte by byte: a custom kernel for the builder tests
// that is fast to compress and whose every field the test chooses.
import { XenNote } from '../../node-agent/xen/builder/elf.js';

export interface SyntheticKernel {
  virtBase?: bigint;
  paddrOffset?: bigint;
  entry?: bigint;
  initP2m?: bigint;
  hypercallPage?: bigint;
  modStartPfn?: boolean;
  /** Segments by physical address; filled with a pattern derived from the offset. */
  segments?: { paddr: bigint; fileSize: number; memSize: number }[];
  /** Put the notes in a SHT_NOTE section only (no PT_NOTE). */
  notesInSectionOnly?: boolean;
}

export function syntheticKernel(k: SyntheticKernel = {}): Buffer {
  const virtBase = k.virtBase ?? 0xffffffff80000000n;
  const segments = k.segments ?? [{ paddr: 0x1000000n, fileSize: 3 * 4096 + 100, memSize: 5 * 4096 }];
  const notes: [number, Buffer][] = [
    [XenNote.GUEST_OS, Buffer.from('linux\0')],
    [XenNote.XEN_VERSION, Buffer.from('xen-3.0\0')],
    [XenNote.VIRT_BASE, u64(virtBase)],
    [XenNote.PADDR_OFFSET, u64(k.paddrOffset ?? 0n)],
    [XenNote.ENTRY, u64(k.entry ?? virtBase + segments[0]!.paddr + 0x40n)],
    [XenNote.INIT_P2M, u64(k.initP2m ?? 0x8000000000n)],
    [XenNote.FEATURES, Buffer.from('!writable_page_tables|pae_pgdir_above_4gb\0')],
    [XenNote.LOADER, Buffer.from('generic\0')],
  ];
  if (k.hypercallPage !== undefined) notes.push([XenNote.HYPERCALL_PAGE, u64(k.hypercallPage)]);
  if (k.modStartPfn ?? true) notes.push([XenNote.MOD_START_PFN, u32(1)]);
  const noteBytes = Buffer.concat(notes.map(([type, desc]) => note('Xen', type, desc)));

  const phnum = segments.length + (k.notesInSectionOnly ? 0 : 1);
  const phoff = 64;
  let dataAt = phoff + phnum * 56;
  const noteAt = dataAt;
  dataAt += noteBytes.length;
  dataAt = (dataAt + 4095) & ~4095;
  const segmentOffsets = segments.map((s) => {
    const at = dataAt;
    dataAt += (s.fileSize + 4095) & ~4095;
    return at;
  });
  const shoff = dataAt;
  const shnum = 2;
  const out = Buffer.alloc(shoff + shnum * 64);
  out.writeUInt32BE(0x7f454c46, 0);
  out[4] = 2; // 64-bit
  out[5] = 1; // little-endian
  out[6] = 1;
  out.writeUInt16LE(2, 16); // ET_EXEC
  out.writeUInt16LE(62, 18); // x86_64
  out.writeUInt32LE(1, 20);
  out.writeBigUInt64LE(segments[0]!.paddr, 24); // e_entry is physical in Linux's vmlinux
  out.writeBigUInt64LE(BigInt(phoff), 32);
  out.writeBigUInt64LE(BigInt(shoff), 40);
  out.writeUInt16LE(64, 52);
  out.writeUInt16LE(56, 54);
  out.writeUInt16LE(phnum, 56);
  out.writeUInt16LE(64, 58);
  out.writeUInt16LE(shnum, 60);
  segments.forEach((s, i) => {
    const at = phoff + i * 56;
    out.writeUInt32LE(1, at); // PT_LOAD
    out.writeUInt32LE(7, at + 4); // RWX
    out.writeBigUInt64LE(BigInt(segmentOffsets[i]!), at + 8);
    out.writeBigUInt64LE(virtBase + s.paddr, at + 16);
    out.writeBigUInt64LE(s.paddr, at + 24);
    out.writeBigUInt64LE(BigInt(s.fileSize), at + 32);
    out.writeBigUInt64LE(BigInt(s.memSize), at + 40);
    for (let b = 0; b < s.fileSize; b++) out[segmentOffsets[i]! + b] = (b * 7 + i) & 0xff;
  });
  if (!k.notesInSectionOnly) {
    const at = phoff + segments.length * 56;
    out.writeUInt32LE(4, at); // PT_NOTE
    out.writeBigUInt64LE(BigInt(noteAt), at + 8);
    out.writeBigUInt64LE(BigInt(noteBytes.length), at + 32);
  }
  noteBytes.copy(out, noteAt);
  // Section 0 is the null section; section 1 is the notes (SHT_NOTE).
  const sh1 = shoff + 64;
  out.writeUInt32LE(7, sh1 + 4);
  out.writeBigUInt64LE(BigInt(noteAt), sh1 + 24);
  out.writeBigUInt64LE(BigInt(noteBytes.length), sh1 + 32);
  return out;
}

/** A bzImage around a payload: boot sector, setup header fields, and the appended size word. */
export function syntheticBzImage(payload: Buffer, uncompressedSize: number, protocol = 0x20f): Buffer {
  const setupSects = 3;
  const withSize = Buffer.concat([payload, u32(uncompressedSize)]);
  const out = Buffer.alloc((setupSects + 1) * 512 + 16 + withSize.length);
  out[0x1f1] = setupSects;
  out.writeUInt16LE(0xaa55, 0x1fe);
  out.write('HdrS', 0x202, 'latin1');
  out.writeUInt16LE(protocol, 0x206);
  out.writeUInt32LE(16, 0x248); // payload_offset, from the end of the setup code
  out.writeUInt32LE(withSize.length, 0x24c);
  withSize.copy(out, (setupSects + 1) * 512 + 16);
  return out;
}

function note(name: string, type: number, desc: Buffer): Buffer {
  const n = Buffer.from(name + '\0');
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const head = Buffer.alloc(12);
  head.writeUInt32LE(n.length, 0);
  head.writeUInt32LE(desc.length, 4);
  head.writeUInt32LE(type, 8);
  return Buffer.concat([head, pad(n), pad(desc)]);
}

function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}
