// faultPoint: off unless armed; an armed point SIGKILLs the process at its Nth hit and not before.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { parseFaultPoints } from './fault-points.js';

const moduleUrl = pathToFileURL(join(import.meta.dirname, 'fault-points.js')).href;

/** Runs a child that passes points a, b, a, a, printing after each; returns its status and output. */
function run(env: Record<string, string>) {
  const script = `import { faultPoint } from ${JSON.stringify(moduleUrl)};
for (const p of ['a', 'b', 'a', 'a']) { faultPoint(p); process.stdout.write(p + ' '); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
  });
  return { signal: r.signal, status: r.status, out: r.stdout, err: r.stderr };
}

test('no variable: every point passes', () => {
  const r = run({});
  assert.equal(r.status, 0, r.err);
  assert.equal(r.out, 'a b a a ');
});

test('an armed point kills with SIGKILL at its Nth hit, nothing after it runs', () => {
  assert.deepEqual(run({ KRATA_FAULT_POINTS: 'b' }), { signal: 'SIGKILL', status: null, out: 'a ', err: '' });
  assert.deepEqual(run({ KRATA_FAULT_POINTS: 'a@2' }), { signal: 'SIGKILL', status: null, out: 'a b ', err: '' });
  assert.equal(run({ KRATA_FAULT_POINTS: 'a@4' }).status, 0, 'a point reached fewer times than armed passes');
});

test('the trace file lists every point reached, the killing one included', () => {
  const dir = mkdtempSync(join(tmpdir(), 'krata-fault-'));
  try {
    const file = join(dir, 'trace');
    run({ KRATA_FAULT_POINTS: 'a@2', KRATA_FAULT_TRACE: file });
    assert.equal(readFileSync(file, 'utf8'), 'a\nb\na\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the variable is parsed strictly, naming the bad entry', () => {
  assert.deepEqual(
    [...parseFaultPoints(' create.domain-created , teardown.x@12,')],
    [
      ['create.domain-created', 1],
      ['teardown.x', 12],
    ],
  );
  assert.throws(() => parseFaultPoints('a@0'), /bad entry "a@0"/);
  assert.throws(() => parseFaultPoints('A b'), /bad entry "A b"/);
});
