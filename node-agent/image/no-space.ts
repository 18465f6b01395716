// A full disk is said by name, whichever writer hit it (mksquashfs, a download, a metadata file):
// "no space left on device (ENOSPC)", not the broken pipe or retry it causes further on.

/** A write that failed because the filesystem is full (or the quota is used up). */
export class NoSpaceError extends Error {
  constructor(
    message: string,
    readonly code: 'ENOSPC' | 'EDQUOT' = 'ENOSPC',
  ) {
    super(message);
  }
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
