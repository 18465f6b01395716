// unifiedDiff against GNU diff -u on the same texts: the hunks must be GNU's (its header lines carry
// file times, so they are compared apart), and applying them must give the new text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unifiedDiff } from './unified-diff.js';

function gnu(a: string, b: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'krata-udiff-'));
  try {
    writeFileSync(join(dir, 'a'), a);
    writeFileSync(join(dir, 'b'), b);
    const r = spawnSync('diff', ['-u', '-N', 'a', 'b'], { cwd: dir, encoding: 'utf8' });
    return r.stdout.replace(/^--- a\t.*\n\+\+\+ b\t.*\n/, '--- a\n+++ b\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The new text rebuilt from the old one and the hunks. */
function patch(a: string, diff: string): string {
  const old = a === '' ? [] : a.replace(/\n$/, '').split('\n');
  const out: string[] = [];
  let at = 0;
  for (const hunk of diff.split(/^@@ /m).slice(1)) {
    const m = /^-(\d+)(?:,(\d+))? /.exec(hunk)!;
    const start = m[2] === '0' ? Number(m[1]) : Number(m[1]) - 1;
    while (at < start) out.push(old[at++]!);
    for (const l of hunk.split('\n').slice(1, -1)) {
      if (l[0] === ' ') out.push(old[at++]!);
      else if (l[0] === '-') at++;
      else out.push(l.slice(1));
    }
  }
  while (at < old.length) out.push(old[at++]!);
  return out.length ? out.join('\n') + '\n' : '';
}

test('the same hunks as GNU diff -u, for edits at the ends, in the middle, far apart, and from nothing', () => {
  const lines = (n: number, f = (i: number) => `line ${i}`) => Array.from({ length: n }, (_, i) => f(i) + '\n').join('');
  const cases: [string, string][] = [
    [lines(10), lines(10).replace('line 5\n', 'line five\n')],
    [lines(10), lines(10).replace('line 0\n', '')],
    [lines(10), lines(10) + 'extra\n'],
    [lines(30), lines(30).replace('line 2\n', 'two\n').replace('line 25\n', 'twenty-five\n')],
    [lines(12), lines(12).replace('line 3\n', 'three\n').replace('line 8\n', 'eight\n')],
    ['', lines(3)],
    [lines(3), ''],
    ['a\n', 'b\n'],
  ];
  for (const [a, b] of cases) assert.equal(unifiedDiff(a, b, 'a', 'b'), gnu(a, b), JSON.stringify([a, b]));
  assert.equal(unifiedDiff('same\n', 'same\n', 'a', 'b'), '');
});

test('random edits patch back to the new text', () => {
  let seed = 7;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  for (let round = 0; round < 200; round++) {
    const a = Array.from({ length: rand(15) }, () => `${'abc'[rand(3)]}\n`).join('');
    const b = Array.from({ length: rand(15) }, () => `${'abcd'[rand(4)]}\n`).join('');
    const d = unifiedDiff(a, b, 'a', 'b');
    assert.equal(patch(a, d), b, JSON.stringify({ a, b, d }));
    // No longer than GNU's (whose heuristics may give a longer script).
    const changes = (s: string) => s.split('\n').filter((l) => /^[-+][^-+]/.test(l) || l === '-' || l === '+').length;
    assert.ok(changes(d) <= changes(gnu(a, b)), JSON.stringify({ a, b }));
  }
});
