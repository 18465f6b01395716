import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from './generate.js';
import { CRD_SOURCES, GENERATED_SCHEMAS, GENERATED_TYPES, GENERATED_VALIDATORS } from './paths.js';
import { repoRoot } from '../../lib/package-root.js';

const root = repoRoot();
const sources = () => CRD_SOURCES.map((path) => ({ path, text: readFileSync(join(root, path), 'utf8') }));

test('crds/generated/ is what the CRD YAML generates (run `npm run generate` after editing crds/*.yaml)', () => {
  const out = generate(sources());
  assert.equal(readFileSync(join(root, GENERATED_TYPES), 'utf8'), out.types, `${GENERATED_TYPES} is stale`);
  assert.equal(readFileSync(join(root, GENERATED_SCHEMAS), 'utf8'), out.crds, `${GENERATED_SCHEMAS} is stale`);
  assert.equal(readFileSync(join(root, GENERATED_VALIDATORS), 'utf8'), out.validators, `${GENERATED_VALIDATORS} is stale`);
  assert.deepEqual(Object.keys(out.manifests), ['manifests/crds/guestset.yaml']);
  for (const [path, text] of Object.entries(out.manifests)) assert.equal(readFileSync(join(root, path), 'utf8'), text, `${path} is stale`);
});

test("a GuestSet's template spec is the Guest spec, borrowed at generation (an edit of guest.yaml reaches it)", () => {
  const edited = sources().map((s) => (s.path.endsWith('guest.yaml') ? { ...s, text: s.text.replace('tty:\n', 'ttyMode:\n') } : s));
  const out = generate(edited);
  assert.match(out.types, /export interface GuestTemplate \{[^}]*\n  spec: GuestSpec;/);
  assert.match(out.manifests['manifests/crds/guestset.yaml']!, /\n +ttyMode:\n/);
  assert.doesNotMatch(out.crds + out.manifests['manifests/crds/guestset.yaml']!, /x-krata-schema-from/);
  const broken = sources().map((s) =>
    s.path.endsWith('guestset.yaml') ? { ...s, text: s.text.replace('guests.krata.dev#spec', 'guests.krata.dev#spek') } : s,
  );
  assert.throws(() => generate(broken), /guests\.krata\.dev#spek: no such schema/);
});

test('a change to the schema changes the generated types and validator data', () => {
  const edited = sources().map((s) =>
    s.path.endsWith('guest.yaml') ? { ...s, text: s.text.replace('default: 512Mi', 'default: 1Gi').replace('tty:\n', 'ttyMode:\n') } : s,
  );
  const before = generate(sources());
  const after = generate(edited);
  assert.notEqual(after.crds, before.crds);
  assert.match(after.types, /ttyMode: boolean;/);
  assert.doesNotMatch(after.types, /\btty: boolean;/);
  assert.match(after.crds, /"default": "1Gi"/);
});

test('required and defaulted fields are not optional in the generated types', () => {
  const { types } = generate(sources());
  assert.match(types, /export interface GuestSpec \{[^]*?\n  image: string;/);
  assert.match(types, /\n  restartPolicy: 'Always' \| 'OnFailure' \| 'Never';/);
  assert.match(types, /\n  hostname\?: string;/);
  assert.match(types, /\n  memory: number \| string;/);
});

test('one title naming two different schemas is refused', () => {
  const text = readFileSync(join(root, 'crds/guest.yaml'), 'utf8').replace('title: GuestAddresses', 'title: GuestResources');
  assert.throws(() => generate([{ path: 'crds/guest.yaml', text }]), /two different schemas are titled GuestResources/);
});
