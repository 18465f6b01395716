// The ApplySet parent's checks: the KEP's id, bounded hostile input refused with its field named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { APPLYSET_ID_LABEL, applySetId, listAnnotation, validateApplySetParent } from './applyset.js';

const parent = (over: Record<string, unknown> = {}, meta: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: {
    name: 'site',
    namespace: 'default',
    labels: { [APPLYSET_ID_LABEL]: applySetId('site', 'default') },
    annotations: {},
    ...meta,
  },
  ...over,
});

test("the id is the KEP's: applyset-, base64url without padding of sha256(name.namespace.kind.group), -v1", () => {
  const digest = createHash('sha256').update('site.default.Secret.').digest('base64').replace(/=+$/, '');
  assert.equal(applySetId('site', 'default'), `applyset-${digest.replace(/\+/g, '-').replace(/\//g, '_')}-v1`);
  assert.match(applySetId('site', 'default'), /^applyset-[A-Za-z0-9_-]{43}-v1$/);
  assert.notEqual(applySetId('site', 'default'), applySetId('site', 'team-a'));
  assert.notEqual(applySetId('a', 'default', 'Secret'), applySetId('a', 'default', 'ConfigMap'));
});

test('list annotations read sorted and de-duplicated', () => {
  assert.deepEqual(listAnnotation('Secret,Guest.krata.dev, Secret,'), ['Guest.krata.dev', 'Secret']);
  assert.deepEqual(listAnnotation(undefined), []);
});

test('a parent is stored only as it should be: its own id, its path, bounded maps of strings', () => {
  assert.ok(validateApplySetParent(parent(), { namespace: 'default', name: 'site' }).object);
  const refused: [unknown, RegExp][] = [
    [null, /mapping/],
    [parent({ kind: 'ConfigMap' }), /kind Secret/],
    [parent({ data: { a: 'b' } }), /unknown field/],
    [parent({}, { name: '../x' }), /DNS subdomain/],
    [parent({}, { labels: { [APPLYSET_ID_LABEL]: 'applyset-other-v1' } }), /this parent's id/],
    [parent({}, { annotations: { a: 1 } }), /string/],
    [parent({}, { annotations: { 'bad key!': 'x' } }), /qualified name/],
    [parent({}, { annotations: { a: 'x'.repeat(70_000) } }), /at most/],
    [parent({}, { annotations: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, ''])) }), /at most 64/],
    [parent({}, { uid: 'x' }), /unknown field/],
  ];
  for (const [input, why] of refused) {
    const r = validateApplySetParent(input);
    assert.equal(r.object, undefined, JSON.stringify(input)?.slice(0, 100));
    assert.match(r.errors.map((e) => e.message).join('; '), why);
  }
  const elsewhere = validateApplySetParent(parent(), { namespace: 'default', name: 'other' });
  assert.match(elsewhere.errors[0]!.message, /those of the path/);
});
