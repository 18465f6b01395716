// scripts/check-layers.mjs on tiny fixture trees: each rule fails on the import that breaks it, and the
// allowed imports pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from '../lib/package-root.js';

const script = join(repoRoot(), 'scripts/check-layers.mjs');

/** Runs the checker on a tree of `files` (path → source); returns its exit status and the lines it printed. */
function check(files: Record<string, string>): { status: number | null; lines: string[] } {
  const root = mkdtempSync(join(tmpdir(), 'check-layers-'));
  try {
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    const r = spawnSync(process.execPath, [script, root], { encoding: 'utf8' });
    return { status: r.status, lines: r.stderr.split('\n').filter((l) => l && !l.startsWith('check-layers:')) };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const base = {
  'lib/clock.ts': `import { setTimeout } from 'node:timers/promises';\nexport const c = setTimeout;\n`,
  'crds/types.ts': `import { c } from '../lib/clock.js';\nexport type T = typeof c;\n`,
  'contracts/api.ts': `import type { T } from '../crds/types.js';\nexport type A = T;\n`,
  'node-agent/xen/xc.ts': `import { c } from '../../lib/clock.js';\nexport const xc = c;\n`,
  'node-agent/net/link.ts': `import type { A } from '../../contracts/api.js';\nexport type L = A;\n`,
  'node-agent/xen/index.ts': `export { xc } from './xc.js';\n`,
  'node-agent/runtime/hv.ts': `import { xc } from '../xen/index.js';\nexport const hv = xc;\n`,
  'node-agent/reconcile/create.ts': `import { hv } from '../runtime/hv.js';\nexport const create = hv;\n`,
  'node-agent/main.ts': `import { xc } from './xen/index.js';\nimport type { L } from './net/link.js';\nexport type M = L | typeof xc;\n`,
  // A test in net/ may build its fixtures from the rest of the agent.
  'node-agent/net/link.test.ts': `import type { M } from '../main.js';\nexport type T = M;\n`,
  'node-agent/main.test.ts': `import { h } from '../test/harness.js';\nexport const x = h;\n`,
  'test/harness.ts': `import { xc } from '../node-agent/xen/xc.js';\nimport '../operator/main.js';\nexport const h = xc;\n`,
  'bench/agent.ts': `import { h } from '../test/harness.js';\nexport const b = h;\n`,
  'operator/main.ts': `import 'ioredis';\nexport {};\n`,
};

test('a tree that keeps every rule passes', () => {
  const r = check(base);
  assert.deepEqual(r.lines, []);
  assert.equal(r.status, 0);
});

function fails(extra: Record<string, string>, expected: RegExp): void {
  const r = check({ ...base, ...extra });
  assert.equal(r.status, 1, `exit status for ${JSON.stringify(extra)}`);
  assert.equal(r.lines.length, 1, r.lines.join('\n'));
  assert.match(r.lines[0]!, expected);
}

test('an import cycle fails, also through export-from and dynamic import()', () => {
  fails(
    { 'lib/a.ts': `export * from './b.js';\n`, 'lib/b.ts': `export const b = () => import('./a.js');\n` },
    /^import cycle: lib\/a\.ts -> lib\/b\.ts$/,
  );
});

test('a program importing another program fails', () => {
  fails(
    { 'operator/x.ts': `import { xc } from '../node-agent/xen/xc.js';\nexport const x = xc;\n` },
    /^operator\/x\.ts:1: program operator\/ imports program node-agent\//,
  );
  // A test beside code may import test/, but not another program.
  fails({ 'kratactl/x.test.ts': `import type { M } from '../node-agent/main.js';\nexport type X = M;\n` }, /program kratactl\/ imports/);
});

test('production code importing test/ fails', () => {
  fails({ 'node-agent/fake.ts': `export { h } from '../test/harness.js';\n` }, /^node-agent\/fake\.ts:1: production code imports test\//);
  fails({ 'lib/fake.ts': `import type { h } from '../test/harness.js';\nexport type F = typeof h;\n` }, /production code imports test\//);
});

test('a lower layer importing a higher one fails', () => {
  fails({ 'lib/x.ts': `import type { T } from '../crds/types.js';\nexport type X = T;\n` }, /^lib\/x\.ts:1: lib imports crds/);
  fails({ 'crds/x.ts': `export type X = import('../contracts/api.js').A;\n` }, /^crds\/x\.ts:1: crds imports contracts/);
  fails({ 'contracts/x.ts': `import { xc } from '../node-agent/xen/xc.js';\nexport const x = xc;\n` }, /contracts imports a program/);
});

test('node-agent/xen/ importing the agent outside xen/ fails', () => {
  fails(
    { 'node-agent/xen/bad.ts': `import type { L } from '../net/link.js';\nexport type B = L;\n` },
    /^node-agent\/xen\/bad\.ts:1: node-agent\/xen\/ imports/,
  );
});

test('node-agent/net/ importing the agent outside net/ fails', () => {
  fails(
    { 'node-agent/net/bad.ts': `\n\nimport { xc } from '../xen/xc.js';\nexport const b = xc;\n` },
    /^node-agent\/net\/bad\.ts:3: node-agent\/net\/ imports/,
  );
});

test("node-agent's own layers: upward imports, xen/ past its entry, reconcile/ reaching xen/ and unknown folders fail", () => {
  fails(
    { 'node-agent/runtime/up.ts': `import { create } from '../reconcile/create.js';\nexport const u = create;\n` },
    /not a lower layer/,
  );
  fails({ 'node-agent/store/side.ts': `import { hv } from '../runtime/hv.js';\nexport const s = hv;\n` }, /not a lower layer/);
  fails({ 'node-agent/runtime/deep.ts': `import { xc } from '../xen/xc.js';\nexport const d = xc;\n` }, /past its entry, xen\/index\.ts/);
  fails({ 'node-agent/reconcile/xen.ts': `import { xc } from '../xen/index.js';\nexport const x = xc;\n` }, /reaches Xen through runtime/);
  fails({ 'node-agent/misc/a.ts': `import { hv } from '../runtime/hv.js';\nexport const a = hv;\n` }, /node-agent\/misc\/ is in no layer/);
});
