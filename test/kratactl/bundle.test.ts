// The shipped kratactl (package.json's bin): the bundle `npm run build` writes runs like tsc's output,
// and a command loads only its own chunks: version neither the validators nor yaml, get not the validators.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../../lib/package-root.js';

const root = repoRoot();
const bin = join(root, (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin.kratactl!);

/** The files an ES module loads, following static imports, and the chunk of each dynamic import by name. */
function staticClosure(file: string, seen = new Set<string>()): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  for (const m of readFileSync(file, 'utf8').matchAll(/(?:^|[;\n}])\s*import\s*(?:[^'"();]*?from\s*)?"(\.[^"]+)"/g))
    staticClosure(join(dirname(file), m[1]!), seen);
  return seen;
}

function commandChunk(command: string): string {
  const m = new RegExp(`import\\("(\\./chunks/${command}-[A-Z0-9]+\\.mjs)"\\)`).exec(readFileSync(bin, 'utf8'));
  assert.ok(m, `the bundle imports a ${command} chunk`);
  return join(dirname(bin), m[1]!);
}

const holds = (files: Set<string>, marker: RegExp) => [...files].some((f) => marker.test(readFileSync(f, 'utf8')));
const VALIDATORS = /\bschemaPath:"#\/properties\/spec\/properties\/image\/type"/; // the generated Guest validator
const YAML_LIB = /Implicit keys need to be on a single line/; // one of yaml's parse errors

test('the bin is the bundle and runs as tsc’s output does', () => {
  assert.match(bin, /dist\/kratactl\/kratactl\.mjs$/);
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

test('a command loads only what it needs: version no validators or yaml, get no validators', () => {
  const entry = staticClosure(bin);
  assert.ok(!holds(entry, VALIDATORS) && !holds(entry, YAML_LIB), 'the entry loads neither');
  const version = staticClosure(commandChunk('version'));
  assert.ok(!holds(version, VALIDATORS), 'version loads the validators');
  assert.ok(!holds(version, YAML_LIB), 'version loads yaml');
  assert.ok(!holds(staticClosure(commandChunk('get')), VALIDATORS), 'get loads the validators');
  // The markers do find what they mark: apply needs both.
  const apply = staticClosure(commandChunk('apply'));
  assert.ok(holds(apply, VALIDATORS) && holds(apply, YAML_LIB), 'apply loads the validators and yaml');
});
