import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatPhases, noPhases, startPhaseTimer } from './phase-timer.js';

test('each mark closes the phase since the previous one', () => {
  let t = 100;
  const seen: string[] = [];
  const timer = startPhaseTimer(
    () => t,
    (p) => seen.push(p.name),
  );
  t = 130;
  timer.mark('read files');
  t = 131.5;
  timer.mark('populate memory');
  t = 131.5;
  timer.mark('read files');
  assert.deepEqual(timer.phases(), [
    { name: 'read files', ms: 30 },
    { name: 'populate memory', ms: 1.5 },
    { name: 'read files', ms: 0 },
  ]);
  assert.deepEqual(seen, ['read files', 'populate memory', 'read files']);
  timer.phases().pop();
  assert.equal(timer.phases().length, 3, 'phases() is a copy');
});

test('the breakdown lists every phase and the total', () => {
  const out = formatPhases([
    { name: 'a', ms: 1.25 },
    { name: 'page tables', ms: 10 },
  ]).split('\n');
  assert.equal(out.length, 3);
  assert.match(out[0]!, /^a\s+1\.3 ms$/);
  assert.match(out[2]!, /^total\s+11\.3 ms$/);
  noPhases.mark('x');
  assert.deepEqual(noPhases.phases(), []);
});
