// A squashfs 4.0 image of a few small regular files in its root directory, written in JavaScript with
// nothing compressed: the guest's config disk (launch.json) without a mksquashfs process per launch,
// which under a busy or emulated dom0 costs more than the rest of the config step. The layout is
// mksquashfs's: superblock, data blocks, inode table, directory table, id table; no fragments, no
// export or xattr tables. Inputs past the bounds below are refused, not split across metadata blocks.
const MAGIC = 0x73717368;
const BLOCK_LOG = 17;
const BLOCK_SIZE = 1 << BLOCK_LOG;
/** A metadata block holds at most this many bytes; each of our tables fits in one. */
const METADATA_SIZE = 8192;
const METADATA_UNCOMPRESSED = 0x8000;
const DATA_UNCOMPRESSED = 1 << 24;
const INVALID = 0xffffffffffffffffn;
/** Uncompressed inodes, data, fragments and ids; no fragments, no xattrs. */
const FLAGS = 0x0001 | 0x0002 | 0x0008 | 0x0010 | 0x0200 | 0x0800;
/** gzip: the id every squashfs kernel driver supports; nothing here is compressed by it. */
const COMPRESSION_GZIP = 1;
const DIR_INODE = 1;
const FILE_INODE = 2;
/** The image is padded to this (a loop device's size is whole sectors; mksquashfs pads to 4 KiB). */
const PAD = 4096;

export interface FlatFile {
  /** A plain name: no slash, not "." or "..", 1-255 bytes. */
  name: string;
  data: Buffer;
  /** Permission bits (0o644). */
  mode: number;
}

/** The most files, and bytes per file, an image takes (its inode and directory tables stay one block each). */
export const FLAT_SQUASHFS_LIMITS = { files: 64, fileBytes: 1 << 20 } as const;

