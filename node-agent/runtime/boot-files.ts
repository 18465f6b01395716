// The guests' kernel and initrd, read once and kept while the file stays the same: every launch of
// the node's default kernel would otherwise copy it again (an uncompressed vmlinux is ~66 MB, seconds
// to read in an emulated dom0). A file is the same while its device, inode, size, mtime and ctime are;
// a change of any reads it again. The cache holds at most `maxBytes` (least recently used go first);
// a file larger than that is read for each launch and not kept.
import { readFile, stat } from 'node:fs/promises';

/** Room for an uncompressed kernel and an initrd. */
export const DEFAULT_BOOT_FILE_CACHE_BYTES = 128 * 1024 * 1024;

interface Entry {
  identity: string;
  data: Buffer;
}

export class BootFileCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    private readonly maxBytes = DEFAULT_BOOT_FILE_CACHE_BYTES,
    private readonly read: (path: string) => Promise<Buffer> = (p) => readFile(p),
  ) {}

  /** The file's bytes. Callers must not change them: the next launch gets the same Buffer. */
  async get(path: string): Promise<Buffer> {
    const before = await identity(path);
    const hit = this.entries.get(path);
    if (hit && hit.identity === before) {
      // Most recently used last.
      this.entries.delete(path);
      this.entries.set(path, hit);
      return hit.data;
    }
    this.drop(path);
    const data = await this.read(path);
    // Changed while being read: used for this launch, read again for the next.
    if ((await identity(path)) !== before || data.length > this.maxBytes) return data;
    for (const [p, e] of this.entries) {
      if (this.bytes + data.length <= this.maxBytes) break;
      this.drop(p, e);
    }
    this.entries.set(path, { identity: before, data });
    this.bytes += data.length;
    return data;
  }

  /** Bytes kept now. */
  get size(): number {
    return this.bytes;
  }

  private drop(path: string, e = this.entries.get(path)): void {
    if (!e) return;
    this.entries.delete(path);
    this.bytes -= e.data.length;
  }
}

async function identity(path: string): Promise<string> {
  const s = await stat(path, { bigint: true });
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}
