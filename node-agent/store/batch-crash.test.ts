// A batch (an apply of several Guests) cut short at every step by SIGKILL (lib/fault-points.ts, in a
// child process): the store loads, holds the whole batch or none of it, and no temporary, backup or
// batch record is left. Before its record is written a batch is absent; from then on, whole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Guest } from '../../crds/generated/types.js';
import { GuestStore } from './guest-store.js';

const work = mkdtempSync(join(tmpdir(), 'krata-batch-crash-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const storeUrl = pathToFileURL(join(import.meta.dirname, 'guest-store.js')).href;
const now = new Date('2026-01-01T00:00:00Z');

function guest(name: string, image: string, namespace = 'default'): Guest {
  return {
    apiVersion: 'krata.dev/v1alpha1',
    kind: 'Guest',
    metadata: { name, namespace },
    spec: { image, resources: { cpus: 1, memory: '64Mi' } } as Guest['spec'],
  };
}

/** Two stored Guests, then a child applies a batch (both changed, one new in a new namespace) armed with `points`. */
function crashDuring(points: string) {
  const dir = mkdtempSync(join(work, 's'));
  const store = new GuestStore(dir);
  store.putAll([guest('a', 'old:1'), guest('b', 'old:1')], now);
  const batch = [guest('a', 'new:2'), guest('b', 'new:2'), guest('c', 'new:2', 'other')];
  const script = `import { GuestStore } from ${JSON.stringify(storeUrl)};
new GuestStore(${JSON.stringify(dir)}).putAll(${JSON.stringify(batch)}, new Date());
process.stdout.write('applied');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH ?? '', KRATA_FAULT_POINTS: points },
    encoding: 'utf8',
  });
  return { dir, r };
}

function images(dir: string) {
  const problems: string[] = [];
  const store = new GuestStore(dir, problems);
  assert.deepEqual(problems, []);
  return ['default/a', 'default/b', 'other/c'].map((k) => store.get(k)?.guest.spec.image ?? null);
}

function leftovers(dir: string): string[] {
  const guests = join(dir, 'guests');
  return readdirSync(guests, { recursive: true, encoding: 'utf8' }).filter((f) => f.includes('.tmp-') || f.startsWith('.'));
}

test('a batch killed before its record is written is absent after the load', () => {
  const { dir, r } = crashDuring('store.batch-prepared');
  assert.equal(r.signal, 'SIGKILL', r.stderr);
  assert.ok(leftovers(dir).length > 0, 'the kill left temporaries to clean up');
  assert.deepEqual(images(dir), ['old:1', 'old:1', null]);
  assert.deepEqual(leftovers(dir), []);
});

test('a batch killed before any of its renames, or between them, is whole after the load', () => {
  for (const at of [1, 2, 3]) {
    const { dir, r } = crashDuring(`store.batch-rename@${at}`);
    assert.equal(r.signal, 'SIGKILL', `rename ${at}: ${r.stderr}`);
    assert.deepEqual(images(dir), ['new:2', 'new:2', 'new:2'], `killed before rename ${at}`);
    assert.deepEqual(leftovers(dir), [], `killed before rename ${at}`);
    // Loading again changes nothing (the record is gone).
    assert.deepEqual(images(dir), ['new:2', 'new:2', 'new:2']);
  }
});

test('a batch that completes leaves no record; a damaged record is reported and the batch not finished', () => {
  const { dir, r } = crashDuring('');
  assert.equal(r.stdout, 'applied', r.stderr);
  assert.deepEqual(leftovers(dir), []);
  writeFileSync(join(dir, 'guests', '.batch.json'), '{"renames":[{"file":"../../etc/passwd","tmp":"x/y"}]}');
  const problems: string[] = [];
  new GuestStore(dir, problems);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /\.batch\.json: not a batch record/);
  assert.deepEqual(leftovers(dir), []);
});
