// Real loop devices (root on Linux): attach read-only, read the backing bytes through the device,
// refuse writes, detach without leaving anything behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachLoop, detachLoop } from './loop.js';
import { xvdDeviceNumber } from './vbd.js';

test('a file attaches read-only to a loop device and detaches cleanly', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-loop-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'disk.img');
  const content = Buffer.alloc(64 * 1024, 0x5a);
  content.write('krata-disk', 0);
  writeFileSync(file, content);
  const loop = attachLoop(file);
  let detached = false;
  t.after(() => detached || detachLoop(loop.path));
  const name = loop.path.replace('/dev/', '');
  assert.equal(loop.major, 7);
  assert.equal(readFileSync(`/sys/block/${name}/ro`, 'utf8').trim(), '1');
  assert.equal(readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim(), file);
  assert.ok(readFileSync(loop.path).subarray(0, content.length).equals(content), 'the device reads the file');
  assert.throws(() => {
    const fd = openSync(loop.path, 'r+');
    try {
      writeSync(fd, Buffer.from('x'));
    } finally {
      closeSync(fd);
    }
  }, /EROFS|EPERM|EACCES/);
  detachLoop(loop.path);
  detached = true;
  assert.equal(existsSync(`/sys/block/${name}/loop/backing_file`), false, 'nothing is attached any more');
  detachLoop(loop.path); // detaching twice is harmless
  assert.throws(() => detachLoop('/dev/sda'), /not a loop device/);
});

test('a missing backing file is an error before any loop device is taken', () => {
  assert.throws(() => attachLoop('/nonexistent/disk.img'), /ENOENT/);
});

test('virtual disk names map to xen-blkfront device numbers', () => {
  assert.equal(xvdDeviceNumber('xvda'), 51712);
  assert.equal(xvdDeviceNumber('xvdb'), 51728);
  assert.throws(() => xvdDeviceNumber('sda'), /unsupported virtual disk name/);
});
