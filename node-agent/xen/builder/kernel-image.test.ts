import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { debianKernelPath } from '../../../test/kernels/debian.js';
import { syntheticBzImage, syntheticKernel } from '../../../test/kernels/synthetic.js';
import { findKernelPayload } from './bzimage.js';
import { decompressKernel, detectCompression } from './decompress.js';
import { parseElfKernel, type ElfKernel } from './elf.js';
import { BootImageError } from './errors.js';

const load = (image: Buffer): ElfKernel => parseElfKernel(decompressKernel(findKernelPayload(image).payload));

test("Debian's stock kernel: bzImage header → xz (with the x86 BCJ filter) → ELF with Xen notes", () => {
  const image = readFileSync(debianKernelPath());
  const { payload, protocol } = findKernelPayload(image);
  assert.ok(protocol >= 0x20c, `boot protocol 0x${protocol.toString(16)}`);
  assert.equal(detectCompression(payload), 'xz');
  const elf = load(image);
  assert.equal(elf.notes.guestOs, 'linux');
  assert.equal(elf.notes.virtBase, 0xffffffff80000000n);
  assert.equal(elf.notes.paddrOffset, 0n);
  assert.equal(elf.notes.initP2m, 0x8000000000n);
  assert.equal(elf.notes.modStartPfn, true);
  assert.ok(elf.notes.entry! > elf.notes.virtBase!, 'the entry point is a kernel virtual address');
  assert.equal(elf.physStart, 0x1000000n);
  assert.ok(elf.segments.length >= 3);
  assert.ok(elf.segments.every((s) => s.paddr >= elf.physStart && s.paddr + BigInt(s.memSize) <= elf.physEnd));
  // Stable kernels since mid-2024 have no hypercall page note (the builder must not need one).
  assert.equal(elf.notes.hypercallPage, undefined);
});

const kernel = syntheticKernel({ hypercallPage: 0xffffffff81001000n });

test('gzip, zstd and lz4 (legacy format) payloads decode to the same kernel', () => {
  const zstd = execFileSync('zstd', ['-q', '-c', '-19'], { input: kernel });
  const lz4 = execFileSync('lz4', ['-q', '-l', '-c'], { input: kernel });
  for (const [name, payload] of [
    ['gzip', gzipSync(kernel)],
    ['zstd', zstd],
    ['lz4', lz4],
  ] as const) {
    const image = syntheticBzImage(payload, kernel.length);
    assert.equal(detectCompression(findKernelPayload(image).payload), name);
    assert.ok(decompressKernel(findKernelPayload(image).payload).equals(kernel), name);
  }
  const xz = execFileSync('xz', ['-q', '-c', '--format=xz', '--check=crc32', '--x86', '--lzma2=preset=6'], { input: kernel });
  assert.ok(decompressKernel(findKernelPayload(syntheticBzImage(xz, kernel.length)).payload).equals(kernel));
});

test('a plain ELF (vmlinux) is accepted as it is', () => {
  const elf = load(kernel);
  assert.equal(elf.notes.hypercallPage, 0xffffffff81001000n);
  assert.deepEqual(
    elf.segments.map((s) => [s.paddr, s.fileSize, s.memSize]),
    [[0x1000000n, 3 * 4096 + 100, 5 * 4096]],
  );
});

test('notes found only in a SHT_NOTE section are read too', () => {
  const elf = parseElfKernel(syntheticKernel({ notesInSectionOnly: true }));
  assert.equal(elf.notes.virtBase, 0xffffffff80000000n);
});

test('broken or unsupported images are clear errors', () => {
  const cases: [Buffer, RegExp][] = [
    [Buffer.alloc(100), /too short for a bzImage or an ELF/],
    [Buffer.alloc(0x400), /neither an ELF \(vmlinux\) nor a bzImage/],
    [syntheticBzImage(gzipSync(kernel), kernel.length, 0x206), /boot protocol 2\.06 is older than 2\.08/],
    [syntheticBzImage(Buffer.from('BZh91AY&SY'), 10), /bzip2-compressed; krata loads gzip, xz, zstd and lz4/],
    [syntheticBzImage(Buffer.from('nonsense!!'), 10), /unknown compression \(first bytes 6e6f6e73656e\)/],
    [syntheticBzImage(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1, 2]), 0x7fffffff), /claims 2147483647 bytes decompressed/],
    [syntheticBzImage(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1, 2]), 4096), /xz kernel payload does not decode/],
    [syntheticBzImage(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0]), 4096), /gzip kernel payload does not decode/],
    [syntheticBzImage(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0]), 4096), /zstd kernel payload does not decode/],
    [
      syntheticBzImage(Buffer.concat([Buffer.from([0x02, 0x21, 0x4c, 0x18]), Buffer.from([0xff, 0xff, 0, 0])]), 4096),
      /lz4 kernel payload has a block of 65535 bytes past its end/,
    ],
  ];
  for (const [image, message] of cases)
    assert.throws(
      () => load(image),
      (e: Error) => e instanceof BootImageError && message.test(e.message),
      String(message),
    );
  const truncated = syntheticBzImage(gzipSync(kernel), kernel.length);
  truncated.writeUInt32LE(1 << 30, 0x24c);
  assert.throws(() => load(truncated), /payload \(offset 2064, 1073741824 bytes\) lies outside/);
});

test('hostile ELF headers are refused before any out-of-bounds read', () => {
  const bad = Buffer.from(kernel);
  bad.writeBigUInt64LE(1n << 40n, 64 + 8); // first segment's file offset far past the end
  assert.throws(() => parseElfKernel(bad), /segment 0 \(\d+ bytes at 1099511627776\) lies outside/);
  const notElf64 = Buffer.from(kernel);
  notElf64[4] = 1;
  assert.throws(() => parseElfKernel(notElf64), /not a 64-bit ELF/);
  const noteOverrun = Buffer.from(kernel);
  const noteAt = Number(noteOverrun.readBigUInt64LE(64 + 56 + 8));
  noteOverrun.writeUInt32LE(0xffff, noteAt + 4); // a descriptor longer than the note segment
  assert.throws(() => parseElfKernel(noteOverrun), /runs past its section/);
});
