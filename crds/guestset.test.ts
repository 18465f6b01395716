// GuestSets through the one validator: defaults as the API server applies them, errors naming the field
// (inside the template too), and the cross-field rules of semantics.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPath, resolveKind, validateObject } from './validate.js';
import type { GuestSet } from './generated/types.js';
import { matchesSelector, selectorString } from './label-selector.js';

const set = (spec: Record<string, unknown> = {}, labels: Record<string, string> = { app: 'web' }) => ({
  apiVersion: 'krata.dev/v1alpha1',
  kind: 'GuestSet',
  metadata: { name: 'web' },
  spec: {
    selector: { matchLabels: { app: 'web' } },
    template: { metadata: { labels }, spec: { image: 'nginx:1.27' } },
    ...spec,
  },
});
const errorsOf = (o: unknown) => validateObject(o).errors.map((e) => `${formatPath(e.path)}: ${e.message}`);

test('a GuestSet is defaulted like a Deployment, and its template like a Guest', () => {
  const r = validateObject(set());
  assert.deepEqual(r.errors, []);
  const gs = r.object as GuestSet;
  assert.equal(gs.spec.replicas, 1);
  assert.equal(gs.spec.minReadySeconds, 0);
  assert.deepEqual(gs.spec.strategy, { type: 'RollingUpdate' });
  assert.equal(gs.spec.template.spec.restartPolicy, 'Always');
  assert.deepEqual(gs.spec.template.spec.resources, { cpus: 1, memory: '512Mi' });
  const ru = validateObject(set({ strategy: { rollingUpdate: {} } })).object as GuestSet;
  assert.deepEqual(ru.spec.strategy.rollingUpdate, { maxUnavailable: '25%', maxSurge: '25%' });
  assert.equal(resolveKind('gs')?.kind, 'GuestSet');
  assert.equal(resolveKind('guestsets.krata.dev')?.kind, 'GuestSet');
});

test('errors name the field, inside the template as well', () => {
  assert.deepEqual(errorsOf(set({ replicas: -1 })), ['spec.replicas: must be >= 0 (got number -1)']);
  const e = errorsOf(
    set({ template: { metadata: { labels: { app: 'web' } }, spec: { image: 'nginx', resources: { memory: '1Mi' }, tty: 'x' } } }),
  );
  assert.ok(e.includes('spec.template.spec.tty: must be a boolean (got string "x")'), e.join('\n'));
  const sem = errorsOf(set({ template: { metadata: { labels: { app: 'web' } }, spec: { image: 'nginx', resources: { memory: '1Mi' } } } }));
  assert.deepEqual(sem, ['spec.template.spec.resources.memory: must be at least 32Mi (got 1Mi)']);
  assert.match(errorsOf(set({ strategy: { type: 'Blue' } }))[0]!, /^spec\.strategy\.type: must be one of "RollingUpdate", "Recreate"/);
  assert.match(
    errorsOf(set({ strategy: { rollingUpdate: { maxSurge: '25' } } }))[0]!,
    /^spec\.strategy\.rollingUpdate\.maxSurge: must match/,
  );
  assert.match(errorsOf(set({ spec2: 1 }))[0]!, /^spec\.spec2: unknown field/);
});

test('the selector must select the template, and the strategy must allow progress', () => {
  assert.deepEqual(errorsOf(set({}, { app: 'api' })), [
    "spec.selector: does not match the template's labels (spec.template.metadata.labels): the set would never see its Guests",
  ]);
  assert.match(errorsOf(set({ selector: {} }))[0]!, /^spec\.selector: must not be empty/);
  assert.deepEqual(errorsOf(set({ strategy: { type: 'Recreate', rollingUpdate: {} } })), [
    'spec.strategy.rollingUpdate: may only be set when type is RollingUpdate',
  ]);
  assert.match(errorsOf(set({ strategy: { rollingUpdate: { maxSurge: 0, maxUnavailable: '0%' } } }))[0]!, /maxUnavailable: may not be 0/);
  assert.match(
    errorsOf(set({ selector: { matchExpressions: [{ key: 'app', operator: 'In' }] } }))[0]!,
    /matchExpressions\[0\]\.values: must not be empty for operator In/,
  );
  assert.deepEqual(errorsOf(set({ selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] } })), []);
});

test('label selectors match and print as metav1 does', () => {
  const sel = {
    matchLabels: { tier: 'fe', app: 'web' },
    matchExpressions: [
      { key: 'env', operator: 'In' as const, values: ['prod', 'dev'] },
      { key: 'legacy', operator: 'DoesNotExist' as const },
      { key: 'zone', operator: 'NotIn' as const, values: ['a'] },
      { key: 'team', operator: 'Exists' as const },
    ],
  };
  assert.equal(selectorString(sel), 'app=web,tier=fe,env in (dev,prod),!legacy,zone notin (a),team');
  const labels = { app: 'web', tier: 'fe', env: 'dev', team: 'x' };
  assert.ok(matchesSelector(sel, labels));
  assert.ok(!matchesSelector(sel, { ...labels, legacy: '1' }));
  assert.ok(!matchesSelector(sel, { ...labels, zone: 'a' }));
  assert.ok(!matchesSelector(sel, { ...labels, env: 'qa' }));
  assert.ok(!matchesSelector(sel, { app: 'web', tier: 'fe', env: 'dev' }));
});
