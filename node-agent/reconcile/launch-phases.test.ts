// A launch's breakdown: the clock starts when the Guest's change is queued, each stage of the create
// step marks a phase in order, only reconciles that start a domain report, and nothing is kept for
// keys once reconciled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LaunchPhases, type LaunchReport } from './launch-phases.js';
import { guest, harness, phase } from '../../test/harness/node-controller.js';

test('the first phase runs from the first time the key was queued to the reconcile picking it up', () => {
  let t = 100;
  const reports: LaunchReport[] = [];
  const launches = new LaunchPhases(
    (r) => reports.push(r),
    () => t,
  );
  launches.queued('default/a');
  t = 130;
  launches.queued('default/a'); // queued again while waiting: the clock keeps its start
  t = 145;
  const timer = launches.begin('default/a');
  assert.equal(launches.waiting, 0);
  t = 150;
  timer.mark('image lookup');
  launches.finish('default/a', timer, 7);
  assert.deepEqual(reports, [
    {
      key: 'default/a',
      domid: 7,
      phases: [
        { name: 'queue pickup', ms: 45 },
        { name: 'image lookup', ms: 5 },
      ],
    },
  ]);
  // A reconcile nobody queued (a requeue after a delay) starts its clock when it starts.
  t = 200;
  const again = launches.begin('default/a');
  assert.deepEqual(again.phases(), [{ name: 'queue pickup', ms: 0 }]);
});

test('a listener that throws does not fail the launch', () => {
  const launches = new LaunchPhases(() => {
    throw new Error('boom');
  });
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  assert.doesNotThrow(() => launches.finish('default/a', launches.begin('default/a'), 1));
  return new Promise<void>((resolve) =>
    setImmediate(() => {
      process.off('warning', onWarning);
      assert.ok(warnings.some((m) => m.includes('boom')));
      resolve();
    }),
  );
});

test('apply → Running reports one breakdown with the create step phases in order; reconciles after it report none', async () => {
  const reports: LaunchReport[] = [];
  const h = harness(undefined, undefined, undefined, undefined, { onLaunch: (r) => reports.push(r) });
  await h.agent.apply([guest('web')], false);
  await h.until(() => phase(h, 'web') === 'Running');
  assert.equal(reports.length, 1);
  const r = reports[0]!;
  assert.equal(r.key, 'default/web');
  assert.equal(r.domid, h.agent.get('default', 'web')!.status!.domid);
  assert.deepEqual(
    r.phases.map((p) => p.name),
    [
      'queue pickup',
      'domain list',
      'image lookup',
      'status Creating',
      'host and boot files',
      'addresses',
      'launch config',
      'status Running',
    ],
  );
  assert.ok(r.phases.every((p) => p.ms >= 0));
  // Observing the running domain, and a resync, start no launch.
  h.controller.queue.add('default/web');
  await h.controller.resync();
  await h.until(() => true);
  assert.equal(reports.length, 1);
  h.stop();
});

test('a Guest waiting for its image reports once, when its domain starts', async () => {
  const reports: LaunchReport[] = [];
  const h = harness(undefined, undefined, undefined, undefined, { onLaunch: (r) => reports.push(r) });
  await h.agent.apply([guest('slow', { image: 'registry.example/slow:1' })], false);
  await h.until(() => h.images.held.size === 1);
  assert.equal(phase(h, 'slow'), 'Pending');
  assert.equal(reports.length, 0);
  h.images.release('registry.example/slow:1');
  await h.until(() => phase(h, 'slow') === 'Running');
  assert.equal(reports.length, 1);
  // One breakdown from the apply: the first reconcile's phases, the pull, then the launch's.
  const names = reports[0]!.phases.map((p) => p.name);
  assert.deepEqual(names.slice(0, 3), ['queue pickup', 'domain list', 'image pull']);
  assert.equal(names.at(-1), 'status Running');
  assert.equal(names.filter((n) => n === 'image lookup').length, 1);
  h.stop();
});