/** The image's bytes: files owned by root, mtime 0, in a root directory of mode 0755. */
export function flatSquashfs(files: readonly FlatFile[]): Buffer {
  if (files.length < 1 || files.length > FLAT_SQUASHFS_LIMITS.files)
    throw new RangeError(`a flat squashfs takes 1 to ${FLAT_SQUASHFS_LIMITS.files} files`);
  const sorted = [...files].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  for (const [i, f] of sorted.entries()) {
    const len = Buffer.byteLength(f.name);
    if (len < 1 || len > 255 || f.name.includes('/') || f.name.includes('\0') || f.name === '.' || f.name === '..')
      throw new RangeError(`not a plain file name: ${JSON.stringify(f.name)}`);
    if (i > 0 && sorted[i - 1]!.name === f.name) throw new RangeError(`${f.name} is given twice`);
    if (f.data.length > FLAT_SQUASHFS_LIMITS.fileBytes)
      throw new RangeError(`${f.name}: more than ${FLAT_SQUASHFS_LIMITS.fileBytes} bytes`);
    if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o7777)
      throw new RangeError(`${f.name}: mode ${f.mode} is not permission bits`);
  }
  const parts: Buffer[] = [Buffer.alloc(96)];
  let pos = 96;
  // Data: each file's blocks, one after another.
  const starts = sorted.map((f) => {
    const start = pos;
    parts.push(f.data);
    pos += f.data.length;
    return start;
  });
  // Inodes: the files (numbers 1..n), then the root directory (n + 1).
  const inodes: Buffer[] = [];
  let inodeBytes = 0;
  const inodeOffsets: number[] = [];
  sorted.forEach((f, i) => {
    const blocks = Math.ceil(f.data.length / BLOCK_SIZE);
    const b = Buffer.alloc(32 + 4 * blocks);
    header(b, FILE_INODE, f.mode, i + 1);
    b.writeUInt32LE(f.data.length === 0 ? 0 : starts[i]!, 16); // start_block
    b.writeUInt32LE(0xffffffff, 20); // no fragment
    b.writeUInt32LE(0, 24); // offset in the fragment
    b.writeUInt32LE(f.data.length, 28);
    for (let k = 0; k < blocks; k++) b.writeUInt32LE(Math.min(BLOCK_SIZE, f.data.length - k * BLOCK_SIZE) | DATA_UNCOMPRESSED, 32 + 4 * k);
    inodeOffsets.push(inodeBytes);
    inodes.push(b);
    inodeBytes += b.length;
  });
  // The directory listing: one header (entries share inode block 0) and an entry per file.
  const dir: Buffer[] = [];
  if (sorted.length > 0) {
    const h = Buffer.alloc(12);
    h.writeUInt32LE(sorted.length - 1, 0); // count - 1
    h.writeUInt32LE(0, 4); // the inodes' metadata block, from the inode table's start
    h.writeUInt32LE(1, 8); // inode numbers are relative to this one
    dir.push(h);
    sorted.forEach((f, i) => {
      const name = Buffer.from(f.name);
      const e = Buffer.alloc(8 + name.length);
      e.writeUInt16LE(inodeOffsets[i]!, 0);
      e.writeInt16LE(i, 2); // inode number - 1
      e.writeUInt16LE(FILE_INODE, 4);
      e.writeUInt16LE(name.length - 1, 6);
      name.copy(e, 8);
      dir.push(e);
    });
  }
  const listing = Buffer.concat(dir);
  const root = Buffer.alloc(32);
  const rootNumber = sorted.length + 1;
  header(root, DIR_INODE, 0o755, rootNumber);
  root.writeUInt32LE(0, 16); // the listing's metadata block, from the directory table's start
  root.writeUInt32LE(2, 20); // nlink: "." and the parent's entry (no subdirectories)
  root.writeUInt16LE(listing.length + 3, 24); // the kernel counts "." and ".." as 3 bytes
  root.writeUInt16LE(0, 26); // the listing's offset in its block
  root.writeUInt32LE(rootNumber + 1, 28); // the root's parent: one past the last inode, as mksquashfs writes
  const rootOffset = inodeBytes;
  inodes.push(root);
  const inodeTable = metadataBlock(Buffer.concat(inodes), 'inode table');
  const dirTable = metadataBlock(listing, 'directory table');
  const inodeTableStart = pos;
  parts.push(inodeTable);
  pos += inodeTable.length;
  const dirTableStart = pos;
  parts.push(dirTable);
  pos += dirTable.length;
  // One id, root's (uid and gid 0), in one metadata block, and the table's index of that block.
  const ids = metadataBlock(Buffer.alloc(4), 'id table');
  const idBlock = pos;
  parts.push(ids);
  pos += ids.length;
  const idIndex = Buffer.alloc(8);
  idIndex.writeBigUInt64LE(BigInt(idBlock));
  const idTableStart = pos;
  parts.push(idIndex);
  pos += 8;
  const bytesUsed = pos;

  const sb = parts[0]!;
  sb.writeUInt32LE(MAGIC, 0);
  sb.writeUInt32LE(sorted.length + 1, 4); // inodes
  sb.writeUInt32LE(0, 8); // mkfs_time
  sb.writeUInt32LE(BLOCK_SIZE, 12);
  sb.writeUInt32LE(0, 16); // fragments
  sb.writeUInt16LE(COMPRESSION_GZIP, 20);
  sb.writeUInt16LE(BLOCK_LOG, 22);
  sb.writeUInt16LE(FLAGS, 24);
  sb.writeUInt16LE(1, 26); // ids
  sb.writeUInt16LE(4, 28); // major
  sb.writeUInt16LE(0, 30); // minor
  sb.writeBigUInt64LE(BigInt(rootOffset), 32); // root inode: block 0, this offset
  sb.writeBigUInt64LE(BigInt(bytesUsed), 40);
  sb.writeBigUInt64LE(BigInt(idTableStart), 48);
  sb.writeBigUInt64LE(INVALID, 56); // xattr id table
  sb.writeBigUInt64LE(BigInt(inodeTableStart), 64);
  sb.writeBigUInt64LE(BigInt(dirTableStart), 72);
  sb.writeBigUInt64LE(BigInt(idBlock), 80); // fragment table: none (fragments 0); mksquashfs points it at the next table
  sb.writeBigUInt64LE(INVALID, 88); // export (lookup) table
  parts.push(Buffer.alloc((PAD - (bytesUsed % PAD)) % PAD));
  return Buffer.concat(parts);
}

/** An inode's common part: type, mode, uid and gid (id index 0: root), mtime 0, number. */
function header(b: Buffer, type: number, mode: number, inodeNumber: number): void {
  b.writeUInt16LE(type, 0);
  b.writeUInt16LE(mode, 2);
  b.writeUInt16LE(0, 4);
  b.writeUInt16LE(0, 6);
  b.writeUInt32LE(0, 8);
  b.writeUInt32LE(inodeNumber, 12);
}

/** `bytes` as one uncompressed metadata block (2-byte header). */
function metadataBlock(bytes: Buffer, what: string): Buffer {
  if (bytes.length > METADATA_SIZE) throw new RangeError(`the ${what} would need more than one metadata block`);
  const b = Buffer.alloc(2 + bytes.length);
  b.writeUInt16LE(bytes.length | METADATA_UNCOMPRESSED, 0);
  bytes.copy(b, 2);
  return b;
}
