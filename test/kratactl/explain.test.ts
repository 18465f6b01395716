// kratactl explain as kubectl explain reads: metadata is an ObjectMeta with its fields documented, and
// `--recursive` of every kind lists every field of its schema, each documented (no "(no description)").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JSONSchemaProps } from '../../crds/crd-types.js';
import { allCRDs } from '../../crds/generated/crds.js';
import { OBJECT_META_DOC } from '../../crds/object-meta-doc.js';
import { kratactl } from '../harness/kratactl.js';

test('explain KIND.metadata shows an ObjectMeta and its fields, as kubectl explain does', async () => {
  for (const kind of ['guest', 'xenhost', 'guestset']) {
    const r = await kratactl(['explain', `${kind}.metadata`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\nFIELD: {4}metadata <ObjectMeta>\n/);
    assert.match(r.stdout, /DESCRIPTION:\n {4}Standard object's metadata/);
    for (const field of ['name', 'namespace', 'labels', 'annotations', 'uid', 'resourceVersion', 'generation', 'ownerReferences'])
      assert.match(r.stdout, new RegExp(`\\n {3}${field}\\t<`), `${kind}.metadata lists ${field}`);
    assert.doesNotMatch(r.stdout, /no description/);
  }
  const labels = await kratactl(['explain', 'gst.metadata.labels']);
  assert.match(labels.stdout, /FIELD: {4}labels <map\[string\]string>/);
  const kind = await kratactl(['explain', 'guest']);
  assert.match(kind.stdout, /\n {3}metadata\t<ObjectMeta>\n/);
  const owner = await kratactl(['explain', 'guest.metadata.ownerReferences']);
  assert.match(owner.stdout, /uid\t<string> -required-/);
});

/** Every field path under `schema`, as explain --recursive nests them (list items and maps of objects share their field's level). */
function paths(schema: JSONSchemaProps, depth: number, out: [number, string][]): [number, string][] {
  const node = schema.type === 'array' && schema.items ? schema.items : schema;
  for (const [name, sub] of Object.entries(node.properties ?? {})) {
    out.push([depth, name]);
    paths(sub, depth + 1, out);
  }
  return out;
}

test('explain KIND --recursive lists every field of the schema (metadata as ObjectMeta), and every field is documented', async () => {
  for (const crd of allCRDs) {
    const kind = crd.spec.names.kind;
    const root = crd.spec.versions[0]!.schema.openAPIV3Schema;
    const r = await kratactl(['explain', kind.toLowerCase(), '--recursive']);
    assert.equal(r.code, 0, r.stderr);
    const listed = r.stdout
      .slice(r.stdout.indexOf('FIELDS:\n') + 'FIELDS:\n'.length)
      .split('\n')
      .filter(Boolean)
      .map((l): [number, string] => [(l.length - l.trimStart().length - 3) / 3, l.trim().split('\t')[0]!]);
    const want = paths({ ...root, properties: { ...root.properties, metadata: OBJECT_META_DOC } }, 0, []);
    assert.deepEqual(listed, want, kind);
    assert.ok(listed.length > 20, kind);
    // Each field's own page has a description of it.
    const stack: string[] = [];
    for (const [depth, name] of listed) {
      stack.length = depth;
      stack.push(name);
      const field = await kratactl(['explain', [kind, ...stack].join('.')]);
      assert.equal(field.code, 0, `${stack.join('.')}: ${field.stderr}`);
      const description = field.stdout.split('DESCRIPTION:\n')[1]!.split('\n')[0]!;
      assert.doesNotMatch(description, /no description/, `${kind}.${stack.join('.')} has a description`);
    }
  }
});
