// The README's two set-up commands must stay true: CI runs the test command verbatim, and the main-job
// command works on a checkout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../lib/package-root.js';

const root = repoRoot();
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const setup = readme.split(/^## /m).find((s) => s.startsWith('Set up and run'));
const commands = [...(setup ?? '').matchAll(/```sh\n([^\n]+)\n```/g)].map((m) => m[1]!);

test('README starts with two set-up commands: the main job, then the tests', () => {
  assert.equal(commands.length, 2, 'two ```sh blocks of one line each under "Set up and run"');
  assert.ok(readme.indexOf('## Set up and run') < readme.indexOf('\n## ', readme.indexOf('\n## ') + 1), 'set-up is the first section');
});

test(".ci/run runs the README's test command", () => {
  const ci = readFileSync(join(root, '.ci/run'), 'utf8');
  assert.ok(ci.split('\n').includes(commands[1]!), `.ci/run must contain the line: ${commands[1]}`);
});

test('.ci/run stops when a step before npm test fails (set -e alone goes on past a && list)', () => {
  const lines = readFileSync(join(root, '.ci/run'), 'utf8').split('\n');
  const at = lines.indexOf(commands[1]!);
  assert.ok(at > 0);
  // The script's options, the command with its lint step failing, what follows the command up to the
  // next blank line (the guard), then a marker the run must not reach.
  const end = lines.indexOf('', at);
  const script = [
    ...lines.slice(0, at).filter((l) => /^set /.test(l)),
    'true && true && false && true',
    ...lines.slice(at + 1, end),
    'echo reached-e2e',
  ].join('\n');
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.doesNotMatch(r.stdout, /reached-e2e/);
});

test("the README's main-job command names an npm script of this package, whose program exists", () => {
  const script = /npm run (\S+)$/.exec(commands[0]!)?.[1];
  assert.ok(script, `the main job ends in "npm run SCRIPT": ${commands[0]}`);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const body = pkg.scripts[script];
  assert.ok(body, `package.json has no "${script}" script`);
  for (const file of body.match(/\b(?:test|scripts)\/\S+\.sh\b/g) ?? []) assert.ok(existsSync(join(root, file)), `${file} exists`);
});

test('both set-up commands start by installing the Debian packages the project uses', () => {
  for (const c of commands) assert.match(c, /^\.\/scripts\/install-deps && npm ci && /);
  assert.ok(existsSync(join(root, 'scripts/install-deps')));
});
