import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { TarParser } from '../lib/tar.js';
import { tarDirectory } from './dir-tar.js';

const work = mkdtempSync(join(tmpdir(), 'krata-dir-tar-test-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

async function entries(dir: string): Promise<[string, string, string][]> {
  const out: [string, string, string][] = [];
  let data: Buffer[] = [];
  const parser = new TarParser(
    {
      entry(h) {
        out.push([h.path, h.type, '']);
        data = [];
        return h.type === 'file';
      },
      data: (c) => data.push(Buffer.from(c)),
      end() {
        out.at(-1)![2] = Buffer.concat(data).toString('utf8');
      },
    },
    dir,
  );
  for await (const chunk of tarDirectory(dir)) parser.write(chunk);
  parser.close();
  return out;
}

test('a layout directory as tar: directories and files, sorted, a symlinked file followed', async () => {
  const dir = join(work, 'layout');
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'index.json'), '{}');
  const blob = 'x'.repeat(1500); // past a block: padding and the next header line up
  writeFileSync(join(work, 'outside'), blob);
  symlinkSync(join(work, 'outside'), join(dir, 'blobs', 'sha256', 'ab'.repeat(32)));
  assert.deepEqual(await entries(dir), [
    ['blobs', 'dir', ''],
    ['blobs/sha256', 'dir', ''],
    [`blobs/sha256/${'ab'.repeat(32)}`, 'file', blob],
    ['index.json', 'file', '{}'],
    ['oci-layout', 'file', '{"imageLayoutVersion":"1.0.0"}'],
  ]);
});

test('what a layout cannot hold is refused by name: a fifo, a symlinked directory', async () => {
  const fifo = join(work, 'with-fifo');
  mkdirSync(fifo);
  execFileSync('mkfifo', [join(fifo, 'pipe')]);
  await assert.rejects(entries(fifo), {
    message: `${join(fifo, 'pipe')}: not a regular file or directory; an OCI layout holds only those`,
  });
  const linked = join(work, 'with-dir-link');
  mkdirSync(linked);
  symlinkSync(work, join(linked, 'loop'));
  await assert.rejects(entries(linked), /loop: not a regular file or directory/);
});
