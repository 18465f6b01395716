// The CRDs must be accepted by a Kubernetes 1.20 API server: structural schemas, no CEL, list-map keys
// that are required or defaulted, defaults that pass their own schema, printer columns that point at
// fields that exist. (The operator's tests apply them to a real kube-apiserver; this runs everywhere.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JSONSchemaProps } from './crd-types.js';
import { allCRDs } from './generated/crds.js';
import { PATTERN_NAMES } from './patterns.js';
import { Ajv } from 'ajv';

type Visit = (schema: JSONSchemaProps, path: string) => void;

function walk(schema: JSONSchemaProps, path: string, visit: Visit): void {
  visit(schema, path);
  for (const [k, v] of Object.entries(schema.properties ?? {})) walk(v, `${path}.${k}`, visit);
  if (schema.items) walk(schema.items, `${path}[]`, visit);
  if (typeof schema.additionalProperties === 'object') walk(schema.additionalProperties, `${path}{}`, visit);
}

const roots = allCRDs.flatMap((crd) => crd.spec.versions.map((v) => ({ crd, version: v, schema: v.schema.openAPIV3Schema })));

test('every schema node is structural: a type, or int-or-string, and nothing Kubernetes 1.20 rejects', () => {
  for (const { crd, schema } of roots) {
    walk(schema, crd.spec.names.kind, (s, path) => {
      const keys = Object.keys(s);
      assert.ok(!keys.some((k) => k.startsWith('x-kubernetes-validations')), `${path}: CEL needs Kubernetes 1.25`);
      if (s['x-kubernetes-int-or-string']) {
        assert.equal(s.type, undefined, `${path}: int-or-string has no type`);
        assert.deepEqual(s.anyOf, [{ type: 'integer' }, { type: 'string' }], `${path}: int-or-string anyOf`);
      } else assert.ok(s.type, `${path}: has no type`);
      assert.ok(!(s.properties && s.additionalProperties !== undefined), `${path}: properties and additionalProperties exclude each other`);
      for (const k of keys) {
        assert.ok(
          [
            'type',
            'title',
            'description',
            'format',
            'default',
            'enum',
            'pattern',
            'minLength',
            'maxLength',
            'minimum',
            'maximum',
            'minItems',
            'maxItems',
            'maxProperties',
            'required',
            'properties',
            'additionalProperties',
            'items',
            'anyOf',
            'x-kubernetes-int-or-string',
            'x-kubernetes-preserve-unknown-fields',
            'x-kubernetes-list-type',
            'x-kubernetes-list-map-keys',
          ].includes(k),
          `${path}: unexpected schema keyword ${k}`,
        );
      }
    });
  }
});

test('metadata is left to the API server, and spec/status are objects with a status subresource', () => {
  for (const { crd, version, schema } of roots) {
    assert.deepEqual(schema.properties!.metadata, { type: 'object' }, crd.metadata.name);
    const scale = { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' };
    const subresources = crd.spec.names.kind === 'GuestSet' ? { status: {}, scale } : { status: {} };
    assert.deepEqual(version.subresources, subresources, crd.metadata.name);
    assert.equal(schema.properties!.status!.type, 'object');
    assert.equal(crd.metadata.name, `${crd.spec.names.plural}.${crd.spec.group}`);
  }
});

test('list-map keys are required or defaulted in their items (the API server insists)', () => {
  for (const { crd, schema } of roots) {
    walk(schema, crd.spec.names.kind, (s, path) => {
      if (s['x-kubernetes-list-type'] !== 'map') return;
      const item = s.items!;
      for (const key of s['x-kubernetes-list-map-keys'] ?? []) {
        const sub = item.properties?.[key];
        assert.ok(sub, `${path}: map key ${key} is not a field`);
        assert.ok(item.required?.includes(key) || sub.default !== undefined, `${path}: map key ${key} must be required or defaulted`);
      }
    });
  }
});

test('every default passes the schema it is the default of', () => {
  const ajv = new Ajv({ strict: false });
  for (const { crd, schema } of roots) {
    walk(schema, crd.spec.names.kind, (s, path) => {
      if (s.default === undefined) return;
      const check = ajv.compile({ ...s, default: undefined });
      assert.ok(check(s.default), `${path}: default ${JSON.stringify(s.default)} fails: ${ajv.errorsText(check.errors)}`);
    });
  }
});

test('every pattern has a human name for error messages and is RE2-compatible (no lookaround, no backreferences)', () => {
  for (const { crd, schema } of roots) {
    walk(schema, crd.spec.names.kind, (s, path) => {
      if (s.pattern === undefined) return;
      assert.ok(PATTERN_NAMES.has(s.pattern), `${path}: pattern ${s.pattern} has no entry in crds/patterns.ts`);
      assert.doesNotMatch(s.pattern, /\(\?[=!<]|\\[1-9]/, `${path}: Go's regexp cannot run ${s.pattern}`);
      new RegExp(s.pattern, 'u');
    });
  }
});

test('printer columns point at fields the schema has', () => {
  for (const { crd, version, schema } of roots) {
    for (const column of version.additionalPrinterColumns ?? []) {
      const parts = column.jsonPath
        .replace(/\[\?\(@\.type=="\w+"\)\]/, '[]')
        .split('.')
        .slice(1);
      if (parts[0] === 'metadata') continue;
      let node: JSONSchemaProps | undefined = schema;
      for (const part of parts) {
        const name = part.replace('[]', '');
        node = node?.properties?.[name];
        if (part.endsWith('[]')) node = node?.items;
      }
      assert.ok(node, `${crd.spec.names.kind} column ${column.name}: ${column.jsonPath} is not in the schema`);
    }
  }
});

test('every field has a description (kubectl explain and kratactl explain show it); metadata is ObjectMeta', () => {
  const missing: string[] = [];
  for (const { crd, schema } of roots) {
    walk(schema, crd.spec.names.kind, (s, path) => {
      // The apiserver refuses anything but `type: object` on the root's metadata (it is ObjectMeta, documented
      // by Kubernetes; kratactl explain has its own, crds/object-meta-doc.ts).
      if (path === `${crd.spec.names.kind}.metadata`) return;
      if (!s.description?.trim()) missing.push(path);
    });
  }
  assert.deepEqual(missing, [], `fields without a description: ${missing.join(', ')}`);
});

test('the Guest printer columns are the ones users expect from kubectl get (READY and RESTARTS as for Pods)', () => {
  const guest = roots.find((r) => r.crd.spec.names.kind === 'Guest')!;
  const columns = guest.version.additionalPrinterColumns!.filter((c) => !c.priority).map((c) => c.name);
  assert.deepEqual(columns, ['Ready', 'Phase', 'Restarts', 'Node', 'IPv4', 'Age']);
  const ready = guest.version.additionalPrinterColumns!.find((c) => c.name === 'Ready')!;
  assert.equal(ready.jsonPath, '.status.conditions[?(@.type=="Ready")].status');
  assert.ok(guest.crd.spec.names.shortNames?.length);
  assert.equal(guest.crd.spec.scope, 'Namespaced');
  assert.equal(roots.find((r) => r.crd.spec.names.kind === 'XenHost')!.crd.spec.scope, 'Cluster');
});

test('categories: all three in krata (`kubectl get krata`), the workloads also in all', () => {
  const categories = Object.fromEntries(allCRDs.map((c) => [c.spec.names.kind, c.spec.names.categories]));
  assert.deepEqual(categories, { Guest: ['krata', 'all'], XenHost: ['krata'], GuestSet: ['krata', 'all'] });
});
