// The shipped kratactl (package.json's bin): the bundle `npm run build` writes runs like tsc's output, is
// one file, and keeps the validators, yaml and each command behind lazy initializers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../../lib/package-root.js';

const root = repoRoot();
const bin = join(root, (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin.kratactl!);

const VALIDATORS = 'schemaPath:"#/properties/spec/properties/image/type"'; // in the generated Guest validator
const YAML_LIB = 'Implicit keys need to be on a single line'; // one of yaml's parse errors

test('the bin is the bundle and runs as tsc’s output does', () => {
  assert.match(bin, /dist\/kratactl\/kratactl\.cjs$/);
  const run = (entry: string, args: string[], input?: Buffer) =>
    spawnSync(process.execPath, [entry, ...args], { cwd: root, encoding: 'utf8', ...(input && { input }) });
  for (const args of [
    ['version', '--client'],
    ['apply', '--dry-run', '-f', 'manifests/examples/'],
    ['explain', 'guest.spec.resources'],
    ['completion', 'fish'],
    ['apply', '--dry-run', '-f', 'test/fixtures/invalid/02-bad-quantity.yaml'],
  ]) {
    const ours = run(bin, args);
    const plain = run(join(root, 'dist/kratactl/main.js'), args);
    assert.equal(ours.stdout, plain.stdout, args.join(' '));
    assert.equal(ours.stderr, plain.stderr, args.join(' '));
    assert.equal(ours.status, plain.status, args.join(' '));
  }
  const job = run(bin, ['apply', '--dry-run', '-o', 'name', '-f', '-'], readFileSync(join(root, 'manifests/examples/job.yaml')));
  assert.equal(job.stdout, 'guest.krata.dev/checksum-job\n');
});

test('the bundle is one file whose heavy parts run only when a command needs them', () => {
  const bundle = readFileSync(join(root, 'dist/kratactl/kratactl.bundle.cjs'), 'utf8');
  assert.doesNotMatch(bundle, /\bimport\s*\(?\s*["']\.\//, 'no other file of its own is imported');
  // The validators and yaml run behind lazy initializers (esbuild's __esm and __commonJS): only the
  // commands that read manifests or print YAML call them; the rest of their code is functions.
  assert.equal(bundle.split(VALIDATORS).length, 2, 'the validators are in the bundle once');
  assert.match(bundle, /\binit_validators=__esm\(\{"dist\/crds\/generated\/validators\.js"\(\)\{/);
  assert.equal(bundle.split(YAML_LIB).length, 2, 'yaml is in the bundle once');
  assert.match(bundle, /\brequire_composer=__commonJS\(\{"node_modules\/yaml\/dist\/compose\/composer\.js"/);
  // Each command is imported when it runs, through its module's initializer (init_NAME, numbered on a clash).
  for (const command of ['apply', 'get', 'version', 'completion'])
    assert.match(
      bundle,
      new RegExp(
        `load:async\\(\\)=>\\{let m=await Promise\\.resolve\\(\\)\\.then\\(\\(\\)=>\\(init_${command}\\d*\\(\\),${command}_exports\\)`,
      ),
      command,
    );
});
