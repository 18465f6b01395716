// The guest's initrd: a cpio archive in the kernel's "newc" format, written here so that building one
// needs neither root nor a cpio binary. It holds /init (guest-init) and, for a stock kernel, the
// modules guest-init loads, listed in load order in /lib/modules/krata.order.
export interface InitrdEntry {
  /** Path inside the initrd, relative ("init", "lib/modules/x.ko"); parents are added as needed. */
  path: string;
  /** File contents; absent for a directory. */
  data?: Buffer;
  /** Permission bits (0o755 for executables); 0o755 for directories, 0o644 for files by default. */
  mode?: number;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

function checkPath(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.some((p) => p === '..' || p.includes('\0')))
    throw new Error(`initrd path ${JSON.stringify(path)} is not a plain relative path`);
  return parts;
}

function header(ino: number, mode: number, size: number, name: string): Buffer {
  const nameBytes = Buffer.from(name + '\0');
  const fields = [ino, mode, 0, 0, mode & S_IFDIR ? 2 : 1, 0, size, 0, 0, 0, 0, nameBytes.length, 0];
  const head = Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join(''), 'ascii');
  const pad = (4 - ((head.length + nameBytes.length) % 4)) % 4;
  return Buffer.concat([head, nameBytes, Buffer.alloc(pad)]);
}

/** The archive's bytes: directories first (parents before children), then files, then the trailer. */
export function buildInitrd(entries: InitrdEntry[]): Buffer {
  const dirs = new Map<string, number>();
  const files = new Map<string, InitrdEntry>();
  for (const e of entries) {
    const parts = checkPath(e.path);
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!dirs.has(dir)) dirs.set(dir, 0o755);
    }
    const path = parts.join('/');
    if (e.data === undefined) dirs.set(path, e.mode ?? 0o755);
    else {
      if (files.has(path)) throw new Error(`initrd path ${path} is given twice`);
      files.set(path, e);
    }
  }
  for (const path of files.keys()) if (dirs.has(path)) throw new Error(`initrd path ${path} is both a file and a directory`);
  const out: Buffer[] = [];
  let ino = 1;
  for (const [path, mode] of [...dirs].sort(([a], [b]) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1))) {
    out.push(header(ino++, S_IFDIR | (mode & 0o7777), 0, path));
  }
  for (const [path, e] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    out.push(
      header(ino++, S_IFREG | ((e.mode ?? 0o644) & 0o7777), e.data!.length, path),
      e.data!,
      Buffer.alloc((4 - (e.data!.length % 4)) % 4),
    );
  }
  out.push(header(0, 0, 0, 'TRAILER!!!'));
  return Buffer.concat(out);
}

/**
 * The initrd krata gives a guest: guest-init as /init and, for a stock kernel, the modules it loads
 * before it mounts its disks, listed in load order in /lib/modules/krata.order (guest-init's contract).
 */
export function guestInitrdEntries(init: Buffer, modules: { name: string; data: Buffer }[]): InitrdEntry[] {
  return [
    { path: 'init', data: init, mode: 0o755 },
    ...modules.map((m) => ({ path: `lib/modules/krata/${m.name}`, data: m.data })),
    { path: 'lib/modules/krata.order', data: Buffer.from(modules.map((m) => `/lib/modules/krata/${m.name}\n`).join('')) },
  ];
}
