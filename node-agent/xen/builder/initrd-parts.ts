// What the builder copies to the guest as its initrd: the (shared) initrd file and, after it at a
// 4-byte boundary, an archive of the guest's own (guest-init's launch.json). Linux unpacks every cpio
// archive of the initrd in turn into the same rootfs, so per-guest files need no disk of their own:
// no loop device and no blkback instance (~1.2 MiB of dom0 slab each) per guest.
// Format: Documentation/driver-api/early-userspace/buffer-format.rst.

/** Zeros that put what follows `length` bytes at a 4-byte boundary, where the kernel looks for it. */
export function alignPadding(length: number): number {
  return (4 - (length % 4)) % 4;
}

export function initrdParts(initrd: Buffer | undefined, append: Buffer | undefined): Buffer[] {
  const parts = initrd?.length ? [initrd] : [];
  if (!append?.length) return parts;
  const pad = alignPadding(initrd?.length ?? 0);
  if (pad) parts.push(Buffer.alloc(pad));
  parts.push(append);
  return parts;
}
