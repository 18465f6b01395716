import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Guest } from '../crds/generated/types.js';
import { checkFields, FieldSelectorError, matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selectors.js';

test('label selectors: equality, sets, existence, numbers, as the apiserver matches them', () => {
  const labels = { app: 'web', tier: 'front', n: '5' };
  const m = (s: string) => matchesLabels(parseLabelSelector(s), labels);
  assert.ok(m('app=web') && m('app==web') && m('app!=db') && m('db!=x'));
  assert.ok(m('tier in (front, back)') && m('tier notin (back)') && m('other notin (x)'));
  assert.ok(m('app') && m('!other') && !m('!app') && !m('other'));
  assert.ok(m('n>4') && m('n<6') && !m('n>5') && !m('app>1'));
  assert.ok(m('app=web,tier in (front),!legacy') && !m('app=web,tier=back'));
  assert.ok(m('example.com/team!=data'));
  assert.deepEqual(parseLabelSelector(''), []);
  for (const bad of ['app=web,', 'tier in (a', '=x', 'a b', 'app=-x-', 'n>x'])
    assert.throws(() => parseLabelSelector(bad), /unable to parse/, bad);
});

test('field selectors: =, ==, != over the fields Guests have; others are refused in the apiserver words', () => {
  const g = { kind: 'Guest', metadata: { name: 'web', namespace: 'team' }, spec: { image: 'a' }, status: { phase: 'Running', node: 'h1' } };
  const m = (s: string) => matchesFields(parseFieldSelector(s), g as unknown as Guest);
  assert.ok(m('metadata.name=web') && m('metadata.name==web') && m('metadata.namespace!=default'));
  assert.ok(m('status.phase=Running,status.node=h1') && m('spec.nodeName=') && !m('status.phase=Pending'));
  assert.deepEqual(parseFieldSelector('metadata.name=a\\,b'), [{ field: 'metadata.name', negate: false, value: 'a,b' }]);
  assert.throws(() => parseFieldSelector('metadata.name'), /invalid selector: 'metadata.name'; can't understand 'metadata.name'/);
  assert.throws(
    () => checkFields(parseFieldSelector('spec.image=a'), 'guests', 'app=x', 'spec.image=a'),
    new FieldSelectorError(
      'Unable to find "krata.dev/v1alpha1, Resource=guests" that match label selector "app=x", field selector "spec.image=a": ' +
        'field label not supported: spec.image',
    ),
  );
});
