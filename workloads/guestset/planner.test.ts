// Rollout planning: scaling, surge and unavailability limits, readiness gating with minReadySeconds,
// the scale-down order, and Recreate. Each case states the Guests and checks the one step planned.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planRollout, rollingLimits, type Member, type PlanInput } from './planner.js';

const NOW = 1_000_000;
const g = (name: string, revision: string, extra: Partial<Member> = {}): Member => ({
  name,
  revision,
  ready: true,
  readySince: NOW - 60_000,
  created: NOW - 100_000,
  deleting: false,
  ...extra,
});
const input = (members: Member[], extra: Partial<PlanInput> = {}): PlanInput => ({
  replicas: 4,
  strategy: { type: 'RollingUpdate' },
  minReadySeconds: 0,
  updateRevision: 'new',
  members,
  now: NOW,
  ...extra,
});
const olds = (n: number) => Array.from({ length: n }, (_, i) => g(`old${i}`, 'old', { created: NOW - 100_000 + i }));

test('scale up creates the missing Guests; scale down deletes not-ready, then the newest', () => {
  assert.deepEqual(planRollout(input([g('a', 'new')])).create, 3);
  const members = [
    g('a', 'new', { created: 1 }),
    g('b', 'new', { created: 3 }),
    g('c', 'new', { created: 2, ready: false }),
    g('d', 'new', { created: 4 }),
    g('e', 'new', { created: 5 }),
  ];
  const p = planRollout(input(members, { replicas: 2 }));
  assert.equal(p.create, 0);
  assert.deepEqual(p.delete, ['c', 'e', 'd']);
  assert.deepEqual(planRollout(input(members, { replicas: 0 })).delete.length, 5);
  // Guests being deleted are not counted: they are replaced at once.
  const p2 = planRollout(input([g('a', 'new'), g('b', 'new', { deleting: true })], { replicas: 2 }));
  assert.equal(p2.create, 1);
  assert.deepEqual(p2.counts, { replicas: 1, ready: 1, available: 1, updated: 1, old: 0 });
});

test('25%/25% of 4: one Guest over, one unavailable at a time', () => {
  assert.deepEqual(rollingLimits({ type: 'RollingUpdate' }, 4), { surge: 1, unavailable: 1 });
  assert.deepEqual(rollingLimits({ type: 'RollingUpdate', rollingUpdate: { maxSurge: '10%', maxUnavailable: '10%' } }, 4), {
    surge: 1,
    unavailable: 0,
  });
  assert.deepEqual(rollingLimits({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 0 } }, 4), {
    surge: 0,
    unavailable: 1,
  });
  const p = planRollout(input(olds(4)));
  assert.equal(p.create, 1, 'maxSurge 1: one new Guest');
  assert.deepEqual(p.delete, ['old3'], 'maxUnavailable 1: one old Guest goes, the newest of them');
});

test('readiness gates the rollout: old Guests go only as new ones become available', () => {
  // Step 2 of the rollout: 3 old, 2 new not ready yet.
  const notReady = [...olds(3), g('n1', 'new', { ready: false }), g('n2', 'new', { ready: false })];
  let p = planRollout(input(notReady));
  assert.equal(p.create, 0, '5 Guests = replicas + maxSurge');
  assert.deepEqual(p.delete, [], '3 available = replicas - maxUnavailable: none may go');
  // One new Guest becomes Ready: one old may go.
  const oneReady = [...olds(3), g('n1', 'new'), g('n2', 'new', { ready: false })];
  p = planRollout(input(oneReady));
  assert.deepEqual(p.delete, ['old2']);
  // With minReadySeconds the Ready Guest is not available yet: nothing goes, and the planner says when to look again.
  const fresh = [...olds(3), g('n1', 'new', { readySince: NOW - 5_000 }), g('n2', 'new', { ready: false })];
  p = planRollout(input(fresh, { minReadySeconds: 10 }));
  assert.deepEqual(p.delete, []);
  assert.equal(p.recheckAt, NOW + 5_000);
  assert.equal(p.counts.ready, 4);
  assert.equal(p.counts.available, 3);
  p = planRollout(input(fresh, { minReadySeconds: 10, now: NOW + 5_000 }));
  assert.deepEqual(p.delete, ['old2']);
});

test('maxUnavailable 0 never lowers availability; maxSurge 0 never exceeds replicas; not-ready old Guests go first', () => {
  const noUnavailable = { type: 'RollingUpdate' as const, rollingUpdate: { maxSurge: 2, maxUnavailable: 0 } };
  let p = planRollout(input(olds(4), { strategy: noUnavailable }));
  assert.equal(p.create, 2);
  assert.deepEqual(p.delete, []);
  const noSurge = { type: 'RollingUpdate' as const, rollingUpdate: { maxSurge: 0, maxUnavailable: 2 } };
  p = planRollout(input(olds(4), { strategy: noSurge }));
  assert.equal(p.create, 0);
  assert.deepEqual(p.delete, ['old3', 'old2']);
  // An old Guest that is not ready costs no availability: it goes before any healthy one.
  const sick = [...olds(3), g('old-sick', 'old', { ready: false, created: 0 })];
  p = planRollout(input(sick));
  assert.deepEqual(p.delete, ['old-sick'], 'maxUnavailable 1: the one deletion is the sick Guest, though it is the oldest');
});

test('a rollout finishes: every Guest new and available, the last old ones deleted', () => {
  let members = olds(4);
  let created = 0;
  for (let round = 0; round < 20; round++) {
    const p = planRollout(input(members));
    if (p.create === 0 && p.delete.length === 0) break;
    assert.ok(members.filter((m) => m.ready).length - p.delete.length >= 3, `round ${round}: availability kept`);
    members = members.filter((m) => !p.delete.includes(m.name));
    for (let i = 0; i < p.create; i++) members.push(g(`n${created++}`, 'new', { ready: false, created: NOW + created }));
    assert.ok(members.length <= 5, `round ${round}: at most replicas + maxSurge`);
    // Every new Guest becomes Ready before the next round.
    members = members.map((m) => ({ ...m, ready: true }));
  }
  assert.deepEqual(
    members.map((m) => m.revision),
    ['new', 'new', 'new', 'new'],
  );
});

test('Recreate deletes every old Guest, then creates the new ones once the old are gone', () => {
  const recreate = { type: 'Recreate' as const };
  let p = planRollout(input([...olds(3), g('n1', 'new')], { strategy: recreate }));
  assert.equal(p.create, 0);
  assert.deepEqual(p.delete.sort(), ['n1', 'old0', 'old1', 'old2']);
  p = planRollout(input([g('old0', 'old', { deleting: true })], { strategy: recreate }));
  assert.equal(p.create, 0, 'an old Guest still shutting down holds the new ones back');
  p = planRollout(input([g('n0', 'new', { deleting: true })], { strategy: recreate }));
  assert.equal(p.create, 4);
});
