// A full disk is said by name, whichever writer hit it (mksquashfs, a download, a metadata file):
// "no space left on device (ENOSPC)", not the broken pipe or retry it causes further on.

/** A write that failed because the filesystem is full (or the quota is used up). */
export class NoSpaceError extends Error {
  constructor(
    /** What was being written, and where ("image sha256:… to /var/lib/krata/images"). */
    readonly what: string,
    /** What the writer said ("mksquashfs: Write failed because No space left on device"). */
    readonly detail: string,
    readonly code: 'ENOSPC' | 'EDQUOT' = 'ENOSPC',
  ) {
    super(`${describeNoSpace(code)} writing ${what}${detail ? ` (${detail})` : ''}`);
  }
}

/** `e` said as a NoSpaceError about `what`, if it is one (a NoSpaceError or an errno error); else undefined. */
export function asNoSpace(e: unknown, what: string): NoSpaceError | undefined {
  if (e instanceof NoSpaceError) return new NoSpaceError(what, e.detail, e.code);
  if (isNoSpace(e)) return new NoSpaceError(what, e.message, e.code);
  return undefined;
}

export function isNoSpace(e: unknown): e is Error & { code: 'ENOSPC' | 'EDQUOT' } {
  const code = (e as { code?: unknown } | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** Tools print strerror(): "No space left on device", "Disk quota exceeded". */
export function noSpaceIn(text: string): 'ENOSPC' | 'EDQUOT' | undefined {
  if (/No space left on device/i.test(text)) return 'ENOSPC';
  if (/Disk quota exceeded/i.test(text)) return 'EDQUOT';
  return undefined;
}

export function describeNoSpace(code: 'ENOSPC' | 'EDQUOT'): string {
  return code === 'ENOSPC' ? 'no space left on device (ENOSPC)' : 'disk quota exceeded (EDQUOT)';
}
