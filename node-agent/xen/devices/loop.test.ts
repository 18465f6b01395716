// Real loop devices (root on Linux): held read-only and autoclear, shared by holders of one file, gone
// when the last holder lets go; blkbackOpened waits for sysfs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detachLoop, holdLoop, isAutoclear } from './loop.js';
import { blkbackOpened, xvdDeviceNumber } from './vbd.js';

const attached = (path: string) => existsSync(`/sys/block/${path.replace('/dev/', '')}/loop/backing_file`);

function disk(dir: string, name: string, fill: number): string {
  const file = join(dir, name);
  const content = Buffer.alloc(64 * 1024, fill);
  content.write(`krata-${name}`, 0);
  writeFileSync(file, content);
  return file;
}

test('a held device reads its file read-only; released, it detaches itself', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-loop-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = disk(dir, 'disk.img', 0x5a);
  const loop = holdLoop(file);
  t.after(() => loop.release());
  const name = loop.path.replace('/dev/', '');
  assert.equal(loop.major, 7);
  assert.equal(loop.shared, false);
  assert.equal(readFileSync(`/sys/block/${name}/ro`, 'utf8').trim(), '1');
  assert.equal(readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim(), file);
  assert.equal(isAutoclear(loop.path), true);
  assert.ok(
    readFileSync(loop.path)
      .subarray(0, 64 * 1024)
      .equals(readFileSync(file)),
    'the device reads the file',
  );
  assert.throws(() => {
    const fd = openSync(loop.path, 'r+');
    try {
      writeSync(fd, Buffer.from('x'));
    } finally {
      closeSync(fd);
    }
  }, /EROFS|EPERM|EACCES/);
  loop.release();
  loop.release(); // idempotent
  assert.equal(attached(loop.path), false, 'nothing is attached any more');
  detachLoop(loop.path); // detaching a free device is harmless
  assert.throws(() => detachLoop('/dev/sda'), /not a loop device/);
});

test('holders of one file share one device; another file, or the same name for new bytes, gets its own', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-loop-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = disk(dir, 'a.img', 1);
  const b = disk(dir, 'b.img', 2);
  mkdirSync(join(dir, 'other'));
  linkSync(a, join(dir, 'other', 'a-link.img')); // a hard link: another name, same inode
  const first = holdLoop(a);
  const second = holdLoop(a);
  const third = holdLoop(b);
  const held = [first, second, third];
  t.after(() => held.forEach((l) => l.release()));
  assert.equal(second.path, first.path);
  assert.equal(second.shared, true);
  assert.notEqual(third.path, first.path);
  // The first holder lets go: the second still holds it, and a new holder finds it.
  first.release();
  assert.equal(attached(first.path), true);
  const fourth = holdLoop(a);
  held.push(fourth);
  assert.equal(fourth.path, first.path);
  // A detach request (an older agent's teardown) on a device others hold only marks it.
  detachLoop(first.path);
  assert.equal(attached(first.path), true);
  second.release();
  fourth.release();
  assert.equal(attached(first.path), false, 'gone with its last holder');
  // The same name, new bytes (an image replaced under its name): not the old device's file.
  const old = holdLoop(b);
  held.push(old);
  rmSync(b);
  disk(dir, 'b.img', 3);
  const fresh = holdLoop(b);
  held.push(fresh);
  assert.notEqual(fresh.path, old.path);
  assert.equal(readFileSync(fresh.path)[100], 3);
});

test('a missing backing file is an error before any loop device is taken', () => {
  assert.throws(() => holdLoop('/nonexistent/disk.img'), /ENOENT/);
});

test("blkbackOpened waits for each vbd's physical_device in sysfs, and says which one never came", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-vbd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const waiting = blkbackOpened(7, ['xvda', 'xvdb'], { devices: dir, timeoutMs: 5000 });
  let done = false;
  void waiting.then(() => (done = true));
  for (const [vdev, at] of [
    ['xvda', 20],
    ['xvdb', 60],
  ] as const) {
    await new Promise((r) => setTimeout(r, at));
    assert.equal(done, false);
    mkdirSync(join(dir, `vbd-7-${xvdDeviceNumber(vdev)}`));
    writeFileSync(join(dir, `vbd-7-${xvdDeviceNumber(vdev)}`, 'physical_device'), '7:0\n');
  }
  await waiting;
  await assert.rejects(blkbackOpened(8, ['xvda'], { devices: dir, timeoutMs: 100 }), /did not open the device of xvda within 0.1 s/);
});

test('virtual disk names map to xen-blkfront device numbers', () => {
  assert.equal(xvdDeviceNumber('xvda'), 51712);
  assert.equal(xvdDeviceNumber('xvdb'), 51728);
  assert.throws(() => xvdDeviceNumber('sda'), /unsupported virtual disk name/);
});
