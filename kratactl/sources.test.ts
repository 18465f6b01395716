import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { decodeUtf8, MAX_MANIFEST_BYTES, readSources } from './sources.js';

function scratch(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'krata-sources-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a directory yields its manifest files in name order, subdirectories only with recursive', async (t) => {
  const dir = scratch(t);
  for (const name of ['b.yaml', 'a.yml', 'c.json', 'notes.txt', 'README.md']) writeFileSync(join(dir, name), 'x: 1\n');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'd.yaml'), 'x: 1\n');
  const flat = await readSources([dir]);
  assert.deepEqual(
    flat.sources.map((s) => s.name),
    ['a.yml', 'b.yaml', 'c.json'].map((n) => join(dir, n)),
  );
  const deep = await readSources([dir], { recursive: true });
  assert.deepEqual(deep.sources.map((s) => s.name).at(-1), join(dir, 'sub', 'd.yaml'));
});

test('files over 1 MiB are refused, exactly at the limit accepted', async (t) => {
  const dir = scratch(t);
  writeFileSync(join(dir, 'ok.yaml'), '#'.repeat(MAX_MANIFEST_BYTES));
  writeFileSync(join(dir, 'big.yaml'), '#'.repeat(MAX_MANIFEST_BYTES + 1));
  const r = await readSources([join(dir, 'ok.yaml'), join(dir, 'big.yaml')]);
  assert.equal(r.sources.length, 1);
  assert.deepEqual(r.errors, [{ file: join(dir, 'big.yaml'), message: 'larger than the 1 MiB limit for a manifest file' }]);
  const stdin = await readSources(['-'], { stdin: Readable.from([Buffer.alloc(MAX_MANIFEST_BYTES), Buffer.from('xx')]) });
  assert.equal(stdin.errors[0]!.file, '<stdin>');
  assert.match(stdin.errors[0]!.message, /1 MiB/);
});

test('stdin is read as <stdin>', async () => {
  const r = await readSources(['-'], { stdin: Readable.from([Buffer.from('a: 1\n')]) });
  assert.deepEqual(r.sources, [{ name: '<stdin>', text: 'a: 1\n' }]);
});

test('missing paths, empty directories and non-regular files are errors naming the path', async (t) => {
  const dir = scratch(t);
  mkdirSync(join(dir, 'empty'));
  symlinkSync('/dev/null', join(dir, 'null.yaml'));
  const r = await readSources([join(dir, 'nope.yaml'), join(dir, 'empty'), join(dir, 'null.yaml')]);
  assert.deepEqual(
    r.errors.map((e) => [e.file.slice(dir.length + 1), e.message]),
    [
      ['nope.yaml', 'no such file or directory'],
      ['empty', 'directory holds no .yaml, .yml or .json files'],
      ['null.yaml', 'not a regular file'],
    ],
  );
});

test('bytes that are not UTF-8 are located by line and column', () => {
  assert.deepEqual(decodeUtf8(Buffer.from('a: 1\nb: caf\xe9\n', 'latin1')), {
    line: 2,
    column: 7,
    message: 'not valid UTF-8 (byte 0xe9 at offset 11)',
  });
  assert.deepEqual(decodeUtf8(Buffer.from([0xff, 0xfe, 0x61, 0x00])), { line: 1, column: 1, message: 'file is UTF-16; save it as UTF-8' });
  assert.deepEqual(decodeUtf8(Buffer.from('a: 1\n\0')), { line: 2, column: 1, message: 'file contains a NUL byte; is it binary?' });
  // Overlong encoding of "/" and a UTF-16 surrogate are not UTF-8 either.
  assert.equal(typeof decodeUtf8(Buffer.from([0x61, 0xc0, 0xaf])), 'object');
  assert.deepEqual(decodeUtf8(Buffer.from([0x61, 0xed, 0xa0, 0x80])), {
    line: 1,
    column: 2,
    message: 'not valid UTF-8 (byte 0xed at offset 1)',
  });
  assert.equal(decodeUtf8(Buffer.from('\ufeffname: café ✓\n')), 'name: café ✓\n');
});
