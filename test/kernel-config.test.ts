// krata's guest kernel config: kernel/guest.config merged onto tinyconfig with Debian's
// linux-source-6.1 must keep every option it asks for (Kconfig drops an option whose dependencies
// are missing, silently; kernel/build.sh --config-only fails then, naming them). The full build is
// `kernel/build.sh OUT` (minutes; not run here).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../lib/package-root.js';

test('every option of kernel/guest.config survives Kconfig on Linux 6.1', () => {
  const out = mkdtempSync(join(tmpdir(), 'krata-kconfig-'));
  try {
    const r = spawnSync(join(repoRoot(), 'kernel/build.sh'), ['--config-only', out], { encoding: 'utf8', timeout: 600_000 });
    assert.equal(
      r.status,
      0,
      r.stderr
        .split('\n')
        .filter((l) => !/redefined|Previous value|New value|override/.test(l))
        .join('\n'),
    );
    const config = readFileSync(join(out, 'config'), 'utf8');
    for (const option of [
      'CONFIG_XEN_PV=y',
      'CONFIG_XEN_BLKDEV_FRONTEND=y',
      'CONFIG_XEN_NETDEV_FRONTEND=y',
      'CONFIG_HVC_XEN=y',
      'CONFIG_SQUASHFS_ZSTD=y',
      'CONFIG_OVERLAY_FS=y',
      'CONFIG_IPV6=y',
    ]) {
      assert.ok(config.split('\n').includes(option), `${option} missing from the merged config`);
    }
    assert.ok(!config.includes('CONFIG_MODULES=y'), 'everything built in: no module support needed');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
