// Where the tests find Debian's stock kernel: $KRATA_TEST_KERNEL, or what scripts/fetch-test-kernel
// cached (scripts/install-deps runs it). Missing is a failure with the fix, never a skip.
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function debianKernelPath(): string {
  if (process.env.KRATA_TEST_KERNEL) return process.env.KRATA_TEST_KERNEL;
  const dir = join(process.env.KRATA_CACHE ?? join(homedir(), '.cache/krata'), 'kernels');
  const found = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => /^vmlinuz-\d/.test(f))
        .sort()
    : [];
  if (found.length === 0) throw new Error(`no Debian kernel in ${dir}: run scripts/install-deps (or scripts/fetch-test-kernel)`);
  return join(dir, found.at(-1)!);
}
