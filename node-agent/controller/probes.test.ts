// Probes through the whole controller (fake hypervisor, fake clock, fake guest channels): Ready follows
// the readiness probe, and a failing liveness probe stops the domain, counted as a failed exit that the
// restart policy judges (Events Unhealthy and Killing, restartCount, a new domain; Never ends Failed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guest, harness, phase, type Harness } from '../../test/harness/node-controller.js';
import { FakeGuestChannel } from '../../test/doubles/fake-guest-channel.js';

const cond = (type: string) => (h: Harness, name: string) => h.agent.get('default', name)?.status?.conditions?.find((c) => c.type === type);
const ready = cond('Ready');
const reconciling = cond('Reconciling');

/** A fake channel for each of the first domids, with a program `name` whose exit status the test sets. */
function channels(h: Harness, name: string): { ok: boolean } {
  const state = { ok: true };
  for (let domid = 1; domid <= 4; domid++) {
    const ch = new FakeGuestChannel();
    ch.programs.set(name, (s) => s.exit({ exitCode: state.ok ? 0 : 1 }));
    h.hv.channels.set(domid, ch);
  }
  return state;
}

test('Ready follows the readiness probe: pending, passing, failing, passing again', async () => {
  const h = harness(undefined, undefined, undefined, {});
  const check = channels(h, 'check');
  check.ok = false;
  await h.agent.apply([guest('web', { readinessProbe: { exec: { command: ['check'] }, periodSeconds: 1, failureThreshold: 1 } })], false);
  await h.until(() => ready(h, 'web')?.reason === 'ReadinessProbeFailed', 100);
  assert.equal(phase(h, 'web'), 'Running');
  assert.equal(ready(h, 'web')!.status, 'False');
  assert.match(ready(h, 'web')!.message, /readiness probe failed: command "check" failed \(exit code 1\)/);
  assert.equal(reconciling(h, 'web')!.status, 'True', 'never ready yet: still coming up');
  check.ok = true;
  await h.until(() => ready(h, 'web')?.status === 'True', 100);
  const probes = h.agent.get('default', 'web')!.status!.probes!;
  assert.equal(probes.readiness!.result, 'Success');
  assert.equal(probes.liveness, undefined);
  check.ok = false;
  await h.until(() => ready(h, 'web')?.status === 'False', 100);
  assert.equal(ready(h, 'web')!.reason, 'ReadinessProbeFailed');
  assert.equal(reconciling(h, 'web')!.status, 'False', 'was ready: the application fails, nothing is in progress');
  const unhealthy = h.recorder.list('default', 'web').filter((e) => e.reason === 'Unhealthy');
  assert.equal(unhealthy[0]?.type, 'Warning');
  assert.match(unhealthy[0]!.message, /^Readiness probe failed: command "check" failed/);
  assert.equal(h.hv.calls.create, 1, 'readiness never restarts');
  h.stop();
});

test('a failing liveness probe restarts the guest: Unhealthy, Killing, restartCount 1, a new domain', async () => {
  const h = harness(undefined, undefined, undefined, {});
  const alive = channels(h, 'alive');
  await h.agent.apply(
    [
      guest('live', {
        livenessProbe: { exec: { command: ['alive'] }, periodSeconds: 1, failureThreshold: 2 },
        terminationGracePeriodSeconds: 5,
      }),
    ],
    false,
  );
  await h.until(() => h.agent.get('default', 'live')?.status?.probes?.liveness?.result === 'Success', 100);
  assert.equal(ready(h, 'live')!.status, 'True');
  alive.ok = false;
  await h.until(() => h.agent.get('default', 'live')?.status?.restartCount === 1, 100);
  const s = h.agent.get('default', 'live')!.status!;
  assert.deepEqual([s.phase, s.reason], ['Pending', 'CrashLoopBackOff']);
  assert.match(s.message!, /restarting: stopped: liveness probe failed 2 times in a row/);
  assert.deepEqual([s.probes?.lastKill?.probe, s.probes?.lastKill?.domid, s.probes?.liveness], ['Liveness', 1, undefined]);
  const events = h.recorder.list('default', 'live');
  assert.ok(events.some((e) => e.type === 'Warning' && e.reason === 'Unhealthy' && /^Liveness probe failed: /.test(e.message)));
  assert.ok(
    events.some((e) => e.type === 'Normal' && e.reason === 'Killing' && e.message === 'domain 1 failed liveness probe, will be restarted'),
  );
  assert.equal(h.hv.calls.shutdown, 1, 'stopped within its grace period, not destroyed outright');
  alive.ok = true;
  await h.until(() => phase(h, 'live') === 'Running', 500);
  assert.equal(h.agent.get('default', 'live')!.status!.domid, 2);
  await h.until(() => ready(h, 'live')?.status === 'True', 100);
  assert.equal(h.agent.get('default', 'live')!.status!.restartCount, 1);
  h.stop();
});

test('restartPolicy Never: a liveness failure ends the Guest Failed; a startup failure kills like liveness', async () => {
  const h = harness(undefined, undefined, undefined, {});
  const alive = channels(h, 'alive');
  alive.ok = false;
  await h.agent.apply(
    [
      guest('once', {
        restartPolicy: 'Never',
        startupProbe: { exec: { command: ['alive'] }, periodSeconds: 1, failureThreshold: 3 },
        readinessProbe: { exec: { command: ['alive'] }, periodSeconds: 1 },
      }),
    ],
    false,
  );
  await h.until(() => phase(h, 'once') === 'Failed', 100);
  const s = h.agent.get('default', 'once')!.status!;
  assert.equal(s.restartCount ?? 0, 0);
  assert.equal(s.probes?.lastKill?.probe, 'Startup');
  assert.match(s.message!, /startup probe failed 3 times in a row/);
  const killing = h.recorder.list('default', 'once').find((e) => e.reason === 'Killing');
  assert.equal(killing?.message, 'domain 1 failed startup probe, will not be restarted (restartPolicy Never)');
  assert.equal(h.hv.count, 0);
  h.stop();
});

test('changing a probe keeps the running domain', async () => {
  const h = harness(undefined, undefined, undefined, {});
  channels(h, 'check');
  await h.agent.apply([guest('keep', { readinessProbe: { exec: { command: ['check'] }, periodSeconds: 1 } })], false);
  await h.until(() => ready(h, 'keep')?.status === 'True', 100);
  await h.agent.apply([guest('keep', { readinessProbe: { exec: { command: ['check'] }, periodSeconds: 2, failureThreshold: 5 } })], false);
  await h.until(() => h.agent.get('default', 'keep')?.status?.observedGeneration === 2, 100);
  assert.equal(h.hv.calls.create, 1);
  assert.equal(h.agent.get('default', 'keep')!.status!.domid, 1);
  h.stop();
});
