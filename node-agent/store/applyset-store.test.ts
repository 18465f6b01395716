// ApplySet parents on disk: kept across a restart (a new store on the same directory), removed, and a
// file that does not check out reported and left in place rather than trusted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplySetStore } from './applyset-store.js';
import { APPLYSET_ID_LABEL, applySetId, type ApplySetParent } from '../../contracts/agent-api/applyset.js';

const parent = (name: string, namespace = 'default', kinds = 'Guest.krata.dev'): ApplySetParent => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: {
    name,
    namespace,
    labels: { [APPLYSET_ID_LABEL]: applySetId(name, namespace) },
    annotations: { 'applyset.kubernetes.io/contains-group-kinds': kinds },
  },
});

test('parents persist across a new store, change, go; a forged file is left and reported', (t) => {
  const state = mkdtempSync(join(tmpdir(), 'krata-applysets-'));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const a = new ApplySetStore(state);
  assert.equal(a.put(parent('site')), 'created');
  assert.equal(a.put(parent('site')), 'unchanged');
  assert.equal(a.put(parent('site', 'default', 'Guest.krata.dev,Secret')), 'configured');
  a.put(parent('other', 'team'));
  assert.equal(statSync(join(state, 'applysets/default/site.json')).mode & 0o777, 0o600);

  const b = new ApplySetStore(state);
  assert.deepEqual(b.get('default', 'site'), parent('site', 'default', 'Guest.krata.dev,Secret'));
  assert.deepEqual(
    b.list().map((p) => p.metadata.name),
    ['site', 'other'],
  );
  assert.equal(b.remove('team', 'other'), true);
  assert.equal(b.remove('team', 'other'), false);
  assert.ok(!existsSync(join(state, 'applysets/team/other.json')));

  // A file whose id is not its own name's (copied or edited by hand) is not trusted.
  writeFileSync(join(state, 'applysets/default/copy.json'), readFileSync(join(state, 'applysets/default/site.json')));
  const problems: string[] = [];
  const c = new ApplySetStore(state, problems);
  assert.equal(c.get('default', 'copy'), undefined);
  assert.match(problems.join('\n'), /copy\.json: .*this parent's id|copy\.json: .*path/);
  assert.ok(existsSync(join(state, 'applysets/default/copy.json')), 'left in place');
  assert.throws(() => c.put({ ...parent('x'), metadata: { ...parent('x').metadata, name: '../x' } }), /invalid applyset name/);
});
