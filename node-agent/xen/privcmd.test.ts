// What runs without Xen: the libc layer, and the one clear error when Xen is not there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { XenControl } from './control.js';
import { NotOnXenError, Privcmd, WINDOW_BYTES } from './privcmd.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, SysError, sysIoctl, sysMmap, sysMmapOver } from '../../lib/libc.js';

const onXen = existsSync('/dev/xen/privcmd');

test('without /dev/xen/privcmd, opening it is a NotOnXenError that says what is missing', { skip: onXen && 'this host runs Xen' }, () => {
  assert.throws(
    () => Privcmd.open(),
    (e: Error) => e instanceof NotOnXenError && /\/dev\/xen\/privcmd is missing/.test(e.message),
  );
});

test('a device that is not privcmd does not answer hypercalls: NotOnXenError, not a crash', () => {
  const privcmd = Privcmd.open({ privcmd: '/dev/null', hypercall: '/nonexistent' });
  try {
    assert.throws(
      () => new XenControl(privcmd).version(),
      (e: Error) => e instanceof NotOnXenError && /hypervisor does not answer \(xen_version: ENOTTY\)/.test(e.message),
    );
  } finally {
    privcmd.close();
  }
});

test('hypercall buffers are page-rounded, zeroed, locked memory with a real address', () => {
  const privcmd = Privcmd.open({ privcmd: '/dev/null', hypercall: '/nonexistent' });
  const buf = privcmd.buffer(100);
  try {
    assert.equal(buf.bytes.length, 100);
    assert.ok(buf.bytes.every((b) => b === 0));
    assert.equal(buf.address % 4096n, 0n);
    buf.bytes.write('xen');
    assert.equal(buf.bytes.toString('latin1', 0, 3), 'xen');
  } finally {
    buf.release();
    privcmd.close();
  }
});

test('libc errors carry the errno name', () => {
  assert.throws(
    () => sysIoctl(987654, 0x5401, null, 'ioctl TCGETS'),
    (e: Error) => e instanceof SysError && e.message === 'ioctl TCGETS: EBADF',
  );
  const m = sysMmap(8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  m.bytes[8191] = 7;
  assert.equal(m.bytes.length, 8192);
  m.unmap();
});

test('the probe command reports NotOnXen as one line and exit 1', { skip: onXen && 'this host runs Xen' }, () => {
  const r = spawnSync(process.execPath, [join(import.meta.dirname, 'probe-main.js')], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.equal(
    r.stderr,
    'krata needs a Xen dom0: /dev/xen/privcmd is missing (is this machine running Xen as dom0, with the xen_privcmd module loaded?)\n',
  );
});

/** The process's mappings of exactly `bytes` bytes (from /proc/self/maps). */
function mappingsOf(bytes: number): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => {
      const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(l);
      return m && BigInt(`0x${m[2]}`) - BigInt(`0x${m[1]}`) === BigInt(bytes);
    }).length;
}

test('large foreign mappings reuse one reserved window: failures leave no mapping behind, close releases it', async () => {
  // /dev/zero maps like a device but refuses the privcmd ioctl: every mapForeign fails after mapping.
  const privcmd = Privcmd.open({ privcmd: '/dev/zero', hypercall: '/nonexistent' });
  const before = mappingsOf(WINDOW_BYTES);
  const frames = new BigUint64Array(1024); // 4 MiB: large enough for a window
  try {
    for (let i = 0; i < 4; i++) await assert.rejects(privcmd.mapForeign(1, frames), SysError);
    assert.equal(mappingsOf(WINDOW_BYTES), before + 1, 'one window, reused');
    await assert.rejects(privcmd.mapForeign(1, [1n]), SysError); // small: no window
    assert.equal(mappingsOf(WINDOW_BYTES), before + 1);
  } finally {
    privcmd.close();
  }
  assert.equal(mappingsOf(WINDOW_BYTES), before);
});

test('sysMmapOver replaces a mapping in place and its view sees the new pages', () => {
  const region = sysMmap(16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  try {
    region.bytes.fill(7);
    sysMmapOver(region, 8 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    assert.equal(region.bytes[0], 0, 'fresh pages under the old view');
    assert.equal(region.bytes[8 * 4096], 7, 'the rest untouched');
    assert.throws(() => sysMmapOver(region, 32 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS), RangeError);
  } finally {
    region.unmap();
  }
});
