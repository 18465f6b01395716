// Finding the kernel inside a bzImage through its setup header (Documentation/arch/x86/boot.rst), not by
// scanning for compression magic: the header says where the compressed payload is and how long.
import { BootImageError } from './errors.js';

export interface KernelPayload {
  /** Compressed (or plain ELF) kernel bytes. */
  payload: Buffer;
  /** Boot protocol version, e.g. 0x20f. */
  protocol: number;
  /** From the payload when it is an ELF already (vmlinux), else undefined. */
  isElf: boolean;
}

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

export function findKernelPayload(image: Buffer): KernelPayload {
  if (image.length >= 4 && image.subarray(0, 4).equals(ELF_MAGIC)) return { payload: image, protocol: 0, isElf: true };
  if (image.length < 0x250) throw new BootImageError(`kernel image is ${image.length} bytes: too short for a bzImage or an ELF`);
  if (image.readUInt16LE(0x1fe) !== 0xaa55 || image.toString('latin1', 0x202, 0x206) !== 'HdrS') {
    throw new BootImageError('kernel image is neither an ELF (vmlinux) nor a bzImage (no "HdrS" setup header)');
  }
  const protocol = image.readUInt16LE(0x206);
  // payload_offset/payload_length exist from boot protocol 2.08 (Linux 2.6.26).
  if (protocol < 0x208)
    throw new BootImageError(`bzImage boot protocol ${protocolText(protocol)} is older than 2.08 and has no payload fields`);
  const setupSects = image[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + image.readUInt32LE(0x248);
  const length = image.readUInt32LE(0x24c);
  if (length === 0 || start + length > image.length) {
    throw new BootImageError(`bzImage payload (offset ${start}, ${length} bytes) lies outside the ${image.length}-byte file`);
  }
  const payload = image.subarray(start, start + length);
  return { payload, protocol, isElf: payload.subarray(0, 4).equals(ELF_MAGIC) };
}

function protocolText(p: number): string {
  return `${p >> 8}.${(p & 0xff).toString().padStart(2, '0')}`;
}
