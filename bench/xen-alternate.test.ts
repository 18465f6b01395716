import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readAlternation } from './xen-alternate.js';

test("the medians and each phase's median come back from the script's output", () => {
  const out = [
    'PHASES {"builder":30,"launch config":5}',
    'noise',
    'PHASES {"builder":10,"launch config":7,"image pull":900}',
    'PHASES not json',
    'PHASES {"builder":20,"launch config":6}',
    'RESULT 1567 10684',
  ].join('\n');
  assert.deepEqual(readAlternation(out), {
    ours: 1567,
    baseline: 10684,
    phases: [
      { name: 'builder', ms: 20 },
      { name: 'launch config', ms: 6 },
      { name: 'image pull', ms: 0 },
    ],
  });
  assert.equal(readAlternation('PHASES {}\n'), undefined, 'no RESULT');
  assert.equal(readAlternation('RESULT x 3\n'), undefined, 'not numbers');
});
